"""What produced a report: date, code version, package versions, models, data versions, sample sizes.

lm-evaluation-harness writes the config, git hash and versions beside its results; the report
does the same, so two reports can be told apart and one can be reproduced.
"""

from __future__ import annotations

import subprocess
from datetime import datetime, timezone
from importlib import metadata
from pathlib import Path

import polars as pl

from culture_assets.store import Warehouse

PACKAGES = ("culture-assets", "torch", "transformers", "peft", "dagster", "duckdb", "scikit-learn", "numpy", "polars", "openai")


def git_commit(directory: Path) -> str:
    """The commit of the checkout the package runs from (with '+changes' when the tree differs), or why not known."""
    try:
        commit = subprocess.run(["git", "rev-parse", "HEAD"], cwd=directory, capture_output=True, text=True, timeout=10, check=True).stdout.strip()
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], cwd=directory, capture_output=True, text=True, timeout=10).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return "unknown (not a git checkout)"
    return commit + ("+changes" if dirty else "")


def package_versions() -> str:
    versions = []
    for name in PACKAGES:
        try:
            versions.append(f"{name} {metadata.version(name)}")
        except metadata.PackageNotFoundError:
            continue
    return ", ".join(versions)


def _distinct(frame: pl.DataFrame, column: str) -> str:
    return ", ".join(sorted(str(v) for v in frame[column].drop_nulls().unique().to_list())) if column in frame.columns and frame.height else "not recorded"


def provenance(
    warehouse: Warehouse, profile: str, generator: str, survey_weighted: str, eval_config: str | None, sample: pl.DataFrame
) -> dict[str, object]:
    """The provenance block; `sample` holds (culture, datasets, rows) of the evaluation shown."""
    registry = warehouse.query("SELECT * FROM model_registry WHERE coalesce(variant, 'default') = 'default' ORDER BY culture")
    survey = warehouse.query("SELECT * FROM survey_distribution LIMIT 100000")
    training_sets = ", ".join(f"{r['culture']} {str(r['training_set_version'] or '')[:12]}" for r in registry.iter_rows(named=True)) or "none trained"
    samples = ", ".join(f"{r['culture']} {r['rows']} rows / {r['datasets']} sets" for r in sample.iter_rows(named=True)) or "nothing scored"
    return {
        "generated at (UTC)": datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M:%S"),
        "git commit": git_commit(Path(__file__).resolve().parent),
        "packages": package_versions(),
        "profile": profile,
        "base model": _distinct(registry, "base_model"),
        "trainer": _distinct(registry, "trainer"),
        "augmentation generator": generator,
        "survey file version": _distinct(survey, "survey_version"),
        "survey pooling": _distinct(survey, "pooling"),
        "survey weighted (W_WEIGHT)": survey_weighted,
        "training-set versions": training_sets,
        "evaluation configuration": eval_config or "not recorded",
        "evaluation sample": samples,
        "evaluation rows in total": int(sample["rows"].sum()) if sample.height else 0,
    }
