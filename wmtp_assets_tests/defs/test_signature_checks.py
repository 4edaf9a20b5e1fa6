"""``signature_valid`` under the revalidation path (the ``revalidate`` plan that the schedule
and ``wmtp-assets verify`` run): a private copy of the demo storage and its instance, every
scope re-signed with a test key kept outside the root, then one fault per row; the row's
checks fail, exactly, and the revalidation run fails."""

from __future__ import annotations

import shutil
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import dagster as dg
import pytest

from wmtp_assets.defs.revalidation import revalidation_plan
from wmtp_assets.files.layout import Layout
from wmtp_assets.files.signing import STATE_FILE_NAME, sign_and_record, sign_scope
from wmtp_assets.graph_runs import Revalidation, verify_everything
from wmtp_assets.settings import Settings
from wmtp_assets.validate.signatures import SIGNATURE_CHECK, recorded_scopes
from wmtp_assets.validate.signed_scopes import model_scope
from wmtp_assets_tests.defs.storage_faults import flipped_weights_byte
from wmtp_assets_tests.files.test_signing import write_key_pair
from wmtp_assets_tests.validate.test_signatures import stored_scopes

SEALED = "unchanged_since_materialization"


@dataclass(frozen=True)
class Keys:
    key: Path
    pub: Path
    state: Path
    folder: Path


def _sign(settings: Settings, keys: Keys, model: str | None = None) -> None:
    layout = Layout(settings.storage_root)
    scopes = [model_scope(layout, model)] if model else stored_scopes(layout)
    for scope in scopes:
        sign_and_record(scope, keys.key, keys.state, settings.storage_root)


def _revalidate(settings: Settings, models: list[str], partitions: list[str]) -> Revalidation:
    home = settings.storage_root / "dagster_home"
    with dg.DagsterInstance.from_config(str(home)) as instance:
        return verify_everything(settings, instance, models=models, partitions=partitions)


def _failed(result: Revalidation) -> dict[str, str]:
    return {f"{r.asset}:{r.check}": r.summary for r in result.rows if not r.passed}


def signature_removed(settings: Settings, keys: Keys) -> None:
    Layout(settings.storage_root).model("micro_ref").signature.unlink()


def weights_byte_flipped(settings: Settings, keys: Keys) -> None:
    flipped_weights_byte(settings.storage_root)  # row 1 of test_check_faults


def signed_by_another_key(settings: Settings, keys: Keys) -> None:
    other, _ = write_key_pair(keys.folder / "other")
    sign_scope(model_scope(Layout(settings.storage_root), "micro_mtp"), other)


def root_rolled_back(settings: Settings, keys: Keys) -> None:
    """An older copy of the whole root (instance included) restored over a newer signed one."""
    root = settings.storage_root
    backup = keys.folder / "backup"
    shutil.copytree(root, backup, symlinks=True)
    config = Layout(root).model("micro_mtp").configs / "config.json"
    config.write_text(config.read_text() + "\n")
    _sign(settings, keys, "micro_mtp")
    shutil.rmtree(root)
    shutil.copytree(backup, root, symlinks=True)


def partition_signature_removed(settings: Settings, keys: Keys) -> None:
    (Layout(settings.storage_root).dataset("mbpp").root / "signatures" / "test.sig").unlink()


@dataclass(frozen=True)
class Fault:
    corrupt: Callable[[Settings, Keys], None]
    models: list[str]
    partitions: list[str]
    fails: set[str]
    says: str


SIGNATURE_FAULTS = {
    "signature_removed": Fault(
        signature_removed,
        ["micro_ref"],
        [],
        {f"models/micro_ref:{SIGNATURE_CHECK}"},
        "models_v2/micro-ref: not signed",
    ),
    "weights_byte_flipped": Fault(
        weights_byte_flipped,
        ["micro_mtp"],
        [],
        {f"models/micro_mtp:{c}" for c in (SIGNATURE_CHECK, "sha256_matches", SEALED)},
        "models_v2/micro-mtp: stale signature, files changed after signing (changed or missing: "
        "safetensors/model.safetensors)",
    ),
    "signed_by_another_key": Fault(
        signed_by_another_key,
        ["micro_mtp"],
        [],
        {f"models/micro_mtp:{SIGNATURE_CHECK}"},
        "models_v2/micro-mtp: signature not valid for WMTP_VERIFY_KEY=",
    ),
    "root_rolled_back": Fault(
        root_rolled_back,
        ["micro_mtp"],
        [],
        {f"models/micro_mtp:{SIGNATURE_CHECK}"},
        "models_v2/micro-mtp: rolled back: its signature is valid but older than the newest",
    ),
    "partition_signature_removed": Fault(
        partition_signature_removed,
        [],
        ["mbpp.test"],
        {f"datasets/processed:{SIGNATURE_CHECK}"},
        "datasets_v2/mbpp/test: not signed",
    ),
}


@pytest.fixture
def keyed(copied_demo_storage: Settings, tmp_path: Path) -> tuple[Settings, Keys]:
    """The copy, every scope signed with a test key, and settings that verify with it."""
    key, pub = write_key_pair(tmp_path / "keys")
    keys = Keys(key, pub, tmp_path / "keys" / STATE_FILE_NAME, tmp_path / "keys")
    _sign(copied_demo_storage, keys)
    update = {"verify_key": pub, "signed_state": keys.state}
    return copied_demo_storage.model_copy(update=update), keys


@pytest.mark.parametrize("name", sorted(SIGNATURE_FAULTS))
def test_each_signature_fault_fails_the_revalidation(
    keyed: tuple[Settings, Keys], name: str
) -> None:
    settings, keys = keyed
    fault = SIGNATURE_FAULTS[name]
    fault.corrupt(settings, keys)
    result = _revalidate(settings, fault.models, fault.partitions)
    failed = _failed(result)
    assert set(failed) == fault.fails, "\n".join(f"{k}: {v}" for k, v in sorted(failed.items()))
    message = next(v for k, v in failed.items() if k.endswith(SIGNATURE_CHECK))
    assert fault.says in message and "\n" not in message, message
    assert result.failed_runs == (fault.partitions or ["models"])


def test_signed_untouched_storage_passes_and_the_check_ran(keyed: tuple[Settings, Keys]) -> None:
    settings, keys = keyed
    result = _revalidate(settings, ["micro_mtp"], ["mbpp.test"])
    assert _failed(result) == {}
    ran = {(r.asset, r.check): r.summary for r in result.rows if r.check == SIGNATURE_CHECK}
    assert set(ran) == {
        ("models/micro_mtp", SIGNATURE_CHECK),
        ("datasets/processed", SIGNATURE_CHECK),
    }
    assert ran[("models/micro_mtp", SIGNATURE_CHECK)].startswith(
        f"1 signature valid for {keys.pub} (models_v2/micro-mtp); newest signed state"
    )


def test_a_model_rolled_away_entirely_is_still_checked_and_fails(
    keyed: tuple[Settings, Keys],
) -> None:
    """A root restored from before the model existed: neither storage nor the (restored)
    instance knows it, the record does, so the plan checks it."""
    settings, _ = keyed
    shutil.rmtree(Layout(settings.storage_root).model("micro_ref").root)
    home = settings.storage_root / "dagster_home"
    with dg.DagsterInstance.from_config(str(home)) as instance:
        plan = revalidation_plan(
            Layout(settings.storage_root), dg.DagsterInstance.ephemeral(), ["micro_ref"], None, []
        )
        assert plan == []  # nothing stored, nothing materialized: without the record, unseen
        result = verify_everything(settings, instance, models=["micro_ref"], partitions=[])
    failed = _failed(result)
    assert failed[f"models/micro_ref:{SIGNATURE_CHECK}"].startswith(
        "models_v2/micro-ref: rolled back: signed "
    )
    assert failed[f"models/micro_ref:{SIGNATURE_CHECK}"].endswith("but absent")


def test_without_a_key_the_check_is_not_in_the_plan_nor_run(
    copied_demo_storage: Settings,
) -> None:
    """No green check that proved nothing: without WMTP_VERIFY_KEY the revalidation does not
    run signature_valid at all (verify says the proof is self-consistent only)."""
    assert recorded_scopes(copied_demo_storage) is None
    result = _revalidate(copied_demo_storage, ["micro_mtp"], [])
    assert result.rows and _failed(result) == {}
    assert SIGNATURE_CHECK not in {r.check for r in result.rows}
    with dg.DagsterInstance.ephemeral() as instance:
        plan = revalidation_plan(Layout(copied_demo_storage.storage_root), instance, None, None)
    assert plan and all(k.name != SIGNATURE_CHECK for run in plan for k in run.check_keys)
