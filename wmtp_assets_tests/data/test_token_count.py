from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import pytest
import sentencepiece as spm

from wmtp_assets.data.token_count import TokenCounter

TEXTS = ["", "def f(x):\n    return x + 1\n", "héllo wörld ☃ 漢字", "   leading spaces", "x" * 500]


@pytest.fixture(scope="module")
def counter(tokenizer: Path) -> TokenCounter:
    return TokenCounter(tokenizer, num_threads=2)


def test_counts_equal_encode_without_bos_eos(tokenizer: Path, counter: TokenCounter) -> None:
    sp = spm.SentencePieceProcessor(model_file=str(tokenizer))
    assert counter.count(TEXTS) == [len(sp.encode(t)) for t in TEXTS]
    assert counter.count(TEXTS)[0] == 0
    assert 1 not in sp.encode(TEXTS[1])  # no <s>
    assert counter.count([]) == []


def test_lower_bound_is_a_lower_bound(counter: TokenCounter) -> None:
    assert counter.max_piece_chars is not None and counter.max_piece_chars > 1
    texts = [*TEXTS, "☃" * 300, "abc " * 400, "\n" * 100]
    for text, n in zip(texts, counter.count(texts), strict=True):
        assert counter.lower_bound(text) <= n


def test_within_budget_is_exact_and_over_budget_skips_the_tokenizer(
    counter: TokenCounter, monkeypatch: pytest.MonkeyPatch
) -> None:
    huge = "ab" * 2_000_000  # a 4 MB "solution": provably over any 2,048-token budget
    small = "print(1)\n"
    seen: list[list[str]] = []
    original = counter.count

    def spy(texts: Sequence[str]) -> list[int]:
        seen.append(list(texts))
        return original(texts)

    monkeypatch.setattr(counter, "count", spy)
    result = counter.count_within([small, huge, small], [2048, 2048, 0])
    monkeypatch.undo()
    assert result == [original([small])[0], None, None]  # a non-empty text never fits 0 tokens
    assert seen == [[small]]


def test_a_text_just_over_the_bound_threshold_is_still_counted(counter: TokenCounter) -> None:
    assert counter.max_piece_chars is not None
    text = "a" * (10 * counter.max_piece_chars + 1)  # longer than budget * max_piece_chars
    (n,) = counter.count_within([text], [10])
    assert n is None or n > 10
    (m,) = counter.count([text])
    assert (n is None) == (m > 10)
