"""The ``tokenizer/`` folder every model artifact carries.

Downstream training loads it with ``transformers.AutoTokenizer`` and SentencePiece, so next to
``tokenizer.model`` it holds ``tokenizer.json`` (``tokenizer_json``: the same ids as
SentencePiece, and no protobuf or conversion at load time), ``tokenizer_config.json`` and
``special_tokens_map.json``. The config names ``PreTrainedTokenizerFast``, the class that loads
``tokenizer.json`` as written: transformers 5's ``LlamaTokenizer`` rebuilds the pre-tokenizer
from the vocabulary and drops the file's normalizer, which changes the ids of text that starts
with spaces. The SentencePiece model's SHA256 is the identity of the tokenizer: all models must
share one.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

import sentencepiece as spm

from wmtp_assets.files.atomic import atomic_write_bytes, json_bytes
from wmtp_assets.files.hashing import sha256_file
from wmtp_assets.files.tokenizer_identity import TokenizerMismatchError, check_tokenizer_sha256
from wmtp_assets.models.artifact import TokenizerInfo
from wmtp_assets.models.tokenizer_json import tokenizer_json_bytes

TOKENIZER_FILES = (
    "tokenizer.model",
    "tokenizer.json",
    "tokenizer_config.json",
    "special_tokens_map.json",
)


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


def tokenizer_folder_files(model_file: Path) -> dict[str, bytes]:
    """The files of a ``tokenizer/`` folder for ``model_file``, by name (``TOKENIZER_FILES``)."""
    sp = load_sentencepiece(model_file)
    piece = sp.id_to_piece
    special = {
        "bos_token": piece(sp.bos_id()),
        "eos_token": piece(sp.eos_id()),
        "unk_token": piece(sp.unk_id()),
    }
    config = {
        "tokenizer_class": "PreTrainedTokenizerFast",
        "add_bos_token": True,
        "add_eos_token": False,
        "clean_up_tokenization_spaces": False,
        "model_max_length": 4096,
        "pad_token": None,
        **special,
    }
    model = model_file.read_bytes()
    return {
        "tokenizer.model": model,
        "tokenizer.json": tokenizer_json_bytes(model_file, hashlib.sha256(model).hexdigest()),
        "tokenizer_config.json": json_bytes(config),
        "special_tokens_map.json": json_bytes(special),
    }


def write_tokenizer_folder(model_file: Path, dest: Path, expected_sha256: str) -> TokenizerInfo:
    """Write ``dest``'s tokenizer files (``tokenizer_folder_files``), each atomically, after
    checking that ``model_file`` is the expected tokenizer."""
    sha256 = check_tokenizer_sha256(model_file, expected_sha256)
    for name, data in tokenizer_folder_files(model_file).items():
        atomic_write_bytes(dest / name, data)
    return TokenizerInfo(sha256=sha256, vocab_size=load_sentencepiece(model_file).vocab_size())
