"""Assets that fetch and convert the two real checkpoints to float16 safetensors.

A conversion is skipped, and the artifact reported current, when its stored ``metadata.json``
records the same raw-file SHA256s and the same ``code_version`` (decided in
``wmtp_assets.models.fp16_conversion``); Dagster shows the same through the assets'
``code_version`` and data versions. A forced rewrite produces identical bytes.
"""

import dagster as dg

from wmtp_assets.defs.k8s import k8s_op_tags
from wmtp_assets.defs.metadata import files_table
from wmtp_assets.defs.model_assets import GROUP, META_RAW, TOKENIZER
from wmtp_assets.defs.model_checks import model_checks
from wmtp_assets.defs.raw_fetch import fetch_raw
from wmtp_assets.defs.resources import WmtpResource
from wmtp_assets.files.layout import ModelDirs
from wmtp_assets.files.trainer_view import link_model
from wmtp_assets.models.convert_hf_llama import convert_hf_llama
from wmtp_assets.models.convert_meta import convert_meta_mtp
from wmtp_assets.models.fp16_conversion import WEIGHTS, Float16Outcome, raw_provenance
from wmtp_assets.models.tokenizer_files import tokenizer_info
from wmtp_assets.models.upstream import SHEARED_LLAMA

CONVERSION_CODE_VERSION = "fp16-stream-v1"

META_SAFETENSORS = dg.AssetKey(["models", "meta_llama_mtp", "safetensors"])
SHEARED_RAW = dg.AssetKey(["models", "ref_sheared_llama_2_7b", "raw"])
SHEARED_SAFETENSORS = dg.AssetKey(["models", "ref_sheared_llama_2_7b", "safetensors"])


def _materialize_result(dirs: ModelDirs, outcome: Float16Outcome) -> dg.MaterializeResult:
    metadata = outcome.metadata
    extra: dict[str, dg.MetadataValue] = {}
    if outcome.report is not None:
        report = outcome.report
        extra = {
            "seconds": dg.MetadataValue.float(report.seconds),
            "write_rate_MB_s": dg.MetadataValue.float(report.bytes_per_s / 1e6),
            "flushed_to_zero": dg.MetadataValue.int(report.flushed_to_zero),
            "dropped_keys": dg.MetadataValue.json(report.dropped_keys),
        }
    weights_sha = metadata.files[WEIGHTS]
    return dg.MaterializeResult(
        metadata={
            "status": dg.MetadataValue.text(outcome.status),
            "weights_path": dg.MetadataValue.path(str(dirs.weights)),
            "weights_sha256": dg.MetadataValue.text(weights_sha),
            "weights_size_bytes": dg.MetadataValue.int(metadata.size_bytes[WEIGHTS]),
            "n_params": dg.MetadataValue.int(metadata.n_params),
            "dtype": dg.MetadataValue.text(metadata.dtype),
            "resolved_commit": dg.MetadataValue.text(outcome.source.resolved_commit or "unknown"),
            "files": files_table(metadata.files, metadata.size_bytes),
            **extra,
        },
        data_version=dg.DataVersion(weights_sha[:16]),
    )


@dg.asset(
    key=SHEARED_RAW,
    group_name=GROUP,
    kinds={"huggingface"},
    pool="download",
    op_tags=k8s_op_tags("download"),
    description="Sheared-LLaMA-2.7B float32 shards, index, config and tokenizer files.",
)
def sheared_raw(context: dg.AssetExecutionContext, wmtp: WmtpResource) -> dg.MaterializeResult:
    dirs = wmtp.layout.model("ref_sheared_llama_2_7b")
    return fetch_raw(
        context,
        wmtp,
        SHEARED_LLAMA.repo_id,
        "model",
        SHEARED_LLAMA.revision,
        SHEARED_LLAMA.patterns,
        dirs.raw,
    )


@dg.asset(
    key=META_SAFETENSORS,
    deps=[META_RAW, TOKENIZER],
    group_name=GROUP,
    kinds={"pytorch", "safetensors"},
    code_version=CONVERSION_CODE_VERSION,
    op_tags=k8s_op_tags("convert"),
    description="7B_1T_4 in float16 safetensors with Meta key names, configs, metadata.json.",
)
def meta_safetensors(context: dg.AssetExecutionContext, wmtp: WmtpResource) -> dg.MaterializeResult:
    dirs = wmtp.layout.model("meta_llama_mtp")
    outcome = convert_meta_mtp(
        dirs.raw,
        dirs,
        raw_provenance(dirs.raw),
        tokenizer_info(dirs.tokenizer / "tokenizer.model"),
        CONVERSION_CODE_VERSION,
        context.log.info,
        reuse_current=True,
    )
    link_model(wmtp.layout, "meta_llama_mtp")
    return _materialize_result(dirs, outcome)


@dg.asset(
    key=SHEARED_SAFETENSORS,
    deps=[SHEARED_RAW, TOKENIZER],
    group_name=GROUP,
    kinds={"pytorch", "safetensors"},
    code_version=CONVERSION_CODE_VERSION,
    op_tags=k8s_op_tags("convert"),
    description="Sheared-LLaMA-2.7B merged into one float16 safetensors with HF key names; "
    "safetensors/ is a from_pretrained folder.",
)
def sheared_safetensors(
    context: dg.AssetExecutionContext, wmtp: WmtpResource
) -> dg.MaterializeResult:
    dirs = wmtp.layout.model("ref_sheared_llama_2_7b")
    outcome = convert_hf_llama(
        dirs.raw,
        dirs,
        raw_provenance(dirs.raw),
        None,
        wmtp.settings.tokenizer_sha256,
        CONVERSION_CODE_VERSION,
        context.log.info,
        reuse_current=True,
    )
    link_model(wmtp.layout, "ref_sheared_llama_2_7b")
    return _materialize_result(dirs, outcome)


CONVERSION_ASSETS = [sheared_raw, meta_safetensors, sheared_safetensors]
CONVERSION_CHECKS = [
    *model_checks(META_SAFETENSORS, "meta_llama_mtp", "meta"),
    *model_checks(SHEARED_SAFETENSORS, "ref_sheared_llama_2_7b", "hf_llama"),
]
