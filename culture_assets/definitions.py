"""The one Definitions object: assets, checks, resources, jobs, schedules, sensors."""

from __future__ import annotations

import dagster as dg

from culture_assets import automation, deploy
from culture_assets.assets import augmentation, evaluation, models, reports, survey, training_sets
from culture_assets.profiles import current_limit, current_profile, resources_for

ALL_ASSETS = automation.with_answer_automation(
    dg.load_assets_from_modules([survey, augmentation, training_sets, models, evaluation, reports])
)

seed_survey_job = dg.define_asset_job(
    "seed_survey_job",
    selection=dg.AssetSelection.assets("seed_survey"),
    description="Each culture's answer distributions from the survey wave in use.",
)
augmentation_job = dg.define_asset_job(
    "augmentation_job",
    selection=dg.AssetSelection.groups("augmentation"),
    description="Step 1 and step 2 of the semantic data augmentation, filtered, with quality analyses (all cultures share it).",
)
culture_job = dg.define_asset_job(
    "culture_job",
    selection=dg.AssetSelection.assets("seed_survey", "training_set", "culture_model", "eval_dataset", "culture_scores", "wvs_alignment"),
    description="One culture from its survey answers to its scores: backfill it per culture partition.",
)

defs = dg.Definitions(
    assets=ALL_ASSETS,
    jobs=[seed_survey_job, augmentation_job, culture_job, automation.wvs_wave_observation_job],
    executor=deploy.executor_from_env(),
    sensors=[automation.survey_automation_sensor, models.openai_fine_tuning_sensor],
    schedules=[automation.wvs_wave_observation_schedule],
    # CULTURE_ASSETS_PROFILE (default | demo) and CULTURE_ASSETS_LIMIT choose models, data and limits
    resources=resources_for(current_profile(), current_limit()),
)
