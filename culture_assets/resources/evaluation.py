"""Dagster resource of the evaluation stage: where the datasets and their manifests are.

API models are scored through the LLM layer's `llm` resource (culture_assets.llm).
"""

from __future__ import annotations

from pathlib import Path

import dagster as dg

from culture_assets.errors import InputError
from culture_assets.evaluation.loader import EVAL_DATA_ENV, default_data_dir
from culture_assets.evaluation.manifest import DatasetManifest, default_manifests_dir, load_manifests


class EvalDataResource(dg.ConfigurableResource):
    """`data_dir`: the downloaded evaluation datasets (empty: $CULTURE_ASSETS_EVAL_DATA).
    `manifests_dir`: the YAML manifests (empty: $CULTURE_ASSETS_MANIFESTS, else datasets_manifest/)."""

    data_dir: str = ""
    manifests_dir: str = ""

    def data_path(self) -> Path:
        path = Path(self.data_dir).expanduser().resolve() if self.data_dir else default_data_dir()
        if path is None:
            raise InputError("eval_data resource", f"no evaluation data directory: set {EVAL_DATA_ENV} or the resource's data_dir", field="data_dir")
        if not path.is_dir():
            raise InputError(str(path), "evaluation data directory not found", field="data_dir")
        return path

    def manifests_path(self) -> Path:
        return Path(self.manifests_dir).expanduser().resolve() if self.manifests_dir else default_manifests_dir()

    def manifests(self, culture: str | None = None) -> list[DatasetManifest]:
        return load_manifests(self.manifests_path(), culture)
