"""The micro models every laptop run and test uses: generated, seeded, in float16.

``micro-mtp`` has the MTP Transformer's layout at 4 layers, dim 512, 8 heads, 4 future tokens
(``layers.0`` + ``extra_heads.0..2``), FFN 1536; ``micro-ref`` is a Llama of the same size in
Hugging Face format. Both take the vocabulary of the shared tokenizer. The plan's "< 50 MB"
cannot hold with a 32000 vocabulary (REFERENCE §8): the exact size the config implies is
recorded and checked instead.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

import torch
from pydantic import BaseModel

from wmtp_assets.files.atomic import json_bytes
from wmtp_assets.files.layout import ModelDirs
from wmtp_assets.files.lock import artifact_lock
from wmtp_assets.models.artifact import ModelMetadata, SourceInfo, staged_artifact
from wmtp_assets.models.hf_folder import root_configs
from wmtp_assets.models.hf_llama import llama_config
from wmtp_assets.models.mtp.args import ModelArgs
from wmtp_assets.models.safetensors_writer import TensorSpec, stage_safetensors
from wmtp_assets.models.seeded_init import seeded_state_dict
from wmtp_assets.models.shapes import hf_llama_shapes, meta_shapes
from wmtp_assets.models.tokenizer_files import tokenizer_info, write_tokenizer_folder

MICRO_SEED = 1234
MICRO_CODE_VERSION = "micro-v2"  # v2: tokenizer.json, root config.json and index
FLOAT16_BYTES = 2


class MicroBuild(BaseModel):
    """What was written, for asset metadata."""

    metadata: ModelMetadata
    n_params: int
    tensor_bytes: int
    weights_sha256: str


def micro_mtp_args(vocab_size: int) -> ModelArgs:
    """4 layers, dim 512, 8 heads, 4 future tokens; FFN 1536 from the rounding rule."""
    return ModelArgs(
        dim=512,
        n_layers=4,
        n_heads=8,
        n_kv_heads=8,
        vocab_size=vocab_size,
        multiple_of=256,
        n_future_tokens=4,
        max_seq_len=2048,
    )


def micro_ref_config(vocab_size: int) -> dict[str, object]:
    """The Llama twin of the micro MTP model: 4 layers, dim 512, 8 heads, FFN 1536."""
    return llama_config(
        hidden_size=512,
        intermediate_size=1536,
        num_hidden_layers=4,
        num_attention_heads=8,
        vocab_size=vocab_size,
        max_position_embeddings=2048,
    )


def tensor_bytes_for(shapes: Mapping[str, tuple[int, ...]]) -> int:
    """Exact float16 tensor-data size implied by a set of shapes."""
    return FLOAT16_BYTES * sum(torch.Size(shape).numel() for shape in shapes.values())


def _build(
    dirs: ModelDirs,
    tokenizer_model: Path,
    tokenizer_sha256: str,
    model_name: str,
    implementation: str,
    architecture: str,
    shapes: Mapping[str, tuple[int, ...]],
    header_metadata: dict[str, str],
    configs: Mapping[Path, object],
    hf_folder: bool,
) -> MicroBuild:
    """Stage tokenizer, weights and ``configs`` (path -> JSON), then publish them at once;
    ``hf_folder``: ``safetensors/`` also gets the tokenizer files (a from_pretrained folder)."""
    with (
        artifact_lock(dirs.root, timeout_s=600),
        staged_artifact(dirs, (dirs.configs, dirs.tokenizer)) as artifact,
    ):
        written = artifact.scratch_dir()
        tokenizer = write_tokenizer_folder(tokenizer_model, written, tokenizer_sha256)
        if hf_folder:
            for path in sorted(written.iterdir()):
                artifact.copy(dirs.safetensors / path.name, path)
        artifact.adopt_folder(written, dirs.tokenizer)
        tensors = seeded_state_dict(shapes, seed=MICRO_SEED, dtype=torch.float16)
        specs = {name: TensorSpec.of(tensor) for name, tensor in tensors.items()}
        staged = stage_safetensors(dirs.weights, specs, tensors.__getitem__, header_metadata)
        artifact.adopt(staged.path, dirs.weights, staged.sha256)
        for dest, config in configs.items():
            artifact.write(dest, json_bytes(config))
        n_params = sum(torch.Size(s).numel() for s in shapes.values())
        metadata = artifact.publish(
            model_name=model_name,
            implementation=implementation,
            n_params=n_params,
            dtype="float16",
            source=SourceInfo(architecture=architecture, kind="generated"),
            tokenizer=tokenizer,
            tokenizer_shared_with="meta-llama-mtp",
            target_device="mps",
            code_version=MICRO_CODE_VERSION,
            safetensors={"seed": MICRO_SEED, "expected_tensor_bytes": tensor_bytes_for(shapes)},
        )
    return MicroBuild(
        metadata=metadata,
        n_params=n_params,
        tensor_bytes=tensor_bytes_for(shapes),
        weights_sha256=staged.sha256,
    )


def build_micro_mtp(dirs: ModelDirs, tokenizer_model: Path, tokenizer_sha256: str) -> MicroBuild:
    """Publish ``micro-mtp``: weights, configs/config.json, tokenizer/, metadata.json."""
    args = micro_mtp_args(tokenizer_info(tokenizer_model).vocab_size)
    return _build(
        dirs,
        tokenizer_model,
        tokenizer_sha256,
        "micro-mtp",
        "pure_pytorch",
        "Meta LLaMA MTP (pure PyTorch), micro",
        meta_shapes(args),
        {"format": "pt", "implementation": "pure_pytorch"},
        {dirs.configs / "config.json": {**args.to_hf_config(), "torch_dtype": "float16"}},
        hf_folder=False,
    )


def build_micro_ref(dirs: ModelDirs, tokenizer_model: Path, tokenizer_sha256: str) -> MicroBuild:
    """Publish ``micro-ref``; ``safetensors/`` and the folder itself (``hf_folder``) are folders
    ``from_pretrained`` loads."""
    config = micro_ref_config(tokenizer_info(tokenizer_model).vocab_size)
    shapes = hf_llama_shapes(config)
    return _build(
        dirs,
        tokenizer_model,
        tokenizer_sha256,
        "micro-ref",
        "hf_llama",
        "LlamaForCausalLM, micro",
        shapes,
        {"format": "pt"},
        {
            dirs.configs / "config.json": config,
            dirs.safetensors / "config.json": config,
            **root_configs(dirs, config, shapes),
        },
        hf_folder=True,
    )
