"""All-or-nothing publishing of a model artifact, proven by failing it at every filesystem step.

After a crash (SIGKILL: nothing cleans up) or a full disk (ENOSPC: the code cleans up) at the
N-th ``os.fsync`` / ``os.replace`` / ``os.unlink`` of a conversion over a previous artifact, the
folder must be either the previous complete artifact or one that both the real coreutils
``sha256sum -c`` and the ``sha256_matches`` check refuse; a rerun then publishes the new one.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import shutil
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import torch

from wmtp_assets.files.hashing import sha256_file
from wmtp_assets.files.layout import ModelDirs
from wmtp_assets.models.convert_meta import convert_meta_mtp
from wmtp_assets.models.micro import build_micro_ref
from wmtp_assets.models.source_digest import SourceChangedError
from wmtp_assets.validate.model_checks import sha256_matches
from wmtp_assets_tests.files.fault_injection import Killed, count_steps, fail_at
from wmtp_assets_tests.models.checkpoint_fixtures import (
    REPO_ROOT,
    coreutils_accepts,
    make_meta_raw,
    make_tokenizer,
    recorded_provenance,
)

REPO = "models/facebook/multi-token-prediction"


@pytest.fixture(scope="module")
def tokenizer_model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_tokenizer(tmp_path_factory.mktemp("tok") / "tokenizer.model")


@pytest.fixture(scope="module")
def raws(tmp_path_factory: pytest.TempPathFactory, tokenizer_model: Path) -> tuple[Path, Path]:
    """(the raw folder converted in the tests, another one the previous artifact comes from)."""
    root = tmp_path_factory.mktemp("raws")
    return (
        make_meta_raw(root / "new", tokenizer_model),
        make_meta_raw(root / "old", tokenizer_model, seed=5),
    )


def _convert(raw: Path, dirs: ModelDirs) -> None:
    convert_meta_mtp(raw, dirs, recorded_provenance(raw, REPO), None, "test-v1")


def _snapshot(dirs: ModelDirs) -> dict[str, bytes]:
    """Every file a reader could take for the artifact (not temporaries, not the lock, not the
    run-specific ``proof/`` trace, which names the weights it belongs to)."""
    files = {p.relative_to(dirs.root): p for p in sorted(dirs.root.rglob("*")) if p.is_file()}
    return {
        rel.as_posix(): p.read_bytes()
        for rel, p in files.items()
        if not any(part.startswith(".") for part in rel.parts) and rel.parts[0] != "proof"
    }


def _temporaries(dirs: ModelDirs) -> list[Path]:
    return [p for p in dirs.root.rglob("*") if ".tmp-" in p.name]


@pytest.fixture(scope="module")
def states(
    raws: tuple[Path, Path], tmp_path_factory: pytest.TempPathFactory
) -> tuple[Path, dict[str, bytes], dict[str, bytes]]:
    """(a folder holding the previous artifact, its snapshot, the new artifact's snapshot)."""
    new, old = raws
    root = tmp_path_factory.mktemp("states")
    previous = ModelDirs(root / "previous")
    _convert(old, previous)
    reference = ModelDirs(root / "reference")
    _convert(new, reference)
    return previous.root, _snapshot(previous), _comparable(reference)


def _comparable(dirs: ModelDirs) -> dict[str, bytes]:
    """The snapshot less what carries the creation time (metadata.json and its seal line)."""
    files = {k: v for k, v in _snapshot(dirs).items() if k != "metadata.json"}
    if "safetensors/SHA256SUMS" in files:
        lines = files["safetensors/SHA256SUMS"].splitlines(keepends=True)
        files["safetensors/SHA256SUMS"] = b"".join(
            line for line in lines if not line.endswith(b"../metadata.json\n")
        )
    return files


@pytest.mark.parametrize("kind", ["sigkill", "enospc"])
def test_failure_at_every_step_leaves_previous_or_refused(
    kind: str,
    raws: tuple[Path, Path],
    states: tuple[Path, dict[str, bytes], dict[str, bytes]],
    tmp_path: Path,
) -> None:
    new, _ = raws
    previous, before, after = states
    counted = ModelDirs(Path(shutil.copytree(previous, tmp_path / "count")))
    total = count_steps(lambda: _convert(new, counted))
    assert total > 10, "the conversion's fsync/replace/unlink steps were counted"
    outcomes: list[str] = []
    for n in range(1, total + 1):
        dirs = ModelDirs(Path(shutil.copytree(previous, tmp_path / f"{kind}-{n}")))
        with pytest.MonkeyPatch.context() as patch:
            fail_at(patch, n, kind)
            with contextlib.suppress(Killed, OSError):  # the last steps are cleanup: no raise
                _convert(new, dirs)
        accepted = coreutils_accepts(dirs)
        assert sha256_matches(dirs).passed == accepted, f"step {n}: check and coreutils agree"
        if kind == "enospc":
            assert _temporaries(dirs) == [], f"step {n}: the failed run removed its temporaries"
        if accepted and _snapshot(dirs) == before:
            outcomes.append("previous")
            continue
        if accepted:
            assert _comparable(dirs) == after, f"step {n}: accepted, so previous or new"
            outcomes.append("new")
            continue
        assert not dirs.sha256sums.exists(), f"step {n}: refused because it has no seal"
        outcomes.append("refused")
        _convert(new, dirs)
        assert coreutils_accepts(dirs) and sha256_matches(dirs).passed, f"step {n}: rerun"
        assert _comparable(dirs) == after and _temporaries(dirs) == []
    assert outcomes[0] == "previous" and "refused" in outcomes, outcomes


def _kill_before_seal(raw: Path, out: Path) -> str:
    """A conversion in a fresh interpreter that SIGKILLs itself just before ``SHA256SUMS``
    would be renamed into place (metadata.json and the weights already are)."""
    return textwrap.dedent(
        f"""
        import os, signal
        from pathlib import Path
        from wmtp_assets.files import staging
        from wmtp_assets.files.layout import ModelDirs
        from wmtp_assets.models.convert_meta import convert_meta_mtp
        from wmtp_assets_tests.models.checkpoint_fixtures import recorded_provenance

        real = os.replace
        def replace(src, dest):
            if Path(dest).name == "SHA256SUMS":
                os.kill(os.getpid(), signal.SIGKILL)
            real(src, dest)
        staging.os.replace = replace
        raw = Path({str(raw)!r})
        convert_meta_mtp(raw, ModelDirs(Path({str(out)!r})), recorded_provenance(raw, {REPO!r}),
                         None, "test-v1")
        """
    )


@pytest.mark.parametrize("first", [True, False], ids=["first-publish", "republish"])
def test_sigkill_before_the_seal_is_refused_then_rerun_recovers(
    first: bool,
    raws: tuple[Path, Path],
    states: tuple[Path, dict[str, bytes], dict[str, bytes]],
    tmp_path: Path,
) -> None:
    """The reported case: a publish that died after the weights and before ``metadata.json``
    or the seal must not pass ``sha256sum -c`` (the storage README's recipe) nor the check."""
    new, _ = raws
    previous, _, after = states
    dirs = ModelDirs(tmp_path / "out")
    if not first:
        shutil.copytree(previous, dirs.root)
    done = subprocess.run(
        [sys.executable, "-c", _kill_before_seal(new, dirs.root)],
        env={**os.environ, "PYTHONPATH": str(REPO_ROOT)},
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == -signal.SIGKILL, done.stderr[-2000:]
    assert dirs.weights.is_file() and dirs.metadata.is_file(), "killed after both were renamed"
    assert not dirs.sha256sums.exists()
    recipe = subprocess.run(
        ["sha256sum", "-c", "SHA256SUMS"], cwd=dirs.safetensors, capture_output=True, text=True
    )
    assert recipe.returncode != 0 and "SHA256SUMS" in recipe.stderr
    outcome = sha256_matches(dirs)
    assert not outcome.passed and "SHA256SUMS: missing" in outcome.summary
    _convert(new, dirs)
    assert coreutils_accepts(dirs) and sha256_matches(dirs).passed
    assert _comparable(dirs) == after and _temporaries(dirs) == []


def test_flipped_raw_byte_is_refused_and_nothing_published(
    raws: tuple[Path, Path],
    states: tuple[Path, dict[str, bytes], dict[str, bytes]],
    tmp_path: Path,
) -> None:
    new, _ = raws
    previous, before, after = states
    raw = Path(shutil.copytree(new, tmp_path / "raw"))
    provenance = recorded_provenance(raw, REPO)
    checkpoint = raw / "7B_1T_4" / "consolidated.pth"
    data = bytearray(checkpoint.read_bytes())
    weight = torch.load(checkpoint, weights_only=True)["layers.1.attention.wq.weight"]
    at = data.find(weight.numpy().tobytes())
    assert at > 0
    data[at + 3] ^= 0x01  # an exponent bit of the first float32: x4 or /4, still in fp16 range
    checkpoint.write_bytes(bytes(data))

    unchecked = ModelDirs(tmp_path / "unchecked")
    convert_meta_mtp(raw, unchecked, None, None, "test-v1")
    clean = after["safetensors/model.safetensors"]
    assert unchecked.weights.read_bytes() != clean, "unchecked, the rotten tensor converts"

    dirs = ModelDirs(Path(shutil.copytree(previous, tmp_path / "out")))
    with pytest.raises(SourceChangedError) as caught:
        convert_meta_mtp(raw, dirs, provenance, None, "test-v1")
    message = str(caught.value)
    found = hashlib.sha256(bytes(data)).hexdigest()
    expected = provenance["files"]["7B_1T_4/consolidated.pth"]  # type: ignore[index]
    assert message.startswith(f"{checkpoint}: SHA256 {found} != SOURCE.json {expected}")
    assert "\n" not in message
    assert _snapshot(dirs) == before and _temporaries(dirs) == []
    assert coreutils_accepts(dirs) and sha256_matches(dirs).passed


def test_micro_publish_seals_every_file(tokenizer_model: Path, tmp_path: Path) -> None:
    dirs = ModelDirs(tmp_path / "micro-ref")
    build_micro_ref(dirs, tokenizer_model, sha256_file(tokenizer_model))
    assert coreutils_accepts(dirs) and sha256_matches(dirs).passed
    sums = (dirs.sha256sums).read_text().splitlines()
    assert sums[0].endswith("  model.safetensors"), "the weights' line first (the trainer)"
    names = sorted(line.split("  ", 1)[1] for line in sums)
    assert names == [
        "../config.json",
        "../configs/config.json",
        "../metadata.json",
        "../model.safetensors.index.json",
        "../tokenizer/special_tokens_map.json",
        "../tokenizer/tokenizer.json",
        "../tokenizer/tokenizer.model",
        "../tokenizer/tokenizer_config.json",
        "config.json",
        "model.safetensors",
        "special_tokens_map.json",
        "tokenizer.json",
        "tokenizer.model",
        "tokenizer_config.json",
    ]
    assert sums[1:] == sorted(sums[1:], key=lambda line: line.split("  ", 1)[1])
    recorded = json.loads(dirs.metadata.read_text())["files"]
    assert len(recorded) == len(names) - 1, "metadata.json records all but itself"
