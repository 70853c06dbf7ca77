"""Artifact storage through fsspec: a local directory, a shared mount, or an object store (s3://, gs://, memory://).

CULTURE_ASSETS_STORAGE (default: <data home>/assets) is where asset values live, so workers on several hosts read
and write the same files. Writes never leave a half-written file behind: on a local or mounted filesystem a file
is written beside its target and renamed; on an object store one PUT creates the object whole. A directory (a LoRA
adapter) is published file by file under a staging name and then moved into place, and fetched to a local cache
before transformers reads it, since model loaders need a local directory.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import tempfile
from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field
from upath import UPath

from culture_assets.settings import atomic_path, data_home

STORAGE_ENV = "CULTURE_ASSETS_STORAGE"


def storage_root(override: str = "") -> UPath:
    """The artifact root: `override`, else $CULTURE_ASSETS_STORAGE, else <data home>/assets."""
    raw = override or os.environ.get(STORAGE_ENV, "")
    return UPath(raw) if raw else UPath(data_home() / "assets")


class ArtifactStorageSettings(BaseModel):
    """Where asset values are stored (the Dagster IO manager derives its fields from these)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    data_home: str = Field(default="", description="Data home whose assets/ folder holds the values; empty: the default data home.")
    storage: str = Field(default="", description="Any fsspec URL (a shared mount, s3://, gs://, memory://); empty: $CULTURE_ASSETS_STORAGE, else <data home>/assets.")

    def root(self) -> UPath:
        if self.storage:
            return UPath(self.storage)
        if self.data_home:
            return UPath(data_home(self.data_home) / "assets")
        return storage_root()


def is_local(path: UPath) -> bool:
    return path.protocol in ("", "file", "local")


def write_bytes_atomic(target: UPath, data: bytes) -> None:
    if is_local(target):
        with atomic_path(Path(target.path)) as tmp:
            tmp.write_bytes(data)
        return
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_bytes(data)


def put_directory(local_dir: Path, target: UPath) -> UPath:
    """Copy `local_dir` to `target`, replacing it; readers see the old directory or the complete new one."""
    if is_local(target):
        final = Path(target.path)
        if final.resolve() == local_dir.resolve():
            return target
        staging = final.parent / f".{final.name}.staging"
        shutil.rmtree(staging, ignore_errors=True)
        shutil.copytree(local_dir, staging)
        shutil.rmtree(final, ignore_errors=True)
        os.rename(staging, final)
        return target
    staging = target.parent / f".{target.name}.staging"
    if staging.exists():
        staging.fs.rm(staging.path, recursive=True)
    for file in sorted(p for p in local_dir.rglob("*") if p.is_file()):
        write_bytes_atomic(staging.joinpath(*file.relative_to(local_dir).parts), file.read_bytes())
    if target.exists():
        target.fs.rm(target.path, recursive=True)
    target.fs.mv(staging.path, target.path, recursive=True)
    return target


def fetch_directory(source: UPath, cache_root: Path | None = None) -> Path:
    """A local copy of the directory at `source` (the directory itself when local); cached by its URL."""
    missing = FileNotFoundError(f"{source}: no such directory in the artifact storage, or it is empty")
    if is_local(source):
        if not Path(source.path).is_dir():
            raise missing
        return Path(source.path)
    cache = (cache_root or data_home() / "cache" / "storage") / hashlib.sha256(str(source).encode()).hexdigest()[:16]
    if cache.is_dir():
        return cache
    cache.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{cache.name}.", dir=cache.parent))
    try:
        files = [p for p in source.rglob("*") if p.is_file()]
        if not files:
            raise missing
        for file in files:
            local = staging / Path(file.path).relative_to(source.path)
            local.parent.mkdir(parents=True, exist_ok=True)
            local.write_bytes(file.read_bytes())
        try:
            os.rename(staging, cache)
        except OSError:
            if not cache.is_dir():  # else another process fetched it first
                raise
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return cache
