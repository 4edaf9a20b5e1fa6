"""Starling-RM at 7B width: conversion and forward check of a ``pytorch_model.bin`` with the
real hidden size, vocabulary and layer shapes but ``--layers`` decoder layers (32 upstream),
in float32 or bfloat16, with peak private memory of the process.

    python bench/reward_model_scale.py --workdir /work/scratch-starling --layers 8

The float32 file is built without holding it in RAM (``full_size_sources.Pool`` windows; a
bfloat16 one is held while saved), then
``convert_reward_llama`` and the ``forward_pass`` check (source read again: the recorded trace
is removed first) run in child processes sampled by ``full_size.timed``. Private memory is per
tensor and per block, not per file, so it must not grow with ``--layers``.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
from collections.abc import Iterator
from pathlib import Path

import torch

REPO_ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO_ROOT))

from bench.full_size import timed  # noqa: E402
from bench.full_size_sources import LLAMA2_TOKENIZER, SHEARED_CONFIG, Pool  # noqa: E402

HIDDEN, INTER, VOCAB = 4096, 11008, 32000

CONVERT = """
import sys, time
from pathlib import Path
from wmtp_assets.files.layout import ModelDirs
from wmtp_assets.models.convert_reward_llama import convert_reward_llama
dirs = ModelDirs(Path(sys.argv[1]))
out = convert_reward_llama(dirs.raw, dirs, None, None, "bench")
print("converted", out.report.n_tensors, out.report.size, out.report.seconds)
"""
CHECK = """
import sys
from pathlib import Path
from wmtp_assets.files.layout import ModelDirs
from wmtp_assets.validate.reward_model_checks import forward_pass
dirs = ModelDirs(Path(sys.argv[1]))
dirs.source_trace.unlink()
outcome = forward_pass(dirs, "cpu")
print(outcome.passed, outcome.summary)
"""


def reward_state(pool: Pool, layers: int, dtype: torch.dtype) -> Iterator[tuple[str, torch.Tensor]]:
    """The card's module's tensors (``transformer.`` + ``v_head``) in state_dict order."""
    yield "transformer.embed_tokens.weight", pool.window(VOCAB, HIDDEN).to(dtype)
    for i in range(layers):
        p = f"transformer.layers.{i}"
        for proj in ("q", "k", "v", "o"):
            yield f"{p}.self_attn.{proj}_proj.weight", pool.window(HIDDEN, HIDDEN).to(dtype)
        yield f"{p}.mlp.gate_proj.weight", pool.window(INTER, HIDDEN).to(dtype)
        yield f"{p}.mlp.up_proj.weight", pool.window(INTER, HIDDEN).to(dtype)
        yield f"{p}.mlp.down_proj.weight", pool.window(HIDDEN, INTER).to(dtype)
        yield f"{p}.input_layernorm.weight", torch.ones(HIDDEN, dtype=dtype)
        yield f"{p}.post_attention_layernorm.weight", torch.ones(HIDDEN, dtype=dtype)
    yield "transformer.norm.weight", torch.ones(HIDDEN, dtype=dtype)
    yield "v_head.weight", pool.window(1, HIDDEN).to(dtype)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--workdir", type=Path, default=Path("/work/scratch-starling"))
    parser.add_argument("--layers", type=int, default=8)
    parser.add_argument("--dtype", choices=("float32", "bfloat16"), default="float32")
    args = parser.parse_args()
    dtype = getattr(torch, args.dtype)
    model = args.workdir / "starling-rm-7b"
    shutil.rmtree(model, ignore_errors=True)
    raw = model / "raw"
    raw.mkdir(parents=True)
    pool = Pool(args.workdir / "pool.f32")
    # float32 windows stay file-backed (the build holds no bytes); bfloat16 ones are copies
    torch.save(dict(reward_state(pool, args.layers, dtype)), raw / "pytorch_model.bin")
    config = {**SHEARED_CONFIG, "hidden_size": HIDDEN, "intermediate_size": INTER}
    config |= {"num_hidden_layers": args.layers, "num_attention_heads": 32}
    config |= {"num_key_value_heads": 32, "torch_dtype": args.dtype}
    (raw / "config.json").write_text(json.dumps(config))
    shutil.copyfile(LLAMA2_TOKENIZER, raw / "tokenizer.model")
    source_gb = (raw / "pytorch_model.bin").stat().st_size / 1e9
    env = {**os.environ, "PYTHONPATH": str(REPO_ROOT)}
    results: dict[str, object] = {"layers": args.layers, "dtype": args.dtype, "gb": source_gb}
    for name, script in (("convert", CONVERT), ("forward_pass", CHECK)):
        run = timed([sys.executable, "-c", script, str(model)], env)
        results[name] = {k: run[k] for k in ("seconds", "exit", "peak_private_gb", "tail")}
        print(
            f"{name}: {run['seconds']:.0f} s, peak private {run['peak_private_gb']:.2f} GB, "
            f"exit {run['exit']}: {str(run['tail']).strip().splitlines()[-1][:300]}",
            flush=True,
        )
    print(json.dumps({**results, "source_gb": round(source_gb, 2)}, default=str)[:2000])
    shutil.rmtree(model)
    (args.workdir / "pool.f32").unlink()


if __name__ == "__main__":
    main()
