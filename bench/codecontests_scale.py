"""Benchmark: CodeContests train at real size (or ``--fraction`` of it) through the commands a
user types, each against its baseline in the same run, with peak private memory and peak disk.

    python bench/codecontests_scale.py --fraction 0.1 --workdir /work/scratch-datasets/scale

Steps (one run, one disk; every command a fresh process, start-up included):

1. generate the upstream train split (``bench/codecontests_source.py``: ``--fraction`` x 13,328
   problems, the upstream field sizes) and a tiny valid split into a local mirror; put the
   Llama-2 tokenizer where the storage root's tokenizer asset keeps it;
2. ``dagster asset materialize --select datasets/raw`` for both partitions (untimed set-up);
3. ``process``: ``dagster asset materialize`` of every derived dataset asset of
   ``codecontests.train`` (processing, evaluation files, small subset, and the checks a
   materialization runs); then ``process (rerun)``: the same command over its own output
   (skipped with ``--no-rerun``). Disk: the derived files under the storage root (not
   ``raw/``, not the instance), sampled every 0.25 s, peak against the final size;
4. ``verify``: ``wmtp-assets verify --partition codecontests.valid`` (the tiny partition) and
   ``--partition codecontests.train``; the marginal cost of train is the difference;
   ``verify (main)``: the same two commands with the code at ``--baseline-code`` (the project
   before this change), if given;
5. ``floor``: one process that reads, SHA256-hashes and parses each file of the partition once
   (parquet decoded column by column, JSONL and the line-per-entry JSON files one line at a time)
   for train and for valid;
6. ``trainer``: what one trainer rank pays: ``json.load`` of ``processed/train_metadata.json``
   and of ``tests/train_tests.json`` (REFERENCE §6: the trainer reads both whole), each in a
   fresh process: seconds and peak RSS.

Memory: private = ``RssAnon + RssShmem`` summed over the process tree (``bench/full_size``).
Results: a table on stdout and ``<workdir>/codecontests_scale.json``. The workdir is deleted at
the end unless ``--keep``.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import shutil
import sys
import threading
import time
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO_ROOT))

from bench.codecontests_source import REAL_PROBLEMS, REAL_SHARDS, write_split  # noqa: E402
from bench.full_size import timed  # noqa: E402
from wmtp_assets.demo.tokenizer import LLAMA2_TOKENIZER  # noqa: E402
from wmtp_assets.files.hashing import sha256_file  # noqa: E402
from wmtp_assets.files.layout import Layout  # noqa: E402

BIN = Path(sys.executable).parent
DERIVED = ",".join(
    f"datasets/{a}"
    for a in ("processed", "problem_index", "stats", "small", "eval_problems", "eval_tests")
)
REAL_RECORDS = 3_691_981


class DiskPeak(threading.Thread):
    """Peak bytes allocated to files under ``root``, less ``raw/`` folders and the instance."""

    def __init__(self, root: Path, interval_s: float = 0.25) -> None:
        super().__init__(daemon=True)
        self.root, self.interval_s, self.peak = root, interval_s, 0
        self._done = threading.Event()

    def used(self) -> int:
        total = 0
        for folder, dirs, files in os.walk(self.root):
            dirs[:] = [d for d in dirs if d not in ("raw", "dagster_home", "models_v2")]
            for name in files:
                with contextlib.suppress(FileNotFoundError):  # a temporary renamed meanwhile
                    total += os.lstat(os.path.join(folder, name)).st_blocks * 512
        return total

    def run(self) -> None:
        while not self._done.is_set():
            self.peak = max(self.peak, self.used())
            time.sleep(self.interval_s)

    def stop(self) -> dict[str, float]:
        self._done.set()
        self.join()
        final = self.used()
        self.peak = max(self.peak, final)
        return {"peak_disk_gb": self.peak / 1e9, "final_disk_gb": final / 1e9}


def _run(command: list[str], env: dict[str, str], root: Path | None = None) -> dict[str, object]:
    disk = DiskPeak(root) if root else None
    if disk:
        disk.start()
    result = timed(command, env)
    if disk:
        result.update(disk.stop())
    print(
        f"  {' '.join(command[-4:])}: {result['seconds']:.1f} s, exit {result['exit']}, "
        f"private {result['peak_private_gb']:.2f} GB",
        flush=True,
    )
    if result["exit"] != 0:
        print(str(result["tail"])[-2500:], flush=True)
    return result


FLOOR = r"""
import hashlib, json, os, sys
import pyarrow.parquet as pq
paths = sys.argv[1:]
for path in paths:
    digest = hashlib.sha256()
    if os.path.getsize(path) < 1 << 20 and not path.endswith((".parquet", ".jsonl")):
        with open(path, "rb") as fh:
            data = fh.read()
        digest.update(data)
        json.loads(data)
        continue
    if path.endswith(".parquet"):
        with open(path, "rb") as fh:
            while chunk := fh.read(8 << 20):
                digest.update(chunk)
        for batch in pq.ParquetFile(path).iter_batches(batch_size=16):
            pass  # decoded into Arrow, every column
        continue
    with open(path, "rb") as fh:
        for line in fh:
            digest.update(line)
            text = line.rstrip(b",\r\n")
            if text in (b"{", b"}", b"]}", b'},"metadata":[') or not text:
                continue
            if text.startswith(b'{"dataset"'):
                text += b"}}"
            elif not text.startswith(b"{"):
                text = b"{" + text + b"}"
            json.loads(text)
"""


def _partition_files(layout: Layout, split: str) -> list[Path]:
    dirs = layout.dataset("codecontests")
    candidates = [
        *sorted(dirs.raw.rglob(f"{split}-*.parquet")),
        dirs.jsonl(split),
        dirs.problem_index(split),
        dirs.stats_file(split),
        dirs.statements_file(split),
        dirs.small_jsonl(split),
        dirs.eval_jsonl(split),
        dirs.tests_json(split),
    ]
    return [p for p in candidates if p.exists()]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--workdir", type=Path, required=True)
    parser.add_argument("--fraction", type=float, default=1.0)
    parser.add_argument("--baseline-code", type=Path, help="a checkout of the code before")
    parser.add_argument("--keep", action="store_true")
    parser.add_argument(
        "--no-rerun", action="store_true", help="skip the rerun of processing (half the time)"
    )
    args = parser.parse_args()

    work: Path = args.workdir
    shutil.rmtree(work, ignore_errors=True)
    mirror, root = work / "mirror", work / "storage"
    data = mirror / "datasets" / "deepmind" / "code_contests" / "data"
    problems = max(1, round(REAL_PROBLEMS * args.fraction))
    shards = max(1, min(problems, round(REAL_SHARDS * args.fraction)))
    started = time.perf_counter()
    write_split(data, "train", problems, shards)
    write_split(data, "valid", 8, 1, seed=1)
    upstream = sum(p.stat().st_size for p in data.iterdir())
    print(
        f"generated {problems} problems, {shards} shards, {upstream / 1e9:.2f} GB parquet in "
        f"{time.perf_counter() - started:.0f} s",
        flush=True,
    )
    layout = Layout(root)
    layout.shared_tokenizer.parent.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(LLAMA2_TOKENIZER, layout.shared_tokenizer)
    env = {k: v for k, v in os.environ.items() if not k.startswith(("WMTP_", "DAGSTER_"))}
    env |= {
        "PYTHONPATH": str(REPO_ROOT),  # this checkout's code, whatever the venv installed
        "WMTP_STORAGE_ROOT": str(root),
        "WMTP_MIRROR": str(mirror),
        "WMTP_TOKENIZER_SHA256": sha256_file(LLAMA2_TOKENIZER),
        "DAGSTER_HOME": str(root / "dagster_home"),
    }
    (root / "dagster_home").mkdir(parents=True)
    dagster = [str(BIN / "dagster"), "asset", "materialize", "-m", "wmtp_assets.definitions"]
    results: dict[str, dict[str, object]] = {}
    for split in ("valid", "train"):
        key = f"codecontests.{split}"
        results[f"raw {split}"] = _run(
            [*dagster, "--select", "datasets/raw", "--partition", key], env
        )
    results["process valid"] = _run(
        [*dagster, "--select", DERIVED, "--partition", "codecontests.valid"], env
    )
    for name in ("process", "process (rerun)")[: 1 if args.no_rerun else 2]:
        results[name] = _run(
            [*dagster, "--select", DERIVED, "--partition", "codecontests.train"], env, root
        )
    verify = [str(BIN / "wmtp-assets"), "verify", "--partition"]
    for split in ("valid", "train"):
        results[f"verify {split}"] = _run([*verify, f"codecontests.{split}"], env)
    if args.baseline_code:
        before = env | {"PYTHONPATH": str(args.baseline_code)}
        for split in ("valid", "train"):
            results[f"verify (main) {split}"] = _run([*verify, f"codecontests.{split}"], before)
    for split in ("valid", "train"):
        files = [str(p) for p in _partition_files(layout, split)]
        results[f"floor {split}"] = _run([sys.executable, "-c", FLOOR, *files], env)
        results[f"floor {split}"]["bytes"] = sum(os.path.getsize(f) for f in files)
    dirs = layout.dataset("codecontests")
    for name, path in (
        ("metadata", dirs.problem_index("train")),
        ("tests", dirs.tests_json("train")),
    ):
        load = (
            f"import json; json.load(open({str(path)!r}))\n"  # then VmHWM: this image's peak
            "print([l for l in open('/proc/self/status') if l.startswith('VmHWM')][0].split()[1])"
        )
        result = _run([sys.executable, "-c", load], env)
        result["max_rss_gb"] = int(str(result["tail"]).split()[-1]) / 1024**2
        results[f"trainer json.load {name}"] = result
        results[f"trainer json.load {name}"]["bytes"] = path.stat().st_size
    stats = json.loads(dirs.stats_file("train").read_text())
    report(results, stats["records"], args.fraction, problems)
    (work.parent / "codecontests_scale.json").write_text(
        json.dumps(
            {"fraction": args.fraction, "records": stats["records"], "results": results},
            indent=2,
            default=str,
        )
    )
    if not args.keep:
        shutil.rmtree(work)


def report(
    results: dict[str, dict[str, object]], records: int, fraction: float, problems: int
) -> None:
    def s(name: str) -> float:
        return float(results[name]["seconds"])  # type: ignore[arg-type]

    floor = s("floor train")
    marginal = s("verify train") - s("verify valid")
    print(f"\n{problems} problems, {records:,} train records (fraction {fraction})\n")
    print("| command | wall s | private peak GB | disk peak / final GB | exit |")
    print("|---|---:|---:|---:|---:|")
    for name, r in results.items():
        disk = f"{r['peak_disk_gb']:.2f} / {r['final_disk_gb']:.2f}" if "peak_disk_gb" in r else "-"
        print(
            f"| {name} | {r['seconds']:.1f} | {r.get('max_rss_gb', r['peak_private_gb']):.2f} "
            f"| {disk} | {r['exit']} |"
        )
    print(
        f"\nverify train marginal over valid: {marginal:.1f} s = {marginal / floor:.2f}x the "
        f"one-pass floor ({floor:.1f} s)"
    )
    if "verify (main) train" in results:
        before = s("verify (main) train") - s("verify (main) valid")
        print(f"verify (main) marginal: {before:.1f} s = {before / floor:.2f}x the floor")
    for name in ("process", "process (rerun)"):
        if name not in results:
            continue
        r = results[name]
        ratio = float(r["peak_disk_gb"]) / max(float(r["final_disk_gb"]), 1e-9)  # type: ignore[arg-type]
        print(f"{name}: {records / s(name):,.0f} records/s; peak disk {ratio:.2f}x the final size")
    scale = REAL_RECORDS / max(records, 1)
    print(
        f"\nlinear extrapolation to {REAL_RECORDS:,} records (x{scale:.1f}): process "
        f"{s('process') * scale / 60:.0f} min, verify train marginal {marginal * scale / 60:.1f} "
        f"min, floor {floor * scale / 60:.1f} min"
    )


if __name__ == "__main__":
    main()
