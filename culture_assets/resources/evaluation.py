"""Dagster resource of the evaluation stage: where the datasets and their manifests are.

API models are scored through the LLM layer's `llm` resource (culture_assets.llm).
"""

from __future__ import annotations

from pathlib import Path

import dagster as dg

from culture_assets.evaluation.data_source import EvalDataSettings
from culture_assets.evaluation.manifest import DatasetManifest
from culture_assets.resources import library_settings

_FIELDS = EvalDataSettings.model_fields


class EvalDataResource(dg.ConfigurableResource):
    """The library's EvalDataSettings as Dagster config (culture_assets.evaluation.data_source)."""

    data_dir: str = _FIELDS["data_dir"]
    manifests_dir: str = _FIELDS["manifests_dir"]
    archive_url: str = _FIELDS["archive_url"]

    def settings(self) -> EvalDataSettings:
        return library_settings(self, EvalDataSettings)

    def user_data_path(self) -> Path | None:
        return self.settings().user_data_path()

    def url(self) -> str:
        return self.settings().url()

    def data_path(self) -> Path:
        return self.settings().data_path()

    def manifests_path(self) -> Path:
        return self.settings().manifests_path()

    def manifests(self, culture: str | None = None) -> list[DatasetManifest]:
        return self.settings().manifests(culture)
