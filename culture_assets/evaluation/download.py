"""Fetch the evaluation datasets: the reference repository's archive at a pinned commit, checked file by file.

The CultureLLM repository keeps its evaluation files under `data/` (one folder per culture).
`download_evaluation_data` streams its archive (GitHub's `.tar.gz` of one commit) to a
temporary file under `<data home>/downloads/`, takes from it only the files the manifests name,
checks each against its manifest's sha256 and moves the finished directory into place as
`<data home>/evaluation_data` in one rename. A failure at any step leaves no directory there
and no half-written file: the only thing kept is a `.partial` download from a server that
supports HTTP ranges, which the next attempt resumes. The archive's top folder name is not
assumed; it must be a single folder.

CULTURE_ASSETS_EVAL_DATA_URL replaces the archive URL (a mirror, an http:// server or a file://
path). A user who already has the files sets CULTURE_ASSETS_EVAL_DATA instead and nothing is
downloaded (see culture_assets.evaluation.loader).
"""

from __future__ import annotations

import fcntl
import gzip
import hashlib
import json
import os
import shutil
import tarfile
import tempfile
import time
import zlib
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from datetime import datetime, timezone
from pathlib import Path, PurePosixPath
from typing import IO, Callable, Iterator, Sequence
from urllib.parse import unquote, urlparse

import httpx
from tqdm import tqdm

from culture_assets.evaluation.loader import EVAL_DATA_ENV, DatasetProblem, check_files, sha256_of
from culture_assets.evaluation.manifest import DatasetManifest

EVAL_DATA_URL_ENV = "CULTURE_ASSETS_EVAL_DATA_URL"
# the public CultureLLM repository at the commit the manifests' sha256 were taken from
DEFAULT_ARCHIVE_URL = "https://github.com/Scarelette/CultureLLM/archive/dcdb64d7289a8ee88c7e718fb5e8641bf97c441e.tar.gz"
DOWNLOADED_DIR = "evaluation_data"
RECORD_FILE = "download.json"
CONNECT_TIMEOUT_S = 10.0
READ_TIMEOUT_S = 60.0
ATTEMPTS = 3  # a transfer cut off mid-way is retried (resumed when the server allows), a refused connection is not
RETRY_BACKOFF_S = 1.0  # doubled after each failed attempt
CHUNK_BYTES = 1 << 16

# (bytes done, total bytes or None when the server does not say)
Progress = Callable[[int, int | None], None]


class EvalDataDownloadError(RuntimeError):
    """The evaluation data could not be fetched or did not match the manifests; nothing was installed."""


class _ServerBusy(Exception):
    """A 5xx answer: worth another attempt."""


def settings_hint() -> str:
    return (
        f"set {EVAL_DATA_URL_ENV} to a reachable copy of the archive (https://, http:// or file://), "
        f"or set {EVAL_DATA_ENV} to a directory that already holds the datasets"
    )


def archive_url(override: str = "") -> str:
    """The archive to download: `override`, else $CULTURE_ASSETS_EVAL_DATA_URL, else the pinned reference archive."""
    return override or os.environ.get(EVAL_DATA_URL_ENV) or DEFAULT_ARCHIVE_URL


def downloaded_data_dir(home: Path) -> Path:
    return home / DOWNLOADED_DIR


@dataclass(frozen=True)
class WantedFile:
    path: str  # relative to the archive's data/ folder and to the installed directory
    sha256: str
    datasets: tuple[str, ...]


def wanted_files(manifests: Sequence[DatasetManifest]) -> list[WantedFile]:
    """The files of every manifest whose data is in the reference archive, with the sha256 each must have."""
    by_path: dict[str, WantedFile] = {}
    for manifest in manifests:
        if not manifest.available_in_reference:
            continue
        for declared in manifest.files:
            path = PurePosixPath(declared.path)
            if path.is_absolute() or ".." in path.parts:
                raise EvalDataDownloadError(f"manifest {manifest.id}, field 'files.path': {declared.path!r} must be a relative path inside the data directory")
            seen = by_path.get(declared.path)
            if seen and seen.sha256 != declared.sha256:
                raise EvalDataDownloadError(
                    f"manifests {seen.datasets[0]} and {manifest.id} name {declared.path} with different sha256 ({seen.sha256} vs {declared.sha256})"
                )
            datasets = (seen.datasets if seen else ()) + (manifest.id,)
            by_path[declared.path] = WantedFile(declared.path, str(declared.sha256), datasets)
    return sorted(by_path.values(), key=lambda f: f.path)


def content_version(files: Sequence[WantedFile]) -> str:
    """One hash of the whole set of files: the same data gives the same version, whatever the archive or URL."""
    return hashlib.sha256("".join(f"{f.path}\0{f.sha256}\n" for f in files).encode()).hexdigest()[:16]


def files_verified(data_dir: Path, files: Sequence[WantedFile]) -> bool:
    return all((data_dir / f.path).is_file() and sha256_of(data_dir / f.path) == f.sha256 for f in files)


@dataclass(frozen=True)
class DownloadRecord:
    """What was installed and from where; written as download.json inside the directory."""

    url: str
    archive_sha256: str
    archive_bytes: int
    top_folder: str
    files: int
    bytes: int
    resumed_from_byte: int
    downloaded_at: str
    version: str


def read_record(data_dir: Path) -> DownloadRecord | None:
    """The record of a completed download in `data_dir` (written last, inside the directory moved into place), or None."""
    try:
        return DownloadRecord(**json.loads((data_dir / RECORD_FILE).read_text(encoding="utf-8")))
    except (OSError, ValueError, TypeError):
        return None


@dataclass(frozen=True)
class Installed:
    data_dir: Path
    record: DownloadRecord
    reused: bool  # the directory was already complete and verified: nothing was downloaded


# --- fetching -------------------------------------------------------------------------------


def local_archive(url: str) -> Path | None:
    """The path of a file:// URL (or None for a network URL)."""
    parsed = urlparse(url)
    if parsed.scheme != "file":
        return None
    return Path(unquote(parsed.path))


def check_reachable(url: str, timeout_s: float = 5.0) -> str | None:
    """A problem that would stop the download, found in seconds (None when the archive can be fetched)."""
    local = local_archive(url)
    if local is not None:
        return None if local.is_file() else f"evaluation data archive {url}: file not found; {settings_hint()}"
    try:
        with httpx.Client(timeout=timeout_s, follow_redirects=True) as client:
            response = client.head(url)
            if response.status_code == 405:  # a server that does not answer HEAD
                with client.stream("GET", url) as streamed:
                    response = streamed
    except httpx.HTTPError as exc:
        return f"evaluation data archive {url} cannot be reached ({type(exc).__name__}: {exc}); {settings_hint()}"
    if response.status_code >= 400:
        return f"evaluation data archive {url} answered HTTP {response.status_code}; {settings_hint()}"
    return None


@dataclass
class _PartialState:
    """Beside a .partial file: whether it may be resumed, and the validator that proves it is the same file."""

    url: str
    resumable: bool
    validator: str | None

    @classmethod
    def read(cls, path: Path, url: str) -> "_PartialState | None":
        try:
            raw = json.loads(path.read_text(encoding="utf-8"))
            state = cls(**raw)
        except (OSError, ValueError, TypeError):
            return None
        return state if state.url == url else None

    def write(self, path: Path) -> None:
        path.write_text(json.dumps(asdict(self)), encoding="utf-8")


def _discard(*paths: Path) -> None:
    for path in paths:
        path.unlink(missing_ok=True)


def _keep_only_if_resumable(partial: Path, state_file: Path, url: str) -> None:
    state = _PartialState.read(state_file, url)
    if not (state and state.resumable):
        _discard(partial, state_file)


def _content_range_start(value: str | None) -> int | None:
    # "bytes 1000-1999/2000"
    if not value or not value.startswith("bytes "):
        return None
    start = value[6:].split("-", 1)[0]
    return int(start) if start.isdigit() else None


def _stream_once(client: httpx.Client, url: str, partial: Path, state_file: Path, progress: Progress | None) -> int:
    """One GET into `partial` (appending when the server honours a Range); returns the byte it resumed from."""
    state = _PartialState.read(state_file, url)
    offset = partial.stat().st_size if partial.exists() and state and state.resumable else 0
    headers = {"Accept-Encoding": "identity"}
    if offset:
        headers["Range"] = f"bytes={offset}-"
        if state and state.validator:
            headers["If-Range"] = state.validator
    with client.stream("GET", url, headers=headers) as response:
        if response.status_code == 416 and offset:  # the partial file is no prefix of this file: start over
            _discard(partial, state_file)
            response.close()
            return _stream_once(client, url, partial, state_file, progress)
        if response.status_code >= 500:
            raise _ServerBusy(f"HTTP {response.status_code}")
        if response.status_code >= 400:
            raise EvalDataDownloadError(f"evaluation data archive {url} answered HTTP {response.status_code}; {settings_hint()}")
        resumed = response.status_code == 206 and _content_range_start(response.headers.get("content-range")) == offset
        if not resumed:
            offset = 0
        length = response.headers.get("content-length")
        total = offset + int(length) if length and length.isdigit() else None
        validator = response.headers.get("etag") or response.headers.get("last-modified")
        resumable = resumed or response.headers.get("accept-ranges", "").lower() == "bytes"
        _PartialState(url, resumable, validator).write(state_file)
        done = offset
        with partial.open("ab" if resumed else "wb") as out, tqdm(
            total=total, initial=offset, unit="B", unit_scale=True, unit_divisor=1024, desc="evaluation data", disable=None
        ) as bar:
            # raw bytes: the archive is stored as served, never decoded (a Range counts raw bytes too);
            for chunk in response.iter_raw():  # no chunk_size: httpx would drop a buffered part when the connection breaks
                out.write(chunk)
                done += len(chunk)
                bar.update(len(chunk))
                if progress:
                    progress(done, total)
    return offset if resumed else 0


def fetch_archive(url: str, downloads: Path, progress: Progress | None = None) -> tuple[Path, int]:
    """(the complete archive file, the byte a resumed transfer started from). Local file:// archives are read in place.

    A transfer cut off is retried; it resumes from where it stopped when the server supports ranges
    (and the file has not changed, checked by If-Range), and restarts cleanly otherwise. When every
    attempt fails, the partial file is kept only if it can be resumed.
    """
    local = local_archive(url)
    if local is not None:
        if not local.is_file():
            raise EvalDataDownloadError(f"evaluation data archive {url}: file not found; {settings_hint()}")
        return local, 0
    downloads.mkdir(parents=True, exist_ok=True)
    stem = hashlib.sha256(url.encode()).hexdigest()[:16]
    partial, state_file, complete = downloads / f"{stem}.tar.gz.partial", downloads / f"{stem}.partial.json", downloads / f"{stem}.tar.gz"
    if complete.is_file():  # received in full by an earlier run that stopped before extracting it
        return complete, 0
    timeout = httpx.Timeout(READ_TIMEOUT_S, connect=CONNECT_TIMEOUT_S)
    last_error: Exception | None = None
    resumed_from = 0
    with httpx.Client(timeout=timeout, follow_redirects=True) as client:
        for attempt in range(ATTEMPTS):
            try:
                resumed_from = _stream_once(client, url, partial, state_file, progress) or resumed_from
            except (httpx.ConnectError, httpx.ConnectTimeout, httpx.UnsupportedProtocol, httpx.InvalidURL) as exc:
                _keep_only_if_resumable(partial, state_file, url)
                raise EvalDataDownloadError(f"evaluation data archive {url} cannot be reached ({type(exc).__name__}: {exc}); {settings_hint()}") from exc
            except EvalDataDownloadError:  # the server refuses the file (4xx): nothing to resume
                _discard(partial, state_file)
                raise
            except (httpx.TransportError, _ServerBusy) as exc:  # cut off or stalled mid-transfer, or a 5xx
                last_error = exc
                _keep_only_if_resumable(partial, state_file, url)
                if attempt + 1 < ATTEMPTS:
                    time.sleep(RETRY_BACKOFF_S * 2**attempt)
                continue
            os.replace(partial, complete)
            _discard(state_file)
            return complete, resumed_from
    state = _PartialState.read(state_file, url)
    kept = " (the part received is kept and the next run resumes it)" if state and state.resumable else ""
    raise EvalDataDownloadError(
        f"evaluation data archive {url}: the transfer failed {ATTEMPTS} times, last with {type(last_error).__name__}: {last_error}{kept}; "
        f"run again, or {settings_hint()}"
    )


# --- extracting -----------------------------------------------------------------------------


@dataclass(frozen=True)
class Extracted:
    top_folder: str
    files: int
    bytes: int


def _copy_hashing(source: IO[bytes], target: Path) -> tuple[str, int]:
    digest, size = hashlib.sha256(), 0
    target.parent.mkdir(parents=True, exist_ok=True)
    with target.open("wb") as out:
        for block in iter(lambda: source.read(CHUNK_BYTES), b""):
            digest.update(block)
            out.write(block)
            size += len(block)
    return digest.hexdigest(), size


def extract_verified(archive: Path, files: Sequence[WantedFile], target: Path, url: str) -> Extracted:
    """Copy the wanted files from the archive's `<top>/data/` into `target`, each checked against its sha256.

    Output paths come from the manifests, never from the archive, and only regular members are read:
    no link, absolute name or `..` in an archive can write outside `target` (what tarfile's "data"
    filter guards against). One streaming pass, so a large archive is never held in memory.
    """
    wanted = {f.path: f for f in files}
    found: dict[str, int] = {}
    top: str | None = None
    try:
        with tarfile.open(archive, mode="r|gz") as tar:
            for member in tar:
                name = member.name[2:] if member.name.startswith("./") else member.name
                first, _, rest = name.partition("/")
                top = top or first
                if first != top:
                    raise EvalDataDownloadError(f"evaluation data archive {url}: expected a single top folder, found {top!r} and {first!r}")
                relative = rest[len("data/"):] if rest.startswith("data/") else None
                if relative not in wanted:
                    continue
                if not member.isreg():
                    raise EvalDataDownloadError(f"evaluation data archive {url}: {member.name} is not a regular file")
                source = tar.extractfile(member)
                assert source is not None  # a regular member always has a file object
                actual, size = _copy_hashing(source, target / relative)
                expected = wanted[relative].sha256
                if actual != expected:
                    raise EvalDataDownloadError(
                        f"evaluation data file {relative} (dataset {', '.join(wanted[relative].datasets)}) from {url}: "
                        f"sha256 mismatch, expected {expected}, got {actual}"
                    )
                found[relative] = size
    except (tarfile.TarError, EOFError, zlib.error, gzip.BadGzipFile) as exc:
        raise EvalDataDownloadError(
            f"evaluation data archive {url} is truncated or not a .tar.gz ({type(exc).__name__}: {exc}); nothing was installed: run again to fetch it anew, or {settings_hint()}"
        ) from exc
    missing = [path for path in wanted if path not in found]
    if missing:
        raise EvalDataDownloadError(
            f"evaluation data archive {url} lacks {len(missing)} file(s) the manifests name under <top folder>/data/: "
            + "; ".join(f"{path} (dataset {', '.join(wanted[path].datasets)})" for path in missing[:10])
        )
    return Extracted(top or "", len(found), sum(found.values()))


# --- installing -----------------------------------------------------------------------------


@contextmanager
def _exclusive(lock_path: Path) -> Iterator[None]:
    """One download per data home at a time (two runs materializing the asset at once wait for each other)."""
    lock_path.parent.mkdir(parents=True, exist_ok=True)
    with lock_path.open("w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        yield


def _remove_leftovers(home: Path) -> None:
    # directories of an install a killed process never finished (safe: we hold the lock)
    for stale in home.glob(f".{DOWNLOADED_DIR}.*.tmp"):
        shutil.rmtree(stale, ignore_errors=True)


def _remove_if_empty(folder: Path) -> None:
    try:
        folder.rmdir()
    except OSError:  # absent, or holds a download to resume
        pass


def _move_into_place(staged: Path, target: Path) -> None:
    """Replace `target` by `staged`; a reader sees the old directory or the new one, never a mix."""
    if target.exists():
        retired = Path(tempfile.mkdtemp(prefix=f".{DOWNLOADED_DIR}.", suffix=".tmp", dir=target.parent))
        os.replace(target, retired / "old")
        os.replace(staged, target)
        shutil.rmtree(retired, ignore_errors=True)
    else:
        os.replace(staged, target)


def _install(archive: Path, files: Sequence[WantedFile], target: Path, url: str, resumed_from: int) -> DownloadRecord:
    """Extract and check the files into a temporary directory beside `target`, then move it into place."""
    staged = Path(tempfile.mkdtemp(prefix=f".{DOWNLOADED_DIR}.", suffix=".tmp", dir=target.parent))
    try:
        extracted = extract_verified(archive, files, staged, url)
        record = DownloadRecord(
            url=url, archive_sha256=sha256_of(archive), archive_bytes=archive.stat().st_size, top_folder=extracted.top_folder,
            files=extracted.files, bytes=extracted.bytes, resumed_from_byte=resumed_from,
            downloaded_at=datetime.now(timezone.utc).isoformat(timespec="seconds"), version=content_version(files),
        )
        (staged / RECORD_FILE).write_text(json.dumps(asdict(record), indent=2), encoding="utf-8")
        _move_into_place(staged, target)
        return record
    finally:
        shutil.rmtree(staged, ignore_errors=True)


def download_evaluation_data(
    url: str, manifests: Sequence[DatasetManifest], home: Path, progress: Progress | None = None, log: Callable[[str], None] = lambda _: None
) -> Installed:
    """Install the manifests' files under `<home>/evaluation_data`, downloading only when they are not there and verified."""
    files = wanted_files(manifests)
    target = downloaded_data_dir(home)
    downloads = home / "downloads"
    with _exclusive(home / f".{DOWNLOADED_DIR}.lock"):
        _remove_leftovers(home)
        record = read_record(target)
        if record is not None and files_verified(target, files):
            return Installed(target, record, reused=True)
        try:
            log(f"fetching the evaluation data archive {url}")
            archive, resumed_from = fetch_archive(url, downloads, progress)
            log(f"extracting the {len(files)} files the manifests name and checking their sha256")
            try:
                record = _install(archive, files, target, url, resumed_from)
            except EvalDataDownloadError:
                if local_archive(url) is None:  # the archive is wrong (truncated, other content): fetch it anew next time
                    archive.unlink(missing_ok=True)
                raise
            if local_archive(url) is None:  # installed: the archive is not needed again
                archive.unlink()
        finally:
            _remove_if_empty(downloads)
    return Installed(target, record, reused=False)


def progress_logger(log: Callable[[str], None], every_s: float = 5.0) -> Progress:
    """A Progress that writes a line at most every `every_s` seconds and at the end (for logs that are not a terminal)."""
    last = [0.0]

    def report(done: int, total: int | None) -> None:
        now = time.monotonic()
        if now - last[0] < every_s and done != total:
            return
        last[0] = now
        share = f" of {total / 1e6:.1f} MB ({100 * done / total:.0f} %)" if total else ""
        log(f"evaluation data: {done / 1e6:.1f} MB{share} downloaded")

    return report


LICENSE_NOTE = (
    "culture-assets does not redistribute these datasets: you download them from their original location, the "
    "CultureLLM reference repository's archive (or the mirror you set), onto your own machine. That repository "
    "declares no license; each dataset keeps its creators' license, listed below as the manifests record it. Check "
    "it at the dataset's source before using the data."
)


def dataset_provenance(manifests: Sequence[DatasetManifest], data_dir: Path) -> list[dict[str, str]]:
    """One row per dataset: whether its files are present and match, its license and source (from the manifest)."""
    rows = []
    for manifest in manifests:
        try:
            check_files(manifest, data_dir)
            status = "verified"
        except DatasetProblem as problem:
            status = problem.status.value
        rows.append({
            "dataset": manifest.id, "culture": manifest.culture, "status": status,
            "license": manifest.license, "source": manifest.source.url,
        })
    return rows
