"""The checks on a ``raw/`` folder: its bytes are still the ones fetched, and a model's upstream
files agree with each other (no Dagster).

Disks rot and people edit files; the fetch's record (``raw/SOURCE.json``) says what every file
hashed to when it was written, so the check re-hashes them all against it, and refuses a file it
does not list (readers of ``raw/`` glob for shards, so an unfetched one would be read). Upstream
can also publish a config that contradicts its own checkpoint; the conversion refuses that, and
this check says so before anyone converts.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Literal

from wmtp_assets.models.checkpoint_reader import open_checkpoint, open_hf_shards
from wmtp_assets.models.convert_meta import CHECKPOINT, PARAMS, TOKENIZER
from wmtp_assets.models.tokenizer_files import tokenizer_info
from wmtp_assets.models.upstream_consistency import (
    Contradiction,
    hf_llama_contradictions,
    meta_contradictions,
)
from wmtp_assets.sources.provenance import SOURCE_FILE, read_provenance, verify_raw
from wmtp_assets.validate.outcome import CheckOutcome, counted


def raw_matches_source(
    raw_dir: Path,
    wanted: Callable[[str], bool] | None = None,
    claimed: Callable[[str], bool] | None = None,
) -> CheckOutcome:
    """Every file ``raw/SOURCE.json`` lists (for a dataset partition: the split's shards) is
    present and re-hashes to its recorded SHA256, and no file it does not list is there (among
    those ``claimed`` accepts: for a partition, its split's and those of no split); a listing
    without any such file fails."""
    findings = verify_raw(raw_dir, wanted, claimed)
    if findings:
        first = findings[0]
        if first.unlisted:
            expected, found = f"only the files {SOURCE_FILE} lists", "a file it does not list"
        else:
            expected = first.expected_sha256 or "a valid record"
            found = first.found_sha256 or "missing"
        return CheckOutcome.fail(
            first.message, file=first.file, expected=expected, found=found, bad_files=len(findings)
        )
    provenance = read_provenance(raw_dir)
    assert provenance is not None, "verify_raw reports a missing record"
    checked = [r for r in provenance.files if wanted is None or wanted(r.path)]
    if not checked:
        return CheckOutcome.fail(
            f"{raw_dir / SOURCE_FILE}: lists no file of this asset; expected its upstream files",
            file=str(raw_dir / SOURCE_FILE),
        )
    return CheckOutcome.ok(
        f"{counted(len(checked), 'file')} re-hashed, all as {SOURCE_FILE} records",
        files=len(checked),
        bytes=sum(r.size for r in checked),
    )


UpstreamFormat = Literal["meta", "hf_llama"]


def upstream_files_agree(raw_dir: Path, fmt: UpstreamFormat) -> CheckOutcome:
    """The upstream config (Meta ``params.json``, HF ``config.json``) agrees with its checkpoint
    (dimensions, layers, vocabulary from the tensor shapes; ``n_heads`` and ``rope_theta`` from
    the stored RoPE frequencies where the checkpoint has them) and with the tokenizer's piece
    count. Reads headers and the RoPE tensor only."""
    vocab = tokenizer_info(raw_dir / TOKENIZER).vocab_size
    found: list[Contradiction]
    if fmt == "meta":
        with open_checkpoint(raw_dir / CHECKPOINT) as checkpoint:
            found = meta_contradictions(raw_dir / PARAMS, checkpoint, vocab)
        config = raw_dir / PARAMS
    else:
        with open_hf_shards(raw_dir) as checkpoint:
            found = hf_llama_contradictions(raw_dir / "config.json", checkpoint, vocab)
        config = raw_dir / "config.json"
    if found:
        first = found[0]
        more = f" (and {len(found) - 1} more)" if len(found) > 1 else ""
        return CheckOutcome.fail(
            first.message + more,
            file=first.file,
            field=first.field,
            stated=first.stated,
            implied=first.implied,
            contradictions=[c.message for c in found],
        )
    return CheckOutcome.ok(f"{config.name} agrees with the checkpoint and the tokenizer ({vocab})")
