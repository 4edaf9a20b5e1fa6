"""Fixtures shared across the test tree: a demo mirror (built once) and settings pointing at it."""

from __future__ import annotations

import contextlib
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest

from wmtp_assets.cli import main
from wmtp_assets.demo.mirror import DemoMirror, build_demo_mirror
from wmtp_assets.files.layout import Layout
from wmtp_assets.settings import LLAMA2_TOKENIZER_SHA256, Settings

DEMO_STDOUT = "demo_stdout.txt"


@pytest.fixture(scope="session", autouse=True)
def config_home(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """``XDG_CONFIG_HOME`` for the whole session: the demo's keys go here, not to ``~/.config``."""
    home = tmp_path_factory.mktemp("config")
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("XDG_CONFIG_HOME", str(home))
        yield home


@pytest.fixture(scope="session")
def demo_mirror(tmp_path_factory: pytest.TempPathFactory) -> DemoMirror:
    return build_demo_mirror(tmp_path_factory.mktemp("mirror"))


@pytest.fixture
def demo_settings(demo_mirror: DemoMirror, tmp_path: Path) -> Settings:
    return Settings(
        storage_root=tmp_path / "storage",
        mirror=demo_mirror.root,
        tokenizer_sha256=demo_mirror.tokenizer_sha256,
        device="cpu",
    )


@pytest.fixture(scope="session")
def demo_storage(tmp_path_factory: pytest.TempPathFactory) -> Settings:
    """A storage root filled by ``wmtp-assets demo`` itself (which must exit 0), built once;
    what it printed is in ``demo_stdout.txt`` beside the root (``demo_stdout``).

    Tests that modify stored files copy it first (``copied_demo_storage``).
    """
    root = tmp_path_factory.mktemp("demo") / "storage"
    printed = root.parent / DEMO_STDOUT
    with printed.open("w") as out, contextlib.redirect_stdout(out):
        code = main(["--storage-root", str(root), "demo"])
    assert code == 0, printed.read_text()
    settings = Settings.load(storage_root=root)
    assert settings.mirror == Layout(root).demo_mirror.resolve()
    assert settings.tokenizer_sha256 == LLAMA2_TOKENIZER_SHA256  # the default: the real one
    return settings.model_copy(update={"device": "cpu"})


@pytest.fixture(scope="session")
def demo_stdout(demo_storage: Settings) -> str:
    """What ``wmtp-assets demo`` printed on stdout while building ``demo_storage``."""
    return (demo_storage.storage_root.parent / DEMO_STDOUT).read_text()


@pytest.fixture
def copied_demo_storage(demo_storage: Settings, tmp_path: Path) -> Settings:
    """A private copy of the demo storage that a test may corrupt."""
    root = tmp_path / "storage"
    shutil.copytree(demo_storage.storage_root, root, symlinks=True)
    return Settings.load(storage_root=root).model_copy(update={"device": "cpu"})
