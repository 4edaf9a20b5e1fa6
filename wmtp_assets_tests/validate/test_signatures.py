"""``signature_valid`` (what the revalidation and verify run) over a copy of the demo storage,
re-signed with a test key kept outside the root: every fault names its model folder or
partition."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from wmtp_assets.data.partitions import PARTITION_KEYS, Partition
from wmtp_assets.files.layout import MODEL_FOLDERS, Layout
from wmtp_assets.files.signing import STATE_FILE_NAME, SignedScope, sign_and_record, sign_scope
from wmtp_assets.settings import Settings
from wmtp_assets.validate.signatures import signature_valid
from wmtp_assets.validate.signed_scopes import (
    is_stored,
    model_scope,
    scope_owner,
    small_scope,
    split_scope,
)
from wmtp_assets_tests.files.test_signing import write_key_pair


def owned_scopes(layout: Layout) -> list[list[SignedScope]]:
    """What each ``signature_valid`` check covers: a model's folder, a partition's two."""
    models = [[model_scope(layout, m)] for m in MODEL_FOLDERS]
    parts = [Partition.parse(k) for k in PARTITION_KEYS]
    return [*models, *([split_scope(layout, p), small_scope(layout, p)] for p in parts)]


def stored_scopes(layout: Layout) -> list[SignedScope]:
    return [s for owned in owned_scopes(layout) for s in owned if is_stored(s)]


class Signed:
    def __init__(self, settings: Settings, keys: Path) -> None:
        self.layout = Layout(settings.storage_root)
        self.key, self.pub = write_key_pair(keys)
        self.state = keys / STATE_FILE_NAME

    def sign(self, model: str | None = None) -> None:
        """What materialization does: sign, then move the record."""
        scopes = [model_scope(self.layout, model)] if model else stored_scopes(self.layout)
        for scope in scopes:
            sign_and_record(scope, self.key, self.state, self.layout.root)

    def failures(self) -> list[str]:
        """Every check's failures, as the revalidation of everything reports them."""
        failures: list[str] = []
        for scopes in owned_scopes(self.layout):
            outcome = signature_valid(self.layout.root, scopes, self.pub, self.state)
            failures += outcome.details.get("failures", [])
            assert outcome.passed == (not outcome.details.get("failures"))
        return failures


@pytest.fixture
def signed(copied_demo_storage: Settings, tmp_path: Path) -> Signed:
    signed = Signed(copied_demo_storage, tmp_path / "keys")
    signed.sign()
    return signed


def flip_byte(path: Path, offset: int = 100) -> None:
    data = bytearray(path.read_bytes())
    data[offset] ^= 1
    path.write_bytes(bytes(data))


def test_every_model_partition_and_small_subset_is_signed_and_passes(signed: Signed) -> None:
    names = {s.name for s in stored_scopes(signed.layout)}
    assert {"models_v2/micro-mtp", "models_v2/meta-llama-mtp"} <= names
    assert {"datasets_v2/mbpp/test", "datasets_local_small/mbpp_small/test_small"} <= names
    assert len(names) == 5 + 7 + 7  # models (Starling included), partitions, small subsets
    assert signed.failures() == []
    assert {scope_owner(signed.layout, n) for n in names} == {
        *((m, None) for m in MODEL_FOLDERS),
        *((None, k) for k in PARTITION_KEYS),
    }


def test_a_flipped_weight_byte_fails_naming_the_folder_and_file(signed: Signed) -> None:
    flip_byte(signed.layout.model("micro_mtp").weights)
    (failure,) = signed.failures()
    assert failure.startswith("models_v2/micro-mtp: stale signature")
    assert "safetensors/model.safetensors" in failure


def test_a_removed_signature_fails(signed: Signed) -> None:
    signed.layout.model("micro_ref").signature.unlink()
    assert signed.failures() == [
        f"models_v2/micro-ref: not signed ({signed.layout.model('micro_ref').signature} is missing)"
    ]


def test_a_signature_by_another_key_fails(signed: Signed, tmp_path: Path) -> None:
    other_key, _ = write_key_pair(tmp_path / "other")
    sign_scope(model_scope(signed.layout, "micro_mtp"), other_key)
    (failure,) = signed.failures()
    assert failure.startswith(
        f"models_v2/micro-mtp: signature not valid for WMTP_VERIFY_KEY={signed.pub}"
    )


def test_a_changed_or_added_partition_file_fails_naming_the_partition(signed: Signed) -> None:
    dirs = signed.layout.dataset("mbpp")
    flip_byte(dirs.jsonl("test"), 10)
    (failure,) = signed.failures()
    assert failure.startswith("datasets_v2/mbpp/test: stale signature")
    assert "processed/test.jsonl" in failure
    flip_byte(dirs.jsonl("test"), 10)
    dirs.tests_json("validation").parent.mkdir()
    dirs.tests_json("validation").write_text("{}")
    assert signed.failures() == [
        "datasets_v2/mbpp/validation: stale signature, not covering tests/validation_tests.json"
    ]


def test_an_older_root_restored_is_reported_as_a_rollback(signed: Signed, tmp_path: Path) -> None:
    root = signed.layout.root
    backup = tmp_path / "backup"
    shutil.copytree(root, backup, symlinks=True)
    config = signed.layout.model("micro_mtp").configs / "config.json"
    config.write_text(config.read_text() + "\n")
    signed.sign("micro_mtp")
    assert signed.failures() == []
    shutil.rmtree(root)
    shutil.copytree(backup, root, symlinks=True)
    shutil.rmtree(signed.layout.dataset("humaneval").small_root)
    failures = signed.failures()
    assert len(failures) == 2
    assert failures[0].startswith(
        "models_v2/micro-mtp: rolled back: its signature is valid but older"
    )
    assert failures[1].startswith("datasets_local_small/humaneval_small/test_small: rolled back")
    assert failures[1].endswith("but absent")


def test_without_a_signed_state_record_the_rollback_is_said_unchecked(signed: Signed) -> None:
    signed.state.unlink()
    outcome = signature_valid(
        signed.layout.root, [model_scope(signed.layout, "micro_mtp")], signed.pub, signed.state
    )
    assert outcome.passed
    assert f"rollback not checked: no signed-state record at {signed.state}" in outcome.summary
