"""WVS alignment on held-out topics: does a culture model generalise to questions it never saw?

Each culture's held-out-topic models (K-fold over the WVS topics, `heldout_topic_model`) are asked
the seed questions of the topic they were trained without, with the training prompt built by the
same function as training (`training_set.user_prompt`) and the system prompt they were trained
with. Beside them: the base model, the base model told its culture, and two baselines that need
no model at all:
- `nearest_trained_question`: the culture's answer distribution of the trained question nearest
  to the held-out one (cosine of the embedder's seed-text embeddings), among the questions the
  fold model trained on with as many options, else among all of them; moved onto the held-out
  question's scale by scale position (`transfer`). A model that only learned "this culture agrees
  with questions like this" does no better than it.
- `pooled_cultures`: the respondents of every other culture pooled (each culture's distribution
  weighted by its valid answers); what knowing the question but not the culture gives.
  The target culture is left out, so the baseline never contains the answer it is scored on.

A local model's distribution is the softmax of its option log-likelihoods (`loglik`); an API
model's is the softmax of the option tokens' log-probabilities when the endpoint returns them
(`logprobs`), else its one answer at temperature 0 as a one-hot distribution (`answer`). An
unparseable answer is the worst outcome (distance 1, not modal) and its rate is reported.
Metrics per question: Jensen-Shannon distance (base 2, in [0, 1]); Wasserstein-1 distance over
the answer codes divided by the scale's range (so 4- and 10-point scales compare); modal accuracy
(the most likely code is the survey mode). Means carry a bootstrap CI over questions, the same
resamples for every model and baseline of a culture.

The cross-culture matrix scores culture A's held-out-topic models against culture B's survey on
the same questions: per survey B (a column), the questions B was asked that every model answered,
so the cells of a column compare on one sample. Its diagonal should win.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from typing import Callable, Mapping, Sequence

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
HELDOUT_TOPIC_MODEL = "heldout_topic_model"
NEAREST_TRAINED = "nearest_trained_question"
POOLED = "pooled_cultures"
BASELINES = (NEAREST_TRAINED, POOLED)
MATRIX_METRICS = ("js_distance", "modal_accuracy")

PER_QUESTION_SCHEMA = {
    "culture": pl.String, "model": pl.String, "question_id": pl.String, "topic": pl.String, "asked": pl.Boolean, "valid": pl.Boolean,
    "source": pl.String, "model_distribution": pl.List(pl.Float64), "survey_distribution": pl.List(pl.Float64),
    **{k: pl.Float64 for k in ALIGNMENT_METRICS},
}
MATRIX_SCHEMA = {
    "model_culture": pl.String, "survey_culture": pl.String, "metric": pl.String, "value": pl.Float64, "ci_low": pl.Float64,
    "ci_high": pl.Float64, "n": pl.Int64,
}


@dataclass(frozen=True)
class SurveyAnswer:
    codes: list[int]
    distribution: np.ndarray
    modal_answer: int
    n_valid: int


@dataclass(frozen=True)
class ModelAnswer:
    distribution: np.ndarray | None  # None: unparseable
    source: str  # loglik | logprobs | answer | a baseline's name


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


def distribution_source(model: ModelUnderTest, scores: list[float] | None) -> str:
    if model.trainer == "local":
        return "loglik"
    return "logprobs" if scores is not None else "answer"


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


def worst(metric: str) -> float:
    """An unparseable answer: distance 1, not modal."""
    return 0.0 if metric == "modal_accuracy" else 1.0


def survey_targets(seed_survey: pl.DataFrame, question_ids: Sequence[str] | None = None) -> dict[str, SurveyAnswer]:
    """question id -> the culture's answer; never-asked questions are left out."""
    wanted = seed_survey.filter(~pl.col("never_asked"))
    if question_ids is not None:
        wanted = wanted.filter(pl.col("question_id").is_in(list(question_ids)))
    return {
        row["question_id"]: SurveyAnswer(list(row["codes"]), np.asarray(row["distribution"], dtype=float), int(row["modal_answer"]), int(row["n_valid"]))
        for row in wanted.iter_rows(named=True)
    }


def score_model(
    model: ModelUnderTest, questions: Sequence[WVSQuestion], cache: EvalCache, chat: ChatRunnerFactory | None, settings: ScoringSettings,
    log: Callable[[str], None] = lambda message: None,
) -> dict[str, ModelAnswer]:
    """The model's answer distribution on each question (the eval cache spares a re-run)."""
    scorer = ModelScorer(model, cache, chat, settings, log)
    answers: dict[str, ModelAnswer] = {}
    try:
        for question in questions:
            outputs = scorer.run(question_task(question, model.system_prompt))
            distribution = answer_distribution(outputs.predictions[0], outputs.scores[0], question.valid_codes)
            answers[question.id] = ModelAnswer(distribution, distribution_source(model, outputs.scores[0]))
    finally:
        scorer.close()
    return answers


def transfer(distribution: Sequence[float], source_codes: Sequence[int], target_codes: Sequence[int]) -> np.ndarray:
    """A distribution over one scale moved onto another by scale position: each source code's mass goes to the target
    code nearest in relative position (0 = first option, 1 = last). Same-length scales map option to option."""
    def positions(codes: Sequence[int]) -> np.ndarray:
        span = max(codes) - min(codes)
        return np.array([(c - min(codes)) / span if span else 0.0 for c in codes])

    moved = np.zeros(len(target_codes))
    target = positions(target_codes)
    for position, mass in zip(positions(source_codes), distribution):
        moved[int(np.argmin(np.abs(target - position)))] += mass
    return moved / moved.sum()


def nearest_trained_answers(
    heldout: Sequence[WVSQuestion], trained: Sequence[WVSQuestion], answers: Mapping[str, SurveyAnswer],
    embed: Callable[[list[str]], np.ndarray],
) -> dict[str, tuple[ModelAnswer, str]]:
    """Held-out question id -> (the nearest trained question's answer on its scale, that question's id).

    Candidates are the trained questions the culture answered; those with as many options as the held-out question
    come first (their answers need no rescaling), the others only when no such question was trained."""
    candidates = [q for q in trained if q.id in answers]
    if not heldout or not candidates:
        return {}
    vectors = np.asarray(embed([q.text for q in heldout] + [q.text for q in candidates]), dtype=float)
    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
    similarity = vectors[: len(heldout)] @ vectors[len(heldout):].T
    result: dict[str, tuple[ModelAnswer, str]] = {}
    for row, question in enumerate(heldout):
        same_scale = [i for i, c in enumerate(candidates) if len(c.valid_codes) == len(question.valid_codes)]
        pool = same_scale or list(range(len(candidates)))
        nearest = candidates[max(pool, key=lambda i: similarity[row, i])]
        answer = answers[nearest.id]
        result[question.id] = (ModelAnswer(transfer(answer.distribution, answer.codes, question.valid_codes), NEAREST_TRAINED), nearest.id)
    return result


def pooled_answer(question_id: str, other_cultures: Mapping[str, Mapping[str, SurveyAnswer]]) -> ModelAnswer | None:
    """The respondents of the other cultures pooled: their distributions weighted by valid answers (None: nobody asked)."""
    asked = [answers[question_id] for answers in other_cultures.values() if question_id in answers]
    total = sum(a.n_valid for a in asked)
    if not asked or total <= 0:
        return None
    return ModelAnswer(sum(a.n_valid * a.distribution for a in asked) / total, POOLED)


def question_rows(
    culture: str, label: str, questions: Sequence[WVSQuestion], answers: Mapping[str, ModelAnswer], targets: Mapping[str, SurveyAnswer]
) -> list[dict]:
    """Per question: the model's distribution and, where the culture was asked, its distances to the survey."""
    rows = []
    for question in questions:
        if question.id not in answers:
            continue
        answer, target = answers[question.id], targets.get(question.id)
        score = compare(question.id, target.codes, answer.distribution, target.distribution, target.modal_answer) \
            if target is not None and answer.distribution is not None else None
        rows.append({
            "culture": culture, "model": label, "question_id": question.id, "topic": question.topic, "asked": target is not None,
            "valid": answer.distribution is not None, "source": answer.source,
            "model_distribution": None if answer.distribution is None else answer.distribution.tolist(),
            "survey_distribution": None if target is None else target.distribution.tolist(),
            **({k: getattr(score, k) for k in ALIGNMENT_METRICS} if score else dict.fromkeys(ALIGNMENT_METRICS)),
        })
    return rows


def summarise(
    culture: str, per_question: pl.DataFrame, question_ids: Sequence[str], bootstrap: BootstrapSettings, hashes: Mapping[str, str],
    tiny: Mapping[str, bool] | None = None,
) -> pl.DataFrame:
    """Metric rows (mean with a bootstrap CI over `question_ids`) per model; a question a model did not answer
    validly counts as the worst outcome. Every model of the culture gets the same resamples."""
    indices = bootstrap_indices(len(question_ids), bootstrap.n_resamples, bootstrap.seed, f"{DATASET}:{culture}") if question_ids else None
    rows = []
    for label in per_question["model"].unique(maintain_order=True).to_list():
        scored = {r["question_id"]: r for r in per_question.filter(pl.col("model") == label).iter_rows(named=True)}
        invalid = sum(not scored.get(q, {}).get("valid", False) for q in question_ids) / len(question_ids) if question_ids else 0.0
        for metric in ALIGNMENT_METRICS:
            values = np.array([scored[q][metric] if q in scored and scored[q][metric] is not None else worst(metric) for q in question_ids])
            low, high = percentile_ci(values[indices].mean(axis=1), bootstrap.level) if len(values) else (float("nan"), float("nan"))
            rows.append({
                "culture": culture, "dataset": DATASET, "model": label, "metric": metric,
                "value": float(values.mean()) if len(values) else float("nan"), "ci_low": low, "ci_high": high, "n": len(values),
                "invalid_rate": invalid, "config_hash": hashes.get(label), "variant": "baseline" if label in BASELINES else "default",
                "n_train": None, "tiny_model": bool((tiny or {}).get(label, False)),
            })
    return pl.DataFrame(rows, schema=METRIC_COLUMNS)


def baseline_hash(label: str, question_ids: Sequence[str]) -> str:
    return hashlib.sha256(json.dumps({"baseline": label, "questions": list(question_ids)}).encode()).hexdigest()[:16]


def align_culture(
    culture: str,
    fold_models: Mapping[str, ModelUnderTest],
    base_models: Sequence[ModelUnderTest],
    questions: Sequence[WVSQuestion],
    targets: Mapping[str, SurveyAnswer],
    embed: Callable[[list[str]], np.ndarray],
    cache: EvalCache,
    chat: ChatRunnerFactory | None,
    settings: ScoringSettings,
    bootstrap: BootstrapSettings,
    run_config: dict,
    log: Callable[[str], None] = lambda message: None,
) -> tuple[pl.DataFrame, pl.DataFrame]:
    """(metric rows, per-question rows) of one culture on its held-out topics (`fold_models`: topic -> the model
    trained without it). Each fold model answers every question of its topic, asked in this culture or not (the
    cross-culture matrix compares it with other cultures' surveys); the metrics use the questions this culture was asked."""
    rows: list[dict] = []
    heldout = [q for q in questions if q.topic in fold_models]
    asked = [q for q in heldout if q.id in targets]
    hashes: dict[str, str] = {}
    for topic, model in fold_models.items():
        in_topic = [q for q in heldout if q.topic == topic]
        rows += question_rows(culture, HELDOUT_TOPIC_MODEL, in_topic, score_model(model, in_topic, cache, chat, settings, log), targets)
        trained = [q for q in questions if q.topic != topic]
        nearest = nearest_trained_answers([q for q in in_topic if q.id in targets], trained, targets, embed)
        rows += question_rows(culture, NEAREST_TRAINED, in_topic, {q: answer for q, (answer, _) in nearest.items()}, targets)
    if fold_models:
        first = next(iter(fold_models.values()))
        hashes[HELDOUT_TOPIC_MODEL] = config_hash(first, "alignment", {
            **run_config, "folds": {t: m.fingerprint for t, m in fold_models.items()}, "questions": [q.id for q in asked]})
    for model in base_models:
        rows += question_rows(culture, model.label, asked, score_model(model, asked, cache, chat, settings, log), targets)
        hashes[model.label] = config_hash(model, "alignment", {**run_config, "questions": [q.id for q in asked]})
    hashes[NEAREST_TRAINED] = baseline_hash(NEAREST_TRAINED, [q.id for q in asked])
    per_question = pl.DataFrame(rows, schema=PER_QUESTION_SCHEMA)
    tiny = {HELDOUT_TOPIC_MODEL: any(m.tiny for m in fold_models.values()), **{m.label: m.tiny for m in base_models}}
    return summarise(culture, per_question, [q.id for q in asked], bootstrap, hashes, tiny), per_question


def pooled_baseline(
    culture: str, questions: Sequence[WVSQuestion], targets: Mapping[str, Mapping[str, SurveyAnswer]], bootstrap: BootstrapSettings
) -> tuple[pl.DataFrame, pl.DataFrame]:
    """(metric rows, per-question rows) of the pooled-cultures baseline on `questions` (a culture's scored held-out
    questions, in the order its models were summarised, so the bootstrap resamples match theirs)."""
    others = {key: answers for key, answers in targets.items() if key != culture}
    answers = {q.id: a for q in questions if (a := pooled_answer(q.id, others)) is not None}
    per_question = pl.DataFrame(question_rows(culture, POOLED, questions, answers, targets[culture]), schema=PER_QUESTION_SCHEMA)
    ids = [q.id for q in questions]
    return summarise(culture, per_question, ids, bootstrap, {POOLED: baseline_hash(POOLED, ids)}), per_question


def cross_culture_matrix(
    model_answers: pl.DataFrame, targets: Mapping[str, Mapping[str, SurveyAnswer]], bootstrap: BootstrapSettings
) -> pl.DataFrame:
    """Culture A's held-out-topic models (rows of `model_answers`: culture, question_id, valid, model_distribution)
    against culture B's survey: mean distance (and modal accuracy) with a bootstrap CI over questions. A column (one
    survey) uses the questions that culture was asked and every model answered, with one set of resamples."""
    models = sorted(model_answers["culture"].unique().to_list())
    by_model = {
        culture: {r["question_id"]: r["model_distribution"] for r in model_answers.filter(pl.col("culture") == culture).iter_rows(named=True)}
        for culture in models
    }
    rows = []
    for survey_culture in sorted(targets):
        survey = targets[survey_culture]
        shared = sorted(set(survey).intersection(*(set(answers) for answers in by_model.values()))) if by_model else []
        if not shared:
            continue
        indices = bootstrap_indices(len(shared), bootstrap.n_resamples, bootstrap.seed, f"matrix:{survey_culture}")
        for model_culture in models:
            scores = [
                compare(q, survey[q].codes, np.asarray(d), survey[q].distribution, survey[q].modal_answer) if d is not None else None
                for q in shared for d in [by_model[model_culture][q]]
            ]
            for metric in MATRIX_METRICS:
                values = np.array([getattr(s, metric) if s else worst(metric) for s in scores])
                low, high = percentile_ci(values[indices].mean(axis=1), bootstrap.level)
                rows.append({"model_culture": model_culture, "survey_culture": survey_culture, "metric": metric,
                             "value": float(values.mean()), "ci_low": low, "ci_high": high, "n": len(values)})
    return pl.DataFrame(rows, schema=MATRIX_SCHEMA)


def diagonal_wins(matrix: pl.DataFrame, metric: str = "js_distance") -> pl.DataFrame:
    """Per survey culture: the model culture closest to it, and whether that is its own culture's model."""
    part = matrix.filter(pl.col("metric") == metric)
    lower_is_better = metric != "modal_accuracy"
    best = part.sort("value", descending=not lower_is_better).group_by("survey_culture", maintain_order=True).first()
    own = part.filter(pl.col("model_culture") == pl.col("survey_culture")).select("survey_culture", pl.col("value").alias("own_model"))
    return best.select("survey_culture", pl.col("model_culture").alias("closest_model"), pl.col("value").alias("closest_value")).join(
        own, on="survey_culture", how="left").with_columns((pl.col("closest_model") == pl.col("survey_culture")).alias("diagonal_wins")).sort("survey_culture")
