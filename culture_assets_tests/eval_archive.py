"""A stand-in for the reference repository's archive: a `.tar.gz` in its layout, served on 127.0.0.1.

The archive looks like GitHub's archive of one commit: a pax global header naming the commit, a
single top folder `<top>/`, the evaluation files under `<top>/data/<Folder>/<dataset>/<file>.jsonl`,
and files the download must leave out (`<top>/README.md`, `<top>/data/WVQ.jsonl`).

Use in a test (the `eval_archive_server` fixture of conftest.py does the first two lines, with the
reference copy when present, for english and german):

    archive = build_eval_archive(tmp_path, cultures=("english", "german"), reference=None)
    with EvalArchiveServer(archive) as server:
        env = {**os.environ, **server.environment()}  # for `culture-assets run`, or monkeypatch.setenv each
        ...  # the run downloads from server.url; eval_dataset partitions: server.cultures

- `build_eval_archive(root, cultures, reference)` -> `EvalArchive`: with `reference` (the CultureLLM
  reference copy, e.g. the `reference_data` fixture's path), the real files of
  the cultures' manifests from datasets_manifest/ (a culture with no file there, such as Chinese
  CValues, keeps its manifest and is reported not available); without it, two small synthetic datasets
  per culture (`offensive_rows`, labels OFF/NOT), one in a folder whose name holds a space. Either way
  `archive.manifests_dir` is a manifests directory naming exactly the archive's files (only those cultures).
- `archive.tar_gz(replace={path: bytes}, omit={path}, top="...")`: the archive bytes, or a faulty variant.
- `EvalArchiveServer(archive)`: a ThreadingHTTPServer thread on a free 127.0.0.1 port, started by
  `start()` / `with`, stopped by `stop()`. `url` is the archive's URL; `environment()` the settings a run
  needs (CULTURE_ASSETS_EVAL_DATA_URL, CULTURE_ASSETS_MANIFESTS); `cultures` the cultures covered.
  Faults: `status` (e.g. 404 for every request), `body` (bytes served, e.g. a truncated archive),
  `accept_ranges` (honour `Range`/`If-Range` and say `Accept-Ranges: bytes`, default on), `cut_after`
  + `cut_times` (the next `cut_times` responses close the connection after `cut_after` body bytes).
  It counts what it sent: `body_bytes_sent`, and `requests` ((method, Range header or None, status) each).
"""

from __future__ import annotations

import hashlib
import io
import shutil
import socket
import tarfile
import threading
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler
from pathlib import Path
from typing import Any, Iterable

from culture_assets.evaluation.download import EVAL_DATA_URL_ENV
from culture_assets.evaluation.manifest import MANIFESTS_ENV, default_manifests_dir, load_manifests
from culture_assets_tests.evaluation_fixtures import offensive_rows, write_dataset
from culture_assets_tests.local_http import LocalHTTPServer

COMMIT = "0123456789abcdef0123456789abcdef01234567"
DEFAULT_TOP = f"CultureLLM-{COMMIT}"
DEFAULT_CULTURES = ("english", "german")
UNRELATED_FILES = {"README.md": b"# CultureLLM\n", "data/WVQ.jsonl": b'{"q_id": "Q27"}\n'}


@dataclass
class EvalArchive:
    """The archive's evaluation files (path under data/ -> bytes) and the manifests naming them."""

    files: dict[str, bytes]
    manifests_dir: Path
    cultures: tuple[str, ...]
    top: str = DEFAULT_TOP

    def tar_gz(self, replace: dict[str, bytes] | None = None, omit: Iterable[str] = (), top: str | None = None) -> bytes:
        files = {**self.files, **(replace or {})}
        for path in omit:
            files.pop(path)
        top = top or self.top
        members = {**UNRELATED_FILES, **{f"data/{path}": data for path, data in files.items()}}
        buffer = io.BytesIO()
        with tarfile.open(fileobj=buffer, mode="w:gz", format=tarfile.PAX_FORMAT, pax_headers={"comment": COMMIT}) as tar:
            folders = sorted({str(Path(top, name).parent) for name in members} | {top})
            for folder in folders:
                info = tarfile.TarInfo(folder)
                info.type, info.mode = tarfile.DIRTYPE, 0o755
                tar.addfile(info)
            for name, data in sorted(members.items()):
                info = tarfile.TarInfo(f"{top}/{name}")
                info.size, info.mode = len(data), 0o644
                tar.addfile(info, io.BytesIO(data))
        return buffer.getvalue()

    def write(self, path: Path, **variant: Any) -> Path:
        """The archive (or a variant, see tar_gz) as a file, e.g. for a file:// URL."""
        path.write_bytes(self.tar_gz(**variant))
        return path


def build_eval_archive(root: Path, cultures: Iterable[str] = DEFAULT_CULTURES, reference: Path | None = None) -> EvalArchive:
    cultures = tuple(cultures)
    manifests_dir = root / "manifests"
    if reference is not None:
        manifests_dir.mkdir(parents=True)
        files: dict[str, bytes] = {}
        for manifest in load_manifests(default_manifests_dir()):
            if manifest.culture in cultures:
                shutil.copy(default_manifests_dir() / f"{manifest.id}.yaml", manifests_dir)
                files.update({f.path: (reference / f.path).read_bytes() for f in manifest.files})
        return EvalArchive(files, manifests_dir, cultures)
    staging = root / "synthetic"
    for culture in cultures:
        folder = culture.capitalize()
        for number, dataset in enumerate(("offense corpus", "tweets")):
            dataset_id = f"{culture}_{dataset.replace(' ', '_')}"
            write_dataset(staging, manifests_dir, dataset_id, culture, offensive_rows(24, seed=number),
                          relative_path=f"{folder}/{dataset}/data.jsonl")
    files = {str(path.relative_to(staging)): path.read_bytes() for path in sorted(staging.rglob("*.jsonl"))}
    return EvalArchive(files, manifests_dir, cultures)


@dataclass
class EvalArchiveServer:
    archive: EvalArchive
    status: int = 200
    accept_ranges: bool = True
    cut_after: int | None = None
    cut_times: int = 0
    body: bytes = b""
    body_bytes_sent: int = 0
    requests: list[tuple[str, str | None, int]] = field(default_factory=list)
    _http: LocalHTTPServer | None = None
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def __post_init__(self) -> None:
        self.body = self.body or self.archive.tar_gz()

    @property
    def url(self) -> str:
        assert self._http is not None, "start() the server first"
        return f"http://127.0.0.1:{self._http.port}/Scarelette/CultureLLM/archive/{COMMIT}.tar.gz"

    @property
    def manifests_dir(self) -> Path:
        return self.archive.manifests_dir

    @property
    def cultures(self) -> tuple[str, ...]:
        return self.archive.cultures

    def environment(self) -> dict[str, str]:
        return {EVAL_DATA_URL_ENV: self.url, MANIFESTS_ENV: str(self.manifests_dir)}

    def start(self) -> "EvalArchiveServer":
        self._http = LocalHTTPServer(_handler_for(self), "eval-archive-server")
        return self

    def stop(self) -> None:
        if self._http is not None:
            self._http.close()
            self._http = None

    def __enter__(self) -> "EvalArchiveServer":
        return self.start()

    def __exit__(self, *exc: Any) -> None:
        self.stop()

    # --- serving ---------------------------------------------------------------------------
    def _respond(self, range_header: str | None, if_range: str | None) -> tuple[int, dict[str, str], bytes, int | None]:
        """(status, headers, body, bytes to send before cutting the connection or None)."""
        with self._lock:
            if self.status != 200:
                return self.status, {}, b"not found\n", None
            body, etag = self.body, f'"{hashlib.sha256(self.body).hexdigest()[:16]}"'
            headers = {"Content-Type": "application/x-gzip", "ETag": etag}
            status, start = 200, 0
            if self.accept_ranges:
                headers["Accept-Ranges"] = "bytes"
                if range_header and range_header.startswith("bytes=") and range_header.endswith("-") and if_range in (None, etag):
                    start = int(range_header[6:-1])
                    if start >= len(body):
                        return 416, {"Content-Range": f"bytes */{len(body)}"}, b"", None
                    status = 206
                    headers["Content-Range"] = f"bytes {start}-{len(body) - 1}/{len(body)}"
            cut = None
            if self.cut_times > 0 and self.cut_after is not None:
                self.cut_times -= 1
                cut = self.cut_after
            return status, headers, body[start:], cut


def _handler_for(server: EvalArchiveServer) -> type[BaseHTTPRequestHandler]:
    class _Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, *args: Any) -> None:  # keep test output quiet
            pass

        def _serve(self, with_body: bool) -> None:
            status, headers, body, cut = server._respond(self.headers.get("Range"), self.headers.get("If-Range"))
            with server._lock:
                server.requests.append((self.command, self.headers.get("Range"), status))
            self.send_response(status)
            for name, value in {**headers, "Content-Length": str(len(body))}.items():
                self.send_header(name, value)
            self.end_headers()
            if not with_body:
                return
            sent = body[:cut] if cut is not None else body
            self.wfile.write(sent)
            self.wfile.flush()
            with server._lock:
                server.body_bytes_sent += len(sent)
            if cut is not None:  # the connection drops mid-body, as a flaky network does
                self.close_connection = True
                self.connection.shutdown(socket.SHUT_RDWR)

        def do_GET(self) -> None:
            self._serve(with_body=True)

        def do_HEAD(self) -> None:
            self._serve(with_body=False)

    return _Handler
