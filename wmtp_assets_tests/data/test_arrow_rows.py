from __future__ import annotations

import pyarrow as pa

from wmtp_assets.data.arrow_rows import has_invalid_text, to_rows

SOLUTIONS = pa.struct([("language", pa.list_(pa.int64())), ("solution", pa.list_(pa.string()))])
RAW = pa.struct([("language", pa.list_(pa.int64())), ("solution", pa.list_(pa.binary()))])


def test_valid_batches_take_the_fast_path() -> None:
    batch = pa.record_batch({"name": ["é", None]})
    assert to_rows(batch) == ([{"name": "é"}, {"name": None}], False)


def test_invalid_utf8_is_kept_as_surrogates_not_raised() -> None:
    raw = pa.array([{"language": [3, 3], "solution": [b"ok \xc3\xa9", b"bad \xff"]}], RAW)
    batch = pa.record_batch({"name": pa.array(["p"]), "solutions": raw.view(SOLUTIONS)})
    rows, lenient = to_rows(batch)
    assert lenient
    good, bad = rows[0]["solutions"]["solution"]
    assert good == "ok é" and rows[0]["name"] == "p"
    assert not has_invalid_text(good, lenient)
    assert has_invalid_text(bad, lenient)
    assert bad.encode("utf-8", "surrogateescape") == b"bad \xff"


def test_nul_is_invalid_text() -> None:
    assert has_invalid_text("a\x00b", False)
    assert not has_invalid_text("a\\x00b", False)
