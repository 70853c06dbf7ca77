"""Known-answer checks of macro-F1, invalid answers and the paired bootstrap."""

import numpy as np
import pytest

from culture_assets.evaluation.comparisons import cluster_ids, cluster_weights
from culture_assets.evaluation.metrics import INVALID, encode, invalid_rate, macro_f1, percentile_ci, weighted_macro_f1


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
    clusters, n = cluster_ids([f"row {i}" for i in range(60)])
    weights = cluster_weights(clusters, n, 25, seed=0, key="d")
    fast = weighted_macro_f1(encode(truth, labels), encode(predicted, labels), 3, weights)
    expanded = [[i for i in range(60) for _ in range(int(row[i]))] for row in weights]
    slow = [macro_f1([truth[i] for i in rows], [predicted[i] for i in rows], labels) for rows in expanded]
    np.testing.assert_allclose(fast, slow, rtol=1e-6)


def test_bootstrap_weights_are_paired_and_deterministic():
    truth = ["a"] * 30 + ["b"] * 30
    clusters, n = cluster_ids([f"row {i}" for i in range(60)])
    weights = cluster_weights(clusters, n, 500, seed=7, key="ds")
    assert np.array_equal(weights, cluster_weights(clusters, n, 500, seed=7, key="ds"))
    assert (weights.sum(axis=1) == 60).all()
    codes = encode(truth, ["a", "b"])
    assert (weighted_macro_f1(codes, codes, 2, weights) == 1.0).all()
    noisy_pred = encode(truth[:20] + ["b"] * 10 + truth[30:], ["a", "b"])
    noisy = weighted_macro_f1(codes, noisy_pred, 2, weights)
    low, high = percentile_ci(noisy)
    assert low < macro_f1(truth, truth[:20] + ["b"] * 10 + truth[30:], ["a", "b"]) < high < 1.0
