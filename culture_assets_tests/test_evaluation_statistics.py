"""Known-answer checks of the statistics: paired differences, cluster bootstrap, Holm, trivial baselines,
contextual calibration and AUROC."""

import numpy as np
import pytest

from culture_assets.evaluation.calibration import calibrated_decisions
from culture_assets.evaluation.comparisons import cluster_ids, cluster_weights, holm, paired_difference, text_cluster_key
from culture_assets.evaluation.metrics import (
    binary_auroc, class_balance_flag, encode, macro_f1, majority_macro_f1, stratified_macro_f1, weighted_macro_f1,
)

LABELS = ["a", "b"]


def replicate_f1(truth, predicted, weights):
    return weighted_macro_f1(encode(truth, LABELS), encode(predicted, LABELS), len(LABELS), weights)


def test_weighted_macro_f1_equals_macro_f1_on_the_expanded_sample():
    truth, predicted = ["a", "a", "b", "b", "a"], ["a", "b", "b", "a", "a"]
    counts = np.array([[2, 0, 1, 3, 1]])
    expanded = [i for i, c in enumerate(counts[0]) for _ in range(c)]
    assert replicate_f1(truth, predicted, counts)[0] == pytest.approx(macro_f1([truth[i] for i in expanded], [predicted[i] for i in expanded], LABELS))


def test_a_known_paired_difference_and_a_ci_covering_it():
    truth = ["a", "b"] * 50
    perfect = list(truth)
    # wrong on every fifth row: a: tp 40, fn 10, fp 10 -> 0.8; b likewise
    flawed = [("b" if t == "a" else "a") if i % 5 == 0 else t for i, t in enumerate(truth)]
    assert macro_f1(truth, flawed, LABELS) == pytest.approx(0.8)
    clusters, n = cluster_ids([f"text number {i}" for i in range(len(truth))])
    weights = cluster_weights(clusters, n, 2000, seed=1)
    result = paired_difference(1.0 - 0.8, replicate_f1(truth, perfect, weights) - replicate_f1(truth, flawed, weights))
    assert result.diff == pytest.approx(0.2)
    assert result.ci_low < 0.2 < result.ci_high and result.ci_low > 0.05
    assert result.p_value < 0.01
    # the same model against itself: difference 0, p-value 1
    same = paired_difference(0.0, replicate_f1(truth, flawed, weights) - replicate_f1(truth, flawed, weights))
    assert (same.diff, same.ci_low, same.ci_high, same.p_value) == (0.0, 0.0, 0.0, 1.0)


def test_datasets_sharing_texts_resample_together_and_widen_the_ci():
    """Two datasets of the same 60 texts (DETOXIS-like): model A beats B on the same texts in both.
    Drawing texts as clusters keeps that correlation; drawing rows independently averages it away."""
    rng = np.random.default_rng(0)
    texts = [f"comment {i} about people" for i in range(60)]
    truth = [LABELS[int(x)] for x in rng.integers(0, 2, 60)]
    a_right = rng.random(60) < 0.8
    b_right = rng.random(60) < 0.6
    flip = {"a": "b", "b": "a"}
    model_a = [t if r else flip[t] for t, r in zip(truth, a_right)]
    model_b = [t if r else flip[t] for t, r in zip(truth, b_right)]
    all_texts, all_truth = texts + texts, truth + truth
    both_a, both_b = model_a + model_a, model_b + model_b

    def average_difference_ci(clusters: np.ndarray, n: int) -> float:
        weights = cluster_weights(clusters, n, 4000, seed=3)
        first, second = weights[:, :60], weights[:, 60:]
        diffs = [replicate_f1(all_truth[s], both_a[s], w) - replicate_f1(all_truth[s], both_b[s], w)
                 for s, w in ((slice(0, 60), first), (slice(60, 120), second))]
        result = paired_difference(0.0, np.mean(diffs, axis=0))
        return result.ci_high - result.ci_low

    clustered, n_clusters = cluster_ids(all_texts)
    assert n_clusters == 60 and (clustered[:60] == clustered[60:]).all()
    independent = np.arange(120)
    assert average_difference_ci(clustered, n_clusters) > 1.25 * average_difference_ci(independent, 120)


def test_permuted_copies_fall_in_one_cluster():
    assert text_cluster_key("Go away, you idiot!") == text_cluster_key("idiot you away go")
    clusters, n = cluster_ids(["a b c", "c b a", "a b d", "A  B, C."])
    assert n == 2 and clusters[0] == clusters[1] == clusters[3] != clusters[2]


def test_holm_on_known_p_values():
    assert holm([0.01, 0.04, 0.03]) == pytest.approx([0.03, 0.06, 0.06])
    adjusted = holm([0.2, float("nan"), 0.01])
    assert adjusted[0] == pytest.approx(0.2) and np.isnan(adjusted[1]) and adjusted[2] == pytest.approx(0.02)


def test_trivial_baselines_on_hand_made_labels():
    # always "a": a has precision 3/4, recall 1 -> 6/7; b never predicted -> 0
    assert majority_macro_f1(["a", "a", "a", "b"], LABELS) == pytest.approx(3 / 7)
    # random with the label shares: each class's expected F1 tends to its share, so macro-F1 to 1/2
    assert stratified_macro_f1(["a"] * 700 + ["b"] * 300, LABELS) == pytest.approx(0.5, abs=0.02)
    # a single-class set: the majority classifier is perfect on its class, the absent one scores 0
    assert majority_macro_f1(["b"] * 5, LABELS) == pytest.approx(0.5)


def test_class_balance_flags():
    assert class_balance_flag({"OFF": 0, "NOT": 1000}).startswith("degenerate")
    assert class_balance_flag({"threat": 4, "no": 996}) == "rare class: threat has 4 of 1000 rows"
    assert class_balance_flag({"HS": 44, "NOT": 956}).startswith("rare class")
    assert class_balance_flag({"OFF": 300, "NOT": 700}) == ""


def test_contextual_calibration_flips_a_prior_shifted_model_back():
    truth = np.array([0, 1, 0, 1, 1, 0])
    evidence = np.where(truth[:, None] == np.arange(2), -0.5, -1.5)  # the text points at the right label
    prior_shift = np.array([0.0, 3.0])  # the model says label 1 whatever the text
    scores = evidence + prior_shift
    assert (scores.argmax(axis=1) == 1).all()
    content_free = np.array([[-1.0, -1.0], [-0.9, -1.1], [-1.1, -0.9]]) + prior_shift
    assert (calibrated_decisions(scores, content_free) == truth).all()


def test_binary_auroc_from_label_scores():
    truth = ["a", "a", "b", "b"]
    scores = np.array([[0.0, -1.0], [-2.0, -1.0], [-2.0, 0.0], [-3.0, -2.0]])
    # margins a-b: 1, -1 | -2, -1: of the four (a, b) pairs three rank a first and one ties
    assert binary_auroc(truth, scores, LABELS) == pytest.approx(0.875)
    assert np.isnan(binary_auroc(["a", "a"], scores[:2], LABELS))
