"""The seven dataset partitions and, per dataset, which upstream files make up a split.

A partition key is ``<dataset>.<split>`` (ARCHITECTURE §2). Every dataset asset is partitioned by
the same seven keys, so this module is the single place that knows the datasets, their Hub repos,
the revision to request and the repo-relative file pattern of each split.

Revisions: CodeContests is pinned to the commit REFERENCE §5 names. REFERENCE gives no commit for
MBPP and HumanEval, so their *requested* revision is ``main``; the source layer records the commit
it actually resolved in ``SOURCE.json``, which is what makes a run reproducible after the fact.
"""

from __future__ import annotations

import fnmatch
from dataclasses import dataclass
from pathlib import Path


class UnknownPartitionError(ValueError):
    """A partition key that is not one of the seven."""


@dataclass(frozen=True)
class DatasetSpec:
    """One upstream dataset: where it lives on the Hub and how its split files are named."""

    name: str
    repo_id: str
    revision: str
    splits: tuple[str, ...]
    split_pattern: str
    """Repo-relative glob of one split's parquet shards; ``{split}`` is replaced by the split."""

    def file_pattern(self, split: str) -> str:
        """The glob (same syntax as ``Path.glob``) matching the split's shards in the repo."""
        if split not in self.splits:
            raise UnknownPartitionError(f"{self.name} has no split {split!r}; known: {self.splits}")
        return self.split_pattern.format(split=split)

    def matches(self, repo_path: str, split: str) -> bool:
        """Whether ``repo_path`` (as listed by the Hub, ``/``-separated) is a shard of ``split``."""
        pattern = self.file_pattern(split)
        return repo_path.count("/") == pattern.count("/") and fnmatch.fnmatchcase(
            repo_path, pattern
        )


DATASETS: dict[str, DatasetSpec] = {
    spec.name: spec
    for spec in (
        DatasetSpec(
            name="codecontests",
            repo_id="deepmind/code_contests",
            revision="802411c3010cb00d1b05bad57ca77365a3c699d6",
            splits=("train", "valid", "test"),
            split_pattern="data/{split}-*.parquet",
        ),
        DatasetSpec(
            name="mbpp",
            repo_id="google-research-datasets/mbpp",
            revision="main",
            splits=("train", "validation", "test"),
            split_pattern="full/{split}-*.parquet",
        ),
        DatasetSpec(
            name="humaneval",
            repo_id="openai/openai_humaneval",
            revision="main",
            splits=("test",),
            split_pattern="openai_humaneval/{split}-*.parquet",
        ),
    )
}


@dataclass(frozen=True)
class Partition:
    """A ``<dataset>.<split>`` partition of the dataset assets."""

    dataset: str
    split: str

    def __post_init__(self) -> None:
        spec = DATASETS.get(self.dataset)
        if spec is None or self.split not in spec.splits:
            raise UnknownPartitionError(
                f"unknown partition {self.dataset}.{self.split}; known: {', '.join(PARTITION_KEYS)}"
            )

    @classmethod
    def parse(cls, key: str) -> Partition:
        """Parse ``"codecontests.train"``; other shapes or names raise ``UnknownPartitionError``."""
        dataset, dot, split = key.partition(".")
        if not dot:
            raise UnknownPartitionError(f"partition key {key!r} is not '<dataset>.<split>'")
        return cls(dataset, split)

    @property
    def key(self) -> str:
        return f"{self.dataset}.{self.split}"

    @property
    def spec(self) -> DatasetSpec:
        return DATASETS[self.dataset]

    def claims(self, repo_path: str) -> bool:
        """Whether this partition answers for ``repo_path`` in ``raw/``: a shard of its split, or
        a file of no split of the dataset (which every partition of it then answers for)."""
        spec = self.spec
        return spec.matches(repo_path, self.split) or not any(
            spec.matches(repo_path, split) for split in spec.splits
        )

    def files_in(self, root: Path) -> list[Path]:
        """This split's shards under ``root`` (a repo checkout or mirror folder), in shard order.

        Shard order is file-name order (``train-00000-of-00039`` < ``train-00001-of-00039``): the
        row order that problem keys and output line numbers follow.
        """
        return sorted(root.glob(self.spec.file_pattern(self.split)), key=lambda p: p.name)

    def __str__(self) -> str:
        return self.key


PARTITION_KEYS: tuple[str, ...] = tuple(
    f"{spec.name}.{split}" for spec in DATASETS.values() for split in spec.splits
)
