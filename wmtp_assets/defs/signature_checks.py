"""``signature_valid`` as an asset check (body: ``wmtp_assets.validate.signatures``), and when
it runs.

It runs in revalidation runs (tag ``wmtp/revalidation=true``: the ``revalidate`` job, its
schedule and ``wmtp-assets verify``) where ``WMTP_VERIFY_KEY`` is set. Without a key it is not
run at all, neither passed nor failed, and the step logs that the proof is self-consistent only
(docs/reliability.md, section 5, says why: a green signature check that proved nothing would
be worse than none). After a materialization it is not run either: the signature was made
seconds earlier from the digests that run computed, and proving it means hashing the whole
folder again (40 GB for the Meta model), which the daily revalidation does anyway.
"""

from collections.abc import Callable

import dagster as dg

from wmtp_assets.data.partitions import Partition
from wmtp_assets.defs.check_runner import CheckInput, CheckSpec
from wmtp_assets.defs.resources import WmtpResource
from wmtp_assets.files.signing import SignedScope
from wmtp_assets.validate import signatures
from wmtp_assets.validate.outcome import CheckOutcome
from wmtp_assets.validate.signatures import SIGNATURE_CHECK
from wmtp_assets.validate.signed_scopes import model_scope, small_scope, split_scope

REVALIDATION_TAG = "wmtp/revalidation"


def _spec(
    asset: dg.AssetKey, scopes: Callable[[CheckInput], list[SignedScope]], partitioned: bool
) -> CheckSpec:
    def body(given: CheckInput) -> CheckOutcome:
        settings = given.wmtp.settings
        key = settings.verify_key
        if key is None:  # never selected so (``skipped_signature_checks``); said, not passed
            return CheckOutcome.fail(signatures.SELF_CONSISTENT_ONLY, severity="warn")
        return signatures.signature_valid(
            settings.storage_root, scopes(given), key, settings.signed_state_for(key)
        )

    return CheckSpec(asset, SIGNATURE_CHECK, body, signatures, partitioned=partitioned)


def model_signature_spec(asset: dg.AssetKey, model: str) -> CheckSpec:
    """``signature_valid`` over ``model``'s folder, on the asset that publishes the model."""
    return _spec(asset, lambda given: [model_scope(given.wmtp.layout, model)], False)


def partition_signature_spec(asset: dg.AssetKey) -> CheckSpec:
    """``signature_valid`` over a partition's split and small subset."""

    def scopes(given: CheckInput) -> list[SignedScope]:
        part: Partition = given.part
        return [split_scope(given.wmtp.layout, part), small_scope(given.wmtp.layout, part)]

    return _spec(asset, scopes, True)


def skipped_signature_checks(
    context: dg.AssetCheckExecutionContext, wmtp: WmtpResource, selected: list[dg.AssetCheckKey]
) -> list[dg.AssetCheckKey]:
    """The selected ``signature_valid`` checks this run does not run, each logged with why."""
    chosen = [key for key in selected if key.name == SIGNATURE_CHECK]
    if not chosen:
        return []
    if wmtp.settings.verify_key is None:
        why = signatures.SELF_CONSISTENT_ONLY
    elif context.run.tags.get(REVALIDATION_TAG) != "true":
        why = (
            "signature_valid: not run after a materialization (the signature was just made from "
            "this run's digests); the revalidation proves it"
        )
    else:
        return []
    for key in chosen:
        context.log.warning(f"{key.to_user_string()}: {why}")
    return chosen
