"""Turn a core ``CheckOutcome`` into a Dagster ``AssetCheckResult`` a person can read."""

from __future__ import annotations

import json
from collections.abc import Iterator

import dagster as dg

from wmtp_assets.validate.outcome import CheckOutcome


def to_check_result(outcome: CheckOutcome) -> dg.AssetCheckResult:
    metadata: dict[str, dg.MetadataValue] = {"summary": dg.MetadataValue.text(outcome.summary)}
    for key, value in outcome.details.items():
        if isinstance(value, bool | int) and not isinstance(value, bool):
            metadata[key] = dg.MetadataValue.int(value)
        elif isinstance(value, float):
            metadata[key] = dg.MetadataValue.float(value)
        elif isinstance(value, str):
            metadata[key] = dg.MetadataValue.text(value)
        else:
            metadata[key] = dg.MetadataValue.json(json.loads(json.dumps(value, default=str)))
    return dg.AssetCheckResult(
        passed=outcome.passed,
        severity=dg.AssetCheckSeverity.ERROR,
        description=outcome.summary,
        metadata=metadata,
    )


REVALIDATION_TAG = "wmtp/revalidation"


def report_outcome(
    context: dg.AssetCheckExecutionContext, name: str, outcome: CheckOutcome
) -> Iterator[dg.AssetCheckResult]:
    """Yield the check result; in a revalidation run, then fail the step on a failed check.

    A failed asset check does not fail a Dagster run by itself; revalidation runs (tagged
    ``wmtp/revalidation``) must, so that cron, the UI's run list and exit codes all show it.
    """
    yield to_check_result(outcome)
    if not outcome.passed and context.run.tags.get(REVALIDATION_TAG) == "true":
        raise dg.Failure(description=f"check {name} failed: {outcome.summary}")
