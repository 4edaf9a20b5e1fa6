"""A failed step tells its cause on the run page; a successful one, the settings it ran with.

Runs the real assets through Dagster's ``materialize`` with the settings coming from where a
user sets them (environment, run config), and reads what Dagster recorded.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

import dagster as dg
import pytest

from wmtp_assets.defs.models import meta_llama_mtp_raw, meta_llama_mtp_tokenizer
from wmtp_assets.defs.resources import WmtpResource
from wmtp_assets.demo.mirror import DemoMirror
from wmtp_assets.settings import Settings

WRONG_SHA256 = "0" * 64
ASSETS = [meta_llama_mtp_raw, meta_llama_mtp_tokenizer]


def _run(settings: Settings, run_config: dict | None = None) -> dg.ExecuteInProcessResult:
    return dg.materialize(
        ASSETS,
        resources={"wmtp": WmtpResource.from_settings(settings)},
        instance=dg.DagsterInstance.ephemeral(),
        run_config=run_config,
        raise_on_error=False,
    )


def _override(settings: Settings, **values: object) -> dict:
    """Run config as the launchpad sends it: every field of the resource, some of them changed."""
    config = WmtpResource.from_settings(settings).model_dump(exclude_none=True)
    return {"resources": {"wmtp": {"config": {**config, **values}}}}


def _failure(result: dg.ExecuteInProcessResult) -> dg.DagsterEvent:
    assert not result.success
    (event,) = result.get_step_failure_events()
    return event


def _env_settings(
    monkeypatch: pytest.MonkeyPatch, mirror: Path, tokenizer_sha256: str, root: Path
) -> Settings:
    monkeypatch.setenv("WMTP_MIRROR", str(mirror))
    monkeypatch.setenv("WMTP_TOKENIZER_SHA256", tokenizer_sha256)
    monkeypatch.setenv("WMTP_STORAGE_ROOT", str(root))
    monkeypatch.delenv("WMTP_MAX_TOKENS", raising=False)
    monkeypatch.delenv("WMTP_DEVICE", raising=False)
    return Settings.load()


def _tokenizer_file(mirror: DemoMirror) -> Path:
    (path,) = mirror.root.glob("models/facebook/multi-token-prediction/tokenizer.model")
    return path


def test_wrong_tokenizer_sha256_in_the_environment_fails_with_its_cause(
    demo_mirror: DemoMirror, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    settings = _env_settings(monkeypatch, demo_mirror.root, WRONG_SHA256, tmp_path / "storage")
    event = _failure(_run(settings))
    assert event.step_key == "models__meta_llama_mtp__tokenizer"
    failure = event.step_failure_data.user_failure_data
    assert failure is not None
    description = failure.description or ""
    assert "\n" not in description
    assert "WMTP_TOKENIZER_SHA256" in description
    assert "env WMTP_TOKENIZER_SHA256" in description  # where the wrong value came from
    found = hashlib.sha256(_tokenizer_file(demo_mirror).read_bytes()).hexdigest()
    metadata = {key: value.value for key, value in failure.metadata.items()}
    assert metadata["expected"] == WRONG_SHA256
    assert metadata["found"] == found
    assert Path(str(metadata["file"])).name == "tokenizer.model"
    assert metadata["error_type"] == "TokenizerMismatchError"


def test_a_launchpad_override_is_named_as_the_origin(
    demo_mirror: DemoMirror, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    settings = _env_settings(
        monkeypatch, demo_mirror.root, demo_mirror.tokenizer_sha256, tmp_path / "storage"
    )
    result = _run(settings, _override(settings, tokenizer_sha256=WRONG_SHA256))
    failure = _failure(result).step_failure_data.user_failure_data
    assert failure is not None
    assert "WMTP_TOKENIZER_SHA256 comes from run config" in (failure.description or "")


def test_a_missing_upstream_file_names_the_mirror_and_chains_nothing(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    empty = tmp_path / "empty_mirror"
    empty.mkdir()
    settings = _env_settings(monkeypatch, empty, WRONG_SHA256, tmp_path / "storage")
    event = _failure(_run(settings))
    error = event.step_failure_data.error
    assert error is not None and error.cause is None and error.context is None
    failure = event.step_failure_data.user_failure_data
    assert failure is not None
    assert f"WMTP_MIRROR={empty} (env WMTP_MIRROR)" in (failure.description or "")
    assert failure.metadata["error_type"].value == "SourceFileMissingError"


def test_a_materialization_records_each_setting_with_its_origin(
    demo_mirror: DemoMirror, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    root = tmp_path / "storage"
    settings = _env_settings(monkeypatch, demo_mirror.root, demo_mirror.tokenizer_sha256, root)
    result = _run(settings, _override(settings, max_tokens=99))
    assert result.success
    (materialization, _) = result.get_asset_materialization_events()
    table = str(materialization.materialization.metadata["settings"].value)
    assert f"| `WMTP_STORAGE_ROOT` | env WMTP_STORAGE_ROOT | `{root}` |" in table
    assert f"| `WMTP_MIRROR` | env WMTP_MIRROR | `{demo_mirror.root}` |" in table
    assert "| `WMTP_MAX_TOKENS` | run config | `99` |" in table
    assert "| `WMTP_DEVICE` | default | `auto` |" in table
