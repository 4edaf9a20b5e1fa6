"""A local HTTP stand-in of the Hugging Face Hub, for tests (no network, no monkeypatching).

It serves fixture repos to the real ``huggingface_hub`` client over 127.0.0.1 and implements
what that client (2.4.0) calls while listing and downloading:

* ``GET /api/{models|datasets}/{org}/{name}[/revision/{rev}][?blobs=true]`` — ``repo_info``:
  ``id``, ``sha`` (the commit), ``gated`` and ``siblings`` (with ``blobs=true`` also ``size``,
  ``blobId`` and, for LFS files, ``lfs: {size, sha256, pointerSize}``).
* ``HEAD``/``GET /{org}/{name}/resolve/{rev}/{path}`` and ``/datasets/{org}/{name}/resolve/...``
  — headers ``X-Repo-Commit``, ``ETag`` (LFS: the SHA256; regular files: the git blob sha1),
  ``X-Linked-Etag`` / ``X-Linked-Size`` for LFS files, ``Content-Length``, ``Accept-Ranges``;
  ``Range: bytes=N-`` requests get ``206`` with ``Content-Range`` (the client resumes with them).
* Errors as the Hub signals them, with ``X-Error-Code``: ``RepoNotFound``, ``RevisionNotFound``,
  ``EntryNotFound``, and ``GatedRepo`` (401 without a token, 403 with a wrong one).

Per repo, tests can pin revisions (branch -> commit), gate it behind a token, corrupt one byte
of a file's body while advertising the original hashes, drop the connection part-way through
a file (once, or on every attempt), and echo the request's ``Authorization`` header in every
error it answers (as some proxies and debug servers do). Every request is logged in ``requests``.
"""

from __future__ import annotations

import hashlib
import json
import threading
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Literal
from urllib.parse import parse_qs, unquote, urlsplit

LFS_SUFFIXES = (".pth", ".bin", ".parquet", ".model", ".safetensors")


def git_blob_id(content: bytes) -> str:
    """Git's object id of a blob."""
    return hashlib.sha1(b"blob %d\0" % len(content) + content).hexdigest()


def lfs_pointer(content: bytes) -> bytes:
    """The git-LFS pointer file git stores in place of an LFS file."""
    sha = hashlib.sha256(content).hexdigest()
    spec = "version https://git-lfs.github.com/spec/v1"
    return f"{spec}\noid sha256:{sha}\nsize {len(content)}\n".encode()


@dataclass
class Drop:
    """Close the connection once the body has reached file offset ``after``."""

    after: int
    always: bool
    fired: int = 0


@dataclass
class FakeRepo:
    """One repo: commits of files, branches pointing at them, and faults to inject."""

    repo_id: str
    repo_type: Literal["model", "dataset"]
    commits: dict[str, dict[str, bytes]] = field(default_factory=dict)
    branches: dict[str, str] = field(default_factory=dict)
    token: str | None = None  # gated when set
    corrupt: set[str] = field(default_factory=set)
    drops: dict[str, Drop] = field(default_factory=dict)
    echo_authorization: bool = False

    def commit(self, files: dict[str, bytes], branch: str = "main") -> str:
        """Add a commit holding ``files`` and point ``branch`` at it; return its sha."""
        digest = hashlib.sha1(f"{self.repo_id} {len(self.commits)}".encode())
        for path in sorted(files):
            digest.update(path.encode() + b"\0" + files[path])
        sha = digest.hexdigest()
        self.commits[sha] = dict(files)
        self.branches[branch] = sha
        return sha

    def resolve(self, revision: str) -> str | None:
        """The commit a branch name or commit sha designates."""
        if revision in self.commits:
            return revision
        return self.branches.get(revision)


class HubStandin:
    """The server; ``url`` is its endpoint (pass it as ``endpoint=`` or ``HF_ENDPOINT``)."""

    def __init__(self) -> None:
        self.repos: dict[tuple[str, str], FakeRepo] = {}
        self.requests: list[tuple[str, str]] = []
        self.errors: list[str] = []  # the message of every error answered
        self._lock = threading.Lock()
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), _handler_for(self))
        self._server.daemon_threads = True
        self._thread = threading.Thread(
            target=self._server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        )
        self.url = f"http://127.0.0.1:{self._server.server_address[1]}"

    def start(self) -> HubStandin:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join()

    def add_repo(
        self,
        repo_id: str,
        files: dict[str, bytes],
        repo_type: Literal["model", "dataset"] = "model",
        token: str | None = None,
    ) -> FakeRepo:
        """Create a repo whose ``main`` holds ``files``."""
        repo = FakeRepo(repo_id=repo_id, repo_type=repo_type, token=token)
        repo.commit(files)
        self.repos[(repo_type, repo_id)] = repo
        return repo

    def log(self, method: str, path: str) -> None:
        with self._lock:
            self.requests.append((method, path))

    def downloads(self) -> list[str]:
        """Paths of the GET requests that asked for file bodies."""
        with self._lock:
            return [
                path for method, path in self.requests if method == "GET" and "/resolve/" in path
            ]


def _handler_for(hub: HubStandin) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.0"  # one request per connection: a drop hits one transfer

        def log_message(self, format: str, *args: object) -> None:  # keep test output clean
            pass

        def do_HEAD(self) -> None:
            self._dispatch(body=False)

        def do_GET(self) -> None:
            self._dispatch(body=True)

        def _dispatch(self, body: bool) -> None:
            hub.log(self.command, self.path)
            url = urlsplit(self.path)
            parts = [unquote(part) for part in url.path.split("/")[1:]]
            if parts[0] == "api" and len(parts) >= 4 and body:
                self._api(parts[1:], parse_qs(url.query))
            elif "resolve" in parts:
                self._resolve(parts, body)
            else:
                self._error(404, None, "no such endpoint")

        def _api(self, parts: list[str], query: dict[str, list[str]]) -> None:
            kind = {"models": "model", "datasets": "dataset"}.get(parts[0], "")
            repo = hub.repos.get((kind, f"{parts[1]}/{parts[2]}"))
            if repo is None:
                return self._error(404, "RepoNotFound", "Repository not found")
            revision = parts[4] if len(parts) >= 5 and parts[3] == "revision" else "main"
            commit = repo.resolve(revision)
            if commit is None:
                return self._error(404, "RevisionNotFound", f"Invalid rev id: {revision}")
            blobs = query.get("blobs") == ["true"]
            siblings = []
            for path, content in sorted(repo.commits[commit].items()):
                sibling: dict[str, object] = {"rfilename": path}
                if blobs:
                    lfs = path.endswith(LFS_SUFFIXES)
                    pointer = lfs_pointer(content)
                    sibling["size"] = len(content)
                    sibling["blobId"] = git_blob_id(pointer if lfs else content)
                    if lfs:
                        sibling["lfs"] = {
                            "size": len(content),
                            "sha256": hashlib.sha256(content).hexdigest(),
                            "pointerSize": len(pointer),
                        }
                siblings.append(sibling)
            payload = {
                "id": repo.repo_id,
                "sha": commit,
                "private": False,
                "gated": "manual" if repo.token else False,
                "siblings": siblings,
            }
            data = json.dumps(payload).encode()
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def _resolve(self, parts: list[str], body: bool) -> None:
            at = parts.index("resolve")
            kind = "dataset" if parts[0] == "datasets" else "model"
            repo_id = "/".join(parts[1:at] if kind == "dataset" else parts[:at])
            repo = hub.repos.get((kind, repo_id))
            if repo is None:
                return self._error(404, "RepoNotFound", "Repository not found")
            sent = self.headers.get("authorization")
            echo = f" (you sent Authorization: {sent})" if repo.echo_authorization else ""
            if repo.token is not None:
                if sent is None:
                    return self._error(401, "GatedRepo", f"Access is restricted.{echo}")
                if sent != f"Bearer {repo.token}":
                    return self._error(403, "GatedRepo", f"Not in the authorized list.{echo}")
            commit = repo.resolve(parts[at + 1])
            if commit is None:
                return self._error(404, "RevisionNotFound", f"Invalid rev id{echo}")
            path = "/".join(parts[at + 2 :])
            content = repo.commits[commit].get(path)
            if content is None:
                return self._error(404, "EntryNotFound", f"Entry not found{echo}", commit)
            sha256 = hashlib.sha256(content).hexdigest()
            lfs = path.endswith(LFS_SUFFIXES)
            start = _range_start(self.headers.get("Range"))
            self.send_response(206 if start else 200)
            self.send_header("X-Repo-Commit", commit)
            self.send_header("ETag", f'"{sha256 if lfs else git_blob_id(content)}"')
            if lfs:
                self.send_header("X-Linked-Etag", f'"{sha256}"')
                self.send_header("X-Linked-Size", str(len(content)))
            self.send_header("Accept-Ranges", "bytes")
            if start:
                self.send_header(
                    "Content-Range", f"bytes {start}-{len(content) - 1}/{len(content)}"
                )
            self.send_header("Content-Length", str(len(content) - start))
            self.end_headers()
            if not body:
                return
            if path in repo.corrupt:
                middle = len(content) // 2
                content = content[:middle] + bytes([content[middle] ^ 0xFF]) + content[middle + 1 :]
            end = len(content)
            drop = repo.drops.get(path)
            if drop is not None and (drop.always or drop.fired == 0):
                drop.fired += 1
                end = max(start, drop.after)
            self.wfile.write(content[start:end])
            self.wfile.flush()
            self.close_connection = True

        def _error(
            self, status: int, code: str | None, message: str, commit: str | None = None
        ) -> None:
            with hub._lock:
                hub.errors.append(message)
            data = json.dumps({"error": message}).encode()
            self.send_response(status)
            if code is not None:
                self.send_header("X-Error-Code", code)
            self.send_header("X-Error-Message", message)
            if commit is not None:
                self.send_header("X-Repo-Commit", commit)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            if self.command != "HEAD":
                self.wfile.write(data)

    return Handler


def _range_start(header: str | None) -> int:
    """The first byte a ``Range: bytes=N-`` header asks for (0 without one)."""
    if not header or not header.startswith("bytes="):
        return 0
    return int(header[len("bytes=") :].split("-", 1)[0] or 0)
