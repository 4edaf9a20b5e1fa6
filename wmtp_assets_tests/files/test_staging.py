"""The one staging engine: all-or-nothing publication, ordered renames, errors that name files."""

from __future__ import annotations

import errno
import os
from pathlib import Path

import pytest

from wmtp_assets.files import staging as staging_module
from wmtp_assets.files.staging import PublishError, Staging


def test_staging_publishes_in_order_after_retracting(tmp_path: Path) -> None:
    data, seal = tmp_path / "x.jsonl", tmp_path / "x_stats.json"
    data.write_text("old")
    seal.write_text("old seal")
    with Staging() as staging:
        staging.stage(data).write_text("new")
        staging.scratch(data).write_text("part")
        staging.publish(retract=[seal])
    assert data.read_text() == "new" and not seal.exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["x.jsonl"]


def test_staging_discards_everything_on_error(tmp_path: Path) -> None:
    dest = tmp_path / "x.jsonl"
    with pytest.raises(RuntimeError), Staging() as staging:
        staging.stage(dest).write_text("half")
        staging.scratch(dest).write_text("part")
        raise RuntimeError("crash")
    assert list(tmp_path.iterdir()) == []


def test_staging_removes_the_folders_it_made_only_when_asked(tmp_path: Path) -> None:
    dest = tmp_path / "raw" / "7B_1T_4" / "consolidated.pth"
    with pytest.raises(RuntimeError), Staging(remove_new_folders=True) as staging:
        staging.stage(dest).write_bytes(b"half")
        raise RuntimeError("transfer failed")
    assert list(tmp_path.iterdir()) == []

    (tmp_path / "raw").mkdir()
    (tmp_path / "raw" / "kept").write_bytes(b"previous")
    with pytest.raises(RuntimeError), Staging(remove_new_folders=True) as staging:
        staging.stage(dest).write_bytes(b"half")
        raise RuntimeError("transfer failed")
    assert [p.name for p in (tmp_path / "raw").iterdir()] == ["kept"]

    with pytest.raises(RuntimeError), Staging() as staging:
        staging.stage(dest).write_bytes(b"half")
        raise RuntimeError("transfer failed")
    assert list((tmp_path / "raw" / "7B_1T_4").iterdir()) == []


def test_scratch_dir_is_removed_with_its_content(tmp_path: Path) -> None:
    with Staging() as staging:
        folder = staging.scratch_dir(tmp_path / "raw")
        (folder / "sub").mkdir()
        (folder / "sub" / "part").write_bytes(b"x")
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("failing", ["fsync", "replace"])
def test_full_disk_while_publishing_names_the_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, failing: str
) -> None:
    dest = tmp_path / "processed" / "train.jsonl"

    def no_space(*args: object) -> None:
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    monkeypatch.setattr(staging_module.os, failing, no_space)
    with pytest.raises(PublishError) as caught, Staging() as staging:
        staging.stage(dest).write_text("records")
        staging.publish()
    message = str(caught.value)
    assert str(dest) in message and "No space left on device" in message
    assert caught.value.errno == errno.ENOSPC
    assert "\n" not in message
    assert list((tmp_path / "processed").iterdir()) == []
