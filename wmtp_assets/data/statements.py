"""``stats/<split>_statements.json``: the split's problem statements as digests, written at
processing time so that disjointness of splits compares a few hundred kilobytes instead of
re-parsing every JSONL (the 4 GB train split once per partition it must stay apart from).

Contents: the dataset and split, ``jsonl_sha256`` (the JSONL the digests describe: the same
value its stats and index record, so a digest of other bytes is refused), the algorithm, and the
sorted, distinct ``statement_digest`` of every record's ``instruction`` in hex. A check proves in
one pass over the JSONL that the digests are exactly its instructions
(``validate.split_checks.statements_match_split``); the disjointness check then trusts them.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from wmtp_assets.files.json_files import read_json_model

DIGEST_SIZE = 12
Algorithm = Literal["blake2b-96 of the instruction's UTF-8 bytes"]
ALGORITHM: Algorithm = "blake2b-96 of the instruction's UTF-8 bytes"


def statement_digest(instruction: str) -> bytes:
    """The digest of one problem statement (exact text; 96 bits: collisions are negligible for
    the ~14k statements of all splits together)."""
    data = instruction.encode("utf-8", "surrogatepass")
    return hashlib.blake2b(data, digest_size=DIGEST_SIZE).digest()


class SplitStatements(BaseModel):
    model_config = ConfigDict(extra="forbid")

    dataset: str
    split: str
    jsonl_sha256: str = Field(description="SHA256 of the JSONL whose instructions these are")
    algorithm: Algorithm = ALGORITHM
    statements: list[str] = Field(description="sorted distinct digests, hex")

    def digests(self) -> set[bytes]:
        return {bytes.fromhex(h) for h in self.statements}


def statements_json(dataset: str, split: str, jsonl_sha256: str, digests: Iterable[bytes]) -> str:
    """The file's text (one digest per line: diffable, and small: ~27 bytes per problem)."""
    document = SplitStatements(
        dataset=dataset,
        split=split,
        jsonl_sha256=jsonl_sha256,
        statements=sorted({d.hex() for d in digests}),
    )
    return document.model_dump_json(indent=0) + "\n"


def read_statements(path: Path) -> SplitStatements:
    """The file as a model; a bad file raises one line naming it."""
    return read_json_model(SplitStatements, path)
