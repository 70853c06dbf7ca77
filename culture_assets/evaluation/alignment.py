"""WVS alignment on held-out questions: the model's answer distribution vs the culture's survey.

A local model's distribution is the softmax of its option log-likelihoods (the answer codes as
choices); an API model at temperature 0 gives one answer, so its distribution is that answer
(one-hot). An unparseable answer is the worst outcome (distance 1, not modal) and its rate is
reported as the invalid rate.
Metrics per question: Jensen-Shannon distance (base 2, in [0, 1]); Wasserstein-1 distance over
the answer codes divided by the scale's range (so 4- and 10-point scales compare; the WVS
scales used here are ordinal); modal accuracy (the model's most likely code is the survey mode).
The per-model means carry a bootstrap CI over questions, the same resamples for every model.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Sequence

import numpy as np
import polars as pl
from scipy.spatial.distance import jensenshannon
from scipy.stats import wasserstein_distance

from culture_assets.evaluation.cache import EvalCache
from culture_assets.evaluation.metrics import INVALID, bootstrap_indices, percentile_ci
from culture_assets.evaluation.models import ModelUnderTest
from culture_assets.evaluation.scoring import ChatRunnerFactory, ChoiceTask, ModelScorer, ScoringSettings
from culture_assets.evaluation.suite import METRIC_COLUMNS, BootstrapSettings, config_hash
from culture_assets.survey.questions import WVSQuestion
from culture_assets.training.training_set import user_prompt

DATASET = "wvs_heldout"
ALIGNMENT_METRICS = ("js_distance", "wasserstein", "modal_accuracy")


def question_prompt(question: WVSQuestion) -> str:
    """The question as the models were trained on it: one prompt builder for training and alignment."""
    return user_prompt(question.text, question)


def question_task(question: WVSQuestion, system_prompt: str | None) -> ChoiceTask:
    codes = [str(c) for c in question.valid_codes]
    user = {"role": "user", "content": question_prompt(question)}
    messages = [{"role": "system", "content": system_prompt}, user] if system_prompt else [user]
    return ChoiceTask(dataset=f"{DATASET}:{question.id}", labels=codes, verbalizers=codes, row_ids=[question.id], prompts=[messages])


def answer_distribution(prediction: str, scores: list[float] | None, codes: Sequence[int]) -> np.ndarray | None:
    if scores is not None:
        logits = np.asarray(scores, dtype=float)
        weights = np.exp(logits - logits.max())
        return weights / weights.sum()
    if prediction == INVALID:
        return None
    return np.array([1.0 if str(c) == prediction else 0.0 for c in codes])


@dataclass(frozen=True)
class QuestionScore:
    question_id: str
    js_distance: float
    wasserstein: float
    modal_accuracy: float


def compare(question_id: str, codes: Sequence[int], model: np.ndarray, survey: np.ndarray, modal_answer: int) -> QuestionScore:
    span = max(codes) - min(codes)
    return QuestionScore(
        question_id=question_id,
        js_distance=float(jensenshannon(model, survey, base=2)),
        wasserstein=float(wasserstein_distance(codes, codes, model, survey)) / span,
        modal_accuracy=float(codes[int(np.argmax(model))] == modal_answer),
    )


def survey_targets(seed_survey: pl.DataFrame, heldout_ids: Sequence[str]) -> dict[str, tuple[list[int], np.ndarray, int]]:
    """question id -> (codes, survey distribution, modal answer); never-asked questions are left out."""
    wanted = seed_survey.filter(pl.col("question_id").is_in(list(heldout_ids)) & ~pl.col("never_asked"))
    return {
        row["question_id"]: (list(row["codes"]), np.asarray(row["distribution"], dtype=float), int(row["modal_answer"]))
        for row in wanted.iter_rows(named=True)
    }


def align_culture(
    culture: str,
    models: Sequence[ModelUnderTest],
    questions: Sequence[WVSQuestion],
    targets: dict[str, tuple[list[int], np.ndarray, int]],
    cache: EvalCache,
    chat: ChatRunnerFactory | None,
    settings: ScoringSettings,
    bootstrap: BootstrapSettings,
    run_config: dict,
    log: Callable[[str], None] = lambda message: None,
) -> tuple[pl.DataFrame, pl.DataFrame]:
    """(metric rows per model, per question scores) for the held-out questions in `targets`."""
    asked = [q for q in questions if q.id in targets]
    per_question: list[dict] = []
    metric_rows: list[dict] = []
    indices = bootstrap_indices(len(asked), bootstrap.n_resamples, bootstrap.seed, f"{DATASET}:{culture}") if asked else None
    for model in models:
        scorer = ModelScorer(model, cache, chat, settings, log)
        scores: list[QuestionScore | None] = []
        try:
            for question in asked:
                codes, survey, modal = targets[question.id]
                outputs = scorer.run(question_task(question, model.system_prompt))
                distribution = answer_distribution(outputs.predictions[0], outputs.scores[0], codes)
                score = None if distribution is None else compare(question.id, codes, distribution, survey, modal)
                scores.append(score)
                per_question.append({
                    "culture": culture, "model": model.label, "question_id": question.id, "valid": score is not None,
                    "model_distribution": None if distribution is None else distribution.tolist(), "survey_distribution": survey.tolist(),
                    **({k: getattr(score, k) for k in ALIGNMENT_METRICS} if score else dict.fromkeys(ALIGNMENT_METRICS)),
                })
        finally:
            scorer.close()
        invalid = sum(s is None for s in scores) / len(scores) if scores else 0.0
        for metric in ALIGNMENT_METRICS:
            # an unparseable answer is the worst outcome: distance 1, not modal
            worst = 0.0 if metric == "modal_accuracy" else 1.0
            values = np.array([getattr(s, metric) if s else worst for s in scores]) if scores else np.array([])
            low, high = percentile_ci(values[indices].mean(axis=1), bootstrap.level) if len(values) else (float("nan"), float("nan"))
            metric_rows.append({
                "culture": culture, "dataset": DATASET, "model": model.label, "metric": metric,
                "value": float(values.mean()) if len(values) else float("nan"), "ci_low": low, "ci_high": high, "n": len(values),
                "invalid_rate": invalid, "config_hash": config_hash(model, scorer.scorer_name, {**run_config, "questions": [q.id for q in asked]}),
                "variant": model.variant, "n_train": model.n_train, "tiny_model": model.tiny,
            })
    question_schema = {
        "culture": pl.String, "model": pl.String, "question_id": pl.String, "valid": pl.Boolean,
        "model_distribution": pl.List(pl.Float64), "survey_distribution": pl.List(pl.Float64),
        **{k: pl.Float64 for k in ALIGNMENT_METRICS},
    }
    return pl.DataFrame(metric_rows, schema=METRIC_COLUMNS), pl.DataFrame(per_question, schema=question_schema)
