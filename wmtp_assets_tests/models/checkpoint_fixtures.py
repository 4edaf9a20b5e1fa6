"""Small checkpoints in upstream formats, and hostile ones, for the reader and conversion tests."""

from __future__ import annotations

import builtins
import json
import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import torch

from wmtp_assets.demo.tokenizer import train_demo_tokenizer
from wmtp_assets.files.hashing import sha256_file
from wmtp_assets.files.layout import ModelDirs
from wmtp_assets.models.mtp.args import ModelArgs
from wmtp_assets.models.mtp.model import Transformer
from wmtp_assets.models.tokenizer_files import tokenizer_info

REPO_ROOT = Path(__file__).resolve().parents[2]


class CodePayload:
    """Pickles as a call to ``open(marker, "w")``: unpickling it would create ``marker``."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self) -> tuple[object, tuple[str, str]]:
        return (builtins.open, (str(self.marker), "w"))


def save_code_carrying(path: Path, marker: Path, legacy: bool = False) -> Path:
    """A checkpoint with real tensors and one object whose unpickling runs code."""
    state = {"tok_embeddings.weight": torch.zeros(2, 2), "payload": CodePayload(marker)}
    torch.save(state, path, _use_new_zipfile_serialization=not legacy)
    return path


def make_tokenizer(dest: Path) -> Path:
    """A small Llama-style SentencePiece model (the demo's; about 0.2 s to train)."""
    return train_demo_tokenizer(dest)


def recorded_provenance(raw: Path, repo: str) -> dict[str, object]:
    """The ``raw_provenance`` fields a fetch of ``raw`` would record: every file's real SHA256."""
    files = {
        p.relative_to(raw).as_posix(): sha256_file(p)
        for p in sorted(raw.rglob("*"))
        if p.is_file() and p.name != "SOURCE.json"
    }
    return {"kind": "mirror", "repo": repo, "files": files}


def coreutils_accepts(dirs: ModelDirs) -> bool:
    """Whether the storage README's recipe, ``cd safetensors && sha256sum -c SHA256SUMS`` (the
    real coreutils tool), accepts the artifact."""
    if not dirs.safetensors.is_dir():
        return False
    done = subprocess.run(
        ["sha256sum", "--strict", "-c", "SHA256SUMS"], cwd=dirs.safetensors, capture_output=True
    )
    return done.returncode == 0


def truncate(path: Path, keep_fraction: float = 0.5) -> Path:
    data = path.read_bytes()
    path.write_bytes(data[: int(len(data) * keep_fraction)])
    return path


def run_python(
    code: str, *, timeout: float = 120, check: bool = True
) -> subprocess.CompletedProcess[str]:
    """Run ``code`` in a fresh interpreter with the repository importable."""
    env = {**os.environ, "PYTHONPATH": str(REPO_ROOT)}
    result = subprocess.run(
        [sys.executable, "-c", code],
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )
    if check and result.returncode != 0:
        raise AssertionError(f"subprocess failed ({result.returncode}):\n{result.stderr[-3000:]}")
    return result


META_PARAMS: dict[str, object] = {
    "dim": 64,
    "n_layers": 4,
    "n_heads": 4,
    "n_kv_heads": 4,
    "vocab_size": -1,
    "multiple_of": 32,
    "ffn_dim_multiplier": None,
    "norm_eps": 1e-5,
    "rope_theta": 10000.0,
    "n_future_tokens": 2,
}


def _source_state(args: ModelArgs, seed: int) -> dict[str, torch.Tensor]:
    model = Transformer(args)
    model.init_weights(seed)
    state = {k: v.detach().clone() for k, v in model.state_dict().items()}
    hd = args.head_dim  # Meta's buffer: 1 / theta^(2i/head_dim), checked against params.json
    state["rope.freqs"] = 1.0 / args.rope_theta ** (torch.arange(0, hd, 2).float() / hd)
    return state


def make_meta_raw(
    root: Path,
    tokenizer_model: Path,
    *,
    seed: int = 0,
    edit: Callable[[dict[str, torch.Tensor]], None] | None = None,
    params: dict[str, object] | None = None,
) -> Path:
    """A Hub-layout raw folder: 7B_1T_4/{consolidated.pth,params.json} and tokenizer.model."""
    folder = root / "7B_1T_4"
    folder.mkdir(parents=True)
    (root / "tokenizer.model").write_bytes(tokenizer_model.read_bytes())
    args = ModelArgs(**{**META_PARAMS, "vocab_size": tokenizer_info(tokenizer_model).vocab_size})
    state = _source_state(args, seed)
    if edit is not None:
        edit(state)
    torch.save(state, folder / "consolidated.pth")
    (folder / "params.json").write_text(json.dumps(META_PARAMS if params is None else params))
    return root
