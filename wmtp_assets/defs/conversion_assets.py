"""Assets that fetch and convert the two real checkpoints to float16 safetensors.

A conversion is skipped, and the artifact reported current, when its stored ``metadata.json``
records the same raw-file SHA256s and the same ``code_version`` (see
``wmtp_assets.models.artifact.current_metadata``); Dagster shows the same through the assets'
``code_version`` and data versions. A forced rewrite produces identical bytes.
"""

from collections.abc import Callable
from typing import Any

import dagster as dg

from wmtp_assets.defs.k8s import k8s_op_tags
from wmtp_assets.defs.metadata import files_table
from wmtp_assets.defs.model_assets import GROUP, META_RAW, TOKENIZER
from wmtp_assets.defs.model_checks import model_checks
from wmtp_assets.defs.raw_fetch import fetch_raw
from wmtp_assets.defs.resources import WmtpResource
from wmtp_assets.files.layout import ModelDirs
from wmtp_assets.models.artifact import ModelMetadata, SourceInfo, current_metadata
from wmtp_assets.models.convert_hf_llama import convert_hf_llama
from wmtp_assets.models.convert_meta import convert_meta_mtp
from wmtp_assets.models.fp16_cast import ConversionReport
from wmtp_assets.models.tokenizer_files import tokenizer_info
from wmtp_assets.models.upstream import SHEARED_LLAMA
from wmtp_assets.sources import SourceError, read_provenance

CONVERSION_CODE_VERSION = "fp16-stream-v1"

Log = Callable[[str], None]

META_SAFETENSORS = dg.AssetKey(["models", "meta_llama_mtp", "safetensors"])
SHEARED_RAW = dg.AssetKey(["models", "ref_sheared_llama_2_7b", "raw"])
SHEARED_SAFETENSORS = dg.AssetKey(["models", "ref_sheared_llama_2_7b", "safetensors"])

Convert = Callable[[ModelDirs, dict[str, Any], Log], ConversionReport]


def _convert_or_reuse(
    context: dg.AssetExecutionContext,
    wmtp: WmtpResource,
    model: str,
    architecture: str,
    convert: Convert,
) -> dg.MaterializeResult:
    dirs = wmtp.layout.model(model)
    provenance = read_provenance(dirs.raw)
    if provenance is None:
        raise SourceError(f"{dirs.raw}: no SOURCE.json; materialize the raw asset first")
    source = SourceInfo.from_provenance(provenance, architecture)
    metadata = current_metadata(dirs, source.files, CONVERSION_CODE_VERSION)
    status = "up to date (not rewritten)"
    extra: dict[str, dg.MetadataValue] = {}
    if metadata is None:
        report = convert(dirs, source.model_dump(), context.log.info)
        metadata = ModelMetadata.model_validate_json(dirs.metadata.read_text())
        status = "converted"
        extra = {
            "seconds": dg.MetadataValue.float(report.seconds),
            "write_rate_MB_s": dg.MetadataValue.float(report.bytes_per_s / 1e6),
            "flushed_to_zero": dg.MetadataValue.int(report.flushed_to_zero),
            "dropped_keys": dg.MetadataValue.json(report.dropped_keys),
        }
    else:
        context.log.info(f"{dirs.weights} is current: same raw SHA256s and code version")
    weights_sha = metadata.files["safetensors/model.safetensors"]
    return dg.MaterializeResult(
        metadata={
            "status": dg.MetadataValue.text(status),
            "weights_path": dg.MetadataValue.path(str(dirs.weights)),
            "weights_sha256": dg.MetadataValue.text(weights_sha),
            "weights_size_bytes": dg.MetadataValue.int(
                metadata.size_bytes["safetensors/model.safetensors"]
            ),
            "n_params": dg.MetadataValue.int(metadata.n_params),
            "dtype": dg.MetadataValue.text(metadata.dtype),
            "resolved_commit": dg.MetadataValue.text(source.resolved_commit or "unknown"),
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
    def convert(dirs: ModelDirs, source: dict[str, Any], log: Log) -> ConversionReport:
        tokenizer = tokenizer_info(dirs.tokenizer / "tokenizer.model")
        return convert_meta_mtp(dirs.raw, dirs, source, tokenizer, CONVERSION_CODE_VERSION, log)

    return _convert_or_reuse(context, wmtp, "meta_llama_mtp", "meta_mtp.Transformer", convert)


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
    def convert(dirs: ModelDirs, source: dict[str, Any], log: Log) -> ConversionReport:
        return convert_hf_llama(
            dirs.raw,
            dirs,
            source,
            None,
            wmtp.settings.tokenizer_sha256,
            CONVERSION_CODE_VERSION,
            log,
        )

    return _convert_or_reuse(context, wmtp, "ref_sheared_llama_2_7b", "LlamaForCausalLM", convert)


CONVERSION_ASSETS = [sheared_raw, meta_safetensors, sheared_safetensors]
CONVERSION_CHECKS = [
    *model_checks(META_SAFETENSORS, "meta_llama_mtp", "meta"),
    *model_checks(SHEARED_SAFETENSORS, "ref_sheared_llama_2_7b", "hf_llama"),
]
