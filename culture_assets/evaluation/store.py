"""Evaluation rows in the warehouse: per-dataset load status and the metrics table."""

from __future__ import annotations

from typing import Sequence

import polars as pl

from culture_assets.store import Warehouse


def write_dataset_status(warehouse: Warehouse, culture: str, status: pl.DataFrame, run_id: str) -> None:
    warehouse.replace_rows("eval_dataset_status", status.with_columns(pl.lit(run_id).alias("run_id")), {"culture": culture})


def write_metrics(warehouse: Warehouse, metrics: pl.DataFrame, run_id: str, culture: str, metric_names: Sequence[str], models: Sequence[str]) -> None:
    """Replace this culture's rows of these metrics for these models in one transaction (other variants' rows stay)."""
    frame = metrics.with_columns(pl.lit(run_id).alias("run_id"))
    warehouse.replace_rows("metrics", frame, {"culture": culture, "metric": list(metric_names), "model": list(models)})
