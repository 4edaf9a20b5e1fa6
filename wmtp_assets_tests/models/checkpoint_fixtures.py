"""Small checkpoints in upstream formats, and hostile ones, for the reader and conversion tests."""

from __future__ import annotations

import builtins
import os
import subprocess
import sys
from pathlib import Path

import torch

from wmtp_assets.demo.tokenizer import train_demo_tokenizer

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
