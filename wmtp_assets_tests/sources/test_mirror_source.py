"""MirrorSource: copies from a local mirror folder, verified against its manifest when present."""

from __future__ import annotations

import errno
import hashlib
import json
import os
import shutil
from pathlib import Path

import pytest

from wmtp_assets.files.atomic import TMP_MARK
from wmtp_assets.settings import Settings
from wmtp_assets.sources import (
    MANIFEST_NAME,
    SOURCE_FILE,
    ChecksumMismatchError,
    HubSource,
    MirrorSource,
    SourceError,
    SourceFileMissingError,
    read_provenance,
    source_from_settings,
    write_mirror_manifest,
)
from wmtp_assets_tests.sources.refs import ref

MBPP = "google-research-datasets/mbpp"
MBPP_FILES = {
    "full/train-00000-of-00001.parquet": os.urandom(20_000),
    "full/test-00000-of-00001.parquet": os.urandom(10_000),
    "full/validation-00000-of-00001.parquet": os.urandom(5_000),
    "README.md": b"# mbpp\n",
}
COMMIT = "6b7e2a1c" * 5


def build_mirror(root: Path, files: dict[str, bytes], manifest: bool = True) -> Path:
    repo_dir = root / "datasets" / MBPP
    for path, content in files.items():
        (repo_dir / path).parent.mkdir(parents=True, exist_ok=True)
        (repo_dir / path).write_bytes(content)
    if manifest:
        write_mirror_manifest(root, ref(MBPP, "dataset", "main"), COMMIT)
    return repo_dir


def test_copy_with_manifest_records_provenance(tmp_path: Path) -> None:
    build_mirror(tmp_path / "mirror", MBPP_FILES)
    raw = tmp_path / "raw"
    messages: list[str] = []

    result = MirrorSource(tmp_path / "mirror").fetch(
        ref(MBPP, "dataset", "main", ["full/t*-*.parquet"]), raw, progress=messages.append
    )

    expected = ["full/test-00000-of-00001.parquet", "full/train-00000-of-00001.parquet"]
    assert sorted(result.files) == expected
    provenance = read_provenance(raw)
    assert provenance == result.provenance
    assert provenance is not None
    assert (provenance.kind, provenance.repo_id, provenance.repo_type) == (
        "mirror",
        MBPP,
        "dataset",
    )
    assert provenance.location == str((tmp_path / "mirror").resolve())
    assert provenance.resolved_commit == COMMIT
    assert [(r.path, r.size, r.sha256) for r in provenance.files] == [
        (p, len(MBPP_FILES[p]), hashlib.sha256(MBPP_FILES[p]).hexdigest()) for p in expected
    ]
    for path in expected:
        assert (raw / path).read_bytes() == MBPP_FILES[path]
    assert any("train-00000" in m and "KiB" in m for m in messages)
    assert sorted(p.name for p in tmp_path.iterdir()) == [".lock", "mirror", "raw"]
    assert not list(raw.rglob(f"*{TMP_MARK}*"))
    manifest = json.loads((tmp_path / "mirror/datasets" / MBPP / MANIFEST_NAME).read_text())
    assert manifest["files"]["README.md"]["size"] == len(MBPP_FILES["README.md"])


def test_without_manifest_nothing_to_resolve(tmp_path: Path) -> None:
    build_mirror(tmp_path / "mirror", MBPP_FILES, manifest=False)

    result = MirrorSource(tmp_path / "mirror").fetch(
        ref(MBPP, "dataset", "any-label", ["README.md"]), tmp_path / "raw"
    )

    assert result.provenance.resolved_commit is None
    assert result.provenance.files[0].sha256 == hashlib.sha256(MBPP_FILES["README.md"]).hexdigest()


def test_manifest_mismatch_leaves_raw_untouched(tmp_path: Path) -> None:
    repo_dir = build_mirror(tmp_path / "mirror", MBPP_FILES)
    raw = tmp_path / "raw"
    source = MirrorSource(tmp_path / "mirror")
    source.fetch(ref(MBPP, "dataset", "main", ["full/*"]), raw)
    before = {p.relative_to(raw): p.read_bytes() for p in raw.rglob("*") if p.is_file()}
    path = "full/test-00000-of-00001.parquet"
    manifest = json.loads((repo_dir / MANIFEST_NAME).read_text())
    manifest["files"][path]["sha256"] = "0" * 64  # the mirror now claims other bytes
    (repo_dir / MANIFEST_NAME).write_text(json.dumps(manifest))

    with pytest.raises(ChecksumMismatchError) as caught:
        source.fetch(ref(MBPP, "dataset", "main", ["full/*"]), raw)

    assert MBPP in str(caught.value) and path in str(caught.value)
    after = {p.relative_to(raw): p.read_bytes() for p in raw.rglob("*") if p.is_file()}
    assert after == before
    assert sorted(p.name for p in tmp_path.iterdir()) == [".lock", "mirror", "raw"]
    assert not list(raw.rglob(f"*{TMP_MARK}*"))


def test_missing_file_repo_or_revision(tmp_path: Path) -> None:
    repo_dir = build_mirror(tmp_path / "mirror", MBPP_FILES)
    source = MirrorSource(tmp_path / "mirror")
    raw = tmp_path / "raw"

    with pytest.raises(SourceFileMissingError) as pattern:
        source.fetch(ref(MBPP, "dataset", "main", ["full/prompt-*.parquet"]), raw)
    assert MBPP in str(pattern.value) and "full/prompt-*.parquet" in str(pattern.value)

    with pytest.raises(SourceFileMissingError):
        source.fetch(ref("openai/openai_humaneval", "dataset", "main", ["*"]), raw)

    with pytest.raises(SourceFileMissingError) as revision:
        source.fetch(ref(MBPP, "dataset", "f00dfeed", ["README.md"]), raw)
    assert COMMIT in str(revision.value)

    (repo_dir / "README.md").unlink()  # listed in the manifest, gone from disk
    with pytest.raises(SourceFileMissingError):
        source.fetch(ref(MBPP, "dataset", COMMIT, ["README.md"]), raw)
    assert not raw.exists()


def test_rerun_reuses_unchanged_files(tmp_path: Path) -> None:
    repo_dir = build_mirror(tmp_path / "mirror", MBPP_FILES)
    raw = tmp_path / "raw"
    source = MirrorSource(tmp_path / "mirror")
    first = source.fetch(ref(MBPP, "dataset", "main", ["full/*"]), raw)
    # Damage the mirror copy behind the manifest's back: a rerun must not even read it.
    (repo_dir / "full/train-00000-of-00001.parquet").write_bytes(b"damaged")

    again = source.fetch(ref(MBPP, "dataset", "main", ["full/*"]), raw)

    assert sorted(again.reused) == sorted(first.files)
    assert again.provenance.files == first.provenance.files
    path = "full/train-00000-of-00001.parquet"
    assert (raw / path).read_bytes() == MBPP_FILES[path]


def test_rerun_without_manifest_uses_size_and_mtime(tmp_path: Path) -> None:
    repo_dir = build_mirror(tmp_path / "mirror", MBPP_FILES, manifest=False)
    raw = tmp_path / "raw"
    source = MirrorSource(tmp_path / "mirror")
    source.fetch(ref(MBPP, "dataset", "main", ["full/*"]), raw)

    assert len(source.fetch(ref(MBPP, "dataset", "main", ["full/*"]), raw).reused) == 3

    path = repo_dir / "full/test-00000-of-00001.parquet"
    path.write_bytes(b"new bytes")
    os.utime(path, ns=(0, path.stat().st_mtime_ns + 10**9))
    third = source.fetch(ref(MBPP, "dataset", "main", ["full/*"]), raw)
    assert sorted(third.reused) == [
        "full/train-00000-of-00001.parquet",
        "full/validation-00000-of-00001.parquet",
    ]
    assert (raw / "full/test-00000-of-00001.parquet").read_bytes() == b"new bytes"


def test_fetches_of_one_snapshot_share_raw(tmp_path: Path) -> None:
    """One dataset, one fetch per split: records merge; another snapshot replaces them."""
    build_mirror(tmp_path / "mirror", MBPP_FILES)
    raw = tmp_path / "raw"
    source = MirrorSource(tmp_path / "mirror")
    source.fetch(ref(MBPP, "dataset", "main", ["full/train-*"]), raw)

    second = source.fetch(ref(MBPP, "dataset", "main", ["full/test-*"]), raw)

    assert list(second.files) == ["full/test-00000-of-00001.parquet"]
    assert [r.path for r in second.provenance.files] == [
        "full/test-00000-of-00001.parquet",
        "full/train-00000-of-00001.parquet",
    ]
    write_mirror_manifest(tmp_path / "mirror", ref(MBPP, "dataset", "main"), "c0ffee00" * 5)
    third = source.fetch(ref(MBPP, "dataset", "main", ["full/test-*"]), raw)
    assert [r.path for r in third.provenance.files] == ["full/test-00000-of-00001.parquet"]
    assert third.reused == ("full/test-00000-of-00001.parquet",)
    assert not (raw / "full/train-00000-of-00001.parquet").exists()


def test_path_traversal_is_refused(tmp_path: Path) -> None:
    repo_dir = build_mirror(tmp_path / "mirror", MBPP_FILES)
    source = MirrorSource(tmp_path / "mirror")
    raw = tmp_path / "a" / "raw"

    with pytest.raises(SourceError):
        source.fetch(ref("../../etc", "dataset", "main", ["*"]), raw)

    manifest = json.loads((repo_dir / MANIFEST_NAME).read_text())
    manifest["files"]["../evil"] = manifest["files"]["README.md"]
    (repo_dir / "../evil").write_bytes(MBPP_FILES["README.md"])
    (repo_dir / MANIFEST_NAME).write_text(json.dumps(manifest))
    with pytest.raises(SourceError) as caught:
        source.fetch(ref(MBPP, "dataset", "main", ["*"]), raw)
    assert "../evil" in str(caught.value)
    assert not (tmp_path / "a" / "evil").exists() and not raw.exists()


def test_source_from_settings(tmp_path: Path) -> None:
    mirror = source_from_settings(Settings(mirror=tmp_path))
    assert isinstance(mirror, MirrorSource) and mirror.root == tmp_path
    hub = source_from_settings(Settings(), endpoint="http://127.0.0.1:9")
    assert isinstance(hub, HubSource) and hub.location == "http://127.0.0.1:9"
    assert read_provenance(tmp_path) is None
    (tmp_path / SOURCE_FILE).write_text("{}")
    with pytest.raises(SourceError):
        read_provenance(tmp_path)


@pytest.mark.parametrize("manifest", [True, False])
def test_flipped_byte_in_raw_is_copied_again_not_reused(tmp_path: Path, manifest: bool) -> None:
    build_mirror(tmp_path / "mirror", MBPP_FILES, manifest=manifest)
    raw = tmp_path / "raw"
    source = MirrorSource(tmp_path / "mirror")
    source.fetch(ref(MBPP, "dataset", "main", ["full/*"]), raw)
    path = "full/train-00000-of-00001.parquet"
    local = raw / path
    before = local.stat()
    rotten = bytearray(local.read_bytes())
    rotten[7] ^= 0x80
    local.write_bytes(rotten)
    os.utime(local, ns=(before.st_atime_ns, before.st_mtime_ns))

    again = source.fetch(ref(MBPP, "dataset", "main", ["full/*"]), raw)

    assert path not in again.reused and len(again.reused) == 2
    assert local.read_bytes() == MBPP_FILES[path]


def test_symlink_in_the_mirror_is_refused_by_name(tmp_path: Path) -> None:
    repo_dir = build_mirror(tmp_path / "mirror", MBPP_FILES, manifest=False)
    secret = tmp_path / "secret.txt"
    secret.write_text("outside the mirror")
    link = repo_dir / "full" / "extra-00000-of-00001.parquet"
    link.symlink_to(secret)
    raw = tmp_path / "raw"
    source = MirrorSource(tmp_path / "mirror")

    with pytest.raises(SourceError) as caught:
        source.fetch(ref(MBPP, "dataset", "main", ["full/*"]), raw)

    message = str(caught.value)
    assert str(link) in message and "symlink" in message and "\n" not in message
    assert not raw.exists()
    with pytest.raises(SourceError, match="symlink"):
        write_mirror_manifest(tmp_path / "mirror", ref(MBPP, "dataset", "main"), COMMIT)
    link.unlink()
    link.symlink_to(repo_dir / "README.md")  # a link that stays inside is refused too
    with pytest.raises(SourceError, match="symlink"):
        source.fetch(ref(MBPP, "dataset", "main", ["full/extra-*"]), raw)
    assert source.fetch(ref(MBPP, "dataset", "main", ["full/test-*"]), raw).files


def test_file_resolving_outside_the_mirror_is_refused(tmp_path: Path) -> None:
    """A linked folder on the way: the file itself is no link, but its bytes live elsewhere."""
    repo_dir = build_mirror(tmp_path / "mirror", MBPP_FILES)
    outside = tmp_path / "elsewhere"
    outside.mkdir()
    (outside / "prompt-00000-of-00001.parquet").write_bytes(b"not the mirror's")
    (repo_dir / "linked").symlink_to(outside, target_is_directory=True)
    manifest = json.loads((repo_dir / MANIFEST_NAME).read_text())
    manifest["files"]["linked/prompt-00000-of-00001.parquet"] = {
        "sha256": hashlib.sha256(b"not the mirror's").hexdigest(),
        "size": len(b"not the mirror's"),
    }
    (repo_dir / MANIFEST_NAME).write_text(json.dumps(manifest))

    with pytest.raises(SourceError) as caught:
        MirrorSource(tmp_path / "mirror").fetch(
            ref(MBPP, "dataset", "main", ["linked/*"]), tmp_path / "raw"
        )

    assert "linked/prompt-00000-of-00001.parquet" in str(caught.value)
    assert "outside" in str(caught.value)
    assert not (tmp_path / "raw").exists()


def test_full_disk_while_installing_names_the_file_and_keeps_raw(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    repo_dir = build_mirror(tmp_path / "mirror", MBPP_FILES)
    raw = tmp_path / "raw"
    source = MirrorSource(tmp_path / "mirror")
    source.fetch(ref(MBPP, "dataset", "main", ["full/*"]), raw)
    before = {p.relative_to(raw): p.read_bytes() for p in raw.rglob("*") if p.is_file()}
    path = "full/test-00000-of-00001.parquet"
    (repo_dir / path).write_bytes(b"a new upstream version")
    write_mirror_manifest(tmp_path / "mirror", ref(MBPP, "dataset", "main"), COMMIT)

    def no_space(fd: int) -> None:
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    monkeypatch.setattr(os, "fsync", no_space)
    with pytest.raises(SourceError) as caught:
        source.fetch(ref(MBPP, "dataset", "main", ["full/*"]), raw)
    monkeypatch.undo()

    assert str(raw / path) in str(caught.value) and "No space left" in str(caught.value)
    after = {p.relative_to(raw): p.read_bytes() for p in raw.rglob("*") if p.is_file()}
    assert after == before


def test_fetch_of_one_split_after_the_mirror_moved_keeps_the_other_splits(tmp_path: Path) -> None:
    """Issue 18: a storage root copied elsewhere (its mirror inside it) and one split fetched
    from the new place: the same commit is the same snapshot, so the other splits' shards and
    their records stay."""
    build_mirror(tmp_path / "old" / "mirror", MBPP_FILES)
    raw = tmp_path / "old" / "raw"
    MirrorSource(tmp_path / "old" / "mirror").fetch(ref(MBPP, "dataset", "main", ["full/*"]), raw)
    shutil.copytree(tmp_path / "old", tmp_path / "new")
    raw = tmp_path / "new" / "raw"

    again = MirrorSource(tmp_path / "new" / "mirror").fetch(
        ref(MBPP, "dataset", "main", ["full/test-*"]), raw
    )

    shards = [p for p in MBPP_FILES if p.endswith(".parquet")]
    assert sorted(r.path for r in again.provenance.files) == sorted(shards)
    for path in shards:
        assert (raw / path).read_bytes() == MBPP_FILES[path]
    assert again.provenance.location == str((tmp_path / "new" / "mirror").resolve())
