"""The ``tokenizer/`` folder every model artifact carries.

Downstream training loads it with ``transformers.AutoTokenizer``/``LlamaTokenizer``, so next to
``tokenizer.model`` it needs ``tokenizer_config.json`` and ``special_tokens_map.json``. The
SentencePiece model's SHA256 is the identity of the tokenizer: all models must share one.
"""

from __future__ import annotations

from pathlib import Path

import sentencepiece as spm

from wmtp_assets.files.atomic import atomic_copy, atomic_write_json
from wmtp_assets.files.hashing import sha256_file
from wmtp_assets.files.tokenizer_identity import TokenizerMismatchError, check_tokenizer_sha256
from wmtp_assets.models.artifact import TokenizerInfo

TOKENIZER_FILES = ("tokenizer.model", "tokenizer_config.json", "special_tokens_map.json")


def load_sentencepiece(path: Path | str) -> spm.SentencePieceProcessor:
    """Open a SentencePiece model, naming the file when it is not one."""
    try:
        return spm.SentencePieceProcessor(model_file=str(path))
    except (OSError, RuntimeError) as exc:
        raise TokenizerMismatchError(f"{path}: not a readable SentencePiece model ({exc})") from exc


def tokenizer_info(model_file: Path) -> TokenizerInfo:
    """SHA256 and vocabulary size of a SentencePiece model file."""
    return TokenizerInfo(
        sha256=sha256_file(model_file), vocab_size=load_sentencepiece(model_file).vocab_size()
    )


def write_tokenizer_folder(model_file: Path, dest: Path, expected_sha256: str) -> TokenizerInfo:
    """Copy ``tokenizer.model`` into ``dest`` with the configs transformers needs."""
    sha256 = check_tokenizer_sha256(model_file, expected_sha256)
    sp = load_sentencepiece(model_file)
    piece = sp.id_to_piece
    special = {
        "bos_token": piece(sp.bos_id()),
        "eos_token": piece(sp.eos_id()),
        "unk_token": piece(sp.unk_id()),
    }
    atomic_copy(model_file, dest / "tokenizer.model")
    atomic_write_json(
        dest / "tokenizer_config.json",
        {
            "tokenizer_class": "LlamaTokenizer",
            "vocab_size": sp.vocab_size(),
            "add_bos_token": True,
            "add_eos_token": False,
            "clean_up_tokenization_spaces": False,
            "legacy": False,
            "model_max_length": 4096,
            "pad_token": None,
            "sp_model_kwargs": {},
            **special,
        },
    )
    atomic_write_json(dest / "special_tokens_map.json", special)
    return TokenizerInfo(sha256=sha256, vocab_size=sp.vocab_size())
