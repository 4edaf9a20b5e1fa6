"""The checks on a raw folder: ``upstream_files_agree`` (``raw_matches_source`` is proven in the
fault matrix, ``defs/test_check_faults.py``)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from wmtp_assets.validate.raw_checks import upstream_files_agree
from wmtp_assets_tests.models.checkpoint_fixtures import META_PARAMS, make_meta_raw, make_tokenizer


@pytest.fixture(scope="module")
def meta_raw(tmp_path_factory: pytest.TempPathFactory) -> Path:
    tokenizer = make_tokenizer(tmp_path_factory.mktemp("tok") / "tokenizer.model")
    return make_meta_raw(tmp_path_factory.mktemp("raw"), tokenizer)


def test_consistent_upstream_files_pass(meta_raw: Path) -> None:
    outcome = upstream_files_agree(meta_raw, "meta")
    assert outcome.passed, outcome.summary


def test_rope_theta_contradicting_rope_freqs_fails_naming_both(meta_raw: Path) -> None:
    """Issue 18 (3): params.json says 500000, the checkpoint's own rope.freqs say 10000."""
    params = meta_raw / "7B_1T_4" / "params.json"
    original = params.read_bytes()
    try:
        params.write_text(json.dumps({**META_PARAMS, "rope_theta": 500000.0}))
        outcome = upstream_files_agree(meta_raw, "meta")
    finally:
        params.write_bytes(original)
    assert not outcome.passed
    assert outcome.summary.startswith(f"{params}: rope_theta is 500000.0 but ")
    assert (outcome.details["field"], outcome.details["stated"]) == ("rope_theta", 500000.0)
    assert outcome.details["implied"] == pytest.approx(10000.0, rel=1e-3)
