"""SHA256 of large files, ours against the standard library, cold cache, in one run.

1. one file: ``sha256_file`` (a reader thread ahead of the hash) against
   ``hashlib.file_digest`` (reads and hashes in turn);
2. two files, as ``verify`` meets a model's source and weights: ``hashes_ahead`` hashing the
   second while the caller hashes the first, against the two hashed one after the other.

Every file is dropped from the page cache (``POSIX_FADV_DONTNEED``) before each pass, and each
case is run ``--repeat`` times, alternating, since the disk is shared.

    python bench/hashing.py --scratch /work/scratch-hashing --gb 4
    python bench/hashing.py --files RAW WEIGHTS          # existing files, e.g. a 7B's
"""

from __future__ import annotations

import argparse
import hashlib
import os
import time
from collections.abc import Callable
from pathlib import Path

from wmtp_assets.files.hashing import hashes_ahead, sha256_file


def drop_from_cache(*paths: Path) -> None:
    for path in paths:
        with open(path, "rb") as fh:
            os.posix_fadvise(fh.fileno(), 0, 0, os.POSIX_FADV_DONTNEED)


def timed(paths: list[Path], run: Callable[[], list[str]]) -> tuple[float, list[str]]:
    drop_from_cache(*paths)
    start = time.perf_counter()
    digests = run()
    return time.perf_counter() - start, digests


def stdlib(path: Path) -> str:
    with open(path, "rb") as fh:
        return hashlib.file_digest(fh, "sha256").hexdigest()


def ahead(first: Path, second: Path) -> list[str]:
    with hashes_ahead([second], workers=1):
        return [sha256_file(first), sha256_file(second)]


def write_file(path: Path, gb: float, seed: int) -> Path:
    block = hashlib.sha256(str(seed).encode()).digest() * (1 << 20)  # 32 MiB, not zeros
    with open(path, "wb") as fh:
        for _ in range(max(1, int(gb * 1e9) // len(block))):
            fh.write(block)
    return path


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--files", type=Path, nargs=2, help="two existing files")
    parser.add_argument("--scratch", type=Path, default=Path("/work/scratch-hashing"))
    parser.add_argument("--gb", type=float, default=4.0, help="size of each written file")
    parser.add_argument("--repeat", type=int, default=2)
    args = parser.parse_args()
    if args.files:
        first, second = args.files
    else:
        args.scratch.mkdir(parents=True, exist_ok=True)
        first = write_file(args.scratch / "first.bin", args.gb, 1)
        second = write_file(args.scratch / "second.bin", args.gb, 2)
    size = first.stat().st_size
    for _ in range(args.repeat):
        ours_s, (mine,) = timed([first], lambda: [sha256_file(first)])
        base_s, (theirs,) = timed([first], lambda: [stdlib(first)])
        assert mine == theirs
        print(
            f"one file, {size / 1e9:.2f} GB: sha256_file {size / 1e9 / ours_s:.2f} GB/s, "
            f"file_digest {size / 1e9 / base_s:.2f} GB/s, ratio {base_s / ours_s:.2f}x",
            flush=True,
        )
        both = [first, second]
        at_once_s, at_once = timed(both, lambda: ahead(first, second))
        in_turn_s, in_turn = timed(both, lambda: [stdlib(first), stdlib(second)])
        assert at_once == in_turn
        total = (size + second.stat().st_size) / 1e9
        print(
            f"two files, {total:.2f} GB: hashed ahead {at_once_s:.1f} s, in turn "
            f"{in_turn_s:.1f} s, ratio {in_turn_s / at_once_s:.2f}x",
            flush=True,
        )
    if not args.files:
        for path in (first, second):
            path.unlink()


if __name__ == "__main__":
    main()
