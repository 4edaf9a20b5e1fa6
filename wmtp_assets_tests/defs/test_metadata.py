"""What the catalog and an asset's page say, read back from the instance ``wmtp-assets demo``
recorded: every asset's owner, tags and the file its description names; the stats' numbers."""

from __future__ import annotations

import json
import re
from datetime import timedelta

import dagster as dg
import numpy as np
import sentencepiece as spm

from wmtp_assets.definitions import ALL_ASSETS
from wmtp_assets.defs.datasets import STATS
from wmtp_assets.defs.revalidation import DATASET_CHECK_KEYS, MODEL_CHECK_KEYS
from wmtp_assets.files.layout import Layout
from wmtp_assets.settings import Settings

# a partition to resolve <dataset>/<split> in dataset descriptions (the eval files: CodeContests)
EXAMPLE_PARTITION = {"datasets/eval_problems": "codecontests.valid"}
REASONS = ("language", "invalid_text", "empty", "too_long")


def _specs() -> list[dg.AssetSpec]:
    return [spec for asset in ALL_ASSETS for spec in asset.specs]


def test_every_asset_has_an_owner_a_stage_and_a_description_naming_a_stored_file(
    demo_storage: Settings,
) -> None:
    assert len(_specs()) == 16  # ARCHITECTURE: 9 model assets (Starling included), 7 dataset assets
    for spec in _specs():
        name = spec.key.to_user_string()
        assert spec.owners, name
        assert "wmtp/stage" in spec.tags, name
        match = re.match(r"`([^`]+)`", spec.description or "")
        assert match, f"{name}: description does not start with its file: {spec.description}"
        partition = EXAMPLE_PARTITION.get(name, "codecontests.valid")
        dataset, split = partition.split(".")
        path = match.group(1).replace("<dataset>", dataset).replace("<split>", split)
        assert (demo_storage.storage_root / path).exists(), f"{name}: {path} not in the demo"


def _latest_metadata(settings: Settings, key: dg.AssetKey, partition: str | None) -> dict:
    with dg.DagsterInstance.from_config(str(settings.storage_root / "dagster_home")) as instance:
        event = instance.get_latest_materialization_event(key)
        if partition is not None:
            records = instance.fetch_materializations(
                dg.AssetRecordsFilter(asset_key=key, asset_partitions=[partition]), limit=1
            ).records
            event = records[0].event_log_entry
    assert event is not None and event.asset_materialization is not None
    return {k: v.value for k, v in event.asset_materialization.metadata.items()}


def test_stats_metadata_are_numbers_rederived_from_the_jsonl(demo_storage: Settings) -> None:
    metadata = _latest_metadata(demo_storage, STATS, "mbpp.test")
    layout = Layout(demo_storage.storage_root)
    sp = spm.SentencePieceProcessor(model_file=str(layout.shared_tokenizer))
    lines = layout.dataset("mbpp").jsonl("test").read_text("utf-8").splitlines()
    records = [json.loads(line) for line in lines]
    lengths = [
        sum(len(sp.encode(r[f])) for f in ("instruction", "input", "output")) for r in records
    ]
    assert metadata["kept"] == len(records)
    for q in (50, 90, 99):
        # nearest rank: the smallest length with at least q% of records at or below it
        assert metadata[f"tokens_p{q}"] == int(np.percentile(lengths, q, method="inverted_cdf"))
    assert metadata["tokens_max"] == max(lengths)
    dropped = [metadata[f"dropped_{reason}"] for reason in REASONS]
    assert all(isinstance(n, int) for n in dropped)
    assert metadata["records_read"] == len(records) + sum(dropped)
    histogram = [line for line in str(metadata["report"]).splitlines() if "█" in line]
    assert sum(int(row.split(" | ")[1].replace(",", "")) for row in histogram) == len(records)


def test_every_materialization_records_its_settings_and_their_origins(
    demo_storage: Settings,
) -> None:
    settings_file = str(demo_storage.settings_file)
    for spec in _specs():
        partition = "mbpp.test" if spec.partitions_def else None
        table = str(_latest_metadata(demo_storage, spec.key, partition)["settings"])
        # the demo recorded the mirror and the tokenizer hash in the root's settings file
        assert f"| `WMTP_MIRROR` | {settings_file} | `{demo_storage.mirror}` |" in table, table
        assert f"| `WMTP_TOKENIZER_SHA256` | {settings_file} |" in table, table


def test_every_asset_revalidation_checks_has_kinds_and_a_freshness_policy() -> None:
    """The catalog's kinds are the formats a person would look for, and the freshness policy
    is on exactly the assets the ``revalidate`` job checks, with a window longer than the
    schedule's day (a fresh demo passes) and a warning before the failure."""
    checked = {key.asset_key for key in [*MODEL_CHECK_KEYS, *DATASET_CHECK_KEYS]}
    assert checked == {spec.key for spec in _specs()}
    formats = {"huggingface", "parquet", "pytorch", "safetensors", "sentencepiece", "json", "jsonl"}
    for spec in _specs():
        name = spec.key.to_user_string()
        assert spec.kinds and spec.kinds <= formats, name
        policy = spec.freshness_policy
        assert policy is not None, f"{name}: no freshness policy"
        # the time-window policy's windows (its class is not exported by dagster)
        warn, fail = (getattr(policy, f"{which}_window") for which in ("warn", "fail"))
        assert timedelta(days=1) < timedelta(days=warn.days) < timedelta(days=fail.days), name
    weights = [s for s in _specs() if s.key.path[-1] in ("safetensors", "micro_mtp", "micro_ref")]
    assert all({"pytorch", "safetensors"} <= s.kinds for s in weights)


def test_no_two_assets_of_a_group_look_the_same_in_the_lineage() -> None:
    """Dagster's lineage labels a node with the last part of its key (``raw`` for every model)
    and shows the first line of its description under it: within a group, label and first line
    together must differ, and the groups are the contract's two."""
    shown: dict[str, list[tuple[str, str]]] = {}
    for spec in _specs():
        assert spec.group_name and spec.description, spec.key.to_user_string()
        first_line = spec.description.splitlines()[0]
        shown.setdefault(spec.group_name, []).append((spec.key.path[-1], first_line))
    assert sorted(shown) == ["datasets", "models"]
    assert all(len(nodes) == len(set(nodes)) for nodes in shown.values()), shown
