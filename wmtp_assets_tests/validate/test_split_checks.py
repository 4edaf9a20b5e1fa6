"""Which splits must stay apart (the digest checks themselves run over built data in
``test_dataset_checks``)."""

from __future__ import annotations

from wmtp_assets.data.partitions import PARTITION_KEYS, Partition
from wmtp_assets.validate.split_checks import _rivals


def test_each_rival_is_listed_once_and_the_relation_is_symmetric() -> None:
    rivals = {k: [p.key for p in _rivals(Partition.parse(k))] for k in PARTITION_KEYS}
    for key, listed in rivals.items():
        assert len(listed) == len(set(listed)), key
        assert key not in listed
        for other in listed:
            assert key in rivals[other], (key, other)


def test_train_is_kept_apart_from_every_evaluation_split() -> None:
    evaluation = [k for k in PARTITION_KEYS if not k.endswith(".train")]
    for train in ("codecontests.train", "mbpp.train"):
        assert set(evaluation) <= {p.key for p in _rivals(Partition.parse(train))}
    assert {p.key for p in _rivals(Partition.parse("codecontests.valid"))} >= {
        "codecontests.train",
        "codecontests.test",
    }
