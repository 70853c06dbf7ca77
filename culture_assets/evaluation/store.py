"""Evaluation rows in the warehouse: per-dataset load status, metrics, comparisons and label counts.

Rows of one evaluation configuration (`eval_config`, see suite.evaluation_config) replace only
rows of the same configuration: a run with another sample size or other scoring settings adds
its rows beside the older ones, and the report picks one configuration.
"""

from __future__ import annotations

from typing import Sequence

import polars as pl

from culture_assets.evaluation.suite import CultureEvaluation
from culture_assets.store import Warehouse


def write_dataset_status(warehouse: Warehouse, culture: str, status: pl.DataFrame, run_id: str) -> None:
    warehouse.replace_rows("eval_dataset_status", status.with_columns(pl.lit(run_id).alias("run_id")), {"culture": culture})


def write_metrics(warehouse: Warehouse, metrics: pl.DataFrame, run_id: str, culture: str, metric_names: Sequence[str], models: Sequence[str]) -> None:
    """Replace this culture's rows of these metrics for these models in one transaction (other variants'
    and other configurations' rows stay)."""
    frame = metrics.with_columns(pl.lit(run_id).alias("run_id"))
    where: dict[str, object] = {"culture": culture, "metric": list(metric_names), "model": list(models)}
    configs = frame["eval_config"].drop_nulls().unique().to_list() if "eval_config" in frame.columns else []
    if configs:
        where["eval_config"] = configs
    warehouse.replace_rows("metrics", frame, where)


def write_culture_evaluation(warehouse: Warehouse, culture: str, evaluation: CultureEvaluation, run_id: str) -> None:
    """A culture's metrics, comparisons, culture-average replicates and label counts, each replacing
    the rows of the same culture and configuration."""
    metrics = evaluation.metrics
    write_metrics(warehouse, metrics, run_id, culture, metrics["metric"].unique().to_list(), metrics["model"].unique().to_list())
    configs = metrics["eval_config"].drop_nulls().unique().to_list()
    if not configs:
        return
    for table, frame, config_column in (
        ("comparisons", evaluation.comparisons, "config_hash"),
        ("comparison_replicates", evaluation.replicates, "config_hash"),
        ("label_counts", evaluation.label_counts, "eval_config"),
    ):
        warehouse.replace_rows(table, frame.with_columns(pl.lit(run_id).alias("run_id")), {"culture": culture, config_column: configs})
