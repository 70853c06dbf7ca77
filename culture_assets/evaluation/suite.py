"""A culture's evaluation: every model on every loaded dataset, macro-F1 with paired bootstrap CIs.

Each dataset gets one matrix of resampled row indices, shared by all models; the culture
average's CI comes from averaging the per-dataset resamples, so it too compares models on
the same rows.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass
from typing import Callable, Sequence

import numpy as np
import polars as pl

from culture_assets.evaluation.cache import EvalCache
from culture_assets.evaluation.manifest import DatasetManifest
from culture_assets.evaluation.metrics import bootstrap_indices, invalid_rate, macro_f1_with_ci, percentile_ci
from culture_assets.evaluation.models import ModelUnderTest
from culture_assets.evaluation.scoring import ChatRunnerFactory, ModelScorer, ScoringSettings, dataset_task

AVERAGE = "average"
METRIC_COLUMNS = {
    "culture": pl.String, "dataset": pl.String, "model": pl.String, "metric": pl.String, "value": pl.Float64,
    "ci_low": pl.Float64, "ci_high": pl.Float64, "n": pl.Int64, "invalid_rate": pl.Float64, "config_hash": pl.String,
    "variant": pl.String, "n_train": pl.Int64, "tiny_model": pl.Boolean,
}
PREDICTION_COLUMNS = {
    "culture": pl.String, "dataset": pl.String, "row_id": pl.String, "model": pl.String, "label": pl.String, "prediction": pl.String,
}


@dataclass(frozen=True)
class BootstrapSettings:
    n_resamples: int = 1000
    seed: int = 0
    level: float = 0.95


def config_hash(model: ModelUnderTest, scorer: str, extra: dict) -> str:
    payload = {"model": model.fingerprint, "system_prompt": model.system_prompt, "scorer": scorer, **extra}
    return hashlib.sha256(json.dumps(payload, sort_keys=True, default=str).encode()).hexdigest()[:16]


def manifest_fingerprint(manifest: DatasetManifest) -> str:
    return hashlib.sha256(manifest.model_dump_json().encode()).hexdigest()[:16]


def score_culture(
    culture: str,
    models: Sequence[ModelUnderTest],
    manifests: dict[str, DatasetManifest],
    rows: pl.DataFrame,
    cache: EvalCache,
    chat: ChatRunnerFactory | None,
    settings: ScoringSettings,
    bootstrap: BootstrapSettings,
    run_config: dict,
    log: Callable[[str], None] = lambda message: None,
) -> tuple[pl.DataFrame, pl.DataFrame]:
    """(metrics rows, per-row predictions) for every model on every dataset present in `rows`."""
    datasets = [d for d in manifests if d in set(rows["dataset"].unique().to_list())]
    by_dataset = {d: rows.filter(pl.col("dataset") == d) for d in datasets}
    predictions: list[pl.DataFrame] = []
    per_model: dict[str, dict[str, list[str]]] = {}
    scorer_names: dict[str, str] = {}
    for model in models:
        scorer = ModelScorer(model, cache, chat, settings, log)
        scorer_names[model.label] = scorer.scorer_name
        per_model[model.label] = {}
        try:
            for dataset in datasets:
                frame = by_dataset[dataset]
                task = dataset_task(manifests[dataset], frame["row_id"].to_list(), frame["text"].to_list(), model.system_prompt)
                outputs = scorer.run(task)
                if outputs.n_not_sent:
                    log(f"{model.label} on {dataset}: the LLM budget stopped {outputs.n_not_sent} requests; counted invalid, a re-run sends them")
                per_model[model.label][dataset] = outputs.predictions
                predictions.append(
                    frame.select("culture", "dataset", "row_id", "label").with_columns(
                        pl.lit(model.label).alias("model"), pl.Series("prediction", outputs.predictions, dtype=pl.String)
                    )
                )
        finally:
            scorer.close()

    metric_rows = []
    averages: dict[str, list[np.ndarray]] = {m.label: [] for m in models}
    for dataset in datasets:
        truth = by_dataset[dataset]["label"].to_list()
        indices = bootstrap_indices(len(truth), bootstrap.n_resamples, bootstrap.seed, dataset)
        extra = {**run_config, "manifest": manifest_fingerprint(manifests[dataset]), "bootstrap": asdict(bootstrap)}
        for model in models:
            predicted = per_model[model.label][dataset]
            estimate, resampled = macro_f1_with_ci(truth, predicted, manifests[dataset].label_set, indices, bootstrap.level)
            averages[model.label].append(resampled)
            metric_rows.append(
                _metric_row(culture, dataset, model, "macro_f1", estimate.value, estimate.ci_low, estimate.ci_high, estimate.n,
                            invalid_rate(predicted), config_hash(model, scorer_names[model.label], extra))
            )
    if datasets:
        for model in models:
            values = [r["value"] for r in metric_rows if r["model"] == model.label]
            low, high = percentile_ci(np.mean(averages[model.label], axis=0), bootstrap.level)
            all_predictions = [p for d in datasets for p in per_model[model.label][d]]
            extra = {**run_config, "datasets": sorted(datasets), "bootstrap": asdict(bootstrap)}
            metric_rows.append(
                _metric_row(culture, AVERAGE, model, "macro_f1", float(np.mean(values)), low, high, len(all_predictions),
                            invalid_rate(all_predictions), config_hash(model, scorer_names[model.label], extra))
            )
    metrics = pl.DataFrame(metric_rows, schema=METRIC_COLUMNS)
    preds = pl.concat(predictions).select(list(PREDICTION_COLUMNS)) if predictions else pl.DataFrame(schema=PREDICTION_COLUMNS)
    return metrics, preds


def _metric_row(culture: str, dataset: str, model: ModelUnderTest, metric: str, value: float, low: float, high: float,
                n: int, invalid: float, config: str) -> dict:
    return {
        "culture": culture, "dataset": dataset, "model": model.label, "metric": metric, "value": value, "ci_low": low,
        "ci_high": high, "n": n, "invalid_rate": invalid, "config_hash": config, "variant": model.variant,
        "n_train": model.n_train, "tiny_model": model.tiny,
    }
