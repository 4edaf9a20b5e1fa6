"""Assets of group ``models``: raw downloads, the shared tokenizer, the float16 conversions of
the three real checkpoints (Meta MTP, Sheared-LLaMA, the Starling reward model) and the micro
models.

A conversion is skipped, and the artifact reported current, when its stored ``metadata.json``
records the same raw-file SHA256s and the same ``code_version`` and every stored file still has
the size, then the SHA256, it records (decided in ``wmtp_assets.models.artifact``; a file that
differs is rebuilt); Dagster shows the same through the assets'
``code_version`` and data versions. A forced rewrite produces identical bytes.
"""

from collections.abc import Callable
from pathlib import Path
from typing import Any

import dagster as dg

from wmtp_assets.defs.executor import step_tags
from wmtp_assets.defs.explain import explained
from wmtp_assets.defs.metadata import (
    FRESHNESS,
    OWNERS,
    asset_tags,
    file_entries,
    files_table,
    model_sealed_files,
    sealed_files,
)
from wmtp_assets.defs.raw_fetch import fetch_raw
from wmtp_assets.defs.resources import WmtpResource
from wmtp_assets.defs.signing import sign_model
from wmtp_assets.files.layout import MODEL_FOLDERS, ModelDirs
from wmtp_assets.files.lock import artifact_lock
from wmtp_assets.files.trainer_view import link_model
from wmtp_assets.models.convert_hf_llama import convert_hf_llama
from wmtp_assets.models.convert_meta import convert_meta_mtp
from wmtp_assets.models.convert_reward_llama import convert_reward_llama
from wmtp_assets.models.fp16_conversion import WEIGHTS, Float16Outcome, raw_provenance
from wmtp_assets.models.micro import (
    MICRO_CODE_VERSION,
    MicroBuild,
    build_micro_mtp,
    build_micro_ref,
)
from wmtp_assets.models.tokenizer_files import (
    TOKENIZER_FILES,
    tokenizer_info,
    write_tokenizer_folder,
)
from wmtp_assets.models.upstream import META_MTP, SHEARED_LLAMA, STARLING_RM, UpstreamRepo
from wmtp_assets.validate.model_checks import resolve_device

# The group of ARCHITECTURE's contract (``--select group:models``). The lineage labels a node with
# the last part of its key ("raw" three times); the first line of its description, which the
# node shows under that label, starts with the storage folder and tells them apart.
GROUP = "models"

META_RAW = dg.AssetKey(["models", "meta_llama_mtp", "raw"])
TOKENIZER = dg.AssetKey(["models", "meta_llama_mtp", "tokenizer"])
MICRO_MTP = dg.AssetKey(["models", "micro_mtp"])
MICRO_REF = dg.AssetKey(["models", "micro_ref"])


def _raw_asset(
    key: dg.AssetKey, model: str, upstream: UpstreamRepo, what: str
) -> dg.AssetsDefinition:
    """``models/<model>/raw``: ``upstream``'s files fetched into ``raw/`` (exact bytes, with
    SOURCE.json) and signed; one definition for every model, so none misses a property."""
    folder = MODEL_FOLDERS[model]

    @dg.asset(
        key=key,
        group_name=GROUP,
        kinds={"huggingface"},
        op_tags=step_tags("download"),
        owners=OWNERS,
        freshness_policy=FRESHNESS,
        tags=asset_tags("upstream"),
        description=f"`models_v2/{folder}/raw/`: {what}, exact upstream bytes, with SOURCE.json.",
    )
    @explained
    def raw(context: dg.AssetExecutionContext, wmtp: WmtpResource) -> dg.MaterializeResult:
        dirs = wmtp.layout.model(model)
        result = fetch_raw(
            context,
            wmtp,
            upstream.repo_id,
            "model",
            upstream.revision,
            upstream.patterns,
            dirs.raw,
        )
        return sign_model(wmtp, model, result)

    return raw


meta_llama_mtp_raw = _raw_asset(
    META_RAW,
    "meta_llama_mtp",
    META_MTP,
    "the Meta 7B_1T_4 consolidated.pth, params.json and tokenizer.model",
)


@dg.asset(
    key=TOKENIZER,
    deps=[META_RAW],
    group_name=GROUP,
    kinds={"sentencepiece"},
    code_version="tokenizer-v2",  # v2: tokenizer.json
    owners=OWNERS,
    freshness_policy=FRESHNESS,
    tags=asset_tags("derived"),
    description="`models_v2/meta-llama-mtp/tokenizer/` (tokenizer.model, tokenizer.json, "
    "tokenizer_config.json, special_tokens_map.json): the shared SentencePiece tokenizer; its "
    "SHA256 must equal WMTP_TOKENIZER_SHA256.",
)
@explained
def meta_llama_mtp_tokenizer(wmtp: WmtpResource) -> dg.MaterializeResult:
    dirs = wmtp.layout.model("meta_llama_mtp")
    with artifact_lock(dirs.tokenizer, timeout_s=wmtp.settings.lock_timeout_s):
        info = write_tokenizer_folder(
            dirs.raw / "tokenizer.model", dirs.tokenizer, wmtp.settings.tokenizer_sha256
        )
    link_model(wmtp.layout, "meta_llama_mtp")
    result: dg.MaterializeResult[None] = dg.MaterializeResult(
        metadata={
            **file_entries("tokenizer", dirs.tokenizer / "tokenizer.model", info.sha256),
            "vocab_size": dg.MetadataValue.int(info.vocab_size),
            "tokenizer_dir": dg.MetadataValue.path(str(dirs.tokenizer)),
            **sealed_files(wmtp.layout.root, [dirs.tokenizer / f for f in TOKENIZER_FILES]),
        },
        data_version=dg.DataVersion(info.sha256[:16]),
    )
    return sign_model(wmtp, "meta_llama_mtp", result)


def _build_micro(
    wmtp: WmtpResource, model: str, build: Callable[[ModelDirs, Path, str], MicroBuild]
) -> dg.MaterializeResult:
    """Build one micro model from the shared tokenizer and describe it for the UI."""
    dirs = wmtp.layout.model(model)
    built = build(dirs, wmtp.layout.shared_tokenizer, wmtp.settings.tokenizer_sha256)
    link_model(wmtp.layout, model)
    meta = built.metadata
    result: dg.MaterializeResult[None] = dg.MaterializeResult(
        metadata={
            "weights_path": dg.MetadataValue.path(str(dirs.weights)),
            "weights_sha256": dg.MetadataValue.text(built.weights_sha256),
            "weights_size_bytes": dg.MetadataValue.int(
                meta.size_bytes["safetensors/model.safetensors"]
            ),
            "n_params": dg.MetadataValue.int(built.n_params),
            "tensor_bytes": dg.MetadataValue.int(built.tensor_bytes),
            "dtype": dg.MetadataValue.text(meta.dtype),
            "vocab_size": dg.MetadataValue.int(meta.tokenizer.vocab_size),
            "tokenizer_sha256": dg.MetadataValue.text(meta.tokenizer.sha256),
            "files": files_table(meta.files, meta.size_bytes),
            **model_sealed_files(wmtp.layout.root, dirs, meta.files),
        },
        data_version=dg.DataVersion(built.weights_sha256[:16]),
    )
    return sign_model(wmtp, model, result)


@dg.asset(
    key=MICRO_MTP,
    deps=[TOKENIZER],
    group_name=GROUP,
    kinds={"pytorch", "safetensors"},
    code_version=MICRO_CODE_VERSION,
    owners=OWNERS,
    freshness_policy=FRESHNESS,
    tags=asset_tags("generated"),
    description="`models_v2/micro-mtp/` (safetensors/model.safetensors, configs/config.json, "
    "tokenizer/, metadata.json): a seeded micro MTP model, 4 layers, dim 512, 8 heads, "
    "4 future tokens, float16.",
)
@explained
def micro_mtp(wmtp: WmtpResource) -> dg.MaterializeResult:
    return _build_micro(wmtp, "micro_mtp", build_micro_mtp)


@dg.asset(
    key=MICRO_REF,
    deps=[TOKENIZER],
    group_name=GROUP,
    kinds={"pytorch", "safetensors"},
    code_version=MICRO_CODE_VERSION,
    owners=OWNERS,
    freshness_policy=FRESHNESS,
    tags=asset_tags("generated"),
    description="`models_v2/micro-ref/` (safetensors/model.safetensors, configs/config.json, "
    "tokenizer/, metadata.json): a seeded micro reference Llama in Hugging Face format; "
    "safetensors/ loads with AutoModelForCausalLM.from_pretrained.",
)
@explained
def micro_ref(wmtp: WmtpResource) -> dg.MaterializeResult:
    return _build_micro(wmtp, "micro_ref", build_micro_ref)


CONVERSION_CODE_VERSION = "fp16-stream-v3"  # v3: tokenizer.json, HF folder root, seal order

META_SAFETENSORS = dg.AssetKey(["models", "meta_llama_mtp", "safetensors"])
SHEARED_RAW = dg.AssetKey(["models", "ref_sheared_llama_2_7b", "raw"])
SHEARED_SAFETENSORS = dg.AssetKey(["models", "ref_sheared_llama_2_7b", "safetensors"])


def _materialize_result(
    root: Path, dirs: ModelDirs, outcome: Float16Outcome
) -> dg.MaterializeResult:
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
            **model_sealed_files(root, dirs, metadata.files),
            **extra,
        },
        data_version=dg.DataVersion(weights_sha[:16]),
    )


sheared_raw = _raw_asset(
    SHEARED_RAW,
    "ref_sheared_llama_2_7b",
    SHEARED_LLAMA,
    "the Sheared-LLaMA-2.7B float32 shards, shard index, config and tokenizer files",
)


def _converted_asset(
    key: dg.AssetKey,
    raw: dg.AssetKey,
    model: str,
    description: str,
    convert: Callable[..., Float16Outcome],
    format_args: Callable[[ModelDirs, WmtpResource], tuple[Any, ...]],
) -> dg.AssetsDefinition:
    """``models/<model>/safetensors``: ``raw`` converted to float16 by ``convert`` (a
    ``models.convert_*`` function, its format's arguments after the provenance from
    ``format_args``), linked where the trainer reads it and signed; one definition for every
    converted model, so none misses a property."""

    @dg.asset(
        key=key,
        deps=[raw, TOKENIZER],
        group_name=GROUP,
        kinds={"pytorch", "safetensors"},
        code_version=CONVERSION_CODE_VERSION,
        op_tags=step_tags("convert"),
        owners=OWNERS,
        freshness_policy=FRESHNESS,
        tags=asset_tags("converted"),
        description=description,
    )
    @explained
    def converted(context: dg.AssetExecutionContext, wmtp: WmtpResource) -> dg.MaterializeResult:
        dirs = wmtp.layout.model(model)
        outcome = convert(
            dirs.raw,
            dirs,
            raw_provenance(dirs.raw),
            *format_args(dirs, wmtp),
            CONVERSION_CODE_VERSION,
            context.log.info,
            reuse_current=True,
            lock_timeout_s=wmtp.settings.lock_timeout_s,
            device=_trace_device(context, wmtp),
        )
        link_model(wmtp.layout, model)
        return sign_model(wmtp, model, _materialize_result(wmtp.layout.root, dirs, outcome))

    return converted


meta_safetensors = _converted_asset(
    META_SAFETENSORS,
    META_RAW,
    "meta_llama_mtp",
    "`models_v2/meta-llama-mtp/safetensors/model.safetensors` (with SHA256SUMS, "
    "configs/ and metadata.json): 7B_1T_4 in float16 with Meta key names.",
    convert_meta_mtp,
    lambda dirs, _: (tokenizer_info(dirs.tokenizer / "tokenizer.model"),),
)


def _trace_device(context: dg.AssetExecutionContext, wmtp: WmtpResource) -> str:
    """WMTP_DEVICE for the source's forward trace the conversion computes; the CPU where that
    device is absent (conversion steps run on CPU nodes, the trace costs seconds there)."""
    try:
        return str(resolve_device(wmtp.device))
    except RuntimeError as exc:
        context.log.info(f"{exc}: the source's forward trace runs on the CPU")
        return "cpu"


sheared_safetensors = _converted_asset(
    SHEARED_SAFETENSORS,
    SHEARED_RAW,
    "ref_sheared_llama_2_7b",
    "`models_v2/ref-sheared-llama-2.7b/safetensors/model.safetensors` (with "
    "SHA256SUMS, configs/ and metadata.json): Sheared-LLaMA-2.7B merged into one float16 file "
    "with HF key names; safetensors/ is a from_pretrained folder.",
    convert_hf_llama,
    lambda _, wmtp: (None, wmtp.settings.tokenizer_sha256),  # tokenizer files: its raw ones
)


STARLING_RAW = dg.AssetKey(["models", "starling_rm_7b", "raw"])
STARLING_SAFETENSORS = dg.AssetKey(["models", "starling_rm_7b", "safetensors"])

starling_raw = _raw_asset(
    STARLING_RAW,
    "starling_rm_7b",
    STARLING_RM,
    "the Starling-RM-7B-alpha reward model's pytorch_model.bin, config.json and tokenizer.model",
)


starling_safetensors = _converted_asset(
    STARLING_SAFETENSORS,
    STARLING_RAW,
    "starling_rm_7b",
    "`models_v2/starling-rm-7b/safetensors/model.safetensors` (with SHA256SUMS, "
    "configs/config.json, tokenizer/ and metadata.json): the Starling-RM-7B-alpha reward model "
    "(Llama decoder + v_head) in float16 with the upstream key names.",
    convert_reward_llama,
    lambda _, wmtp: (wmtp.settings.tokenizer_sha256,),
)


MODEL_ASSETS = [
    meta_llama_mtp_raw,
    meta_llama_mtp_tokenizer,
    meta_safetensors,
    sheared_raw,
    sheared_safetensors,
    starling_raw,
    starling_safetensors,
    micro_mtp,
    micro_ref,
]
