"""The one Definitions object: assets, checks, resources, jobs, schedules, sensors."""

from __future__ import annotations

import dagster as dg

from culture_assets.assets import augmentation, survey
from culture_assets.augment.resource import EmbedderResource
from culture_assets.io_manager import ArtifactIOManager
from culture_assets.llm import LLMResource
from culture_assets.resources import SurveySourceResource, WarehouseResource

ALL_ASSETS = dg.load_assets_from_modules([survey, augmentation])

seed_survey_job = dg.define_asset_job(
    "seed_survey_job",
    selection=dg.AssetSelection.assets("seed_survey"),
    partitions_def=survey.CULTURES,
    description="Each culture's answer distributions from the survey wave in use.",
)

defs = dg.Definitions(
    assets=ALL_ASSETS,
    jobs=[seed_survey_job],
    resources={
        "io_manager": ArtifactIOManager(),
        "warehouse": WarehouseResource(),
        "survey_source": SurveySourceResource(),
        "llm": LLMResource(),  # OPENAI_API_KEY / OPENAI_BASE_URL from the environment, else local_model
        "embedder": EmbedderResource(),
    },
)
