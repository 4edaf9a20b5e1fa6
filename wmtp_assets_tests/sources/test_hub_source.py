"""HubSource through the real huggingface_hub client against the local Hub stand-in."""

from __future__ import annotations

import hashlib
import json
import logging
import os
import socket
import subprocess
import sys
import time
import traceback
from pathlib import Path

import pytest
from huggingface_hub import hf_hub_download

from wmtp_assets.files.atomic import TMP_MARK
from wmtp_assets.sources import (
    SOURCE_FILE,
    ChecksumMismatchError,
    HubSource,
    SourceAuthError,
    SourceError,
    SourceFileMissingError,
    SourceUnreachableError,
    read_provenance,
)
from wmtp_assets_tests.sources.hub_standin import Drop, HubStandin
from wmtp_assets_tests.sources.refs import ref

MTP = "facebook/multi-token-prediction"
MTP_FILES = {
    "7B_1T_4/consolidated.pth": os.urandom(300_000),
    "7B_1T_4/params.json": b'{"dim": 4096, "n_future_tokens": 4}',
    "tokenizer.model": os.urandom(5_000),
    "README.md": b"# card\n",
}
MTP_PATTERNS = ["7B_1T_4/*", "tokenizer.model"]
CODE_CONTESTS = "deepmind/code_contests"
CC_FILES = {
    "data/train-00000-of-00002-aaaa.parquet": os.urandom(40_000),
    "data/train-00001-of-00002-bbbb.parquet": os.urandom(30_000),
    "data/valid-00000-of-00001-cccc.parquet": os.urandom(20_000),
    "README.md": b"# code contests\n",
}
REPO_ROOT = Path(__file__).resolve().parents[2]


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def test_model_repo_is_fetched_verified_and_recorded(hub: HubStandin, tmp_path: Path) -> None:
    repo = hub.add_repo(MTP, MTP_FILES)
    raw = tmp_path / "raw"
    messages: list[str] = []

    result = HubSource(endpoint=hub.url).fetch(
        ref(MTP, "model", "main", MTP_PATTERNS), raw, progress=messages.append
    )

    expected = ["7B_1T_4/consolidated.pth", "7B_1T_4/params.json", "tokenizer.model"]
    assert sorted(result.files) == expected
    for path in expected:
        assert result.files[path] == raw / path
        assert (raw / path).read_bytes() == MTP_FILES[path]
    assert not (raw / "README.md").exists()
    provenance = result.provenance
    assert provenance == read_provenance(raw)
    assert json.loads((raw / SOURCE_FILE).read_text())["resolved_commit"] == repo.branches["main"]
    assert (provenance.kind, provenance.location, provenance.repo_id) == ("hub", hub.url, MTP)
    assert (provenance.requested_revision, provenance.resolved_commit) == (
        "main",
        repo.branches["main"],
    )
    assert [(r.path, r.size, r.sha256) for r in provenance.files] == [
        (path, len(MTP_FILES[path]), sha256(MTP_FILES[path])) for path in expected
    ]
    assert result.reused == ()
    assert any("consolidated.pth" in m and "KiB" in m and "/s" in m for m in messages)
    assert sorted(p.name for p in tmp_path.iterdir()) == [".lock", "raw"]  # downloads removed
    assert not list(raw.rglob(f"*{TMP_MARK}*"))  # every staged file renamed into place


def test_dataset_repo_with_wildcard(hub: HubStandin, tmp_path: Path) -> None:
    repo = hub.add_repo(CODE_CONTESTS, CC_FILES, repo_type="dataset")

    result = HubSource(endpoint=hub.url).fetch(
        ref(CODE_CONTESTS, "dataset", "main", ["data/train-*.parquet"]), tmp_path / "raw"
    )

    assert sorted(result.files) == sorted(p for p in CC_FILES if "/train-" in p)
    for path, local in result.files.items():
        assert local.read_bytes() == CC_FILES[path]
    assert result.provenance.repo_type == "dataset"
    assert result.provenance.resolved_commit == repo.branches["main"]
    assert all(path.startswith(f"/datasets/{CODE_CONTESTS}/resolve/") for path in hub.downloads())


def test_pinned_revision_yields_its_bytes_and_commit(hub: HubStandin, tmp_path: Path) -> None:
    repo = hub.add_repo(MTP, MTP_FILES)
    old = repo.branches["main"]
    repo.branches["v1"] = old
    new = repo.commit({**MTP_FILES, "7B_1T_4/params.json": b'{"dim": 8}'})
    source = HubSource(endpoint=hub.url)

    for revision in (old, "v1"):
        result = source.fetch(
            ref(MTP, "model", revision, ["7B_1T_4/params.json"]), tmp_path / revision
        )
        assert result.files["7B_1T_4/params.json"].read_bytes() == MTP_FILES["7B_1T_4/params.json"]
        assert result.provenance.resolved_commit == old
        assert result.provenance.requested_revision == revision

    latest = source.fetch(ref(MTP, "model", "main", ["7B_1T_4/params.json"]), tmp_path / "main")
    assert latest.files["7B_1T_4/params.json"].read_bytes() == b'{"dim": 8}'
    assert latest.provenance.resolved_commit == new


@pytest.mark.parametrize("path", ["7B_1T_4/consolidated.pth", "7B_1T_4/params.json"])
def test_corrupted_byte_is_refused_and_raw_unchanged(
    hub: HubStandin, tmp_path: Path, path: str
) -> None:
    """LFS files are checked by SHA256, regular git files by their blob id."""
    repo = hub.add_repo(MTP, MTP_FILES)
    raw = tmp_path / "raw"
    source = HubSource(endpoint=hub.url)
    source.fetch(ref(MTP, "model", "main", MTP_PATTERNS), raw)
    record_before = (raw / SOURCE_FILE).read_bytes()
    changed = {**MTP_FILES, path: MTP_FILES[path] + b" changed"}
    repo.commit(changed)
    repo.corrupt.add(path)

    with pytest.raises(ChecksumMismatchError) as caught:
        source.fetch(ref(MTP, "model", "main", MTP_PATTERNS), raw)

    assert MTP in str(caught.value) and path in str(caught.value)
    assert (raw / path).read_bytes() == MTP_FILES[path]  # the previous complete file
    assert (raw / SOURCE_FILE).read_bytes() == record_before
    assert sorted(p.name for p in tmp_path.iterdir()) == [".lock", "raw"]
    assert not list(raw.rglob(f"*{TMP_MARK}*"))


def test_connection_dropped_once_is_resumed(hub: HubStandin, tmp_path: Path) -> None:
    repo = hub.add_repo(MTP, MTP_FILES)
    path = "7B_1T_4/consolidated.pth"
    repo.drops[path] = Drop(after=100_000, always=False)

    result = HubSource(endpoint=hub.url).fetch(ref(MTP, "model", "main", [path]), tmp_path / "raw")

    assert result.files[path].read_bytes() == MTP_FILES[path]
    assert repo.drops[path].fired == 1
    assert len([p for p in hub.downloads() if p.endswith(path)]) == 2  # first try + resume


def test_connection_dropped_always_fails_cleanly(hub: HubStandin, tmp_path: Path) -> None:
    repo = hub.add_repo(MTP, MTP_FILES)
    path = "7B_1T_4/consolidated.pth"
    repo.drops[path] = Drop(after=100_000, always=True)
    raw = tmp_path / "raw"

    with pytest.raises(SourceError) as caught:
        HubSource(endpoint=hub.url).fetch(ref(MTP, "model", "main", MTP_PATTERNS), raw)

    assert MTP in str(caught.value) and path in str(caught.value)
    assert [p.name for p in tmp_path.iterdir()] == [".lock"]  # neither raw/ nor a leftover


def test_gated_repo_needs_the_right_token(
    hub: HubStandin, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    secret = "hf_right_token_0123456789"
    hub.add_repo(MTP, MTP_FILES, token=secret)

    with pytest.raises(SourceAuthError) as no_token:
        HubSource(endpoint=hub.url).fetch(ref(MTP, "model", "main", MTP_PATTERNS), tmp_path / "a")
    assert "HF_TOKEN" in str(no_token.value) and MTP in str(no_token.value)
    assert "licence" in str(no_token.value)

    wrong = "hf_wrong_token_9876543210"
    with pytest.raises(SourceAuthError) as wrong_token:
        HubSource(endpoint=hub.url, token=wrong).fetch(
            ref(MTP, "model", "main", MTP_PATTERNS), tmp_path / "b"
        )
    assert wrong not in str(wrong_token.value) and secret not in str(wrong_token.value)
    assert not (tmp_path / "a").exists() and not (tmp_path / "b").exists()

    by_arg = HubSource(endpoint=hub.url, token=secret).fetch(
        ref(MTP, "model", "main", MTP_PATTERNS), tmp_path / "c"
    )
    assert by_arg.files["tokenizer.model"].read_bytes() == MTP_FILES["tokenizer.model"]
    monkeypatch.setenv("HF_TOKEN", secret)
    by_env = HubSource(endpoint=hub.url).fetch(
        ref(MTP, "model", "main", MTP_PATTERNS), tmp_path / "d"
    )
    assert by_env.provenance.files == by_arg.provenance.files
    assert secret not in (tmp_path / "d" / SOURCE_FILE).read_text()


def test_unreachable_hub_fails_fast(tmp_path: Path) -> None:
    with socket.socket() as sock:  # a port nobody listens on
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    started = time.monotonic()

    with pytest.raises(SourceUnreachableError) as caught:
        HubSource(endpoint=f"http://127.0.0.1:{port}").fetch(
            ref(MTP, "model", "main", ["tokenizer.model"]), tmp_path / "raw"
        )

    assert time.monotonic() - started < 5
    assert MTP in str(caught.value) and "tokenizer.model" in str(caught.value)
    assert not (tmp_path / "raw").exists()


def test_missing_pattern_revision_or_repo(hub: HubStandin, tmp_path: Path) -> None:
    hub.add_repo(MTP, MTP_FILES)
    source = HubSource(endpoint=hub.url)

    with pytest.raises(SourceFileMissingError) as pattern:
        source.fetch(ref(MTP, "model", "main", ["tokenizer.model", "7B_2T_4/*"]), tmp_path / "raw")
    assert all(part in str(pattern.value) for part in (MTP, "'main'", "7B_2T_4/*"))

    with pytest.raises(SourceFileMissingError) as revision:
        source.fetch(ref(MTP, "model", "no-such-branch", ["tokenizer.model"]), tmp_path / "raw")
    assert "no-such-branch" in str(revision.value)

    with pytest.raises(SourceFileMissingError):
        source.fetch(ref("facebook/nope", "model", "main", ["tokenizer.model"]), tmp_path / "raw")
    assert hub.downloads() == []
    assert not (tmp_path / "raw").exists()


def test_rerun_transfers_only_what_changed(hub: HubStandin, tmp_path: Path) -> None:
    repo = hub.add_repo(MTP, MTP_FILES)
    raw = tmp_path / "raw"
    source = HubSource(endpoint=hub.url)
    first = source.fetch(ref(MTP, "model", "main", MTP_PATTERNS), raw)
    hub.requests.clear()

    again = source.fetch(ref(MTP, "model", "main", MTP_PATTERNS), raw)

    assert hub.downloads() == []
    assert [method for method, _ in hub.requests] == ["GET"]  # the listing only
    assert again.provenance.files == first.provenance.files
    assert sorted(again.reused) == sorted(first.files)

    repo.commit({**MTP_FILES, "7B_1T_4/params.json": b'{"dim": 8}'})
    updated = source.fetch(ref(MTP, "model", "main", MTP_PATTERNS), raw)
    assert [p.rsplit("/", 1)[-1] for p in hub.downloads()] == ["params.json"]
    assert sorted(updated.reused) == ["7B_1T_4/consolidated.pth", "tokenizer.model"]
    assert (raw / "7B_1T_4/params.json").read_bytes() == b'{"dim": 8}'
    assert read_provenance(raw) == updated.provenance


def test_remote_path_escaping_dest_is_refused(hub: HubStandin, tmp_path: Path) -> None:
    hub.add_repo("evil/repo", {"../evil": b"owned", "ok.json": b"{}"})
    raw = tmp_path / "inner" / "raw"

    with pytest.raises(SourceError) as caught:
        HubSource(endpoint=hub.url).fetch(ref("evil/repo", "model", "main", ["*"]), raw)

    assert "../evil" in str(caught.value)
    assert not (tmp_path / "inner" / "evil").exists() and not (tmp_path / "evil").exists()
    assert not raw.exists()
    assert hub.downloads() == []


OFFLINE_SCRIPT = """
import json, sys
from pathlib import Path
from wmtp_assets.sources import HubSource, RepoRef, SourceUnreachableError
tmp = Path(sys.argv[1])
def ref(patterns):
    return RepoRef(repo_id="%(repo)s", repo_type="model", revision="main", patterns=patterns)
source = HubSource()  # the endpoint comes from HF_ENDPOINT
out = {}
raw = source.fetch(ref(%(patterns)r), tmp / "online" / "raw")
out["raw"] = [sorted(raw.reused), raw.provenance.model_dump(mode="json")]
cached = source.fetch(ref(%(patterns)r), tmp / "fresh" / "raw")
out["cache"] = {p: f.read_bytes().hex() for p, f in cached.files.items()}
out["cache_commit"] = cached.provenance.resolved_commit
out["cache_location"] = cached.provenance.location
try:
    source.fetch(ref(["README.md"]), tmp / "other" / "raw")
except SourceUnreachableError as exc:
    out["error"] = str(exc)
print(json.dumps(out))
"""


def test_offline_mode_serves_raw_or_cache_only(hub: HubStandin, tmp_path: Path) -> None:
    """HF_HUB_OFFLINE and HF_ENDPOINT are read at import by the library: a fresh interpreter."""
    repo = hub.add_repo(MTP, MTP_FILES)
    online = HubSource(endpoint=hub.url).fetch(
        ref(MTP, "model", "main", MTP_PATTERNS), tmp_path / "online" / "raw"
    )
    cache = tmp_path / "hf-cache"
    for path in online.files:
        hf_hub_download(MTP, path, endpoint=hub.url, cache_dir=cache)
    script = OFFLINE_SCRIPT % {"repo": MTP, "patterns": MTP_PATTERNS}
    env = {
        **os.environ,
        "HF_HUB_OFFLINE": "1",
        "HF_ENDPOINT": hub.url,
        "HF_HUB_CACHE": str(cache),
        "HF_HOME": str(tmp_path / "hf-home"),
        "PYTHONPATH": str(REPO_ROOT),
    }

    done = subprocess.run(
        [sys.executable, "-c", script, str(tmp_path)],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )

    out = json.loads(done.stdout)
    assert out["raw"] == [sorted(online.files), online.provenance.model_dump(mode="json")]
    assert out["cache"] == {p: MTP_FILES[p].hex() for p in online.files}
    assert out["cache_commit"] == repo.branches["main"]
    assert out["cache_location"] == hub.url
    assert "HF_HUB_OFFLINE" in out["error"] and MTP in out["error"]
    assert not (tmp_path / "other" / "raw").exists()


def test_token_echoed_by_the_hub_reaches_no_error_chain_log_or_output(
    hub: HubStandin,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """A Hub or proxy that echoes the Authorization header must not leak HF_TOKEN anywhere.

    Logs at INFO and above: the HTTP library's DEBUG wire trace prints raw response headers by
    design, and whoever turns it on asks for exactly that.
    """
    secret = "hf_echoed_secret_5555555555"
    repo = hub.add_repo(MTP, MTP_FILES, token="hf_right_token_0123456789")
    repo.echo_authorization = True
    monkeypatch.setenv("HF_TOKEN", secret)
    caplog.set_level(logging.INFO)
    messages: list[str] = []

    with pytest.raises(SourceAuthError) as caught:
        HubSource(endpoint=hub.url).fetch(
            ref(MTP, "model", "main", MTP_PATTERNS), tmp_path / "raw", progress=messages.append
        )

    assert any(secret in error for error in hub.errors)  # the stand-in did echo it
    error = caught.value
    assert error.__cause__ is None and error.__context__ is None
    rendered = [str(error), repr(error), "".join(traceback.format_exception(error))]
    assert all(secret not in text for text in rendered)
    assert MTP in str(error) and "HF_TOKEN" in str(error)
    assert secret not in caplog.text
    out = capsys.readouterr()
    assert secret not in out.out + out.err + "".join(messages)


def test_flipped_byte_in_raw_is_fetched_again_not_reused(hub: HubStandin, tmp_path: Path) -> None:
    """Same size, same mtime, a record that still matches the Hub: only the bytes tell."""
    hub.add_repo(MTP, MTP_FILES)
    raw = tmp_path / "raw"
    source = HubSource(endpoint=hub.url)
    source.fetch(ref(MTP, "model", "main", MTP_PATTERNS), raw)
    path = "7B_1T_4/consolidated.pth"
    local = raw / path
    before = local.stat()
    rotten = bytearray(local.read_bytes())
    rotten[len(rotten) // 3] ^= 0x01
    local.write_bytes(rotten)
    os.utime(local, ns=(before.st_atime_ns, before.st_mtime_ns))
    hub.requests.clear()

    again = source.fetch(ref(MTP, "model", "main", MTP_PATTERNS), raw)

    assert sorted(again.reused) == ["7B_1T_4/params.json", "tokenizer.model"]
    assert [p.rsplit("/", 1)[-1] for p in hub.downloads()] == ["consolidated.pth"]
    assert local.read_bytes() == MTP_FILES[path]
    assert {r.path: r.sha256 for r in again.provenance.files}[path] == sha256(MTP_FILES[path])
