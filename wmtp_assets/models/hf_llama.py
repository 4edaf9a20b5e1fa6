"""The Hugging Face ``LlamaForCausalLM`` config.json: reading one, and writing the micro one.

Without importing transformers (a dev-only dependency here); the shapes a config implies are in
``wmtp_assets.models.shapes``.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any


class HFConfigError(ValueError):
    """A config.json field that is missing, mistyped or unsupported."""


def read_llama_config(
    path: Path, architectures: tuple[str, ...] = ("LlamaForCausalLM",)
) -> dict[str, Any]:
    """A ``config.json`` whose ``architectures`` include one of ``architectures`` (a Llama
    decoder this project knows); errors name the file."""
    try:
        config = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise HFConfigError(f"{path}: not a readable JSON config ({exc})") from exc
    if not isinstance(config, dict):
        raise HFConfigError(f"{path}: expected a JSON object")
    if not set(architectures) & set(config.get("architectures") or []):
        raise HFConfigError(
            f"{path}: architectures {config.get('architectures')!r} does not include "
            f"{' or '.join(architectures)}, the layouts this conversion knows"
        )
    return config


def llama_config(
    *,
    hidden_size: int,
    intermediate_size: int,
    num_hidden_layers: int,
    num_attention_heads: int,
    vocab_size: int,
    max_position_embeddings: int = 4096,
    torch_dtype: str = "float16",
) -> dict[str, Any]:
    """A ``LlamaForCausalLM`` config.json with Llama-2 defaults (untied, rope_theta 10000)."""
    return {
        "architectures": ["LlamaForCausalLM"],
        "model_type": "llama",
        "hidden_size": hidden_size,
        "intermediate_size": intermediate_size,
        "num_hidden_layers": num_hidden_layers,
        "num_attention_heads": num_attention_heads,
        "num_key_value_heads": num_attention_heads,
        "vocab_size": vocab_size,
        "max_position_embeddings": max_position_embeddings,
        "rms_norm_eps": 1e-5,
        "rope_theta": 10000.0,
        "hidden_act": "silu",
        "tie_word_embeddings": False,
        "attention_bias": False,
        "bos_token_id": 1,
        "eos_token_id": 2,
        "initializer_range": 0.02,
        "torch_dtype": torch_dtype,
    }
