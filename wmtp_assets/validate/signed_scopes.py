"""What each signature covers, and where it lives (storage/README.md, "Signatures").

- a model: ``models_v2/<model>/model.sig`` covers every file of the folder (``raw/`` and
  ``proof/`` included: the upstream bytes and the conversion's evidence are part of what was
  published) except the signature and lock files;
- a dataset partition: ``datasets_v2/<dataset>/signatures/<split>.sig`` covers exactly the
  split's files there: its raw shards, ``processed/<split>.jsonl``, ``<split>_metadata.json``,
  ``<split>_eval.jsonl``, ``stats/<split>_stats.json``, ``<split>_statements.json`` and
  ``tests/<split>_tests.json``, those that exist. Files every split rewrites (``raw/SOURCE.json``,
  ``processed/schema.json``, ``processed/README.md``, the dated summary) belong to no partition;
- a partition's small subset: ``datasets_local_small/<dataset>_small/signatures/<split>_small.sig``
  covers ``<split>_small.jsonl`` (the library verifies a folder, and the subset lives in another).
"""

from __future__ import annotations

from wmtp_assets.data.partitions import PARTITION_KEYS, Partition
from wmtp_assets.files.layout import MODEL_FOLDERS, Layout
from wmtp_assets.files.signing import SignedScope

SIGNATURES = "signatures"


def model_scope(layout: Layout, model: str) -> SignedScope:
    """``model`` by asset name (``micro_mtp``) or folder name."""
    dirs = layout.model(model)
    return SignedScope(
        name=dirs.root.relative_to(layout.root).as_posix(),
        folder=dirs.root,
        signature=dirs.signature,
    )


def partition_files(layout: Layout, part: Partition) -> tuple[str, ...]:
    """The split's files in its dataset folder that exist now, relative to that folder."""
    dirs = layout.dataset(part.dataset)
    split = part.split
    candidates = [
        *part.files_in(dirs.raw),
        dirs.jsonl(split),
        dirs.problem_index(split),
        dirs.eval_jsonl(split),
        dirs.stats_file(split),
        dirs.statements_file(split),
        dirs.tests_json(split),
    ]
    return tuple(p.relative_to(dirs.root).as_posix() for p in candidates if p.is_file())


def split_scope(layout: Layout, part: Partition) -> SignedScope:
    """The split's signature and the files it covers now (none when nothing of it is stored)."""
    dirs = layout.dataset(part.dataset)
    return SignedScope(
        name=f"{dirs.root.relative_to(layout.root).as_posix()}/{part.split}",
        folder=dirs.root,
        signature=dirs.root / SIGNATURES / f"{part.split}.sig",
        files=partition_files(layout, part),
    )


def small_scope(layout: Layout, part: Partition) -> SignedScope:
    """The signature of the partition's small subset, whether or not the subset is stored."""
    dirs = layout.dataset(part.dataset)
    small = dirs.small_jsonl(part.split)
    return SignedScope(
        name=small.relative_to(layout.root).with_suffix("").as_posix(),
        folder=dirs.small_root,
        signature=dirs.small_root / SIGNATURES / f"{small.stem}.sig",
        files=(small.name,),
    )


def is_stored(scope: SignedScope) -> bool:
    """Whether any file the scope covers is on disk (a model folder: any file at all)."""
    if scope.files is None:
        return scope.folder.is_dir() and any(p.is_file() for p in scope.folder.rglob("*"))
    return any((scope.folder / f).is_file() for f in scope.files)


def partition_scopes(layout: Layout, key: str) -> list[SignedScope]:
    """The partition's signed scopes that have files on disk: the split, its small subset."""
    part = Partition.parse(key)
    return [s for s in (split_scope(layout, part), small_scope(layout, part)) if is_stored(s)]


def scope_owner(layout: Layout, name: str) -> tuple[str | None, str | None]:
    """The model (asset name) or partition key whose signed scope is called ``name``; (None,
    None) for a name no model or partition of this layout has."""
    for model in MODEL_FOLDERS:
        if model_scope(layout, model).name == name:
            return model, None
    for key in PARTITION_KEYS:
        part = Partition.parse(key)
        if name in (split_scope(layout, part).name, small_scope(layout, part).name):
            return None, key
    return None, None
