"""Seeded, device-independent random weights (micro models, demo mirror, ``init_weights``).

The same ``(shapes, seed)`` always gives bit-identical tensors: each tensor is drawn in
sorted-name order from one CPU ``torch.Generator`` in float32, so the result does not depend on
the device, thread count or module construction order. Norm weights start at one, as in Llama.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence

import torch


def is_norm_weight(name: str) -> bool:
    """Norm weights in Meta (``attention_norm``, ``norm``) and HF (``*_layernorm``) naming."""
    leaf = name.rsplit(".", 2)[-2] if name.count(".") else name
    return leaf.endswith(("norm", "layernorm"))


def seeded_tensors(
    shapes: Mapping[str, Sequence[int]], seed: int, std: float = 0.02
) -> Iterator[tuple[str, torch.Tensor]]:
    """``(name, float32 CPU tensor)`` in sorted-name order, one at a time (memory: the largest)."""
    generator = torch.Generator(device="cpu").manual_seed(seed)
    for name in sorted(shapes):
        shape = tuple(shapes[name])
        if is_norm_weight(name):
            yield name, torch.ones(shape, dtype=torch.float32)
        else:
            yield (
                name,
                torch.empty(shape, dtype=torch.float32).normal_(0.0, std, generator=generator),
            )


def seeded_state_dict(
    shapes: Mapping[str, Sequence[int]],
    seed: int,
    std: float = 0.02,
    dtype: torch.dtype = torch.float32,
) -> dict[str, torch.Tensor]:
    """Normal(0, ``std``) matrices and unit norm weights for every name in ``shapes``."""
    return {name: tensor.to(dtype) for name, tensor in seeded_tensors(shapes, seed, std)}
