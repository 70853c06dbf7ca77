"""Where the project keeps its files. Everything lives under one data home.

CULTURE_ASSETS_HOME (default: ./.culture_assets, resolved to an absolute path) holds the
DuckDB warehouse, the Parquet/JSON asset outputs, model adapters and DAGSTER_HOME
(default: <data home>/dagster_home). Both are created on first use.
"""

from __future__ import annotations

import os
import tempfile
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

DATA_HOME_ENV = "CULTURE_ASSETS_HOME"
DEFAULT_DATA_HOME = ".culture_assets"


def data_home(override: str | os.PathLike[str] | None = None) -> Path:
    """The absolute data home, created if missing."""
    raw = override or os.environ.get(DATA_HOME_ENV) or DEFAULT_DATA_HOME
    home = Path(raw).expanduser().resolve()
    home.mkdir(parents=True, exist_ok=True)
    return home


def dagster_home(home: Path | None = None) -> Path:
    """DAGSTER_HOME: the environment's value if set, else <data home>/dagster_home."""
    raw = os.environ.get("DAGSTER_HOME")
    path = Path(raw).expanduser().resolve() if raw else (home or data_home()) / "dagster_home"
    path.mkdir(parents=True, exist_ok=True)
    return path


@contextmanager
def atomic_path(target: Path) -> Iterator[Path]:
    """Yield a temporary path beside `target`; move it over `target` only if the block succeeds.

    A crash or exception leaves the previous `target` untouched (os.replace is atomic on POSIX).
    """
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent)
    os.close(fd)
    tmp_path = Path(tmp)
    try:
        yield tmp_path
        os.replace(tmp_path, target)
    finally:
        tmp_path.unlink(missing_ok=True)


def atomic_write_text(target: Path, text: str) -> None:
    with atomic_path(target) as tmp:
        tmp.write_text(text, encoding="utf-8")
