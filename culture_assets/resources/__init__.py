"""Dagster resources shared by the stages: where files live, the warehouse, the survey source.

Config and resources of the Dagster layer define no setting of their own: each field is the library's
pydantic field (`name: type = Settings.model_fields["name"]`, same default, bounds and description),
and `library_settings` turns the configured values back into the library's settings object.
"""

from __future__ import annotations

import os
from importlib import resources
from pathlib import Path
from typing import TypeVar

import dagster as dg
from pydantic import BaseModel

from culture_assets.settings import data_home
from culture_assets.store import Warehouse
from culture_assets.survey.answers import PACKAGED_COUNTS, content_hash, survey_files
from culture_assets.survey.questions import WVSQuestion, load_questions

SURVEY_ENV = "CULTURE_ASSETS_SURVEY"
Settings = TypeVar("Settings", bound=BaseModel)


def library_settings(config: dg.Config, settings_class: type[Settings]) -> Settings:
    """The library settings `config` derives its fields from, with the configured values (the library's
    defaults for the settings the config does not expose)."""
    return settings_class.model_validate({name: getattr(config, name) for name in type(config).model_fields})


class WarehouseResource(dg.ConfigurableResource):
    """The DuckDB warehouse file `<data home>/warehouse.duckdb`."""

    data_home: str = ""
    lock_timeout_s: float = 120.0

    def get(self) -> Warehouse:
        return Warehouse(data_home(self.data_home or None) / "warehouse.duckdb", lock_timeout_s=self.lock_timeout_s)


class SurveySourceResource(dg.ConfigurableResource):
    """Where the survey answers and seed questions come from.

    `path`: a WVS CSV, a directory of per-country CSVs, or a compact answer-counts CSV; empty means
    $CULTURE_ASSETS_SURVEY, else the counts file shipped with the package (derived from WVS Wave 7).
    `questions_path`: a YAML of seed questions; empty means the packaged 50 questions.
    """

    path: str = ""
    questions_path: str = ""

    def source(self) -> Path:
        chosen = self.path or os.environ.get(SURVEY_ENV, "")
        if chosen:
            return Path(chosen).expanduser().resolve()
        return Path(str(resources.files("culture_assets.data").joinpath(PACKAGED_COUNTS)))

    def files(self) -> list[Path]:
        return survey_files(self.source())

    def version(self) -> str:
        return content_hash(self.files())

    def questions(self) -> list[WVSQuestion]:
        return load_questions(Path(self.questions_path).expanduser() if self.questions_path else None)
