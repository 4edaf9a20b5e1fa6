"""What makes a model folder itself a Hugging Face model folder, without a second copy.

The WMTP trainer names model folders (``storage/models/micro-reference``,
``storage/models/ref-sheared-llama-2.7b``) and hands them to ``from_pretrained``; the storage
contract keeps the weights in ``safetensors/``. So the folder root gets ``config.json`` and a
``model.safetensors.index.json`` whose ``weight_map`` sends every tensor to
``safetensors/model.safetensors``: ``from_pretrained(<folder>)`` then loads that very file (the
index format allows any relative file name). Both are small sealed JSON files, like the
configs; a symlink would make the seal and every check read the weights twice.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch

from wmtp_assets.files.layout import ModelDirs
from wmtp_assets.models.artifact import WEIGHTS

ROOT_INDEX = "model.safetensors.index.json"


def root_configs(
    dirs: ModelDirs, config: Mapping[str, Any], shapes: Mapping[str, tuple[int, ...]]
) -> dict[Path, dict[str, Any]]:
    """``{path: JSON}`` of the folder root's ``config.json`` and index for float16 ``shapes``."""
    total = 2 * sum(torch.Size(shape).numel() for shape in shapes.values())
    index = {
        "metadata": {"total_size": total},
        "weight_map": dict.fromkeys(sorted(shapes), WEIGHTS),
    }
    return {dirs.root / "config.json": dict(config), dirs.root / ROOT_INDEX: index}
