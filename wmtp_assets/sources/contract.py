"""The contract every upstream source meets: one call shape, one lock, one result.

``Source.fetch(ref, dest)`` copies the files of one repo revision that match ``ref.patterns``
(fnmatch over repo paths) into an artifact's ``raw/`` folder ``dest`` and writes
``raw/SOURCE.json`` describing exactly what is there. Guarantees, for every implementation:

* Fetches into one artifact are serialised: ``fetch`` holds the artifact's lock
  (``files.lock``, on ``dest``'s parent, the folder conversions of the artifact lock too) and
  waits up to ``lock_timeout_s`` for it, then fails naming the holder.
* Nothing half-written ever appears under a file's name in ``raw/``: bytes land in temporary
  siblings, are verified, fsynced, then renamed into place (``files.staging``); ``SOURCE.json``
  comes last. When a fetch is about to replace a file the current ``SOURCE.json`` vouches for,
  that ``SOURCE.json`` is removed first, so a crash in the middle leaves no false record behind.
* On any error a :class:`SourceError` naming the repo and the file (or pattern) is raised and
  ``raw/`` keeps its previous complete content.
* Reruns transfer only what changed: a file whose local bytes still hash to its record, and
  whose record still matches what the source states (its SHA256, git blob id, or for
  unversioned mirrors its size and mtime), is reused.
* Several fetches may share one ``raw/`` (one dataset, one fetch per split): when the previous
  ``SOURCE.json`` describes the same repo snapshot, its other records are kept (merged); when it
  describes another snapshot, the files only it listed are deleted after the new record is
  written, so ``raw/`` never mixes snapshots.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass
from pathlib import Path

from pydantic import BaseModel, ConfigDict

from wmtp_assets.files.lock import artifact_lock
from wmtp_assets.sources.progress import Progress
from wmtp_assets.sources.provenance import Provenance, RepoType

FETCH_LOCK_TIMEOUT_S = 600.0
"""How long a fetch waits for another fetch or conversion of the same artifact: the default of
``WMTP_LOCK_TIMEOUT``, which ``source_from_settings`` applies."""


class RepoRef(BaseModel):
    """Which upstream files: a repo, a revision (branch, tag or commit) and fnmatch patterns.

    The one shape the Hub, the mirror and the demo's mirror builder take; the builder writes
    whole repo folders, so it leaves ``patterns`` empty.
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    repo_id: str
    repo_type: RepoType
    revision: str
    patterns: tuple[str, ...] = ()

    def __str__(self) -> str:
        """The repo as error messages name it."""
        return f"{self.repo_type} repo '{self.repo_id}' at revision '{self.revision}'"


@dataclass(frozen=True)
class FetchResult:
    """What one fetch delivered.

    ``files`` maps each repo path this fetch asked for to its file in ``raw/``; ``provenance`` is
    what ``SOURCE.json`` now says (it may list more files, kept from earlier fetches of the same
    snapshot); ``reused`` names the files that were already in ``raw/`` and were not transferred.
    """

    files: dict[str, Path]
    provenance: Provenance
    reused: tuple[str, ...]


class Source(ABC):
    """Fetches upstream repo files into an artifact's ``raw/`` folder (see the module contract)."""

    lock_timeout_s: float = FETCH_LOCK_TIMEOUT_S

    def fetch(self, ref: RepoRef, dest: Path, progress: Progress | None = None) -> FetchResult:
        """Make ``dest`` hold the files of ``ref``, holding the artifact's lock meanwhile.

        Every pattern must match at least one file, else :class:`SourceFileMissingError`.
        ``progress`` receives human-readable messages (bytes done, rate) during transfers.
        """
        dest = Path(dest)
        with artifact_lock(dest.parent, timeout_s=self.lock_timeout_s):
            return self._fetch(ref, dest, progress)

    @abstractmethod
    def _fetch(self, ref: RepoRef, dest: Path, progress: Progress | None) -> FetchResult:
        """The source's own fetch; the lock is held."""
