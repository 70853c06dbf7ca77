"""A culture's evaluation: every model on every loaded dataset, macro-F1 with paired bootstrap CIs,
trivial baselines, calibrated decisions, AUROC, and paired differences between models.

One set of cluster-bootstrap weights (comparisons.py) is drawn per culture and shared by every
model and dataset: rows sharing a text across datasets are drawn together, and the culture
average's replicates are the mean of the per-dataset replicates under the same draws.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass
from typing import Callable, Sequence

import numpy as np
import polars as pl
from pydantic import BaseModel, ConfigDict, Field

from culture_assets.evaluation.cache import EvalCache
from culture_assets.evaluation.manifest import DatasetManifest
from culture_assets.evaluation.calibration import CONTENT_FREE_TEXTS, calibrated_decisions
from culture_assets.evaluation.comparisons import COMPARISONS, CULTURE_AVERAGE, cluster_ids, cluster_weights, holm, paired_difference
from culture_assets.evaluation.metrics import (
    INVALID, binary_auroc, class_balance_flag, encode, invalid_rate, label_distribution, macro_f1, majority_macro_f1,
    percentile_ci, stratified_macro_f1, valid_macro_f1, weighted_macro_f1,
)
from culture_assets.evaluation.models import ModelUnderTest
from culture_assets.evaluation.scoring import ChatRunnerFactory, ModelScorer, ScoringSettings, dataset_task

AVERAGE = "average"
# the culture average over the datasets no class-balance flag marks (see metrics.class_balance_flag)
AVERAGE_UNFLAGGED = "average_unflagged"
# trivial classifiers, scored on the same rows as the models (variant TRIVIAL)
MAJORITY, STRATIFIED, TRIVIAL = "majority_class", "stratified_random", "trivial_baseline"
# the gold labels' counts in the label_counts table
GOLD = "gold"
METRIC_COLUMNS = {
    "culture": pl.String, "dataset": pl.String, "model": pl.String, "metric": pl.String, "value": pl.Float64,
    "ci_low": pl.Float64, "ci_high": pl.Float64, "n": pl.Int64, "invalid_rate": pl.Float64, "config_hash": pl.String,
    "variant": pl.String, "n_train": pl.Int64, "tiny_model": pl.Boolean, "eval_config": pl.String,
}
PREDICTION_COLUMNS = {
    "culture": pl.String, "dataset": pl.String, "row_id": pl.String, "model": pl.String, "label": pl.String, "prediction": pl.String,
    "calibrated_prediction": pl.String,
}
COMPARISON_COLUMNS = {
    "culture": pl.String, "scope": pl.String, "model": pl.String, "baseline": pl.String, "diff": pl.Float64, "ci_low": pl.Float64,
    "ci_high": pl.Float64, "p_value": pl.Float64, "p_holm": pl.Float64, "n_clusters": pl.Int64, "config_hash": pl.String,
}
REPLICATE_COLUMNS = {
    "culture": pl.String, "model": pl.String, "baseline": pl.String, "config_hash": pl.String, "diffs": pl.List(pl.Float64),
}
LABEL_COUNT_COLUMNS = {
    "culture": pl.String, "dataset": pl.String, "model": pl.String, "label": pl.String, "n": pl.Int64, "share": pl.Float64,
    "eval_config": pl.String,
}


@dataclass(frozen=True)
class BootstrapSettings:
    n_resamples: int = 1000
    seed: int = 0
    level: float = 0.95


class EvaluationSettings(BaseModel):
    """How the models are scored (the scoring assets' config derives its fields from these)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    batch_size: int = Field(default=16, ge=1, description="Rows scored per forward pass of a local model.")
    structured_output: bool = Field(default=False, description="Send a JSON-schema enum of the labels to API models.")
    device: str = Field(default="", description="torch device of local models; empty: cuda when available, else cpu.")
    n_resamples: int = Field(default=1000, ge=1, description="Bootstrap resamples of each confidence interval.")
    bootstrap_seed: int = Field(default=0, description="Seed of the bootstrap.")
    max_invalid_rate: float = Field(default=0.1, ge=0, le=1, description="The culture_scores check warns above this share of unparseable answers.")
    chat_logprobs: bool = Field(default=True, description="Ask API models for log-probabilities; decide from them when returned.")

    def scoring(self) -> ScoringSettings:
        return ScoringSettings(self.batch_size, self.structured_output, self.device or None, self.chat_logprobs)

    def bootstrap(self) -> BootstrapSettings:
        return BootstrapSettings(self.n_resamples, self.bootstrap_seed)


def config_hash(model: ModelUnderTest, scorer: str, extra: dict) -> str:
    payload = {"model": model.fingerprint, "system_prompt": model.system_prompt, "scorer": scorer, **extra}
    return hashlib.sha256(json.dumps(payload, sort_keys=True, default=str).encode()).hexdigest()[:16]


def manifest_fingerprint(manifest: DatasetManifest) -> str:
    return hashlib.sha256(manifest.model_dump_json().encode()).hexdigest()[:16]


def evaluation_config(run_config: dict) -> str:
    """One hash per evaluation configuration (sample, scoring and bootstrap settings), the same for
    every culture and model: the report shows only the rows of the newest one."""
    return hashlib.sha256(json.dumps(run_config, sort_keys=True, default=str).encode()).hexdigest()[:16]


@dataclass
class CultureEvaluation:
    metrics: pl.DataFrame
    predictions: pl.DataFrame
    comparisons: pl.DataFrame
    # each comparison's culture-average difference per bootstrap replicate (for the all-culture rows)
    replicates: pl.DataFrame
    label_counts: pl.DataFrame


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
) -> CultureEvaluation:
    """Every model on every dataset present in `rows`: metrics, predictions, paired comparisons, label counts."""
    datasets = [d for d in manifests if d in set(rows["dataset"].unique().to_list())]
    rows = rows.filter(pl.col("dataset").is_in(datasets))
    eval_config = evaluation_config(run_config)
    outputs = {model.label: _score_model(model, datasets, manifests, rows, cache, chat, settings, log) for model in models}

    clusters, n_clusters = cluster_ids(rows["text"].to_list())
    weights = cluster_weights(clusters, n_clusters, bootstrap.n_resamples, bootstrap.seed, culture)
    positions = {d: np.flatnonzero((rows["dataset"] == d).to_numpy()) for d in datasets}
    truth = {d: rows["label"].gather(positions[d]).to_list() for d in datasets}

    metric_rows: list[dict] = []
    label_rows: list[dict] = []
    replicates: dict[str, dict[str, np.ndarray]] = {m.label: {} for m in models}
    flagged = []
    for dataset in datasets:
        manifest, y_true, w = manifests[dataset], truth[dataset], weights[:, positions[dataset]]
        labels = manifest.label_set
        gold = label_distribution(y_true, labels)
        if class_balance_flag(gold):
            flagged.append(dataset)
        label_rows += _label_rows(culture, dataset, GOLD, gold, eval_config)
        extra = {**run_config, "manifest": manifest_fingerprint(manifest), "bootstrap": asdict(bootstrap)}
        for name, value in ((MAJORITY, majority_macro_f1(y_true, labels)), (STRATIFIED, stratified_macro_f1(y_true, labels, seed=bootstrap.seed))):
            metric_rows.append(_row(culture, dataset, name, TRIVIAL, None, False, "macro_f1", value, (float("nan"),) * 2, len(y_true), 0.0,
                                    evaluation_config({**extra, "trivial": name}), eval_config))
        for model in models:
            out = outputs[model.label][dataset]
            predicted = out["predictions"]
            config = config_hash(model, out["scorer"], extra)
            resampled = weighted_macro_f1(encode(y_true, labels), encode(predicted, labels), len(labels), w)
            replicates[model.label][dataset] = resampled
            common = (culture, dataset, model.label, model.variant, model.n_train, model.tiny)
            invalid = invalid_rate(predicted)
            metric_rows.append(_row(*common, "macro_f1", macro_f1(y_true, predicted, labels), percentile_ci(resampled, bootstrap.level),
                                    len(y_true), invalid, config, eval_config))
            metric_rows.append(_row(*common, "macro_f1_valid", valid_macro_f1(y_true, predicted, labels), (float("nan"),) * 2,
                                    sum(p != INVALID for p in predicted), invalid, config, eval_config))
            if out["calibrated"] is not None:
                calibrated = out["calibrated"]
                resampled_cal = weighted_macro_f1(encode(y_true, labels), encode(calibrated, labels), len(labels), w)
                metric_rows.append(_row(*common, "macro_f1_calibrated", macro_f1(y_true, calibrated, labels),
                                        percentile_ci(resampled_cal, bootstrap.level), len(y_true), 0.0, config, eval_config))
            if out["scores"] is not None and len(labels) == 2:
                metric_rows.append(_row(*common, "auroc", binary_auroc(y_true, out["scores"], labels), (float("nan"),) * 2,
                                        len(y_true), invalid, config, eval_config))
            label_rows += _label_rows(culture, dataset, model.label, label_distribution(predicted, labels), eval_config)

    if datasets:
        unflagged = [d for d in datasets if d not in flagged]
        for model in models:
            for scope, members in ((AVERAGE, datasets), (AVERAGE_UNFLAGGED, unflagged)):
                if not members:
                    continue
                values = [r["value"] for r in metric_rows if r["model"] == model.label and r["metric"] == "macro_f1" and r["dataset"] in members]
                predicted = [p for d in members for p in outputs[model.label][d]["predictions"]]
                extra = {**run_config, "datasets": sorted(members), "bootstrap": asdict(bootstrap)}
                resampled = np.mean([replicates[model.label][d] for d in members], axis=0)
                metric_rows.append(_row(culture, scope, model.label, model.variant, model.n_train, model.tiny, "macro_f1", float(np.mean(values)),
                                        percentile_ci(resampled, bootstrap.level), len(predicted), invalid_rate(predicted),
                                        config_hash(model, outputs[model.label][members[0]]["scorer"], extra), eval_config))
        for scope, members in ((AVERAGE, datasets), (AVERAGE_UNFLAGGED, unflagged)):
            if not members:
                continue
            for name in (MAJORITY, STRATIFIED):
                values = [r["value"] for r in metric_rows if r["model"] == name and r["dataset"] in members]
                metric_rows.append(_row(culture, scope, name, TRIVIAL, None, False, "macro_f1", float(np.mean(values)), (float("nan"),) * 2,
                                        sum(len(truth[d]) for d in members), 0.0, evaluation_config({**run_config, "trivial": name}), eval_config))

    comparisons, replicate_rows = _comparisons(culture, datasets, metric_rows, replicates, positions, clusters, bootstrap, eval_config)
    metrics = pl.DataFrame(metric_rows, schema=METRIC_COLUMNS)
    predictions = [
        rows.gather(positions[d]).select("culture", "dataset", "row_id", "label").with_columns(
            pl.lit(label).alias("model"),
            pl.Series("prediction", out[d]["predictions"], dtype=pl.String),
            pl.Series("calibrated_prediction", out[d]["calibrated"] or [None] * len(positions[d]), dtype=pl.String),
        )
        for label, out in outputs.items() for d in datasets
    ]
    preds = pl.concat(predictions).select(list(PREDICTION_COLUMNS)) if predictions else pl.DataFrame(schema=PREDICTION_COLUMNS)
    return CultureEvaluation(metrics, preds, comparisons, replicate_rows, pl.DataFrame(label_rows, schema=LABEL_COUNT_COLUMNS))


def _score_model(model: ModelUnderTest, datasets: Sequence[str], manifests: dict[str, DatasetManifest], rows: pl.DataFrame,
                 cache: EvalCache, chat: ChatRunnerFactory | None, settings: ScoringSettings, log: Callable[[str], None]) -> dict[str, dict]:
    """dataset -> predictions, label scores (when the scorer has them), calibrated predictions, scorer name."""
    scorer = ModelScorer(model, cache, chat, settings, log)
    result: dict[str, dict] = {}
    try:
        for dataset in datasets:
            manifest = manifests[dataset]
            frame = rows.filter(pl.col("dataset") == dataset)
            outputs = scorer.run(dataset_task(manifest, frame["row_id"].to_list(), frame["text"].to_list(), model.system_prompt))
            if outputs.n_not_sent:
                log(f"{model.label} on {dataset}: the LLM budget stopped {outputs.n_not_sent} requests; counted invalid, a re-run sends them")
            scores = np.array(outputs.scores, dtype=float) if outputs.scores and all(s is not None for s in outputs.scores) else None
            calibrated = None
            if scores is not None:
                content_free = scorer.run(dataset_task(
                    manifest, [f"content_free:{i}" for i in range(len(CONTENT_FREE_TEXTS))], list(CONTENT_FREE_TEXTS), model.system_prompt))
                if all(s is not None for s in content_free.scores):
                    calibrated = [manifest.label_set[i] for i in calibrated_decisions(scores, np.array(content_free.scores, dtype=float))]
            result[dataset] = {"predictions": outputs.predictions, "scores": scores, "calibrated": calibrated, "scorer": scorer.scorer_name}
    finally:
        scorer.close()
    return result


def _comparisons(culture: str, datasets: Sequence[str], metric_rows: list[dict], replicates: dict[str, dict[str, np.ndarray]],
                 positions: dict[str, np.ndarray], clusters: np.ndarray, bootstrap: BootstrapSettings, eval_config: str) -> tuple[pl.DataFrame, pl.DataFrame]:
    """Paired differences per dataset and for the culture average; Holm across the culture's datasets
    within each comparison (the culture-average rows are corrected across cultures by the report)."""
    point = {(r["model"], r["dataset"]): r["value"] for r in metric_rows if r["metric"] == "macro_f1"}
    rows, replicate_rows = [], []
    for model, baseline in COMPARISONS:
        if model not in replicates or baseline not in replicates or not datasets:
            continue
        family = []
        for dataset in datasets:
            difference = paired_difference(point[(model, dataset)] - point[(baseline, dataset)],
                                           replicates[model][dataset] - replicates[baseline][dataset], bootstrap.level)
            family.append({"scope": dataset, **asdict(difference), "n_clusters": len(np.unique(clusters[positions[dataset]]))})
        for entry, adjusted in zip(family, holm([e["p_value"] for e in family])):
            entry["p_holm"] = adjusted
        average = np.mean([replicates[model][d] - replicates[baseline][d] for d in datasets], axis=0)
        difference = paired_difference(point[(model, AVERAGE)] - point[(baseline, AVERAGE)], average, bootstrap.level)
        family.append({"scope": CULTURE_AVERAGE, **asdict(difference), "p_holm": float("nan"), "n_clusters": len(np.unique(clusters))})
        rows += [{"culture": culture, "model": model, "baseline": baseline, "config_hash": eval_config, **entry} for entry in family]
        replicate_rows.append({"culture": culture, "model": model, "baseline": baseline, "config_hash": eval_config, "diffs": average.tolist()})
    return pl.DataFrame(rows, schema=COMPARISON_COLUMNS), pl.DataFrame(replicate_rows, schema=REPLICATE_COLUMNS)


def _label_rows(culture: str, dataset: str, model: str, counts: dict[str, int], eval_config: str) -> list[dict]:
    total = max(sum(counts.values()), 1)
    return [{"culture": culture, "dataset": dataset, "model": model, "label": label, "n": n, "share": n / total, "eval_config": eval_config}
            for label, n in counts.items()]


def _row(culture: str, dataset: str, model: str, variant: str, n_train: int | None, tiny: bool, metric: str, value: float,
         ci: tuple[float, float], n: int, invalid: float, config: str, eval_config: str) -> dict:
    return {
        "culture": culture, "dataset": dataset, "model": model, "metric": metric, "value": value, "ci_low": ci[0],
        "ci_high": ci[1], "n": n, "invalid_rate": invalid, "config_hash": config, "variant": variant,
        "n_train": n_train, "tiny_model": tiny, "eval_config": eval_config,
    }
