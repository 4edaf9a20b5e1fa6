"""The revalidation plan's scope: what ``wmtp-assets verify --model/--partition`` runs."""

from __future__ import annotations

from pathlib import Path

import dagster as dg
import pytest

from wmtp_assets.defs.revalidation import MODELS_RUN, revalidation_plan
from wmtp_assets.files.layout import Layout


@pytest.fixture
def layout(tmp_path: Path) -> Layout:
    """Storage with one file of a model and of two partitions (enough to count as stored)."""
    layout = Layout(tmp_path / "storage")
    layout.model("micro_mtp").metadata.parent.mkdir(parents=True)
    layout.model("micro_mtp").metadata.write_text("{}")
    for dataset, split in (("mbpp", "test"), ("humaneval", "test")):
        jsonl = layout.dataset(dataset).jsonl(split)
        jsonl.parent.mkdir(parents=True)
        jsonl.write_text("")
    return layout


def _scope(layout: Layout, **named: list[str] | None) -> dict[str, set[str]]:
    with dg.DagsterInstance.ephemeral() as instance:
        plan = revalidation_plan(layout, instance, **named)
    return {run.name: {k.asset_key.to_user_string() for k in run.check_keys} for run in plan}


def test_nothing_named_checks_everything_stored(layout: Layout) -> None:
    scope = _scope(layout)
    assert set(scope) == {MODELS_RUN, "mbpp.test", "humaneval.test"}
    assert all(a.startswith("models/micro_mtp") for a in scope[MODELS_RUN])


def test_a_partition_alone_checks_no_model(layout: Layout) -> None:
    scope = _scope(layout, partitions=["mbpp.test"])
    assert set(scope) == {"mbpp.test"}
    assert all(a.startswith("datasets/") for a in scope["mbpp.test"])


def test_a_model_alone_checks_no_partition(layout: Layout) -> None:
    assert set(_scope(layout, models=["micro_mtp"])) == {MODELS_RUN}


def test_both_named_checks_both(layout: Layout) -> None:
    scope = _scope(layout, models=["micro_mtp"], partitions=["humaneval.test"])
    assert set(scope) == {MODELS_RUN, "humaneval.test"}
