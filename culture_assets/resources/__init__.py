"""Dagster resources shared by the stages: where files live, the warehouse, the survey source.

Config and resources of the Dagster layer define no setting of their own: each field is the library's
pydantic field (`name: type = Settings.model_fields["name"]`, same default, bounds and description),
and `library_settings` turns the configured values back into the library's settings object.
"""

from __future__ import annotations

from pathlib import Path
from typing import TypeVar

import dagster as dg
from pydantic import BaseModel

from culture_assets.store import Warehouse
from culture_assets.store.warehouse import WarehouseSettings
from culture_assets.survey.questions import WVSQuestion
from culture_assets.survey.source import SURVEY_ENV, SurveySourceSettings

__all__ = ["SURVEY_ENV", "SurveySourceResource", "WarehouseResource", "library_settings"]
Settings = TypeVar("Settings", bound=BaseModel)


def library_settings(config: dg.Config, settings_class: type[Settings]) -> Settings:
    """The library settings `config` derives its fields from, with the configured values (the library's
    defaults for the settings the config does not expose)."""
    return settings_class.model_validate({name: getattr(config, name) for name in type(config).model_fields})


class WarehouseResource(dg.ConfigurableResource):
    """The DuckDB warehouse file `<data home>/warehouse.duckdb` (culture_assets.store.warehouse.WarehouseSettings)."""

    data_home: str = WarehouseSettings.model_fields["data_home"]
    lock_timeout_s: float = WarehouseSettings.model_fields["lock_timeout_s"]

    def get(self) -> Warehouse:
        return library_settings(self, WarehouseSettings).warehouse()


class SurveySourceResource(dg.ConfigurableResource):
    """Where the survey answers and seed questions come from (culture_assets.survey.source.SurveySourceSettings)."""

    path: str = SurveySourceSettings.model_fields["path"]
    questions_path: str = SurveySourceSettings.model_fields["questions_path"]

    def settings(self) -> SurveySourceSettings:
        return library_settings(self, SurveySourceSettings)

    def source(self) -> Path:
        return self.settings().source()

    def files(self) -> list[Path]:
        return self.settings().files()

    def version(self) -> str:
        return self.settings().version()

    def questions(self) -> list[WVSQuestion]:
        return self.settings().questions()
