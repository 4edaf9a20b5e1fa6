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

from collections.abc import Sequence

from wmtp_assets.data.partitions import Partition
from wmtp_assets.files.layout import MODEL_FOLDERS, Layout
from wmtp_assets.files.signing import SignedScope
from wmtp_assets.validate.stored import stored_models, stored_partitions

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


def partition_scopes(layout: Layout, key: str) -> list[SignedScope]:
    """The partition's signed scopes that have files on disk: the split, its small subset."""
    part = Partition.parse(key)
    dirs = layout.dataset(part.dataset)
    scopes: list[SignedScope] = []
    files = partition_files(layout, part)
    if files:
        scopes.append(
            SignedScope(
                name=f"{dirs.root.relative_to(layout.root).as_posix()}/{part.split}",
                folder=dirs.root,
                signature=dirs.root / SIGNATURES / f"{part.split}.sig",
                files=files,
            )
        )
    small = dirs.small_jsonl(part.split)
    if small.is_file():
        scopes.append(
            SignedScope(
                name=small.relative_to(layout.root).with_suffix("").as_posix(),
                folder=dirs.small_root,
                signature=dirs.small_root / SIGNATURES / f"{small.stem}.sig",
                files=(small.name,),
            )
        )
    return scopes


def stored_scopes(
    layout: Layout, models: Sequence[str] | None = None, partitions: Sequence[str] | None = None
) -> list[SignedScope]:
    """Every signed scope with files on disk, or only those of the named models and partitions
    (naming only one kind selects none of the other, as ``verify`` does)."""
    if models is None and partitions is not None:
        models = []
    if partitions is None and models is not None:
        partitions = []
    scopes = [
        model_scope(layout, m)
        for m in stored_models(layout)
        if models is None or m in models or MODEL_FOLDERS[m] in models
    ]
    for key in stored_partitions(layout):
        if partitions is None or key in partitions:
            scopes += partition_scopes(layout, key)
    return scopes
