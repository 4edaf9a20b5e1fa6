"""The identity of a tokenizer: the SHA256 of its ``tokenizer.model``, compared to the required one.

Every model artifact and every token count must come from one tokenizer (the Llama-2
SentencePiece model unless ``WMTP_TOKENIZER_SHA256`` says otherwise), so model and dataset code
both ask this module and raise the same error.
"""

from __future__ import annotations

from pathlib import Path

from wmtp_assets.files.hashing import sha256_file


class TokenizerMismatchError(ValueError):
    """A ``tokenizer.model`` that is not the one the settings require, or not a tokenizer.

    ``file``, ``expected`` and ``found`` (when known) let a caller show the cause as fields.
    """

    def __init__(
        self,
        message: str,
        *,
        file: Path | str | None = None,
        expected: str | None = None,
        found: str | None = None,
    ) -> None:
        super().__init__(message)
        self.file = None if file is None else str(file)
        self.expected = expected
        self.found = found


def check_tokenizer_sha256(path: Path | str, expected_sha256: str) -> str:
    """Return the file's SHA256, or raise naming the file, both hashes and the variable."""
    actual = sha256_file(path)
    if actual != expected_sha256:
        raise TokenizerMismatchError(
            f"{path}: SHA256 {actual} differs from the required {expected_sha256} "
            "(WMTP_TOKENIZER_SHA256). Every model and dataset must share one tokenizer.",
            file=path,
            expected=expected_sha256,
            found=actual,
        )
    return actual
