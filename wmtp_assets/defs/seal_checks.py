"""The seal check's side of the Dagster instance: what the latest materialization of an asset
recorded (``sealed_files``), for ``unchanged_since_materialization``, and the SHA256s the writers
of this very run computed, so the checks right after a materialization do not hash again.

Apart from ``defs.checks`` because it is the one part of the checks that reads the event log.
"""

from collections.abc import Iterable, Sequence
from datetime import UTC, datetime
from pathlib import Path

import dagster as dg

from wmtp_assets.data.partitions import Partition
from wmtp_assets.defs.check_runner import CheckInput, CheckSpec
from wmtp_assets.defs.metadata import SEALED_FILES, sealed_digests
from wmtp_assets.validate import sealed
from wmtp_assets.validate.outcome import CheckOutcome


def _latest(
    instance: dg.DagsterInstance, asset: dg.AssetKey, partition: Partition | None
) -> dg.EventLogRecord | None:
    records = instance.fetch_materializations(
        dg.AssetRecordsFilter(
            asset_key=asset, asset_partitions=[partition.key] if partition else None
        ),
        limit=1,
    ).records
    return records[0] if records else None


def same_run_hashes(
    context: dg.AssetCheckExecutionContext,
    assets: Iterable[dg.AssetKey],
    partition: Partition | None,
    root: Path,
) -> dict[Path, tuple[str, Sequence[int]]]:
    """The SHA256s the writers of ``assets`` computed in this very run, with each file's
    identity then: a check right after the materialization does not hash 13 GB again that the
    writer hashed seconds ago (``shared_hashes`` takes them only for unchanged files).
    Revalidation runs materialize nothing, so they hash everything."""
    known: dict[Path, tuple[str, Sequence[int]]] = {}
    for asset in assets:
        record = _latest(context.instance, asset, partition)
        materialization = record.asset_materialization if record else None
        if record is None or materialization is None or record.run_id != context.run.run_id:
            continue
        known |= sealed_digests(root, materialization.metadata)
    return known


def unrecorded_run(
    instance: dg.DagsterInstance,
    asset: dg.AssetKey,
    partition: Partition | None,
    after: dg.EventLogRecord,
) -> str:
    """The later run that planned to materialize ``asset`` (``partition``) after ``after`` but
    recorded no materialization, with its status; "" when there is none. Such a run may have
    published files and then failed to record their seal (its instance database full)."""
    planned = instance.get_latest_planned_materialization_info(
        asset, partition.key if partition else None
    )
    if planned is None or planned.storage_id <= after.storage_id or planned.run_id == after.run_id:
        return ""
    run = instance.get_run_by_id(planned.run_id)
    status = run.status.value if run else "unknown status"
    return (
        f"run {planned.run_id} ({status}) set out to materialize {asset.to_user_string()} "
        "after that seal and recorded none (was its instance database full?): rematerialize it"
    )


def latest_seal(
    instance: dg.DagsterInstance, asset: dg.AssetKey, partition: Partition | None
) -> tuple[sealed.Seal | None, str]:
    """The seal the latest materialization of ``asset`` (and ``partition``) recorded, or None
    and why there is none."""
    where = asset.to_user_string() + (f" partition {partition.key}" if partition else "")
    record = _latest(instance, asset, partition)
    if record is None:
        home = (
            "an ephemeral instance (DAGSTER_HOME unset)"
            if instance.is_ephemeral
            else f"the instance at {instance.root_directory}"
        )
        return None, f"{where} has no materialization recorded in {home}"
    at = datetime.fromtimestamp(record.timestamp, UTC).isoformat(timespec="seconds")
    materialization = record.asset_materialization
    value = materialization.metadata.get(SEALED_FILES) if materialization else None
    if value is None or not isinstance(value.value, dict):
        return None, (
            f"the materialization of {where} by run {record.run_id} at {at} recorded no "
            f"{SEALED_FILES} (made by older code; rematerialize it)"
        )
    return sealed.Seal(run_id=record.run_id, recorded_at=at, files=value.value), ""


def unchanged(given: CheckInput) -> CheckOutcome:
    seal, reason = latest_seal(given.instance, given.asset, given.partition)
    record = _latest(given.instance, given.asset, given.partition) if seal else None
    since = unrecorded_run(given.instance, given.asset, given.partition, record) if record else ""
    return sealed.unchanged_since_materialization(given.wmtp.layout.root, seal, reason, since)


SEALED_CHECK = "unchanged_since_materialization"
"""The check that re-hashes every file a materialization published (its ``files`` metadata)."""


def sealed_spec(asset: dg.AssetKey, partitioned: bool = False) -> CheckSpec:
    """``unchanged_since_materialization`` on ``asset`` (blocking: a later step must not build
    on bytes nobody materialized)."""
    return CheckSpec(asset, SEALED_CHECK, unchanged, sealed, True, partitioned=partitioned)
