"""Asset checks of the model artifacts; thin wrappers over ``wmtp_assets.validate``.

Blocking (downstream work would be wrong): ``sha256_matches``, ``dtype_is_float16``,
``keys_and_shapes_match_config``, ``tokenizer_sha256_shared``. The others report.
"""

from collections.abc import Callable, Iterator

import dagster as dg

from wmtp_assets.defs.check_results import report_outcome
from wmtp_assets.defs.k8s import k8s_op_tags
from wmtp_assets.defs.resources import WmtpResource
from wmtp_assets.validate import model_checks as mc
from wmtp_assets.validate import trainer_view as tv
from wmtp_assets.validate.outcome import CheckOutcome, guarded

BLOCKING = {
    "sha256_matches",
    "dtype_is_float16",
    "keys_and_shapes_match_config",
    "tokenizer_sha256_shared",
}


def _tokenizer_shared(wmtp: WmtpResource, model: str, fmt: mc.ModelFormat) -> CheckOutcome:
    layout = wmtp.layout
    dirs = layout.model(model)
    folders = [layout.model("meta_llama_mtp").tokenizer, dirs.tokenizer]
    return mc.tokenizer_sha256_shared(
        folders, wmtp.settings.tokenizer_sha256, {model: mc.stored_vocab_size(dirs, fmt)}
    )


def model_checks(
    key: dg.AssetKey, model: str, fmt: mc.ModelFormat, with_size: bool = False
) -> list[dg.AssetChecksDefinition]:
    """The standard set of checks for one model asset."""
    bodies: dict[str, Callable[[WmtpResource], CheckOutcome]] = {
        "sha256_matches": lambda w: mc.sha256_matches(w.layout.model(model)),
        "dtype_is_float16": lambda w: mc.dtype_is_float16(w.layout.model(model)),
        "values_are_finite": lambda w: mc.values_are_finite(w.layout.model(model)),
        "keys_and_shapes_match_config": lambda w: mc.keys_and_shapes_match_config(
            w.layout.model(model), fmt
        ),
        "configs_agree": lambda w: mc.configs_agree(w.layout.model(model), fmt),
        "tokenizer_sha256_shared": lambda w: _tokenizer_shared(w, model, fmt),
        "forward_pass": lambda w: mc.forward_pass(w.layout.model(model), fmt, w.device),
        "trainer_path_of_model": lambda w: tv.trainer_path_of_model(w.layout, model),
    }
    if with_size:
        bodies["size_matches_config"] = lambda w: mc.size_matches_config(w.layout.model(model), fmt)
    return [_make_check(key, name, body) for name, body in bodies.items()]


def _make_check(
    key: dg.AssetKey, name: str, body: Callable[[WmtpResource], CheckOutcome]
) -> dg.AssetChecksDefinition:
    @dg.asset_check(
        asset=key,
        name=name,
        blocking=name in BLOCKING,
        pool="gpu" if name == "forward_pass" else None,
        op_tags=k8s_op_tags("gpu_check") if name == "forward_pass" else None,
        description=((getattr(mc, name, None) or getattr(tv, name)).__doc__ or "").strip(),
    )
    def _check(
        context: dg.AssetCheckExecutionContext, wmtp: WmtpResource
    ) -> Iterator[dg.AssetCheckResult]:
        yield from report_outcome(context, name, guarded(lambda: body(wmtp)))

    return _check
