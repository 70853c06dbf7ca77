"""Paired differences between models, with a bootstrap that resamples texts, not rows.

Many datasets of a culture hold the same texts with other labels (Spanish DETOXIS x6,
Portuguese ToLD-Br x3, Arabic OSACT5 x3 ...), and Korean hateSpeech repeats comments with their
words permuted. Rows that share a text are not independent evidence, so the bootstrap draws
text clusters: a cluster is the bag of words of a text (lower case, word order and punctuation
ignored), taken over all of a culture's datasets. One replicate is a count per cluster
(multinomial, the same law as drawing clusters with replacement), every row of a drawn cluster
comes with it, and every model and dataset of the culture is scored under the same replicate
weights, so a difference between two models is paired twice over: same rows, same draws.

A difference's p-value is two-sided from the same replicates: twice the smaller share of
replicate differences on either side of 0, with the usual +1 correction so it is never 0.
Holm's step-down correction controls the family-wise error across a family of such tests.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass
from typing import Sequence

import numpy as np

# (model, baseline) pairs of the paper's claims, in the order the report shows them
COMPARISONS: tuple[tuple[str, str], ...] = (
    ("culture_model", "base"),
    ("culture_model", "base_culture_prompt"),
    ("culturellm_one", "base_culture_prompt"),
)
CULTURE_AVERAGE = "culture_average"
ALL_CULTURES = "all_cultures"

_WORD = re.compile(r"\w+", re.UNICODE)


def text_cluster_key(text: str) -> str:
    """The bag of words of a text: rows with the same key are drawn together."""
    return " ".join(sorted(_WORD.findall(text.lower())))


def cluster_ids(texts: Sequence[str]) -> tuple[np.ndarray, int]:
    """(cluster index of each text, number of clusters)."""
    _, inverse = np.unique([text_cluster_key(t) for t in texts], return_inverse=True)
    return inverse.astype(np.int64), int(inverse.max()) + 1 if len(inverse) else 0


def _stream(seed: int, key: str) -> np.random.Generator:
    return np.random.default_rng(int.from_bytes(hashlib.sha256(f"{seed}:{key}".encode()).digest()[:8], "big"))


def cluster_weights(clusters: np.ndarray, n_clusters: int, n_resamples: int, seed: int, key: str = "") -> np.ndarray:
    """(n_resamples, rows) bootstrap weights: how often each row's cluster was drawn in each replicate."""
    if n_clusters == 0:
        return np.zeros((n_resamples, 0))
    counts = _stream(seed, key).multinomial(n_clusters, np.full(n_clusters, 1.0 / n_clusters), size=n_resamples)
    return counts.astype(np.float32)[:, clusters]  # exact counts up to 2**24; half the memory of float64


@dataclass(frozen=True)
class Difference:
    diff: float
    ci_low: float
    ci_high: float
    p_value: float


def paired_difference(point: float, replicates: np.ndarray, level: float = 0.95) -> Difference:
    """A difference (model - baseline) with its percentile CI and two-sided bootstrap p-value."""
    tail = (1 - level) / 2 * 100
    n = len(replicates)
    below, above = int(np.sum(replicates <= 0)), int(np.sum(replicates >= 0))
    p_value = min(1.0, 2 * min(below + 1, above + 1) / (n + 1))
    return Difference(point, float(np.percentile(replicates, tail)), float(np.percentile(replicates, 100 - tail)), p_value)


def holm(p_values: Sequence[float]) -> list[float]:
    """Holm step-down adjusted p-values (NaN entries are left out of the family and stay NaN)."""
    values = np.asarray(p_values, dtype=float)
    finite = np.flatnonzero(~np.isnan(values))
    adjusted = np.full(len(values), np.nan)
    order = finite[np.argsort(values[finite], kind="stable")]
    running = 0.0
    for rank, index in enumerate(order):
        running = max(running, min(1.0, (len(order) - rank) * values[index]))
        adjusted[index] = running
    return adjusted.tolist()
