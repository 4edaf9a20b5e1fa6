"""Dataset faults of issue 18, each against a private copy of the demo's storage and its Dagster
instance: a partial materialization, then the ``revalidate`` plan over the partition.

``test_check_faults`` holds the faults that need no materialization; these rows rematerialize
part of a partition (as an operator does) and prove what that leaves behind.
"""

from __future__ import annotations

import shutil
from collections.abc import Sequence
from pathlib import Path

import dagster as dg
import pytest

from wmtp_assets.definitions import ALL_ASSETS
from wmtp_assets.defs.checks import ALL_CHECKS
from wmtp_assets.defs.datasets import PROCESSED, RAW, STATS
from wmtp_assets.defs.resources import WmtpResource
from wmtp_assets.files.layout import Layout
from wmtp_assets.graph_runs import verify_everything
from wmtp_assets.settings import Settings
from wmtp_assets.sources import read_provenance


def _instance(settings: Settings) -> dg.DagsterInstance:
    return dg.DagsterInstance.from_config(str(settings.storage_root / "dagster_home"))


def _materialize(
    settings: Settings, keys: Sequence[dg.AssetKey], partition: str
) -> dg.ExecuteInProcessResult:
    with _instance(settings) as instance:
        return dg.materialize(
            [*ALL_ASSETS, *ALL_CHECKS],
            selection=dg.AssetSelection.assets(*keys),
            partition_key=partition,
            resources={"wmtp": WmtpResource.from_settings(settings)},
            instance=instance,
            raise_on_error=False,
        )


def _failed_checks(settings: Settings, partition: str) -> dict[str, str]:
    with _instance(settings) as instance:
        result = verify_everything(settings, instance, models=[], partitions=[partition])
    assert result.rows, "the revalidation ran no check"
    return {f"{r.asset}:{r.check}": r.summary for r in result.rows if not r.passed}


def _step_failure(result: dg.ExecuteInProcessResult) -> str:
    failures = [e for e in result.all_events if e.is_step_failure]
    assert failures, "the run did not fail a step"
    error = failures[0].step_failure_data.error
    assert error is not None
    return error.message.removeprefix(f"{dg.Failure.__module__}.Failure: ")


def test_processed_alone_reseals_the_stats_it_rewrites(copied_demo_storage: Settings) -> None:
    """``--select datasets/processed`` alone republishes the index and the stats (with a new
    ``generated_at``); their seals must follow, or the next verify reports them changed."""
    result = _materialize(copied_demo_storage, [PROCESSED], "mbpp.test")
    assert result.success
    assert _failed_checks(copied_demo_storage, "mbpp.test") == {}


def test_processing_without_the_tokenizer_names_the_asset(copied_demo_storage: Settings) -> None:
    layout = Layout(copied_demo_storage.storage_root)
    layout.shared_tokenizer.unlink()
    result = _materialize(copied_demo_storage, [PROCESSED], "mbpp.test")
    assert not result.success
    message = _step_failure(result)
    assert "models/meta_llama_mtp/tokenizer" in message and str(layout.shared_tokenizer) in message
    assert "FileNotFoundError" not in message and "\n" not in message.strip()


def test_raw_of_one_partition_after_the_root_moved_keeps_the_others(
    copied_demo_storage: Settings, tmp_path: Path
) -> None:
    """The root copied elsewhere (its demo mirror inside it, as the settings file records) and
    ``datasets/raw`` rematerialized there for one partition: the other splits' shards stay."""
    moved = tmp_path / "moved" / "storage"
    shutil.copytree(copied_demo_storage.storage_root, moved, symlinks=True)
    shutil.rmtree(copied_demo_storage.storage_root)
    settings = Settings.load(storage_root=moved).model_copy(update={"device": "cpu"})
    raw = Layout(moved).dataset("codecontests").raw
    before = read_provenance(raw)
    assert before is not None and len({r.path.split("-")[0] for r in before.files}) == 3

    assert _materialize(settings, [RAW], "codecontests.valid").success

    after = read_provenance(raw)
    assert after is not None and [r.path for r in after.files] == [r.path for r in before.files]
    assert all((raw / r.path).is_file() for r in before.files)
    assert _failed_checks(settings, "codecontests.train") == {}


@pytest.mark.parametrize("limit", [5])
def test_a_token_limit_that_keeps_nothing_fails_naming_the_setting(
    copied_demo_storage: Settings, limit: int
) -> None:
    """``WMTP_MAX_TOKENS=5`` dropped every record and the run succeeded with an empty split.
    Now it fails in one line naming the variable and what was kept, and publishes no stats (a
    run retracts the previous version first, so no split looks complete; a rerun recovers)."""
    settings = copied_demo_storage.model_copy(update={"max_tokens": limit})
    dirs = Layout(settings.storage_root).dataset("mbpp")
    result = _materialize(settings, [PROCESSED], "mbpp.test")
    assert not result.success
    message = _step_failure(result)
    assert f"WMTP_MAX_TOKENS={limit}" in message and "kept 0 of" in message
    assert "\n" not in message.strip()
    assert not dirs.stats_file("test").exists()
    assert _materialize(copied_demo_storage, [PROCESSED], "mbpp.test").success


def test_an_unfetched_shard_beside_the_fetched_ones_fails_raw_and_stops_processing(
    copied_demo_storage: Settings,
) -> None:
    raw = Layout(copied_demo_storage.storage_root).dataset("mbpp").raw
    stray = raw / "full" / "test-00001-of-00002.parquet"  # matches the split's pattern
    shutil.copyfile(raw / "full" / "train-00000-of-00001.parquet", stray)

    failed = _failed_checks(copied_demo_storage, "mbpp.test")
    assert set(failed) == {"datasets/raw:raw_matches_source"}
    assert failed["datasets/raw:raw_matches_source"].startswith(f"{stray}: in raw/ but not listed")

    result = _materialize(copied_demo_storage, [PROCESSED], "mbpp.test")
    assert not result.success
    message = _step_failure(result)
    assert message.startswith(f"{stray}: in raw/ but not listed") and "datasets/raw" in message


def test_rot_in_raw_stops_the_rebuild_and_a_refetch_leaves_verify_honest(
    copied_demo_storage: Settings,
) -> None:
    """Rot in a shard, a rebuild of the derived files, a refetch of the raw: the rebuild used to
    succeed over the rotten bytes and the refetch then made every record agree."""
    dirs = Layout(copied_demo_storage.storage_root).dataset("mbpp")
    shard = dirs.raw / "full" / "test-00000-of-00001.parquet"
    jsonl = dirs.jsonl("test").read_bytes()
    data = bytearray(shard.read_bytes())
    data[len(data) // 2] ^= 0x01
    shard.write_bytes(data)

    rebuilt = _materialize(copied_demo_storage, [PROCESSED], "mbpp.test")
    assert not rebuilt.success
    message = _step_failure(rebuilt)
    assert message.startswith(f"{shard}: SHA256 ") and "SOURCE.json" in message
    assert _materialize(copied_demo_storage, [RAW], "mbpp.test").success  # the refetch

    failed = _failed_checks(copied_demo_storage, "mbpp.test")
    assert not dirs.jsonl("test").exists() or dirs.jsonl("test").read_bytes() == jsonl
    assert all("datasets/raw" not in check for check in failed)  # raw is whole again
    assert _materialize(copied_demo_storage, [PROCESSED, STATS], "mbpp.test").success
    assert dirs.jsonl("test").read_bytes() == jsonl
    assert _failed_checks(copied_demo_storage, "mbpp.test") == {}
