"""Every path of the storage layout (ARCHITECTURE §2), in one place.

Names of model folders and dataset folders are the contract's; nothing else in the code base
joins storage paths by hand.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date
from pathlib import Path


class UnsafePathError(ValueError):
    """A path built from outside data would leave the folder it must stay in."""


def safe_join(root: Path, relative: str) -> Path:
    """Join ``relative`` (e.g. a file name from a Hub listing) under ``root``, refusing escapes."""
    if not relative or relative.startswith(("/", "\\")) or "\x00" in relative:
        raise UnsafePathError(f"refusing path {relative!r}: must be a relative path inside {root}")
    candidate = (root / relative).resolve()
    base = root.resolve()
    if candidate != base and base not in candidate.parents:
        raise UnsafePathError(f"refusing path {relative!r}: it resolves outside {root}")
    return root / relative


@dataclass(frozen=True)
class ModelDirs:
    """The folders of one model in ``models_v2``."""

    root: Path

    @property
    def raw(self) -> Path:
        return self.root / "raw"

    @property
    def safetensors(self) -> Path:
        return self.root / "safetensors"

    @property
    def configs(self) -> Path:
        return self.root / "configs"

    @property
    def tokenizer(self) -> Path:
        return self.root / "tokenizer"

    @property
    def metadata(self) -> Path:
        return self.root / "metadata.json"

    @property
    def weights(self) -> Path:
        return self.safetensors / "model.safetensors"

    @property
    def sha256sums(self) -> Path:
        return self.safetensors / "SHA256SUMS"

    @property
    def signature(self) -> Path:
        """``model.sig``: the folder's OpenSSF Model Signing signature (``files/signing.py``)."""
        return self.root / "model.sig"

    @property
    def source_trace(self) -> Path:
        """What the source computes on the forward check's prompt, recorded by the conversion."""
        return self.root / "proof" / "source_trace.safetensors"


@dataclass(frozen=True)
class DatasetDirs:
    """The folders of one dataset in ``datasets_v2`` and its small subsets."""

    root: Path
    small_root: Path

    @property
    def raw(self) -> Path:
        return self.root / "raw"

    @property
    def processed(self) -> Path:
        return self.root / "processed"

    @property
    def stats(self) -> Path:
        return self.root / "stats"

    @property
    def schema(self) -> Path:
        return self.processed / "schema.json"

    def jsonl(self, split: str) -> Path:
        return self.processed / f"{split}.jsonl"

    def problem_index(self, split: str) -> Path:
        return self.processed / f"{split}_metadata.json"

    def eval_jsonl(self, split: str) -> Path:
        return self.processed / f"{split}_eval.jsonl"

    def tests_json(self, split: str) -> Path:
        return self.root / "tests" / f"{split}_tests.json"

    def small_jsonl(self, split: str) -> Path:
        return self.small_root / f"{split}_small.jsonl"

    def stats_file(self, split: str) -> Path:
        return self.stats / f"{split}_stats.json"

    def statements_file(self, split: str) -> Path:
        return self.stats / f"{split}_statements.json"

    def summary_file(self, day: date) -> Path:
        return self.stats / f"{day.isoformat()}_summary.json"


MODEL_FOLDERS = {
    "meta_llama_mtp": "meta-llama-mtp",
    "ref_sheared_llama_2_7b": "ref-sheared-llama-2.7b",
    "starling_rm_7b": "starling-rm-7b",
    "micro_mtp": "micro-mtp",
    "micro_ref": "micro-ref",
}


@dataclass(frozen=True)
class Layout:
    """The storage tree rooted at ``WMTP_STORAGE_ROOT``."""

    root: Path

    def model(self, key: str) -> ModelDirs:
        """Folders of a model by its asset-key name (``meta_llama_mtp``) or folder name."""
        folder = MODEL_FOLDERS.get(key, key)
        if folder not in MODEL_FOLDERS.values():
            raise KeyError(f"unknown model {key!r}; known: {sorted(MODEL_FOLDERS)}")
        return ModelDirs(self.root / "models_v2" / folder)

    def dataset(self, name: str) -> DatasetDirs:
        return DatasetDirs(
            self.root / "datasets_v2" / name,
            self.root / "datasets_local_small" / f"{name}_small",
        )

    @property
    def shared_tokenizer(self) -> Path:
        """The ``tokenizer.model`` every model and dataset is checked against."""
        return self.model("meta_llama_mtp").tokenizer / "tokenizer.model"

    @property
    def demo_mirror(self) -> Path:
        """Where ``wmtp-assets demo`` builds its local mirror of upstream files."""
        return self.root / "demo_mirror"
