"""Seeded, device-independent random weights for generated models (micro models, demo mirror).

The same ``(shapes, seed)`` always gives bit-identical tensors: each tensor is drawn in
sorted-name order from one CPU ``torch.Generator`` in float32, so the result does not depend on
the device, thread count or module construction order. Norm weights start at one, as in Llama.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import torch


def is_norm_weight(name: str) -> bool:
    """Norm weights in Meta (``attention_norm``, ``norm``) and HF (``*_layernorm``) naming."""
    leaf = name.rsplit(".", 2)[-2] if name.count(".") else name
    return leaf.endswith(("norm", "layernorm"))


def seeded_state_dict(
    shapes: Mapping[str, Sequence[int]],
    seed: int,
    std: float = 0.02,
    dtype: torch.dtype = torch.float32,
) -> dict[str, torch.Tensor]:
    """Normal(0, ``std``) matrices and unit norm weights for every name in ``shapes``."""
    generator = torch.Generator(device="cpu").manual_seed(seed)
    tensors: dict[str, torch.Tensor] = {}
    for name in sorted(shapes):
        shape = tuple(shapes[name])
        if is_norm_weight(name):
            tensor = torch.ones(shape, dtype=torch.float32)
        else:
            tensor = torch.empty(shape, dtype=torch.float32).normal_(0.0, std, generator=generator)
        tensors[name] = tensor.to(dtype)
    return tensors
