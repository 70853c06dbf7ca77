"""Macro-F1 over a dataset's label set, and paired bootstrap confidence intervals.

An "invalid" prediction (an unparseable answer) is not a class: it is a miss for the row's
true class, so it lowers that class's recall and never earns a true positive. The bootstrap
draws one matrix of row indices per dataset and every model is scored on those same rows, so
differences between models are not blurred by different resamples.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from typing import Sequence

import numpy as np
from sklearn.metrics import f1_score

INVALID = "__invalid__"


@dataclass(frozen=True)
class Estimate:
    value: float
    ci_low: float
    ci_high: float
    n: int


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


def resampled_macro_f1(true_codes: np.ndarray, pred_codes: np.ndarray, n_labels: int, indices: np.ndarray) -> np.ndarray:
    """Macro-F1 of each resample (rows of `indices`), vectorised; equals macro_f1 on each resample."""
    t = true_codes[indices]
    p = pred_codes[indices]
    f1s = []
    for k in range(n_labels):
        tp = ((t == k) & (p == k)).sum(axis=1)
        fp = ((t != k) & (p == k)).sum(axis=1)
        fn = ((t == k) & (p != k)).sum(axis=1)
        denominator = 2 * tp + fp + fn
        f1s.append(np.where(denominator > 0, 2 * tp / np.maximum(denominator, 1), 0.0))
    return np.mean(f1s, axis=0)


def percentile_ci(samples: np.ndarray, level: float = 0.95) -> tuple[float, float]:
    tail = (1 - level) / 2 * 100
    return float(np.percentile(samples, tail)), float(np.percentile(samples, 100 - tail))


def macro_f1_with_ci(
    y_true: Sequence[str], y_pred: Sequence[str], labels: Sequence[str], indices: np.ndarray, level: float = 0.95
) -> tuple[Estimate, np.ndarray]:
    """(point estimate with percentile CI, the per-resample values) on the given resample indices."""
    true_codes, pred_codes = encode(y_true, labels), encode(y_pred, labels)
    resampled = resampled_macro_f1(true_codes, pred_codes, len(labels), indices)
    low, high = percentile_ci(resampled, level)
    return Estimate(macro_f1(y_true, y_pred, labels), low, high, len(y_true)), resampled


def invalid_rate(y_pred: Sequence[str]) -> float:
    return float(np.mean([p == INVALID for p in y_pred])) if len(y_pred) else 0.0
