"""The reward model gets every check a converted model gets, with its own bodies where they
read its config or run its forward, and the layout check on its raw file."""

from __future__ import annotations

from wmtp_assets.defs.checks import MODEL_CHECK_SPECS
from wmtp_assets.defs.models import SHEARED_SAFETENSORS, STARLING_RAW, STARLING_SAFETENSORS
from wmtp_assets.validate import model_checks, reward_model_checks


def test_the_reward_model_gets_every_model_check_with_its_own_bodies() -> None:
    starling = [s for s in MODEL_CHECK_SPECS if s.asset == STARLING_SAFETENSORS]
    sheared = [s for s in MODEL_CHECK_SPECS if s.asset == SHEARED_SAFETENSORS]
    assert [s.name for s in starling] == [s.name for s in sheared]
    own = {s.name for s in starling if s.source is reward_model_checks}
    assert own == {"keys_and_shapes_match_config", "configs_agree", "forward_pass"}
    for spec in starling:  # each described by the function it runs
        assert getattr(spec.source, spec.name).__doc__
    shared = next(s for s in starling if s.name == "tokenizer_sha256_shared")
    assert shared.source is model_checks and shared.blocking
    assert next(s for s in starling if s.name == "forward_pass").gpu


def test_the_raw_file_gets_the_layout_check() -> None:
    raw = {s.name: s.blocking for s in MODEL_CHECK_SPECS if s.asset == STARLING_RAW}
    assert raw == {
        "raw_matches_source": True,
        "raw_keys_match_config": True,
        "unchanged_since_materialization": True,
    }
