"""Benchmark at real size: the full 7B_1T_4 or Sheared-LLaMA-2.7B through the commands a user
types, against ``cp`` + fsync of the same source, with peak private memory of the process tree.

    python bench/full_size.py meta    --workdir /work/scratch-models   # 27 GB source
    python bench/full_size.py sheared --workdir /work/scratch-models   # 10.8 GB; after meta

Steps, in one run and on one disk:

1. build the upstream repo in a local mirror without holding it in RAM
   (``bench/full_size_sources.py``), with its mirror manifest;
2. ``dagster asset materialize`` of the raw (and tokenizer) assets: a verified copy into
   ``raw/``; then the mirror's weights are deleted (disk), the raw copy is the source;
3. baseline: ``cp`` of the raw checkpoint file(s) + ``fsync``, the copy then deleted;
4. ``dagster asset materialize --select <safetensors asset>``: conversion and every check;
5. ``wmtp-assets verify --model <model>``.

Before 3, 4 and 5 the raw and converted files are dropped from the page cache
(``POSIX_FADV_DONTNEED``), so each starts cold as on a node that fetched yesterday. Memory is
sampled every 0.2 s over the whole process tree: private = ``RssAnon + RssShmem`` summed over
every process (mapped checkpoint pages are page cache, ``RssFile``, shown apart). Results go to
stdout and ``<workdir>/full_size_<model>.json``.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO_ROOT))

from bench.full_size_sources import LLAMA2_SHA256, build_meta, build_sheared  # noqa: E402
from bench.process_tree import TreeSampler  # noqa: E402

STEP_TIME = re.compile(r'Finished execution of step "([^"]+)" in ([0-9.]+(?:ms|s|m))')
MODELS = {
    "meta": {
        "repo": "facebook/multi-token-prediction",
        "asset": "meta_llama_mtp",
        "raw_select": "models/meta_llama_mtp/raw,models/meta_llama_mtp/tokenizer",
    },
    "sheared": {
        "repo": "princeton-nlp/Sheared-LLaMA-2.7B",
        "asset": "ref_sheared_llama_2_7b",
        "raw_select": "models/ref_sheared_llama_2_7b/raw",
    },
}


class TreeMemory(TreeSampler):
    """Peak ``RssAnon + RssShmem`` (private) and ``RssFile`` summed over a process tree."""

    def __init__(self, pid: int, interval_s: float = 0.2) -> None:
        super().__init__(pid, interval_s)
        self.peak_private_kb = self.peak_file_kb = 0

    def sample(self, root: dict[str, int], children: list[dict[str, int]]) -> None:
        totals = [root, *children]
        private = sum(t.get("RssAnon", 0) + t.get("RssShmem", 0) for t in totals)
        self.peak_private_kb = max(self.peak_private_kb, private)
        self.peak_file_kb = max(self.peak_file_kb, sum(t.get("RssFile", 0) for t in totals))

    def peaks_gb(self) -> dict[str, float]:
        return {
            "peak_private_gb": self.peak_private_kb / 1024**2,
            "peak_file_backed_gb": self.peak_file_kb / 1024**2,
        }


def timed(command: list[str], env: dict[str, str]) -> dict[str, object]:
    """Run ``command``; wall seconds, exit code, memory peaks and the output's tail."""
    start = time.perf_counter()
    proc = subprocess.Popen(
        command, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
    )
    sampler = TreeMemory(proc.pid)
    sampler.start()
    output, _ = proc.communicate()
    seconds = time.perf_counter() - start
    sampler.stop()
    steps = {m[1]: m[2] for m in STEP_TIME.finditer(output)}
    return {
        "seconds": seconds,
        "exit": proc.returncode,
        **sampler.peaks_gb(),
        "steps": steps,
        "tail": output[-3000:],
    }


def drop_from_cache(*paths: Path) -> None:
    for path in paths:
        with open(path, "rb") as fh:
            os.posix_fadvise(fh.fileno(), 0, 0, os.POSIX_FADV_DONTNEED)


def copy_with_fsync(sources: list[Path], dest_dir: Path) -> float:
    dest_dir.mkdir(parents=True, exist_ok=True)
    drop_from_cache(*sources)
    start = time.perf_counter()
    for source in sources:
        dest = dest_dir / source.name
        subprocess.run(["cp", str(source), str(dest)], check=True)
        fd = os.open(dest, os.O_RDONLY)
        os.fsync(fd)
        os.close(fd)
    seconds = time.perf_counter() - start
    shutil.rmtree(dest_dir)
    return seconds


def build_mirror(model: str, mirror: Path, scratch: Path, meta_layers: int) -> list[Path]:
    from wmtp_assets.sources import RepoRef, mirror_repo_dir, write_mirror_manifest

    ref = RepoRef(repo_id=MODELS[model]["repo"], repo_type="model", revision="main")
    repo = mirror_repo_dir(mirror, ref)
    scratch.mkdir(parents=True, exist_ok=True)
    weights = (
        [build_meta(repo, scratch, meta_layers)]
        if model == "meta"
        else build_sheared(repo, scratch)
    )
    shutil.rmtree(scratch)
    write_mirror_manifest(mirror, ref, "0" * 39 + "1")
    return [p.relative_to(repo) for p in weights]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("model", choices=sorted(MODELS))
    parser.add_argument("--workdir", type=Path, default=Path("/work/scratch-models"))
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--skip-verify", action="store_true")
    parser.add_argument(
        "--meta-layers", type=int, default=32, help="blocks of the meta source (profiling only)"
    )
    parser.add_argument(
        "--mirror-dir", type=Path, help="where the mirror is built (default: in the workdir)"
    )
    parser.add_argument(
        "--one-copy", action="store_true", help="no second cp + fsync at the end (disk space)"
    )
    parser.add_argument(
        "--reuse-raw",
        action="store_true",
        help="keep raw/ (and the instance) of an earlier run; convert and verify again",
    )
    args = parser.parse_args()
    spec, work = MODELS[args.model], args.workdir.resolve()
    mirror = (args.mirror_dir or work) / f"mirror-{args.model}"
    root, home = work / "storage", work / "dagster_home"
    from wmtp_assets.files.layout import Layout

    dirs = Layout(root).model(spec["asset"])
    results: dict[str, object] = {"model": args.model, "device": args.device}
    if args.reuse_raw:
        weights = json.loads((work / f"weights_{args.model}.json").read_text())
        for folder in (dirs.safetensors, dirs.configs, dirs.source_trace.parent):
            shutil.rmtree(folder, ignore_errors=True)
        dirs.metadata.unlink(missing_ok=True)
    else:
        # One root and instance for both models: the Sheared checks compare its tokenizer
        # with the Meta one (run `meta` first); only this model's folders start afresh.
        for folder in (mirror, dirs.root):
            shutil.rmtree(folder, ignore_errors=True)
        home.mkdir(parents=True, exist_ok=True)
        start = time.perf_counter()
        weights = [
            str(p) for p in build_mirror(args.model, mirror, work / "scratch", args.meta_layers)
        ]
        (work / f"weights_{args.model}.json").write_text(json.dumps(weights))
        results["build_seconds"] = time.perf_counter() - start
        print(f"built the mirror in {results['build_seconds']:.0f} s: {weights}", flush=True)

    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join(filter(None, [str(REPO_ROOT), os.environ.get("PYTHONPATH")])),
        "DAGSTER_HOME": str(home),
        "WMTP_STORAGE_ROOT": str(root),
        "WMTP_MIRROR": str(mirror),  # each model's repo sits in its own mirror folder
        "WMTP_DEVICE": args.device,
        "WMTP_TOKENIZER_SHA256": LLAMA2_SHA256,
    }
    # the interpreter's modules, not console scripts: a --target install has no scripts on PATH
    materialize = [sys.executable, "-m", "dagster", "asset", "materialize"]
    materialize += ["-m", "wmtp_assets.definitions"]
    if not args.reuse_raw:
        fetch = timed([*materialize, "--select", spec["raw_select"]], env)
        results["fetch_raw"] = fetch
        print(f"raw fetch: {fetch['seconds']:.0f} s, exit {fetch['exit']}", flush=True)
        if fetch["exit"] != 0:
            raise SystemExit(str(fetch["tail"]))
        for rel in weights:
            (mirror / "models" / spec["repo"] / rel).unlink()  # disk: raw/ is the source now
    raw_weights = [dirs.raw / rel for rel in weights]
    source_bytes = sum(p.stat().st_size for p in raw_weights)
    copy_before = copy_with_fsync(raw_weights, work / "copy")
    print(f"cp + fsync of {source_bytes / 1e9:.2f} GB: {copy_before:.1f} s", flush=True)
    copy_s = copy_before  # until the second copy at the end (the disk is shared: both count)

    drop_from_cache(*raw_weights)
    convert = timed([*materialize, "--select", f"models/{spec['asset']}/safetensors"], env)
    results["convert_command"] = convert
    print(
        f"conversion command: {convert['seconds']:.0f} s = {convert['seconds'] / copy_s:.2f}x "
        f"cp, peak private {convert['peak_private_gb']:.2f} GB, exit {convert['exit']}",
        flush=True,
    )
    if not args.skip_verify:
        drop_from_cache(*raw_weights, dirs.weights)
        verify = timed(
            [sys.executable, "-m", "wmtp_assets.cli", "verify", "--model", spec["asset"]],
            {**env, "PYTHONUNBUFFERED": "1"},
        )
        results["verify"] = verify
        print(
            f"verify --model {spec['asset']}: {verify['seconds']:.0f} s = "
            f"{verify['seconds'] / copy_s:.2f}x cp, peak private "
            f"{verify['peak_private_gb']:.2f} GB, exit {verify['exit']}",
            flush=True,
        )
    copy_after = copy_before if args.one_copy else copy_with_fsync(raw_weights, work / "copy")
    copy_s = (copy_before + copy_after) / 2
    results |= {
        "source_bytes": source_bytes,
        "copy_fsync_seconds": [copy_before, copy_after],
        "convert_ratio": convert["seconds"] / copy_s,  # type: ignore[operator]
    }
    if "verify" in results:
        results["verify_ratio"] = results["verify"]["seconds"] / copy_s  # type: ignore[index]
    print(
        f"cp + fsync again: {copy_after:.1f} s; against their mean {copy_s:.1f} s: conversion "
        f"command {results['convert_ratio']:.2f}x"
        + (f", verify {results['verify_ratio']:.2f}x" if "verify" in results else ""),
        flush=True,
    )
    out = work / f"full_size_{args.model}.json"
    out.write_text(json.dumps(results, indent=2, default=str))
    for name in ("convert_command", "verify"):
        if name in results:
            print(f"--- {name} tail ---\n{results[name]['tail'][-1500:]}")  # type: ignore[index]
    print(f"results: {out}")


if __name__ == "__main__":
    main()
