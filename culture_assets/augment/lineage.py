"""Lineage rows of the augmentation in the warehouse's `sample_lineage` table."""

from __future__ import annotations

from typing import Sequence

import polars as pl

from culture_assets.augment.candidates import STEPS, Candidate, candidates_frame
from culture_assets.store import Warehouse


def write_lineage(warehouse: Warehouse, candidates: Sequence[Candidate], run_id: str) -> int:
    """Replace the augmentation's lineage with this run's rows in one transaction (a failure keeps the old ones)."""
    rows = candidates_frame(candidates).with_columns(pl.lit(run_id).alias("run_id"))
    return warehouse.replace_rows("sample_lineage", rows, {"step": list(STEPS)})
