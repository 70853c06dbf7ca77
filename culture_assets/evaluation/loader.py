"""Read a manifest's dataset from the evaluation data directory, checked and sampled.

The datasets sit in one directory, in the layout the manifests' `files[].path` name: the one the
`evaluation_data` asset downloads (culture_assets.evaluation.download), or one the user already has,
named by CULTURE_ASSETS_EVAL_DATA or the `eval_data` resource.
Rows whose label is empty or outside the manifest's label set are dropped and counted, never
mapped to a class. A dataset that cannot be read (file missing, checksum mismatch, a line that
is not JSON) is reported with its reason and the others are still loaded.
"""

from __future__ import annotations

import hashlib
import json
import os
from dataclasses import dataclass, field
from enum import Enum
from pathlib import Path
from typing import Optional, Sequence

import numpy as np
import polars as pl
from pydantic import BaseModel, ConfigDict, Field

from culture_assets.errors import InputError
from culture_assets.evaluation.manifest import DatasetManifest

EVAL_DATA_ENV = "CULTURE_ASSETS_EVAL_DATA"


class EvalSampleSettings(BaseModel):
    """Which rows of the evaluation datasets are scored (the eval_dataset asset's config derives its fields from these).

    Every labelled row by default, as the paper did for most sets (7 of them beyond 1,000 rows: OffensEval2020,
    OSACT5 x3, GermEval2018, OffComBR, SemEval-2020); a number samples that many rows per dataset (`--limit`).
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    sample_size: Optional[int] = Field(default=None, ge=1, description="Rows sampled per dataset; empty: every labelled row.")
    seed: int = Field(default=0, description="Seed of the row sample.")
    verify_checksum: bool = Field(default=True, description="Check each dataset file against its manifest's sha256.")

    def sample(self) -> str:
        """What was scored, recorded with every metric row: the report keeps one such configuration."""
        return f"sample_size={self.sample_size},seed={self.seed}" if self.sample_size else "all_rows"
ROWS_SCHEMA = {"culture": pl.String, "dataset": pl.String, "row_id": pl.String, "text": pl.String, "label": pl.String}


class DatasetStatus(str, Enum):
    LOADED = "loaded"
    NOT_AVAILABLE = "not_available"  # declared, but no file is known (e.g. Chinese CValues)
    MISSING = "missing"
    CHECKSUM_MISMATCH = "checksum_mismatch"
    MALFORMED = "malformed"


class DatasetProblem(InputError):
    """A dataset that cannot be scored; `status` says why."""

    def __init__(self, status: DatasetStatus, source: str, problem: str, *, row: int | str | None = None, field: str | None = None):
        self.status = status
        super().__init__(source, problem, row=row, field=field)


@dataclass
class DatasetLoad:
    """One dataset's rows (possibly none) and the account of what was read, dropped and why."""

    manifest: DatasetManifest
    status: DatasetStatus
    detail: str = ""
    rows: pl.DataFrame = field(default_factory=lambda: pl.DataFrame(schema=ROWS_SCHEMA))
    n_file_rows: int = 0
    n_empty_label: int = 0
    n_unknown_label: int = 0
    n_empty_text: int = 0
    unknown_label_examples: list[str] = field(default_factory=list)

    def summary(self) -> dict[str, object]:
        return {
            "culture": self.manifest.culture,
            "dataset": self.manifest.id,
            "status": self.status.value,
            "detail": self.detail,
            "n_file_rows": self.n_file_rows,
            "n_empty_label": self.n_empty_label,
            "n_unknown_label": self.n_unknown_label,
            "n_empty_text": self.n_empty_text,
            "n_sampled": self.rows.height,
        }


def default_data_dir() -> Path | None:
    raw = os.environ.get(EVAL_DATA_ENV)
    return Path(raw).expanduser().resolve() if raw else None


def sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def check_files(manifest: DatasetManifest, data_dir: Path, verify_checksum: bool = True) -> list[Path]:
    """The dataset's files under `data_dir`; raises DatasetProblem when one is absent or differs."""
    if not manifest.files:
        raise DatasetProblem(DatasetStatus.NOT_AVAILABLE, manifest.id, "declared but no data file is known (see its manifest's defects)")
    paths = []
    for declared in manifest.files:
        path = data_dir / declared.path
        if not path.is_file():
            raise DatasetProblem(DatasetStatus.MISSING, str(path), f"file of dataset {manifest.id} not found; download it from {manifest.source.url}")
        if verify_checksum and declared.sha256 and (actual := sha256_of(path)) != declared.sha256:
            raise DatasetProblem(
                DatasetStatus.CHECKSUM_MISMATCH, str(path), f"sha256 is {actual}, the manifest {manifest.id} expects {declared.sha256}", field="sha256"
            )
        paths.append(path)
    return paths


def read_json_lines(path: Path) -> list[tuple[int, dict]]:
    """(line number, object) for each non-blank line; a line that is not a JSON object names file and line.

    Splits on '\\n' only: some texts hold U+2028 and other characters str.splitlines() would cut at.
    """
    rows = []
    for number, raw in enumerate(path.read_bytes().split(b"\n"), start=1):
        if not raw.strip():
            continue
        try:
            obj = json.loads(raw)
        except (json.JSONDecodeError, UnicodeDecodeError) as exc:
            raise DatasetProblem(DatasetStatus.MALFORMED, str(path), f"not a JSON object: {exc}", row=number) from exc
        if not isinstance(obj, dict):
            raise DatasetProblem(DatasetStatus.MALFORMED, str(path), f"expected a JSON object, got {type(obj).__name__}", row=number)
        rows.append((number, obj))
    return rows


def sample_indices(n: int, size: int | None, seed: int, dataset_id: str) -> np.ndarray:
    """A fixed subset of range(n) in file order: the same for every run and every model."""
    if size is None or n <= size:
        return np.arange(n)
    stream = int.from_bytes(hashlib.sha256(f"{seed}:{dataset_id}".encode()).digest()[:8], "big")
    return np.sort(np.random.default_rng(stream).choice(n, size=size, replace=False))


def load_dataset(
    manifest: DatasetManifest, data_dir: Path, sample_size: int | None = None, seed: int = 0, verify_checksum: bool = True
) -> DatasetLoad:
    """Read, check and sample one dataset. Problems become a status on the result, never an exception."""
    try:
        paths = check_files(manifest, data_dir, verify_checksum)
        records = [(path, number, obj) for path in paths for number, obj in read_json_lines(path)]
    except DatasetProblem as problem:
        return DatasetLoad(manifest, problem.status, str(problem))
    load = DatasetLoad(manifest, DatasetStatus.LOADED, n_file_rows=len(records))
    labels = set(manifest.label_set)
    kept: list[dict[str, str]] = []
    for path, number, obj in records:
        label = obj.get(manifest.label_field)
        label = "" if label is None else str(label).strip()
        text = obj.get(manifest.text_field)
        text = "" if text is None else str(text)
        where = f"{path.relative_to(data_dir)}:{number}"
        if not label:
            load.n_empty_label += 1
        elif label not in labels:
            load.n_unknown_label += 1
            if len(load.unknown_label_examples) < 5:
                load.unknown_label_examples.append(f"{where} label {label!r}")
        elif not text.strip():
            load.n_empty_text += 1
        else:
            kept.append({"culture": manifest.culture, "dataset": manifest.id, "row_id": where, "text": text, "label": label})
    rows = pl.DataFrame(kept, schema=ROWS_SCHEMA)
    load.rows = rows[sample_indices(rows.height, sample_size, seed, manifest.id).tolist()] if rows.height else rows
    if load.n_unknown_label:
        load.detail = (
            f"{load.n_unknown_label} row(s) with a label outside {manifest.label_set} dropped, e.g. "
            + "; ".join(load.unknown_label_examples)
        )
    return load


def load_datasets(
    manifests: Sequence[DatasetManifest], data_dir: Path, sample_size: int | None = None, seed: int = 0, verify_checksum: bool = True
) -> tuple[pl.DataFrame, pl.DataFrame]:
    """(rows of every loadable dataset, one status row per manifest)."""
    loads = [load_dataset(m, data_dir, sample_size, seed, verify_checksum) for m in manifests]
    rows = pl.concat([load.rows for load in loads]) if loads else pl.DataFrame(schema=ROWS_SCHEMA)
    return rows, pl.DataFrame([load.summary() for load in loads], schema=STATUS_SCHEMA)


STATUS_SCHEMA = {
    "culture": pl.String, "dataset": pl.String, "status": pl.String, "detail": pl.String, "n_file_rows": pl.Int64,
    "n_empty_label": pl.Int64, "n_unknown_label": pl.Int64, "n_empty_text": pl.Int64, "n_sampled": pl.Int64,
}
