"""Signing cost before and after digest reuse (docs/performance.md, "Signing").

1. A model folder with one multi-GB file (default 3 GB, written here with its SHA256 computed
   as it is written, as the conversion's writer does): the library signing from scratch (what
   every signing did before), against ``sign_scope`` given the writer's digest, and against a
   second signing that takes the digest from the signed-state record. The payloads are compared.
2. The bytes SHA256-hashed by signing in one full materialization of the demo Meta model (raw,
   tokenizer, safetensors; each re-signs ``models_v2/meta-llama-mtp/``), counted by wrapping
   the one function signing reads files with, in this process (the bench, not the product);
   "before" turns reuse off, which reads every file as the library does from scratch.

    python bench/signing.py --scratch /work/scratch-sigs [--gb 3]
"""

from __future__ import annotations

import argparse
import base64
import hashlib
import json
import os
import shutil
import time
from pathlib import Path

import dagster as dg
from model_signing import hashing, signing

from wmtp_assets.defs.models import meta_llama_mtp_raw, meta_llama_mtp_tokenizer, meta_safetensors
from wmtp_assets.defs.resources import WmtpResource
from wmtp_assets.demo.mirror import build_demo_mirror
from wmtp_assets.files import signing as ours
from wmtp_assets.files.hashing import file_identity
from wmtp_assets.files.signing import SignedScope, sign_and_record, sign_scope
from wmtp_assets.settings import Settings
from wmtp_assets_tests.files.test_signing import write_key_pair


def statement(signature: Path) -> dict[str, object]:
    bundle = json.loads(signature.read_bytes())
    decoded: dict[str, object] = json.loads(base64.b64decode(bundle["dsseEnvelope"]["payload"]))
    return decoded


def big_folder(scratch: Path, gb: float) -> tuple[SignedScope, dict[Path, tuple[str, list[int]]]]:
    folder = scratch / "root" / "models_v2" / "big"
    (folder / "safetensors").mkdir(parents=True, exist_ok=True)
    (folder / "metadata.json").write_text("{}")
    weights = folder / "safetensors" / "model.safetensors"
    digest = hashlib.sha256()
    block = os.urandom(64 << 20)
    with weights.open("wb") as fh:
        for i in range(int(gb * 1024 / 64)):
            chunk = block[i % 7 :] + block[: i % 7]  # not one repeated block
            digest.update(chunk)
            fh.write(chunk)
    known = {weights: (digest.hexdigest(), file_identity(weights))}
    return SignedScope("models_v2/big", folder, folder / "model.sig"), known


def timed(label: str, run: object) -> float:
    started = time.perf_counter()
    run()  # type: ignore[operator]
    seconds = time.perf_counter() - started
    print(f"  {label}: {seconds:.2f} s")
    return seconds


def bench_big_file(scratch: Path, gb: float, key: Path) -> None:
    scope, known = big_folder(scratch, gb)
    size = next(iter(known)).stat().st_size
    print(f"1. signing {scope.folder} ({size / 1e9:.2f} GB in one file, page cache warm)")
    reference = scratch / "library.sig"
    config = hashing.Config().set_ignored_paths(paths=ours._ignored_in_folder(scope))
    library = signing.Config().use_elliptic_key_signer(private_key=key).set_hashing_config(config)
    before = timed(
        "before: the library hashing from scratch", lambda: library.sign(scope.folder, reference)
    )
    timed("after, no digest known (reads like the library)", lambda: sign_scope(scope, key))
    after = timed("after, the writer's digest known", lambda: sign_scope(scope, key, known))
    assert statement(scope.signature) == statement(reference), "payloads differ"
    state = scratch / "keys" / "state.json"
    sign_and_record(scope, key, state, scope.folder.parents[1], known)
    again = timed(
        "after, re-signing from the record",
        lambda: sign_and_record(scope, key, state, scope.folder.parents[1]),
    )
    assert statement(scope.signature) == statement(reference), "payloads differ"
    print(
        f"  payload identical to the library's; speed-up {before / after:.0f}x (writer), "
        f"{before / again:.0f}x (record)"
    )


def bench_meta(scratch: Path, key: Path, reuse: bool) -> int:
    mirror = build_demo_mirror(scratch / "mirror")
    root = scratch / f"meta-{'after' if reuse else 'before'}"
    shutil.rmtree(root, ignore_errors=True)
    settings = Settings(
        storage_root=root,
        mirror=mirror.root,
        tokenizer_sha256=mirror.tokenizer_sha256,
        device="cpu",
        signing_key=key,
        signed_state=scratch / "keys" / f"state-{reuse}.json",
    )
    hashed: list[int] = []
    real_read, real_reusable = ours.sha256_file, ours._reusable

    def counting(path: Path | str) -> str:
        hashed.append(os.stat(path).st_size)
        return real_read(path)

    ours.sha256_file = counting  # type: ignore[assignment]
    if not reuse:
        ours._reusable = lambda *_: None  # type: ignore[assignment]
    try:
        result = dg.materialize(
            [meta_llama_mtp_raw, meta_llama_mtp_tokenizer, meta_safetensors],
            resources={"wmtp": WmtpResource.from_settings(settings)},
        )
        assert result.success
    finally:
        ours.sha256_file, ours._reusable = real_read, real_reusable  # type: ignore[assignment]
    folder = root / "models_v2" / "meta-llama-mtp"
    total = sum(
        p.stat().st_size for p in folder.rglob("*") if p.is_file() and p.name != "model.sig"
    )
    print(
        f"  {'after' if reuse else 'before'}: {sum(hashed):,} bytes hashed by signing in "
        f"{len(hashed)} file reads (folder: {total:,} bytes)"
    )
    return sum(hashed)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--scratch", type=Path, required=True)
    parser.add_argument("--gb", type=float, default=3.0)
    args = parser.parse_args()
    key, _ = write_key_pair(args.scratch / "keys")
    bench_big_file(args.scratch, args.gb, key)
    print("2. one full materialization of the demo Meta model (raw, tokenizer, safetensors)")
    before = bench_meta(args.scratch, key, reuse=False)
    after = bench_meta(args.scratch, key, reuse=True)
    print(f"  signing hashed {before / max(after, 1):.0f}x fewer bytes with reuse")


if __name__ == "__main__":
    main()
