"""Tiny model repos in the exact upstream formats, for the demo's local mirror.

``facebook/multi-token-prediction``: a Meta-format ``7B_1T_4/consolidated.pth`` (a torch zip
pickle of float32 tensors with Meta key names, plus the ``rope.freqs`` tensor Meta files
sometimes carry), ``7B_1T_4/params.json`` in Meta's spelling, and ``tokenizer.model``.
``princeton-nlp/Sheared-LLaMA-2.7B``: sharded ``pytorch_model-0000K-of-0000N.bin`` files with
``pytorch_model.bin.index.json``, ``config.json``, ``generation_config.json`` and the tokenizer
files, including the ``rotary_emb.inv_freq`` buffers old transformers versions saved.
``berkeley-nest/Starling-RM-7B-alpha``: one bfloat16 ``pytorch_model.bin`` (``torch.save`` of
the reward module's state dict: ``transformer.<LlamaModel keys>`` and ``v_head.weight``), a
Llama ``config.json`` and ``tokenizer.model``.
"""

from __future__ import annotations

import io
import json
from pathlib import Path
from typing import Any

import torch

from wmtp_assets.files.atomic import atomic_copy, atomic_write_bytes, atomic_write_json
from wmtp_assets.models.hf_llama import llama_config
from wmtp_assets.models.mtp.args import ModelArgs
from wmtp_assets.models.seeded_init import seeded_state_dict
from wmtp_assets.models.shapes import hf_llama_shapes, llama_reward_shapes, meta_shapes
from wmtp_assets.models.tokenizer_files import load_sentencepiece, write_tokenizer_folder
from wmtp_assets.sources import RepoRef, mirror_repo_dir, write_mirror_manifest

META_REPO = "facebook/multi-token-prediction"
SHEARED_REPO = "princeton-nlp/Sheared-LLaMA-2.7B"
STARLING_REPO = "berkeley-nest/Starling-RM-7B-alpha"
DEMO_REVISION = "main"
DEMO_COMMIT = "0" * 39 + "1"


def _torch_save(obj: object, dest: Path) -> None:
    buffer = io.BytesIO()
    torch.save(obj, buffer)
    atomic_write_bytes(dest, buffer.getvalue())


def tiny_meta_params(vocab_size: int) -> dict[str, Any]:
    """Meta's params.json keys for a tiny 4-layer, 4-future-token model."""
    return {
        "dim": 64,
        "n_layers": 4,
        "n_heads": 4,
        "n_kv_heads": 4,
        "vocab_size": vocab_size,
        "multiple_of": 32,
        "ffn_dim_multiplier": None,
        "norm_eps": 1e-5,
        "rope_theta": 10000.0,
        "n_future_tokens": 4,
    }


def build_meta_repo(mirror_root: Path, tokenizer_model: Path, seed: int = 7) -> Path:
    """Write the tiny Meta MTP repo; returns the repo folder."""
    ref = _demo_ref(META_REPO)
    repo = mirror_repo_dir(mirror_root, ref)
    vocab = load_sentencepiece(tokenizer_model).vocab_size()
    params = tiny_meta_params(vocab)
    args = ModelArgs(**params)
    state = seeded_state_dict(meta_shapes(args), seed=seed)
    head_dim = args.dim // args.n_heads
    state["rope.freqs"] = 1.0 / (10000.0 ** (torch.arange(0, head_dim, 2).float() / head_dim))
    _torch_save(state, repo / "7B_1T_4" / "consolidated.pth")
    atomic_write_bytes(repo / "7B_1T_4" / "params.json", json.dumps(params).encode())
    atomic_copy(tokenizer_model, repo / "tokenizer.model")
    write_mirror_manifest(mirror_root, ref, DEMO_COMMIT)
    return repo


def build_sheared_repo(
    mirror_root: Path, tokenizer_model: Path, tokenizer_sha256: str, seed: int = 11
) -> Path:
    """Write the tiny Sheared-LLaMA repo as two float32 ``.bin`` shards and an index."""
    ref = _demo_ref(SHEARED_REPO)
    repo = mirror_repo_dir(mirror_root, ref)
    vocab = load_sentencepiece(tokenizer_model).vocab_size()
    config = llama_config(
        hidden_size=64,
        intermediate_size=160,
        num_hidden_layers=2,
        num_attention_heads=4,
        vocab_size=vocab,
        torch_dtype="float32",
    )
    state = seeded_state_dict(hf_llama_shapes(config), seed=seed)
    inv_freq = 1.0 / (10000.0 ** (torch.arange(0, 16, 2).float() / 16))
    shards: list[dict[str, torch.Tensor]] = [{}, {}]
    for name, tensor in state.items():
        shards[0 if name.startswith("model.layers.0.") or "embed" in name else 1][name] = tensor
    shards[0]["model.layers.0.self_attn.rotary_emb.inv_freq"] = inv_freq
    shards[1]["model.layers.1.self_attn.rotary_emb.inv_freq"] = inv_freq
    weight_map: dict[str, str] = {}
    total = 0
    for i, shard in enumerate(shards, start=1):
        file_name = f"pytorch_model-{i:05d}-of-{len(shards):05d}.bin"
        _torch_save(shard, repo / file_name)
        weight_map |= dict.fromkeys(shard, file_name)
        total += sum(t.numel() * t.element_size() for t in shard.values())
    atomic_write_json(
        repo / "pytorch_model.bin.index.json",
        {"metadata": {"total_size": total}, "weight_map": dict(sorted(weight_map.items()))},
    )
    atomic_write_json(repo / "config.json", config)
    atomic_write_json(
        repo / "generation_config.json", {"bos_token_id": 1, "eos_token_id": 2, "pad_token_id": 0}
    )
    write_tokenizer_folder(tokenizer_model, repo, tokenizer_sha256)
    write_mirror_manifest(mirror_root, ref, DEMO_COMMIT)
    return repo


def build_starling_repo(
    mirror_root: Path, tokenizer_model: Path, seed: int = 13, prefix: str = "transformer."
) -> Path:
    """Write the tiny Starling-RM repo: one bfloat16 ``pytorch_model.bin`` with the decoder's
    keys under ``prefix``, ``config.json`` and ``tokenizer.model``."""
    ref = _demo_ref(STARLING_REPO)
    repo = mirror_repo_dir(mirror_root, ref)
    config = llama_config(
        hidden_size=64,
        intermediate_size=160,
        num_hidden_layers=2,
        num_attention_heads=4,
        vocab_size=load_sentencepiece(tokenizer_model).vocab_size(),
        torch_dtype="bfloat16",
    )
    shapes = llama_reward_shapes(config, prefix)
    _torch_save(
        seeded_state_dict(shapes, seed=seed, dtype=torch.bfloat16), repo / "pytorch_model.bin"
    )
    atomic_write_json(repo / "config.json", config)
    atomic_copy(tokenizer_model, repo / "tokenizer.model")
    write_mirror_manifest(mirror_root, ref, DEMO_COMMIT)
    return repo


def _demo_ref(repo_id: str) -> RepoRef:
    return RepoRef(repo_id=repo_id, repo_type="model", revision=DEMO_REVISION)
