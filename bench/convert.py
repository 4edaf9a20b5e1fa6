"""Benchmark: the project's Meta conversion against a naive one and a plain file copy.

Builds a Meta-format float32 ``consolidated.pth`` with the real 7B dimensions (dim 4096,
vocab 32000, FFN 11008, 32 heads) but only ``--blocks`` transformer blocks (n_future_tokens 1),
then runs, each in a fresh subprocess so peak RSS is per method:

  (a) ``convert_meta_mtp`` (mmap + streaming header-first writer, fp16 range check, SHA256,
      publish, configs, metadata.json);
  (b) naive: ``torch.load`` without mmap, ``{k: v.half()}``, ``safetensors.torch.save_file``,
      fsync (SHA256 computed afterwards, untimed);
  (c) a plain copy of the source file on the same disk (``shutil.copyfile``) plus fsync.

Before each method the source is read once so every method reads it from the page cache.

    .venv/bin/python bench/convert.py --blocks 4 --workdir /tmp/bench
"""

from __future__ import annotations

import argparse
import os
import resource
import shutil
import subprocess
import sys
import time
from pathlib import Path

from pydantic import BaseModel

REPO_ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO_ROOT))

from bench.checkpoint_7b import VOCAB, build_source, warm  # noqa: E402

METHODS = {
    "a": "convert_meta_mtp",
    "b": "naive load + half + save_file",
    "c": "plain copy + fsync",
}


class MethodResult(BaseModel):
    method: str
    seconds: float
    cpu_seconds: float
    peak_rss_mb: float
    sha256: str | None


def run_method(method: str, raw: Path, out: Path) -> MethodResult:
    """Run one method in this (fresh) process; return timing, output hash and peak RSS."""
    import torch
    from safetensors.torch import save_file

    from wmtp_assets.files.hashing import sha256_file
    from wmtp_assets.files.layout import ModelDirs
    from wmtp_assets.models.artifact import TokenizerInfo
    from wmtp_assets.models.convert_meta import convert_meta_mtp

    source = raw / "7B_1T_4" / "consolidated.pth"
    sha256 = None
    before = resource.getrusage(resource.RUSAGE_SELF)
    cpu_before = before.ru_utime + before.ru_stime
    start = time.perf_counter()
    if method == "a":
        outcome = convert_meta_mtp(
            raw,
            ModelDirs(out),
            None,
            TokenizerInfo(sha256="0" * 64, vocab_size=VOCAB),
            "bench",
        )
        seconds = time.perf_counter() - start
        assert outcome.report is not None
        sha256 = outcome.report.sha256
    elif method == "b":
        state = torch.load(source, weights_only=True, map_location="cpu")
        half = {k: v.half() for k, v in state.items() if k != "rope.freqs"}
        out.mkdir(parents=True, exist_ok=True)
        dest = out / "model.safetensors"
        save_file(half, dest, metadata={"format": "pt"})
        with open(dest, "rb+") as fh:
            os.fsync(fh.fileno())
        seconds = time.perf_counter() - start
        sha256 = sha256_file(dest)
    else:
        out.mkdir(parents=True, exist_ok=True)
        dest = out / "copy.pth"
        shutil.copyfile(source, dest)
        with open(dest, "rb+") as fh:
            os.fsync(fh.fileno())
        seconds = time.perf_counter() - start
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return MethodResult(
        method=method,
        seconds=seconds,
        cpu_seconds=usage.ru_utime + usage.ru_stime - cpu_before,
        peak_rss_mb=usage.ru_maxrss / 1024,
        sha256=sha256,
    )


def _child(args: argparse.Namespace, method: str) -> str:
    """Run ``method`` in a fresh interpreter (own peak RSS); return its stdout."""
    command = [sys.executable, __file__, "--blocks", str(args.blocks)]
    command += ["--workdir", str(args.workdir), "--run-method", method]
    return subprocess.run(command, check=True, capture_output=True, text=True).stdout


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--blocks", type=int, default=4)
    parser.add_argument("--workdir", type=Path, default=Path("/tmp/bench"))
    parser.add_argument("--keep-source", action="store_true", help="reuse/keep the checkpoint")
    parser.add_argument("--run-method", choices=[*METHODS, "build"], help=argparse.SUPPRESS)
    args = parser.parse_args()
    raw = args.workdir / f"raw-{args.blocks}"
    if args.run_method == "build":
        build_source(raw, args.blocks)
        return
    if args.run_method:
        result = run_method(args.run_method, raw, args.workdir / f"out-{args.run_method}")
        print(result.model_dump_json())
        return

    source = raw / "7B_1T_4" / "consolidated.pth"
    if not source.exists():
        t0 = time.perf_counter()
        _child(args, "build")
        print(
            f"built {source} ({source.stat().st_size / 1e9:.2f} GB) in "
            f"{time.perf_counter() - t0:.0f}s",
            flush=True,
        )
    size = source.stat().st_size
    results: dict[str, MethodResult] = {}
    for method in ("c", "a", "b"):
        shutil.rmtree(args.workdir / f"out-{method}", ignore_errors=True)
        warm(source)
        output = _child(args, method).strip().splitlines()[-1]
        results[method] = MethodResult.model_validate_json(output)
        shutil.rmtree(args.workdir / f"out-{method}", ignore_errors=True)
        print(f"{method}: {results[method]}", flush=True)
    if not args.keep_source:
        shutil.rmtree(raw)

    base = results["c"].seconds
    same = results["a"].sha256 == results["b"].sha256
    print(
        f"\nblocks={args.blocks}, source {size / 1e9:.2f} GB fp32, output {size / 2e9:.2f} GB fp16"
    )
    print("| method | wall s | vs (c) | CPU s | peak RSS MB | output SHA256 (a) == (b) |")
    print("|---|---:|---:|---:|---:|---|")
    for method in ("a", "b", "c"):
        r = results[method]
        equal = ("yes" if same else "NO") if method in "ab" else "-"
        print(
            f"| ({method}) {METHODS[method]} | {r.seconds:.1f} | {r.seconds / base:.2f}x | "
            f"{r.cpu_seconds:.1f} | {r.peak_rss_mb:.0f} | {equal} |"
        )


if __name__ == "__main__":
    main()
