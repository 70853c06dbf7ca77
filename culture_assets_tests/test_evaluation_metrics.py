"""Known-answer checks of macro-F1, invalid answers and the paired bootstrap."""

import numpy as np
import pytest

from culture_assets.evaluation.metrics import (
    INVALID, bootstrap_indices, encode, invalid_rate, macro_f1, macro_f1_with_ci, resampled_macro_f1,
)


def test_macro_f1_on_hand_made_predictions():
    # class a: tp 1, fn 1 -> F1 2/3; class b: tp 2, fp 1 -> F1 4/5
    assert macro_f1(["a", "a", "b", "b"], ["a", "b", "b", "b"], ["a", "b"]) == pytest.approx((2 / 3 + 4 / 5) / 2)


def test_a_model_that_always_answers_one_class():
    truth = ["NOT"] * 6 + ["OFF"] * 4
    # NOT: tp 6, fp 4 -> 12/16; OFF: never predicted -> 0
    assert macro_f1(truth, ["NOT"] * 10, ["OFF", "NOT"]) == pytest.approx(0.375)
    # over a single-class set (SOLID), the cap is 0.5 with two declared labels
    assert macro_f1(["NOT"] * 10, ["NOT"] * 10, ["OFF", "NOT"]) == pytest.approx(0.5)


def test_invalid_outputs_count_as_wrong_and_are_reported():
    truth = ["a", "b", "b", "a"]
    with_invalid = ["a", INVALID, "b", INVALID]
    # a: tp 1 fn 1 -> 2/3; b: tp 1 fn 1 -> 2/3; the invalid answers earn nothing for any class
    assert macro_f1(truth, with_invalid, ["a", "b"]) == pytest.approx(2 / 3)
    assert macro_f1(truth, with_invalid, ["a", "b"]) < macro_f1(truth, truth, ["a", "b"]) == 1.0
    assert invalid_rate(with_invalid) == 0.5


def test_vectorised_resamples_equal_scikit_learn():
    rng = np.random.default_rng(1)
    labels = ["x", "y", "z"]
    truth = list(rng.choice(labels, 60))
    predicted = list(rng.choice(labels + [INVALID], 60))
    indices = bootstrap_indices(60, 25, seed=0, key="d")
    fast = resampled_macro_f1(encode(truth, labels), encode(predicted, labels), 3, indices)
    slow = [macro_f1([truth[i] for i in row], [predicted[i] for i in row], labels) for row in indices]
    np.testing.assert_allclose(fast, slow)


def test_bootstrap_ci_is_paired_and_deterministic():
    truth = ["a"] * 30 + ["b"] * 30
    indices = bootstrap_indices(60, 500, seed=7, key="ds")
    assert np.array_equal(indices, bootstrap_indices(60, 500, seed=7, key="ds"))
    perfect, _ = macro_f1_with_ci(truth, truth, ["a", "b"], indices)
    assert (perfect.value, perfect.ci_low, perfect.ci_high, perfect.n) == (1.0, 1.0, 1.0, 60)
    noisy_pred = truth[:20] + ["b"] * 10 + truth[30:]
    noisy, resampled = macro_f1_with_ci(truth, noisy_pred, ["a", "b"], indices)
    assert noisy.ci_low < noisy.value < noisy.ci_high < 1.0
    # the same rows for every model: a model with the same answers gets the same resamples
    _, twin = macro_f1_with_ci(truth, list(noisy_pred), ["a", "b"], indices)
    assert np.array_equal(resampled, twin)
