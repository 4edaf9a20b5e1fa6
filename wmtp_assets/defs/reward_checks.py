"""The reward model's asset checks (Starling-RM-7B-alpha): the checks every model gets
(``checks._model_specs``), with the reward model's own bodies where a check reads its config or
runs its forward (``validate.reward_model_checks``), and the layout check of its raw file."""

from collections.abc import Sequence
from dataclasses import replace
from types import ModuleType

import dagster as dg

from wmtp_assets.defs.check_runner import Body, CheckInput, CheckSpec
from wmtp_assets.files.layout import ModelDirs
from wmtp_assets.validate import model_checks as mc
from wmtp_assets.validate import reward_model_checks as rc
from wmtp_assets.validate.outcome import CheckOutcome


def reward_model_specs(specs: Sequence[CheckSpec], model: str) -> list[CheckSpec]:
    """``specs`` (one model's, from ``_model_specs``) with the reward model's bodies."""

    def dirs(given: CheckInput) -> ModelDirs:
        return given.wmtp.layout.model(model)

    def tokenizer_shared(given: CheckInput) -> CheckOutcome:
        folders = [given.wmtp.layout.model("meta_llama_mtp").tokenizer, dirs(given).tokenizer]
        vocab = {model: rc.stored_vocab_size(dirs(given))}
        return mc.tokenizer_sha256_shared(folders, given.wmtp.settings.tokenizer_sha256, vocab)

    own: dict[str, tuple[Body, ModuleType]] = {
        "keys_and_shapes_match_config": (lambda c: rc.keys_and_shapes_match_config(dirs(c)), rc),
        "configs_agree": (lambda c: rc.configs_agree(dirs(c)), rc),
        "tokenizer_sha256_shared": (tokenizer_shared, mc),
        "forward_pass": (lambda c: rc.forward_pass(dirs(c), c.wmtp.device), rc),
    }
    return [
        replace(spec, body=own[spec.name][0], source=own[spec.name][1])
        if spec.name in own
        else spec
        for spec in specs
    ]


def reward_raw_spec(asset: dg.AssetKey, model: str) -> CheckSpec:
    """``raw_keys_match_config`` on the reward model's raw asset (blocking: the conversion
    refuses any other layout)."""

    def body(given: CheckInput) -> CheckOutcome:
        return rc.raw_keys_match_config(given.wmtp.layout.model(model).raw)

    return CheckSpec(asset, "raw_keys_match_config", body, rc, True)
