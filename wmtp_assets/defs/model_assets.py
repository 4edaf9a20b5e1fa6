"""Assets of group ``models``: raw downloads, the shared tokenizer and the micro models."""

from collections.abc import Callable
from pathlib import Path

import dagster as dg

from wmtp_assets.defs.k8s import k8s_op_tags
from wmtp_assets.defs.metadata import file_entries, files_table
from wmtp_assets.defs.model_checks import model_checks
from wmtp_assets.defs.raw_fetch import fetch_raw
from wmtp_assets.defs.resources import WmtpResource
from wmtp_assets.files.layout import ModelDirs
from wmtp_assets.files.lock import artifact_lock
from wmtp_assets.files.trainer_view import link_model
from wmtp_assets.models.micro import (
    MICRO_CODE_VERSION,
    MicroBuild,
    build_micro_mtp,
    build_micro_ref,
)
from wmtp_assets.models.tokenizer_files import write_tokenizer_folder
from wmtp_assets.models.upstream import META_MTP

GROUP = "models"

META_RAW = dg.AssetKey(["models", "meta_llama_mtp", "raw"])
TOKENIZER = dg.AssetKey(["models", "meta_llama_mtp", "tokenizer"])
MICRO_MTP = dg.AssetKey(["models", "micro_mtp"])
MICRO_REF = dg.AssetKey(["models", "micro_ref"])


@dg.asset(
    key=META_RAW,
    group_name=GROUP,
    kinds={"huggingface"},
    pool="download",
    op_tags=k8s_op_tags("download"),
    description="Meta 7B_1T_4 checkpoint, params.json and tokenizer.model, exact upstream bytes.",
)
def meta_llama_mtp_raw(
    context: dg.AssetExecutionContext, wmtp: WmtpResource
) -> dg.MaterializeResult:
    dirs = wmtp.layout.model("meta_llama_mtp")
    return fetch_raw(
        context, wmtp, META_MTP.repo_id, "model", META_MTP.revision, META_MTP.patterns, dirs.raw
    )


@dg.asset(
    key=TOKENIZER,
    deps=[META_RAW],
    group_name=GROUP,
    kinds={"sentencepiece"},
    code_version="tokenizer-v1",
    description="The shared Llama-2 SentencePiece tokenizer folder; SHA256 must equal "
    "WMTP_TOKENIZER_SHA256.",
)
def meta_llama_mtp_tokenizer(wmtp: WmtpResource) -> dg.MaterializeResult:
    dirs = wmtp.layout.model("meta_llama_mtp")
    with artifact_lock(dirs.tokenizer):
        info = write_tokenizer_folder(
            dirs.raw / "tokenizer.model", dirs.tokenizer, wmtp.settings.tokenizer_sha256
        )
    link_model(wmtp.layout, "meta_llama_mtp")
    return dg.MaterializeResult(
        metadata={
            **file_entries("tokenizer", dirs.tokenizer / "tokenizer.model", info.sha256),
            "vocab_size": dg.MetadataValue.int(info.vocab_size),
            "tokenizer_dir": dg.MetadataValue.path(str(dirs.tokenizer)),
        },
        data_version=dg.DataVersion(info.sha256[:16]),
    )


def _build_micro(
    wmtp: WmtpResource, model: str, build: Callable[[ModelDirs, Path, str], MicroBuild]
) -> dg.MaterializeResult:
    """Build one micro model from the shared tokenizer and describe it for the UI."""
    dirs = wmtp.layout.model(model)
    built = build(dirs, wmtp.layout.shared_tokenizer, wmtp.settings.tokenizer_sha256)
    link_model(wmtp.layout, model)
    meta = built.metadata
    return dg.MaterializeResult(
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
        },
        data_version=dg.DataVersion(built.weights_sha256[:16]),
    )


@dg.asset(
    key=MICRO_MTP,
    deps=[TOKENIZER],
    group_name=GROUP,
    kinds={"pytorch", "safetensors"},
    code_version=MICRO_CODE_VERSION,
    description="Micro MTP model: 4 layers, dim 512, 8 heads, 4 future tokens, float16, seeded.",
)
def micro_mtp(wmtp: WmtpResource) -> dg.MaterializeResult:
    return _build_micro(wmtp, "micro_mtp", build_micro_mtp)


@dg.asset(
    key=MICRO_REF,
    deps=[TOKENIZER],
    group_name=GROUP,
    kinds={"pytorch", "safetensors"},
    code_version=MICRO_CODE_VERSION,
    description="Micro reference Llama in Hugging Face format; safetensors/ loads with "
    "AutoModelForCausalLM.from_pretrained.",
)
def micro_ref(wmtp: WmtpResource) -> dg.MaterializeResult:
    return _build_micro(wmtp, "micro_ref", build_micro_ref)


MODEL_ASSETS = [meta_llama_mtp_raw, meta_llama_mtp_tokenizer, micro_mtp, micro_ref]
MODEL_CHECKS = [
    *model_checks(MICRO_MTP, "micro_mtp", "meta_hf_config", with_size=True),
    *model_checks(MICRO_REF, "micro_ref", "hf_llama", with_size=True),
]
