"""The Hugging Face ``LlamaForCausalLM`` layout: key names and shapes implied by a config.json.

Used to validate converted reference-model checkpoints and to generate the micro reference
model without importing transformers (a dev-only dependency here).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any


class HFConfigError(ValueError):
    """A config.json field that is missing, mistyped or unsupported."""


def _int_field(config: Mapping[str, Any], field: str, source: str) -> int:
    value = config.get(field)
    if not isinstance(value, int) or isinstance(value, bool) or value <= 0:
        raise HFConfigError(f"{source}: field {field!r} must be a positive integer, got {value!r}")
    return value


def hf_llama_shapes(
    config: Mapping[str, Any], source: str = "config.json"
) -> dict[str, tuple[int, ...]]:
    """Every parameter of ``LlamaForCausalLM`` for ``config`` (no rotary buffers)."""
    hidden = _int_field(config, "hidden_size", source)
    inter = _int_field(config, "intermediate_size", source)
    layers = _int_field(config, "num_hidden_layers", source)
    heads = _int_field(config, "num_attention_heads", source)
    vocab = _int_field(config, "vocab_size", source)
    kv_heads = config.get("num_key_value_heads") or heads
    head_dim = config.get("head_dim") or hidden // heads
    if hidden % heads:
        raise HFConfigError(f"{source}: hidden_size {hidden} is not divisible by {heads} heads")
    shapes: dict[str, tuple[int, ...]] = {
        "model.embed_tokens.weight": (vocab, hidden),
        "model.norm.weight": (hidden,),
    }
    if not config.get("tie_word_embeddings", False):
        shapes["lm_head.weight"] = (vocab, hidden)
    for i in range(layers):
        p = f"model.layers.{i}"
        shapes |= {
            f"{p}.self_attn.q_proj.weight": (heads * head_dim, hidden),
            f"{p}.self_attn.k_proj.weight": (kv_heads * head_dim, hidden),
            f"{p}.self_attn.v_proj.weight": (kv_heads * head_dim, hidden),
            f"{p}.self_attn.o_proj.weight": (hidden, heads * head_dim),
            f"{p}.mlp.gate_proj.weight": (inter, hidden),
            f"{p}.mlp.up_proj.weight": (inter, hidden),
            f"{p}.mlp.down_proj.weight": (hidden, inter),
            f"{p}.input_layernorm.weight": (hidden,),
            f"{p}.post_attention_layernorm.weight": (hidden,),
        }
    return shapes


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
