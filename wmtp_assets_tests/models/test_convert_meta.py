"""Meta MTP conversion: strict fp16 output; every fault leaves the last good artifact."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from collections.abc import Callable
from pathlib import Path

import pytest
import torch
import yaml
from safetensors import safe_open
from safetensors.torch import load_file

from wmtp_assets.files.hashing import read_sha256sums, sha256_file
from wmtp_assets.files.layout import ModelDirs
from wmtp_assets.files.lock import ArtifactLockedError
from wmtp_assets.models.checkpoint_reader import CheckpointError
from wmtp_assets.models.convert_meta import convert_meta_mtp
from wmtp_assets.models.fp16_cast import Float16RangeError
from wmtp_assets.models.fp16_conversion import ConversionReport
from wmtp_assets.models.mtp.args import ModelArgs, ModelArgsError
from wmtp_assets.models.mtp.model import Transformer
from wmtp_assets.models.shapes import ShapeMismatchError
from wmtp_assets.models.tokenizer_files import tokenizer_info
from wmtp_assets.models.upstream_consistency import UpstreamContradictionError
from wmtp_assets_tests.models.checkpoint_fixtures import (
    META_PARAMS,
    REPO_ROOT,
    coreutils_accepts,
    make_meta_raw,
    make_tokenizer,
    recorded_provenance,
    save_code_carrying,
    truncate,
)

REPO = "models/facebook/multi-token-prediction"


@pytest.fixture(scope="module")
def tokenizer_model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_tokenizer(tmp_path_factory.mktemp("tok") / "tokenizer.model")


def _convert(raw: Path, dirs: ModelDirs, **kwargs: object) -> ConversionReport:
    provenance = recorded_provenance(raw, REPO)
    outcome = convert_meta_mtp(raw, dirs, provenance, None, "test-v1", **kwargs)  # type: ignore[arg-type]
    assert outcome.status == "converted" and outcome.report is not None
    return outcome.report


def _snapshot(dirs: ModelDirs) -> dict[str, bytes]:
    return {
        str(p.relative_to(dirs.root)): p.read_bytes()
        for p in sorted(dirs.root.rglob("*"))
        if p.is_file() and p.name != ".lock"
    }


@pytest.fixture(scope="module")
def good_raw(tmp_path_factory: pytest.TempPathFactory, tokenizer_model: Path) -> Path:
    return make_meta_raw(tmp_path_factory.mktemp("raw-good"), tokenizer_model)


@pytest.fixture(scope="module")
def other_raw(tmp_path_factory: pytest.TempPathFactory, tokenizer_model: Path) -> Path:
    """A different valid checkpoint, to tell the previous artifact from a rerun."""
    return make_meta_raw(tmp_path_factory.mktemp("raw-other"), tokenizer_model, seed=5)


def test_converts_and_loads_strictly(good_raw: Path, tmp_path: Path) -> None:
    dirs = ModelDirs(tmp_path / "meta-llama-mtp")
    messages: list[str] = []
    report = _convert(good_raw, dirs, progress=messages.append)

    vocab_size = tokenizer_info(good_raw / "tokenizer.model").vocab_size
    args = ModelArgs.from_params_json(good_raw / "7B_1T_4/params.json", vocab_size=vocab_size)
    source = torch.load(good_raw / "7B_1T_4/consolidated.pth", weights_only=True)
    assert report.dropped_keys == ["rope.freqs"]
    assert report.n_tensors == len(source) - 1 and report.n_params == sum(
        v.numel() for k, v in source.items() if k != "rope.freqs"
    )
    assert report.dtype == "float16" and report.size == dirs.weights.stat().st_size
    assert report.sha256 == sha256_file(dirs.weights)
    assert read_sha256sums(dirs.sha256sums)["model.safetensors"] == report.sha256
    assert coreutils_accepts(dirs)
    assert messages[-2].startswith(f"tensor {report.n_tensors}/{report.n_tensors}")
    assert messages[-1] == "3 raw files hash to their SOURCE.json SHA256"

    with safe_open(dirs.weights, framework="pt") as stored:
        assert {stored.get_slice(n).get_dtype() for n in stored.keys()} == {"F16"}  # noqa: SIM118
    converted = load_file(dirs.weights)
    reference = Transformer(args)
    reference.load_meta_state_dict({k: v for k, v in source.items() if k != "rope.freqs"})
    model = Transformer(args)
    model.load_meta_state_dict(converted)
    tokens = torch.tensor([[1, 17, 300, 5, 42, 900, 3, 2]])
    with torch.no_grad():
        expected = reference.forward(tokens)
        actual = model.forward(tokens)
    assert actual.shape == (1, 8, args.n_future_tokens, args.vocab_size)
    torch.testing.assert_close(actual.float(), expected.float(), atol=2e-3, rtol=2e-2)

    assert (dirs.configs / "params.json").read_bytes() == (
        good_raw / "7B_1T_4/params.json"
    ).read_bytes()
    adapter = yaml.safe_load((dirs.configs / "meta_adapter.yaml").read_text())
    assert adapter == {
        "dim": 64,
        "num_layers": 4,
        "n_heads": 4,
        "n_kv_heads": 4,
        "vocab_size": args.vocab_size,
        "n_future_tokens": 2,
        "intermediate_size": args.ffn_hidden_dim,
        "rope_theta": 10000.0,
        "norm_eps": 1e-5,
        "dtype": "float16",
    }
    metadata = json.loads(dirs.metadata.read_text())
    assert metadata["model_name"] == "meta-llama-mtp"
    assert metadata["implementation"] == "pure_pytorch"
    assert metadata["dtype"] == "float16" and metadata["n_params"] == report.n_params
    assert metadata["safetensors"]["dropped_keys"] == ["rope.freqs"]
    assert metadata["safetensors"]["freqs_cis_handling"] == "runtime_computed"
    assert metadata["distributed"]["fsdp_compatible"] is True
    assert metadata["source"]["kind"] == "mirror"
    assert metadata["tokenizer"]["vocab_size"] == args.vocab_size
    assert metadata["files"]["safetensors/model.safetensors"] == report.sha256
    assert metadata["code_version"] == "test-v1"


def test_same_input_same_bytes(good_raw: Path, tmp_path: Path) -> None:
    first = _convert(good_raw, ModelDirs(tmp_path / "a"))
    second = _convert(good_raw, ModelDirs(tmp_path / "b"))
    assert first.sha256 == second.sha256
    assert (tmp_path / "a/safetensors/model.safetensors").read_bytes() == (
        tmp_path / "b/safetensors/model.safetensors"
    ).read_bytes()


def _set(name: str, value: torch.Tensor) -> Callable[[dict[str, torch.Tensor]], None]:
    def edit(state: dict[str, torch.Tensor]) -> None:
        state[name] = value

    return edit


def _poke(name: str, value: float) -> Callable[[dict[str, torch.Tensor]], None]:
    def edit(state: dict[str, torch.Tensor]) -> None:
        state[name].view(-1)[3] = value

    return edit


WQ = "layers.1.attention.wq.weight"
FAULTS = {
    "wrong-shape": (_set(WQ, torch.zeros(64, 63)), {}, ShapeMismatchError, WQ),
    "extra-tensor": (
        _set("layers.9.bogus", torch.zeros(2)),
        {},
        ShapeMismatchError,
        "layers.9.bogus",
    ),
    "nan": (_poke(WQ, float("nan")), {}, Float16RangeError, rf"tensor '{WQ}' holds 1 NaN"),
    "inf": (
        _poke(WQ, float("inf")),
        {},
        Float16RangeError,
        rf"tensor '{WQ}' holds 0 NaN and 1 Inf",
    ),
    "out-of-range": (
        _poke(WQ, -1e5),
        {},
        Float16RangeError,
        rf"tensor '{WQ}' has values that overflow.*100000",
    ),
    "params-missing-field": (None, {"drop": "dim"}, ModelArgsError, "dim"),
    # issue 18 (3): params.json contradicting the checkpoint it ships with
    "rope-theta-contradicts-freqs": (
        None,
        {"rope_theta": 500000.0},
        UpstreamContradictionError,
        r"params.json: rope_theta is 500000.0 but consolidated.pth rope.freqs implies 10000",
    ),
    "n-heads-contradict-freqs": (
        None,
        {"n_heads": 8, "n_kv_heads": 8},  # same shapes: only rope.freqs tells
        UpstreamContradictionError,
        r"params.json: head_dim \(dim / n_heads\) is 8 but .*rope.freqs of shape \[8\] implies 16",
    ),
    "dim-contradicts-embeddings": (
        None,
        {"dim": 128},
        UpstreamContradictionError,
        r"params.json: dim is 128 but .*tok_embeddings.weight \[\d+, 64\] implies 64",
    ),
    "n-layers-contradict-blocks": (
        None,
        {"n_layers": 5},
        UpstreamContradictionError,
        r"params.json: n_layers is 5 but .*\(3 layers \+ 1 extra_heads\) implies 4",
    ),
    "params-wrong-type": (None, {"dim": "sixty-four"}, ModelArgsError, "dim"),
}


@pytest.mark.parametrize("fault", list(FAULTS))
def test_fault_keeps_previous_artifact(
    fault: str, good_raw: Path, other_raw: Path, tokenizer_model: Path, tmp_path: Path
) -> None:
    edit, params_edit, error, message = FAULTS[fault]
    params = dict(META_PARAMS)
    if "drop" in params_edit:
        del params[params_edit["drop"]]
    else:
        params |= params_edit
    bad_raw = make_meta_raw(tmp_path / "raw", tokenizer_model, edit=edit, params=params)
    dirs = ModelDirs(tmp_path / "out")
    _convert(other_raw, dirs)
    before = _snapshot(dirs)
    with pytest.raises(error, match=message) as info:
        _convert(bad_raw, dirs)
    assert "7B_1T_4" in str(info.value), "the error names the file"
    assert _snapshot(dirs) == before
    assert _convert(good_raw, dirs).sha256 == sha256_file(dirs.weights)


def test_truncated_checkpoint(good_raw: Path, other_raw: Path, tmp_path: Path) -> None:
    raw = tmp_path / "raw"
    (raw / "7B_1T_4").mkdir(parents=True)
    for rel in ("tokenizer.model", "7B_1T_4/params.json", "7B_1T_4/consolidated.pth"):
        (raw / rel).write_bytes((good_raw / rel).read_bytes())
    truncate(raw / "7B_1T_4/consolidated.pth", 0.6)
    dirs = ModelDirs(tmp_path / "out")
    _convert(other_raw, dirs)
    before = _snapshot(dirs)
    with pytest.raises(CheckpointError, match="truncated or corrupt") as info:
        _convert(raw, dirs)
    assert str(raw / "7B_1T_4/consolidated.pth") in str(info.value)
    assert _snapshot(dirs) == before
    _convert(good_raw, dirs)


def test_code_carrying_checkpoint_refused(good_raw: Path, tmp_path: Path) -> None:
    raw = tmp_path / "raw"
    (raw / "7B_1T_4").mkdir(parents=True)
    for rel in ("tokenizer.model", "7B_1T_4/params.json"):
        (raw / rel).write_bytes((good_raw / rel).read_bytes())
    marker = tmp_path / "EXECUTED"
    save_code_carrying(raw / "7B_1T_4/consolidated.pth", marker)
    dirs = ModelDirs(tmp_path / "out")
    with pytest.raises(CheckpointError, match="refused to unpickle"):
        _convert(raw, dirs)
    assert not marker.exists()
    assert not dirs.weights.exists() and not dirs.sha256sums.exists()
    assert not dirs.metadata.exists()


def _subprocess_code(raw: Path, out: Path, prelude: str = "", delay: float = 0.0) -> str:
    return textwrap.dedent(
        f"""
        import sys, time
        from pathlib import Path
        {prelude}
        from wmtp_assets.files.layout import ModelDirs
        from wmtp_assets.models.convert_meta import convert_meta_mtp

        def progress(message):
            print(message, flush=True)
            time.sleep({delay})

        try:
            outcome = convert_meta_mtp(
                Path({str(raw)!r}), ModelDirs(Path({str(out)!r})), None, None, "test-v1",
                progress, lock_timeout_s=30,
            )
        except Exception as exc:
            print(f"FAILED {{type(exc).__name__}}: {{exc}}", flush=True)
            sys.exit(3)
        print("DONE", outcome.report.sha256, flush=True)
        """
    )


def _spawn(code: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-c", code],
        env={**os.environ, "PYTHONPATH": str(REPO_ROOT)},
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )


def _temp_files(dirs: ModelDirs) -> list[Path]:
    return list(dirs.safetensors.glob(".model.safetensors.tmp-*"))


def test_disk_full_while_writing(good_raw: Path, other_raw: Path, tmp_path: Path) -> None:
    dirs = ModelDirs(tmp_path / "out")
    _convert(other_raw, dirs)
    before = _snapshot(dirs)
    prelude = (
        "import resource, signal; signal.signal(signal.SIGXFSZ, signal.SIG_IGN); "
        "resource.setrlimit(resource.RLIMIT_FSIZE, (64 * 1024, 64 * 1024))"
    )
    proc = _spawn(_subprocess_code(good_raw, dirs.root, prelude))
    output, _ = proc.communicate(timeout=120)
    assert proc.returncode == 3, output
    failure = next(line for line in output.splitlines() if line.startswith("FAILED"))
    assert "SafetensorsWriteError" in failure and "File too large" in failure
    assert ".model.safetensors.tmp-" in failure and "writing tensor '" in failure
    assert _temp_files(dirs) == []
    assert _snapshot(dirs) == before
    assert _convert(good_raw, dirs).sha256 == sha256_file(dirs.weights)


def test_sigkill_mid_write_then_rerun(good_raw: Path, other_raw: Path, tmp_path: Path) -> None:
    dirs = ModelDirs(tmp_path / "out")
    _convert(other_raw, dirs)
    before = _snapshot(dirs)
    proc = _spawn(_subprocess_code(good_raw, dirs.root, delay=0.2))
    assert proc.stdout is not None
    for line in proc.stdout:
        if line.startswith("tensor 3/") and _temp_files(dirs):
            break
    else:
        pytest.fail("the conversion ended before it could be killed")
    proc.send_signal(signal.SIGKILL)
    proc.wait(timeout=30)
    assert proc.returncode == -signal.SIGKILL
    assert len(_temp_files(dirs)) == 1, "the killed run left only its temp file"
    assert _snapshot(dirs) == {
        **before,
        **{str(p.relative_to(dirs.root)): p.read_bytes() for p in _temp_files(dirs)},
    }
    report = _convert(good_raw, dirs)
    assert _temp_files(dirs) == [], "the rerun sweeps the stale temp file"
    assert report.sha256 == sha256_file(dirs.weights)


def test_concurrent_conversions_never_interleave(good_raw: Path, tmp_path: Path) -> None:
    dirs = ModelDirs(tmp_path / "out")
    expected = _convert(good_raw, ModelDirs(tmp_path / "reference")).sha256
    first = _spawn(_subprocess_code(good_raw, dirs.root, delay=0.05))
    assert first.stdout is not None
    for line in first.stdout:
        if line.startswith("tensor 1/"):
            break
    with pytest.raises(ArtifactLockedError, match=r"held by pid .* gave up after waiting") as info:
        _convert(good_raw, dirs, lock_timeout_s=0.3)
    assert f"pid {first.pid}" in str(info.value)
    started = time.monotonic()
    waited = _convert(good_raw, dirs, lock_timeout_s=60)
    assert time.monotonic() - started > 0.2, "the second run waited for the first"
    output, _ = first.communicate(timeout=60)
    assert first.returncode == 0 and f"DONE {expected}" in output
    assert waited.sha256 == expected == sha256_file(dirs.weights)
    assert read_sha256sums(dirs.sha256sums)["model.safetensors"] == expected
    assert coreutils_accepts(dirs)
