"""The tokenizers the demo and the tests use.

``LLAMA2_TOKENIZER`` is the real Llama-2 ``tokenizer.model``, vendored as package data (licence
notice beside it): the demo mirror ships it for both models, so every token count the demo, the
tests and the benchmarks produce is a real Llama-2 count and the default
``WMTP_TOKENIZER_SHA256`` holds.

``train_demo_tokenizer`` trains a small tokenizer of the same kind (BPE with byte fallback,
``<unk>``=0, ``<s>``=1, ``</s>``=2, no pad) but another vocabulary: only for tests that need a
tokenizer that *differs* from the required one (mismatch errors, tiny models).
"""

from __future__ import annotations

import builtins
import io
import keyword
import random
import textwrap
from collections.abc import Iterator
from pathlib import Path

import sentencepiece as spm

from wmtp_assets.files.atomic import atomic_write_bytes

LLAMA2_TOKENIZER = Path(__file__).parent / "llama2_tokenizer" / "tokenizer.model"
DEMO_VOCAB_SIZE = 1024

_SNIPPETS = (
    "Given an array of n integers, print the maximum sum of a contiguous subarray.",
    "Write a function to find the shared elements from the given two lists.",
    "Return true if the string is a palindrome, and false otherwise.",
    "The first line contains t, the number of test cases. Each test case has two integers.",
    "def solve(n, a):\n    best = 0\n    for x in a:\n"
    "        best = max(best, x)\n    return best\n",
    "import sys\ninput = sys.stdin.readline\nn = int(input())\n"
    "print(sum(map(int, input().split())))\n",
    "for _ in range(int(input())):\n    s = input().strip()\n"
    "    print('YES' if s == s[::-1] else 'NO')\n",
    "assert similar_elements((3, 4, 5, 6), (5, 7, 4, 10)) == (4, 5)\n",
    'def has_close_elements(numbers: list[float], threshold: float) -> bool:\n    """Check."""\n',
    "while l < r:\n    m = (l + r) // 2\n    if ok(m):\n"
    "        r = m\n    else:\n        l = m + 1\n",
)


def demo_corpus(lines: int = 4000) -> Iterator[str]:
    """Deterministic English-and-Python text, varied enough for a 1k-piece vocabulary."""
    rng = random.Random(0)
    words = sorted({*keyword.kwlist, *dir(builtins), *" ".join(_SNIPPETS).split()})
    for i in range(lines):
        snippet = textwrap.dedent(_SNIPPETS[i % len(_SNIPPETS)])
        names = "_".join(rng.choice(words).lower() for _ in range(rng.randint(1, 3)))
        yield f"{snippet}{names} = {rng.randint(0, 10**6)}  # {rng.choice(words)} {names}"


def train_demo_tokenizer(dest: Path | str, vocab_size: int = DEMO_VOCAB_SIZE) -> Path:
    """Train a small Llama-style SentencePiece model (not Llama-2's) and write it to ``dest``."""
    model = io.BytesIO()
    spm.SentencePieceTrainer.train(
        sentence_iterator=demo_corpus(),
        model_writer=model,
        model_type="bpe",
        vocab_size=vocab_size,
        byte_fallback=True,
        split_digits=True,
        unk_id=0,
        bos_id=1,
        eos_id=2,
        pad_id=-1,
        character_coverage=1.0,
        num_threads=1,
        add_dummy_prefix=True,
        remove_extra_whitespaces=False,
        normalization_rule_name="identity",
        minloglevel=2,
    )
    return atomic_write_bytes(dest, model.getvalue())
