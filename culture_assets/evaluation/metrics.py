"""Macro-F1 over a dataset's label set, trivial baselines, AUROC and bootstrap confidence intervals.

An "invalid" prediction (an unparseable answer) is not a class: it is a miss for the row's
true class, so it lowers that class's recall and never earns a true positive. The bootstrap
(see comparisons.py) draws one set of weights per replicate and every model is scored on those
same rows, so differences between models are not blurred by different resamples.
"""

from __future__ import annotations

import hashlib
from typing import Sequence

import numpy as np
from sklearn.metrics import f1_score, roc_auc_score

INVALID = "__invalid__"


def macro_f1(y_true: Sequence[str], y_pred: Sequence[str], labels: Sequence[str]) -> float:
    """scikit-learn macro-F1 restricted to `labels`; predictions outside them (INVALID) count as wrong."""
    return float(f1_score(list(y_true), list(y_pred), labels=list(labels), average="macro", zero_division=0))


def bootstrap_indices(n: int, n_resamples: int, seed: int, key: str = "") -> np.ndarray:
    """(n_resamples, n) row indices drawn with replacement; the same for a (seed, key) pair."""
    stream = int.from_bytes(hashlib.sha256(f"{seed}:{key}".encode()).digest()[:8], "big")
    return np.random.default_rng(stream).integers(0, n, size=(n_resamples, n))


def encode(values: Sequence[str], labels: Sequence[str]) -> np.ndarray:
    """Label -> its index in `labels`; anything else -> len(labels) (the invalid slot)."""
    index = {label: i for i, label in enumerate(labels)}
    return np.array([index.get(v, len(labels)) for v in values], dtype=np.int64)


def weighted_macro_f1(true_codes: np.ndarray, pred_codes: np.ndarray, n_labels: int, weights: np.ndarray) -> np.ndarray:
    """Macro-F1 under each row of `weights` (replicates x rows: how often each row was drawn).

    A bootstrap replicate is a count per row, so true/false positives are weighted sums: one
    matrix-vector product per class, whatever the number of replicates.
    """
    f1s = []
    for k in range(n_labels):
        is_true, is_pred = true_codes == k, pred_codes == k
        tp = weights @ (is_true & is_pred)
        fp = weights @ (~is_true & is_pred)
        fn = weights @ (is_true & ~is_pred)
        denominator = 2 * tp + fp + fn
        f1s.append(np.where(denominator > 0, 2 * tp / np.where(denominator > 0, denominator, 1), 0.0))
    return np.mean(f1s, axis=0)


def percentile_ci(samples: np.ndarray, level: float = 0.95) -> tuple[float, float]:
    tail = (1 - level) / 2 * 100
    return float(np.percentile(samples, tail)), float(np.percentile(samples, 100 - tail))


def invalid_rate(y_pred: Sequence[str]) -> float:
    return float(np.mean([p == INVALID for p in y_pred])) if len(y_pred) else 0.0


def valid_macro_f1(y_true: Sequence[str], y_pred: Sequence[str], labels: Sequence[str]) -> float:
    """Macro-F1 on the rows the model answered validly (beside the strict figure, where invalid is wrong)."""
    kept = [(t, p) for t, p in zip(y_true, y_pred) if p != INVALID]
    return macro_f1([t for t, _ in kept], [p for _, p in kept], labels) if kept else float("nan")


def majority_macro_f1(y_true: Sequence[str], labels: Sequence[str]) -> float:
    """Macro-F1 of always answering the most frequent label of the rows scored (ties: first in `labels`)."""
    counts = [sum(t == label for t in y_true) for label in labels]
    return macro_f1(y_true, [labels[int(np.argmax(counts))]] * len(y_true), labels)


def stratified_macro_f1(y_true: Sequence[str], labels: Sequence[str], n_draws: int = 200, seed: int = 0) -> float:
    """Expected macro-F1 of answering at random with the label frequencies of the rows scored
    (mean over `n_draws` seeded draws, vectorised like the bootstrap)."""
    true_codes = encode(y_true, labels)
    shares = np.bincount(true_codes, minlength=len(labels))[: len(labels)] / max(len(true_codes), 1)
    draws = np.random.default_rng(seed).choice(len(labels), size=(n_draws, len(true_codes)), p=shares)
    f1s = []
    for k in range(len(labels)):
        is_true, is_pred = (true_codes == k).astype(float), (draws == k).astype(float)
        tp = is_pred @ is_true
        denominator = is_pred.sum(axis=1) + is_true.sum()  # 2tp + fp + fn
        f1s.append(np.where(denominator > 0, 2 * tp / np.where(denominator > 0, denominator, 1), 0.0))
    return float(np.mean(f1s))


def binary_auroc(y_true: Sequence[str], scores: np.ndarray, labels: Sequence[str]) -> float:
    """Threshold-free AUROC of a two-label set from each row's label scores (log-likelihoods):
    the first label's score minus the second's ranks the rows. NaN when a class is absent."""
    if len(labels) != 2 or len(set(y_true)) < 2:
        return float("nan")
    margin = np.asarray(scores)[:, 0] - np.asarray(scores)[:, 1]
    return float(roc_auc_score([t == labels[0] for t in y_true], margin))


def label_distribution(values: Sequence[str], labels: Sequence[str]) -> dict[str, int]:
    """Count of each label (and of INVALID when any) among `values`, in label order."""
    counts = {label: 0 for label in labels}
    for value in values:
        key = value if value in counts else INVALID
        counts[key] = counts.get(key, 0) + 1
    return counts


# a class this rare makes macro-F1 swing on a handful of rows (JMT threat: 4 positives of 1,000)
RARE_CLASS_SHARE = 0.05
RARE_CLASS_ROWS = 10


def class_balance_flag(gold_counts: dict[str, int]) -> str:
    """'' for a usable label balance; else why the set is degenerate (a declared class absent:
    macro-F1 is capped) or has a rare class (its F1 rests on a few rows)."""
    total = sum(gold_counts.values())
    absent = [label for label, n in gold_counts.items() if n == 0]
    if absent:
        return f"degenerate: no row labelled {', '.join(absent)}"
    label, smallest = min(gold_counts.items(), key=lambda item: item[1])
    if smallest < RARE_CLASS_ROWS or smallest < RARE_CLASS_SHARE * total:
        return f"rare class: {label} has {smallest} of {total} rows"
    return ""
