from __future__ import annotations

import pytest

from wmtp_assets.data.convert_base import BadKeyError, disambiguate, require_unique


def test_repeated_names_get_suffixes_in_row_order() -> None:
    assert disambiguate(["a", "b", "a", "a"]) == ["a", "b", "a#2", "a#3"]


def test_suffixes_never_collide_with_real_names() -> None:
    keys = disambiguate(["x#2", "x", "x", "x", "x#3", "x#2"])
    assert keys == ["x#2", "x", "x#3", "x#4", "x#3#2", "x#2#2"]
    assert len(set(keys)) == len(keys)


def test_require_unique() -> None:
    assert require_unique(["a", "b"]) == ["a", "b"]
    with pytest.raises(BadKeyError, match="repeats") as info:
        require_unique(["a", "b", "a"])
    assert info.value.row == 2
    with pytest.raises(BadKeyError) as info:
        require_unique(["a", None])
    assert info.value.row == 1
