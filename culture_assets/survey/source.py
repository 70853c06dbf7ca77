"""Where the survey answers and seed questions come from (the `survey_source` Dagster resource derives its fields from these)."""

from __future__ import annotations

import os
from importlib import resources
from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field

from culture_assets.survey.answers import PACKAGED_COUNTS, content_hash, survey_files
from culture_assets.survey.questions import WVSQuestion, load_questions

SURVEY_ENV = "CULTURE_ASSETS_SURVEY"


class SurveySourceSettings(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    path: str = Field(default="", description=f"A WVS CSV, a directory of per-country CSVs, or a compact answer-counts CSV; empty: ${SURVEY_ENV}, else the counts file shipped with the package (derived from WVS Wave 7).")
    questions_path: str = Field(default="", description="A YAML of seed questions; empty: the packaged 50 questions.")

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
