"""Which runs keep every step in its own process: those with a conversion or a GPU check."""

from __future__ import annotations

import dagster as dg
import pytest

from wmtp_assets.definitions import defs
from wmtp_assets.defs.executor import needs_isolation


def _job_for(*keys: dg.AssetKey | dg.AssetCheckKey) -> dg.JobDefinition:
    job = defs.resolve_implicit_global_asset_job_def()
    assets = {k for k in keys if isinstance(k, dg.AssetKey)}
    checks = {k for k in keys if isinstance(k, dg.AssetCheckKey)}
    return job.get_subset(asset_selection=assets, asset_check_selection=checks)


@pytest.mark.parametrize(
    ("selection", "isolated"),
    [
        # a dataset partition's steps, checks included: in the run's process
        ([dg.AssetKey(["datasets", "raw"]), dg.AssetKey(["datasets", "stats"])], False),
        ([dg.AssetCheckKey(dg.AssetKey(["datasets", "stats"]), "counts_match_stats")], False),
        # a conversion, or any run with a forward-pass check (GPU): a process per step
        ([dg.AssetKey(["models", "meta_llama_mtp", "safetensors"])], True),
        ([dg.AssetCheckKey(dg.AssetKey(["models", "micro_mtp"]), "forward_pass")], True),
        ([dg.AssetCheckKey(dg.AssetKey(["models", "micro_mtp"]), "sha256_matches")], False),
    ],
)
def test_isolation_follows_the_steps_of_the_run(
    selection: list[dg.AssetKey | dg.AssetCheckKey], isolated: bool
) -> None:
    assert needs_isolation(_job_for(*selection)) is isolated


def test_the_whole_graph_is_isolated() -> None:
    assert needs_isolation(defs.resolve_implicit_global_asset_job_def())
