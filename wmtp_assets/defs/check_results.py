"""Turn a core ``CheckOutcome`` into a Dagster ``AssetCheckResult`` a person can read."""

from __future__ import annotations

import json

import dagster as dg

from wmtp_assets.validate.outcome import CheckOutcome


def to_check_result(outcome: CheckOutcome) -> dg.AssetCheckResult:
    metadata: dict[str, dg.MetadataValue] = {"summary": dg.MetadataValue.text(outcome.summary)}
    for key, value in outcome.details.items():
        if isinstance(value, bool | int) and not isinstance(value, bool):
            metadata[key] = dg.MetadataValue.int(value)
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
