"""The alignment library on small tables whose answers are worked out by hand: baselines, the cross-culture matrix."""

import numpy as np
import polars as pl
import pytest

from culture_assets.evaluation.alignment import (
    HELDOUT_TOPIC_MODEL,
    NEAREST_TRAINED,
    POOLED,
    SurveyAnswer,
    cross_culture_matrix,
    diagonal_wins,
    nearest_trained_answers,
    pooled_baseline,
    transfer,
)
from culture_assets.evaluation.suite import BootstrapSettings
from culture_assets.survey.questions import WVSQuestion

FOUR = {1: "Agree strongly", 2: "Agree", 3: "Disagree", 4: "Disagree strongly"}
BOOTSTRAP = BootstrapSettings(n_resamples=50, seed=0)


def question(qid: str, topic: str, text: str, options: dict[int, str] = FOUR) -> WVSQuestion:
    return WVSQuestion(id=qid, topic=topic, text=text, options=options)


def answer(distribution: list[float], n_valid: int = 100, codes: list[int] | None = None) -> SurveyAnswer:
    codes = codes or list(range(1, len(distribution) + 1))
    return SurveyAnswer(codes, np.asarray(distribution, dtype=float), codes[int(np.argmax(distribution))], n_valid)


def test_pooled_baseline_pools_the_other_cultures_respondents_and_never_the_target():
    q = question("Q1", "Values", "Is work important?")
    targets = {
        "a": {"Q1": answer([1.0, 0.0, 0.0, 0.0], n_valid=100)},
        "b": {"Q1": answer([0.0, 1.0, 0.0, 0.0], n_valid=300)},
        "c": {"Q1": answer([0.0, 0.0, 0.5, 0.5], n_valid=100)},
    }
    metrics, rows = pooled_baseline("a", [q], targets, BOOTSTRAP)
    # b and c pooled by respondents: (300 x [0,1,0,0] + 100 x [0,0,.5,.5]) / 400; a's own answer is not in it
    assert rows["model_distribution"][0].to_list() == pytest.approx([0.0, 0.75, 0.125, 0.125])
    assert rows["model"][0] == POOLED and rows["asked"][0]
    accuracy = metrics.filter(pl.col("metric") == "modal_accuracy").row(0, named=True)
    assert accuracy["value"] == 0.0 and accuracy["n"] == 1  # mode 2, the survey's 1
    # JS distance of disjoint supports is 1
    assert metrics.filter(pl.col("metric") == "js_distance")["value"][0] == pytest.approx(1.0)


def test_nearest_trained_question_answer_prefers_the_same_scale_and_moves_others_by_position():
    heldout = question("Q100", "Held", "alpha")
    trained = [question("Q101", "Other", "alpha prime", {1: "Yes", 2: "No"}), question("Q102", "Other", "beta"), question("Q103", "Other", "gamma")]
    vectors = {"alpha": [1.0, 0.0, 0.0], "alpha prime": [1.0, 0.1, 0.0], "beta": [0.6, 0.8, 0.0], "gamma": [0.0, 0.0, 1.0]}
    embed = lambda texts: np.array([vectors[t] for t in texts])
    answers = {"Q101": answer([0.9, 0.1]), "Q102": answer([0.1, 0.2, 0.3, 0.4]), "Q103": answer([1.0, 0.0, 0.0, 0.0])}
    chosen = nearest_trained_answers([heldout], trained, answers, embed)
    # Q101 is nearest but has two options; Q102 is the nearest four-option question and its distribution is taken as is
    assert chosen["Q100"][1] == "Q102" and chosen["Q100"][0].source == NEAREST_TRAINED
    assert chosen["Q100"][0].distribution.tolist() == pytest.approx([0.1, 0.2, 0.3, 0.4])
    # with no four-option question trained, Q101's yes/no answer moves to the ends of the four-point scale
    only_binary = nearest_trained_answers([heldout], trained[:1], answers, embed)
    assert only_binary["Q100"][0].distribution.tolist() == pytest.approx([0.9, 0.0, 0.0, 0.1])
    # a question the culture did not answer is not a candidate
    assert nearest_trained_answers([heldout], trained[:1], {}, embed) == {}


def test_transfer_by_scale_position():
    assert transfer([0.5, 0.5], [1, 2], [1, 2, 3, 4]).tolist() == [0.5, 0.0, 0.0, 0.5]
    assert transfer([0.25, 0.25, 0.25, 0.25], [1, 2, 3, 4], [0, 1]).tolist() == [0.5, 0.5]
    assert transfer([0.1, 0.9], [1, 2], [1, 2]).tolist() == [0.1, 0.9]


def model_rows(rows: list[tuple[str, str, list[float] | None]]) -> pl.DataFrame:
    return pl.DataFrame(
        [{"culture": c, "model": HELDOUT_TOPIC_MODEL, "question_id": q, "valid": d is not None, "model_distribution": d} for c, q, d in rows],
        schema={"culture": pl.String, "model": pl.String, "question_id": pl.String, "valid": pl.Boolean, "model_distribution": pl.List(pl.Float64)},
    )


def test_cross_culture_matrix_by_hand_the_diagonal_wins_and_invalid_answers_count_as_worst():
    one_hot = lambda k: [1.0 if i == k else 0.0 for i in range(4)]
    targets = {"a": {"Q1": answer(one_hot(0)), "Q2": answer(one_hot(1))}, "b": {"Q1": answer(one_hot(2)), "Q2": answer(one_hot(3))}}
    # each culture's model answers exactly its own survey; b's model gives no valid answer on Q2
    answers = model_rows([("a", "Q1", one_hot(0)), ("a", "Q2", one_hot(1)), ("b", "Q1", one_hot(2)), ("b", "Q2", None)])
    matrix = cross_culture_matrix(answers, targets, BOOTSTRAP)
    cell = lambda m, s, metric: matrix.filter((pl.col("model_culture") == m) & (pl.col("survey_culture") == s) & (pl.col("metric") == metric)).row(0, named=True)
    assert matrix.height == 2 * 2 * 2
    assert cell("a", "a", "js_distance")["value"] == pytest.approx(0.0) and cell("a", "a", "modal_accuracy")["value"] == 1.0
    assert cell("a", "b", "js_distance")["value"] == pytest.approx(1.0) and cell("a", "b", "modal_accuracy")["value"] == 0.0
    # b's model: Q1 exact (0), Q2 invalid (worst, 1): mean 0.5 on its own survey; against a's: 1 and 1
    assert cell("b", "b", "js_distance")["value"] == pytest.approx(0.5)
    assert cell("b", "a", "js_distance")["value"] == pytest.approx(1.0) and cell("b", "b", "modal_accuracy")["value"] == 0.5
    assert (matrix["n"] == 2).all()
    assert ((matrix["ci_low"] <= matrix["value"] + 1e-12) & (matrix["value"] <= matrix["ci_high"] + 1e-12)).all()
    wins = diagonal_wins(matrix)
    assert wins["diagonal_wins"].to_list() == [True, True] and wins["closest_model"].to_list() == ["a", "b"]


def test_a_column_uses_only_questions_its_survey_asked_and_every_model_answered():
    targets = {"a": {"Q1": answer([1, 0, 0, 0]), "Q2": answer([0, 1, 0, 0])}, "b": {"Q2": answer([0, 1, 0, 0])}}
    answers = model_rows([("a", "Q1", [1, 0, 0, 0]), ("a", "Q2", [0, 1, 0, 0]), ("b", "Q2", [0, 1, 0, 0])])
    matrix = cross_culture_matrix(answers, targets, BOOTSTRAP)
    assert dict(matrix.filter(pl.col("metric") == "js_distance").select("survey_culture", "n").unique().iter_rows()) == {"a": 1, "b": 1}
