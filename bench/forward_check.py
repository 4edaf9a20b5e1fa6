"""Benchmark: the ``forward_pass`` check on a 7B-shaped Meta artifact, time and peak memory.

Builds (``bench.checkpoint_7b``) a float32 ``consolidated.pth`` with the real 7B dimensions and
``--blocks`` blocks in ``raw/`` of a model folder, converts it (``convert_meta_mtp``) and adds the
Llama-2 tokenizer, as the assets lay it out. Then, each in a fresh subprocess whose
``/proc/<pid>/smaps_rollup`` the parent samples every 50 ms:

  (a) ``forward_pass(dirs, "meta", device)``: source and converted streamed one block at a time;
  (b) with ``--whole``: what the check did before, the whole model built in float32 and a second
      float32 copy of the converted weights loaded into it, one forward.

Both files are read once before each run, so the runs read them from the page cache. Wall time
is the check's call only (imports excluded).

    .venv/bin/python bench/forward_check.py --blocks 4 --whole --workdir /tmp/bench-fwd
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
import time
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO_ROOT))

from bench.checkpoint_7b import (  # noqa: E402
    LLAMA2_TOKENIZER,
    VOCAB,
    MemorySampler,
    build_source,
    warm,
)


def prepare(model: Path, blocks: int) -> None:
    """Source in ``raw/``, converted weights and configs, tokenizer: a stored artifact."""
    from wmtp_assets.files.layout import ModelDirs
    from wmtp_assets.models.artifact import TokenizerInfo
    from wmtp_assets.models.convert_meta import convert_meta_mtp

    dirs = ModelDirs(model)
    build_source(dirs.raw, blocks)
    convert_meta_mtp(dirs.raw, dirs, None, TokenizerInfo(sha256="0" * 64, vocab_size=VOCAB), "b")
    dirs.tokenizer.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(LLAMA2_TOKENIZER, dirs.tokenizer / "tokenizer.model")


def run_method(method: str, model: Path, device: str) -> dict[str, object]:
    """Run one method in this (fresh) process."""
    import torch

    from wmtp_assets.files.layout import ModelDirs
    from wmtp_assets.models.checkpoint_reader import open_checkpoint
    from wmtp_assets.models.mtp.model import Transformer
    from wmtp_assets.validate import model_checks as mc

    dirs = ModelDirs(model)
    start = time.perf_counter()
    if method == "a":
        outcome = mc.forward_pass(dirs, "meta", device)
        result: dict[str, object] = {"passed": outcome.passed, "summary": outcome.summary}
        result |= {k: outcome.details[k] for k in ("logits_rel_error", "top1_agreement")}
        result["worst_stage"] = outcome.details.get("worst_stage")
    else:
        args = mc.meta_args(dirs)
        target = mc.resolve_device(device)
        with torch.device("meta"):
            model_ = Transformer(args)
        model_ = model_.to_empty(device=target).float()
        with open_checkpoint(dirs.weights) as stored:
            state = {n: stored.get(n).to(target, torch.float32) for n in stored.names}
        model_.load_meta_state_dict(state)
        del state
        with torch.no_grad():
            logits = model_(torch.arange(1, 9, device=target)[None])
        result = {"passed": bool(torch.isfinite(logits).all()), "summary": "whole model"}
    result["seconds"] = time.perf_counter() - start
    return result


def _measure(args: argparse.Namespace, method: str, model: Path) -> dict[str, object]:
    command = [sys.executable, __file__, "--run-method", method, "--model", str(model)]
    command += ["--device", args.device]
    child = subprocess.Popen(command, stdout=subprocess.PIPE, text=True)
    sampler = MemorySampler(child.pid)
    sampler.start()
    stdout, _ = child.communicate()
    peaks = sampler.stop()
    if child.returncode != 0:
        raise SystemExit(f"method {method} failed with exit code {child.returncode}")
    result: dict[str, object] = json.loads(stdout.strip().splitlines()[-1])
    return result | {f"peak_{k.lower()}_mb": v for k, v in peaks.items()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--blocks", type=int, default=4)
    parser.add_argument("--workdir", type=Path, default=Path("/tmp/bench-fwd"))
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--whole", action="store_true", help="also run (b), the whole model")
    parser.add_argument("--keep", action="store_true", help="keep the model folder")
    parser.add_argument("--run-method", choices=["a", "b"], help=argparse.SUPPRESS)
    parser.add_argument("--model", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.run_method:
        print(json.dumps(run_method(args.run_method, args.model, args.device)))
        return

    model = args.workdir / f"model-{args.blocks}"
    source = model / "raw" / "7B_1T_4" / "consolidated.pth"
    weights = model / "safetensors" / "model.safetensors"
    if not weights.exists():
        shutil.rmtree(model, ignore_errors=True)
        t0 = time.perf_counter()
        subprocess.run(
            [
                sys.executable,
                "-c",
                f"from bench.forward_check import prepare; "
                f"from pathlib import Path; prepare(Path({str(model)!r}), {args.blocks})",
            ],
            check=True,
            cwd=REPO_ROOT,
        )
        print(f"prepared {model} in {time.perf_counter() - t0:.0f}s", flush=True)
    print(
        f"blocks={args.blocks}: source {source.stat().st_size / 1e9:.2f} GB fp32, converted "
        f"{weights.stat().st_size / 1e9:.2f} GB fp16, device {args.device}",
        flush=True,
    )
    rows = []
    for method in ["a", "b"] if args.whole else ["a"]:
        warm(source, weights)
        result = _measure(args, method, model)
        print(f"{method}: {json.dumps(result)}", flush=True)
        rows.append((method, result))
    if not args.keep:
        shutil.rmtree(model)
    print("| method | wall s | peak Rss MB | peak Anonymous MB | peak Private MB | result |")
    print("|---|---:|---:|---:|---:|---|")
    for method, r in rows:
        print(
            f"| ({method}) | {r['seconds']:.1f} | {r['peak_rss_mb']:.0f} | "
            f"{r['peak_anonymous_mb']:.0f} | {r['peak_private_mb']:.0f} | {r['summary']} |"
        )


if __name__ == "__main__":
    main()
