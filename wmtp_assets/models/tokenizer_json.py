"""``tokenizer.json``: the SentencePiece model as a Hugging Face ``tokenizers`` pipeline, proven.

Why the file exists. Without it, transformers converts ``tokenizer.model`` on every load, and
that path has two faults: it parses the model with protobuf through sentencepiece's generated
code, which must match the installed protobuf (sentencepiece 0.2.3 ships protobuf-7 code while
Dagster 1.13.27, which dagster-k8s and dagster-dg-cli pin, caps protobuf below 7); and
transformers 5 ranks the BPE merges by piece id and uses a Metaspace pre-tokenizer, so runs of
spaces and leading spaces encode differently from SentencePiece (measured with transformers
5.25 and the Llama-2 model: ``'a  b   c'`` gives ``[263, 259, 29890, 259, 274]``, SentencePiece
``[263, 29871, 289, 259, 274]``; 1,326 of 676 x 2 HumanEval-based probes differed).

How it is built. transformers' own SentencePiece-faithful builder
(``SpmConverter.build_tokenizer_from_spm_proto`` in legacy mode: merges ranked by piece score,
the model's normalizer spec and dummy prefix), plus Llama's special tokens and its BOS template.
Nothing is written unless every text of ``PROBES`` encodes to exactly
``SentencePieceProcessor.encode``'s ids (``TokenizerMismatchError`` otherwise), so another
transformers version cannot publish a different tokenizer silently.

One difference is kept on purpose: text that spells a special token (``"<s>"``, ``"</s>"``,
``"<unk>"``) becomes that token, as in every Hugging Face tokenizer; SentencePiece encodes it as
plain text. The probes avoid those strings.
"""

from __future__ import annotations

import functools
from pathlib import Path

import sentencepiece as spm
from tokenizers import AddedToken, Tokenizer, processors

from wmtp_assets.files.tokenizer_identity import TokenizerMismatchError

PROBES: tuple[str, ...] = (
    "def f(x):\n    return x + 1\n",
    "    indented = 4\n\tand a tab\n",
    "  two leading spaces",
    " one leading space",
    "a  b   c    d",
    "trailing spaces   ",
    "\n\nblank lines first\r\n",
    "▁already escaped ▁",
    "x = {'k': [1, 2.5e-3]}  # comment",
    "한국어와 日本語, emoji 🤖👍🏽, accents é e\u0301",
    "\x00\x07 control bytes",
    "",
    " ",
    "   ",
)
"""Texts whose ids must equal SentencePiece's: whitespace runs and leading spaces (where the
converters differ), code, multi-byte text (byte fallback), control bytes, empty text."""


def build_tokenizer(model_file: Path) -> Tokenizer:
    """The ``tokenizers`` pipeline of ``model_file``, proven against SentencePiece on ``PROBES``."""
    from transformers.convert_slow_tokenizer import SpmConverter, import_protobuf

    sp = spm.SentencePieceProcessor(model_file=str(model_file))
    proto = import_protobuf().ModelProto()  # type: ignore[no-untyped-call]
    proto.ParseFromString(model_file.read_bytes())
    vocab = {piece.piece: i for i, piece in enumerate(proto.pieces)}
    try:
        tokenizer: Tokenizer = SpmConverter.build_tokenizer_from_spm_proto(  # type: ignore[no-untyped-call]
            proto, vocab, legacy=True
        )
    except TypeError as exc:  # an older transformers without the SentencePiece-faithful builder
        raise TokenizerMismatchError(
            f"{model_file}: this transformers cannot build a SentencePiece-faithful "
            f"tokenizer.json ({exc}); upgrade transformers"
        ) from exc
    special = [sp.unk_id(), sp.bos_id(), sp.eos_id()]
    tokenizer.add_special_tokens(
        [AddedToken(sp.id_to_piece(i), special=True, normalized=False) for i in special]
    )
    bos = sp.id_to_piece(sp.bos_id())
    tokenizer.post_processor = processors.TemplateProcessing(
        single=f"{bos} $A", pair=f"{bos} $A {bos} $B", special_tokens=[(bos, sp.bos_id())]
    )
    for text in PROBES:
        ours, reference = tokenizer.encode(text, add_special_tokens=False).ids, sp.encode(text)
        if ours != reference:
            raise TokenizerMismatchError(
                f"{model_file}: tokenizer.json would encode {text!r} as {ours[:12]}, "
                f"SentencePiece as {reference[:12]}; not written"
            )
    return tokenizer


@functools.lru_cache(maxsize=4)
def tokenizer_json_bytes(model_file: Path, sha256: str) -> bytes:
    """``tokenizer.json`` for ``model_file``, whose SHA256 is ``sha256`` (the cache key: one
    build, ~1.5 s, per tokenizer and process). Deterministic: same model, same bytes."""
    return build_tokenizer(model_file).to_str().encode()
