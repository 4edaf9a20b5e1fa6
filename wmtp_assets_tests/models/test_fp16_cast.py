"""fp16 cast: refuses what would become inf/NaN, counts what flushes to zero."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from wmtp_assets.models.fp16_cast import CastSummary, Float16RangeError, cast_to_float16

SOURCE = Path("/raw/consolidated.pth")


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16, torch.float64])
def test_cast_matches_torch(dtype: torch.dtype) -> None:
    tensor = (torch.randn(64, 32, generator=torch.Generator().manual_seed(1)) * 100).to(dtype)
    result, stats = cast_to_float16("w", tensor, SOURCE)
    assert result.dtype == torch.float16
    assert torch.equal(result, tensor.to(torch.float16))
    assert stats.numel == tensor.numel() and stats.flushed_to_zero == 0
    assert stats.max_abs == float(tensor.abs().max())
    assert stats.source_dtype == str(dtype).removeprefix("torch.")


def test_fp16_passes_through() -> None:
    tensor = torch.randn(10).half()
    result, stats = cast_to_float16("w", tensor, SOURCE)
    assert result is tensor and stats.flushed_to_zero == 0


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16, torch.float16])
@pytest.mark.parametrize("bad", [float("nan"), float("inf"), float("-inf")])
def test_non_finite_refused(dtype: torch.dtype, bad: float) -> None:
    tensor = torch.ones(100, dtype=dtype) * 3
    tensor[17] = bad
    with pytest.raises(Float16RangeError, match=r"holds \d NaN and \d Inf values") as info:
        cast_to_float16("layers.0.attention.wq.weight", tensor, SOURCE)
    error = info.value
    assert error.tensor == "layers.0.attention.wq.weight" and error.source == str(SOURCE)
    assert error.max_abs == 3.0
    assert str(SOURCE) in str(error) and "layers.0.attention.wq.weight" in str(error)


@pytest.mark.parametrize(
    ("value", "ok"),
    [(65504.0, True), (65519.0, True), (-65519.99, True), (65520.0, False), (-70000.0, False)],
)
def test_overflow_boundary(value: float, ok: bool) -> None:
    tensor = torch.tensor([1.0, value, -2.0])
    if ok:
        result, stats = cast_to_float16("w", tensor, SOURCE)
        assert torch.isfinite(result).all()
        assert stats.max_abs == pytest.approx(abs(value))
    else:
        with pytest.raises(Float16RangeError, match="overflow to inf") as info:
            cast_to_float16("w", tensor, SOURCE)
        assert info.value.max_abs == abs(value)
        assert f"{abs(value):g}" in str(info.value)


def test_bf16_overflow() -> None:
    tensor = torch.tensor([1e5, 1.0], dtype=torch.bfloat16)
    with pytest.raises(Float16RangeError, match="overflow"):
        cast_to_float16("w", tensor, SOURCE)


def test_flush_to_zero_counted() -> None:
    tiny = [1e-9, -1e-9, 2.0**-25, 2.0**-24, 0.0, -0.0, 1.0]
    result, stats = cast_to_float16("w", torch.tensor(tiny), SOURCE)
    assert stats.flushed_to_zero == 3  # 1e-9, -1e-9 and 2**-25 (ties to even: 0); not the zeros
    assert result[3] == 2.0**-24
    summary = CastSummary()
    summary.add(stats)
    summary.add(cast_to_float16("v", torch.ones(4), SOURCE)[1])
    assert summary.flushed_to_zero == 3 and summary.flushed_by_tensor == {"w": 3}
    assert summary.n_tensors == 2 and summary.n_params == len(tiny) + 4
    assert summary.source_dtypes == {"float32": 2}


def test_non_float_and_empty() -> None:
    with pytest.raises(TypeError, match="int64, not a float tensor"):
        cast_to_float16("step", torch.arange(3), SOURCE)
    result, stats = cast_to_float16("e", torch.zeros(0, 3), SOURCE)
    assert result.dtype == torch.float16 and result.shape == (0, 3) and stats.numel == 0
