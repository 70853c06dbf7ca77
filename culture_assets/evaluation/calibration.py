"""Contextual calibration (Zhao et al., 2021, "Calibrate Before Use") of label log-likelihoods.

A model's label scores carry a prior that has nothing to do with the text: a chat model may say
"no" to most yes/no questions, and a LoRA that only moved that prior would look like a gain on
nearly single-class sets. The prior is estimated by asking the same prompt (instruction, label
list, system prompt) with content-free texts in place of the text; the calibrated decision is
the label maximising log p(label | text) - log p(label | content-free), the probabilities being
normalised over the label set.

Chosen over PMI against the label's unconditional probability because the prior to remove is
the one the prompt itself induces (instruction wording, label order, the system prompt that
differs between base and base + culture prompt): contextual calibration measures it under
exactly that prompt, while PMI's "unconditional" probability needs a second, different context.
"""

from __future__ import annotations

import numpy as np

CONTENT_FREE_TEXTS = ("N/A", "", "[MASK]")


def label_log_probs(scores: np.ndarray) -> np.ndarray:
    """Summed log-likelihoods (rows x labels) -> log-probabilities normalised over the labels."""
    scores = np.asarray(scores, dtype=float)
    shifted = scores - scores.max(axis=1, keepdims=True)
    return shifted - np.log(np.exp(shifted).sum(axis=1, keepdims=True))


def content_free_prior(content_free_scores: np.ndarray) -> np.ndarray:
    """log of the mean label distribution over the content-free inputs."""
    return np.log(np.exp(label_log_probs(content_free_scores)).mean(axis=0))


def calibrated_decisions(scores: np.ndarray, content_free_scores: np.ndarray) -> np.ndarray:
    """Index of the calibrated label of each row."""
    return np.argmax(label_log_probs(scores) - content_free_prior(content_free_scores), axis=1)
