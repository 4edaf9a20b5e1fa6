"""The WMTP trainer's names for our artifacts: ``<root>/models/<name>``, ``<root>/datasets/<name>``.

The trainer (REFERENCE §6) reads ``storage/models/<name>`` and ``storage/datasets/<name>``; our
contract keeps ``models_v2/`` and ``datasets_v2/``. Each trainer path is a *relative* symlink to
the artifact folder (``models/micro-reference -> ../models_v2/micro-ref``), so there is one copy
on disk and the tree still resolves when the storage root is moved, copied with symlinks, or
mounted elsewhere. A link is made (or re-pointed) atomically: a symlink under a temporary name,
then ``os.replace`` over the final name; a reader sees no link or the complete one. A real file
or folder already at a trainer path (for instance an old v1 tree) is never replaced: that is an
error naming it.
"""

from __future__ import annotations

import os
from pathlib import Path

from wmtp_assets.files.atomic import fsync_dir, tmp_path_for
from wmtp_assets.files.layout import Layout

TRAINER_MODEL_NAMES: dict[str, str] = {
    "meta-llama-mtp": "meta-llama-mtp",
    "ref-sheared-llama-2.7b": "ref-sheared-llama-2.7b",
    "starling-rm-7b": "starling-rm-7b",
    "micro-mtp": "micro-mtp",
    "micro-ref": "micro-reference",
}
"""Our model folder -> the trainer's folder name."""


class TrainerPathError(OSError):
    """A trainer path that is occupied by something that is not our link."""


def model_link(layout: Layout, model: str) -> tuple[Path, Path]:
    """``(trainer path, artifact folder)`` of a model, by asset-key name or folder name."""
    target = layout.model(model).root
    return layout.root / "models" / TRAINER_MODEL_NAMES[target.name], target


def dataset_link(layout: Layout, dataset: str) -> tuple[Path, Path]:
    """``(trainer path, artifact folder)`` of a dataset (``codecontests``, ``mbpp``, ...)."""
    target = layout.dataset(dataset).root
    return layout.root / "datasets" / dataset, target


def link_model(layout: Layout, model: str) -> Path:
    """Make ``<root>/models/<trainer name>`` point at the model's folder; return the link."""
    return _link(*model_link(layout, model))


def link_dataset(layout: Layout, dataset: str) -> Path:
    """Make ``<root>/datasets/<dataset>`` point at the dataset's folder; return the link."""
    return _link(*dataset_link(layout, dataset))


def _link(link: Path, target: Path) -> Path:
    relative = os.path.relpath(target, link.parent)
    if link.is_symlink() and os.readlink(link) == relative:
        return link
    if link.exists() and not link.is_symlink():
        raise TrainerPathError(
            f"{link} exists and is not a link to {target}; move it away so the trainer's "
            "path can point at the artifact"
        )
    link.parent.mkdir(parents=True, exist_ok=True)
    tmp = tmp_path_for(link)
    os.symlink(relative, tmp, target_is_directory=True)
    try:
        os.replace(tmp, link)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    fsync_dir(link.parent)
    return link
