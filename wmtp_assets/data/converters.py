"""Which converter module handles which dataset (each module implements ``Converter``)."""

from __future__ import annotations

from wmtp_assets.data import convert_codecontests, convert_humaneval, convert_mbpp
from wmtp_assets.data.convert_base import Converter

CONVERTERS: dict[str, Converter] = {
    "codecontests": convert_codecontests,
    "mbpp": convert_mbpp,
    "humaneval": convert_humaneval,
}
