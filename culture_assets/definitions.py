"""The one Definitions object: assets, checks, resources, jobs, schedules, sensors."""

from __future__ import annotations

import warnings

import dagster as dg

# The graph uses a few beta/preview APIs on purpose (observable source asset, backfill policy,
# MultiToSingleDimensionPartitionMapping); saying so on every load of the code is noise.
warnings.filterwarnings("ignore", category=dg.BetaWarning)
warnings.filterwarnings("ignore", category=dg.PreviewWarning)

from culture_assets import automation, deploy, recovery  # noqa: E402
from culture_assets.assets import augmentation, evaluation, models, reports, survey, training_sets  # noqa: E402
from culture_assets.profiles import current_limit, current_profile, resources_for  # noqa: E402

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
    selection=dg.AssetSelection.assets("wvs_questions") | dg.AssetSelection.groups("augmentation"),
    description="The seed questions, step 1 and step 2 of the semantic data augmentation, filtered, with quality analyses (all cultures share it).",
)
culture_job = dg.define_asset_job(
    "culture_job",
    selection=dg.AssetSelection.assets(
        "seed_survey", "training_set", "culture_model", "heldout_topic_training_set", "heldout_topic_model", "eval_dataset", "culture_scores",
        "wvs_alignment",
    ),
    description="One culture from its survey answers to its scores: backfill it per culture partition.",
)
culture_models_job = dg.define_asset_job(
    "culture_models_job",
    selection=dg.AssetSelection.assets("training_set", "culture_model", "heldout_topic_training_set", "heldout_topic_model"),
    description="A culture's training set and its fine-tuned model, and its held-out-topic models (one per fold), per culture partition.",
)
culturellm_one_job = dg.define_asset_job(
    "culturellm_one_job",
    selection=dg.AssetSelection.assets("culturellm_one"),
    description="CultureLLM-One: one model fine-tuned on every culture's training set.",
)
evaluation_data_job = dg.define_asset_job(
    "evaluation_data_job",
    selection=dg.AssetSelection.assets("evaluation_data"),
    description="The evaluation datasets the manifests name, downloaded and checked against their sha256 (all cultures share them).",
)
culture_scores_job = dg.define_asset_job(
    "culture_scores_job",
    selection=dg.AssetSelection.assets("eval_dataset", "culture_scores", "wvs_alignment"),
    description="A culture's evaluation datasets, macro-F1 of the four models and the WVS alignment, per culture partition.",
)
culture_report_job = dg.define_asset_job(
    "culture_report_job",
    selection=dg.AssetSelection.assets("cross_culture_alignment", "culture_report"),
    description="The cross-culture alignment matrix, then the paper's tables and figures from every culture's scores.",
)
ablation_training_sets_job = dg.define_asset_job(
    "ablation_training_sets_job",
    selection=dg.AssetSelection.assets("ablation_training_set"),
    description="The ablations' training sets, per culture x variant.",
)
ablation_models_job = dg.define_asset_job(
    "ablation_models_job",
    selection=dg.AssetSelection.assets("ablation_model", "ablation_scores"),
    description="The ablations' models and their scores, per culture x variant.",
)

# `culture-assets run` runs its selection through these jobs, in this order (a topological order
# of the graph): one run per culture partition of each, named, tagged and re-executable in the UI.
MAIN_JOB_STAGES = [
    augmentation_job, evaluation_data_job, seed_survey_job, culture_models_job, culturellm_one_job, culture_scores_job, culture_report_job,
    ablation_training_sets_job, ablation_models_job,
]

defs = dg.Definitions(
    assets=ALL_ASSETS,
    jobs=[*MAIN_JOB_STAGES, culture_job, automation.wvs_wave_observation_job],
    # Locally a run is one process: the cultures run in parallel as runs (one per partition), and a
    # subprocess per step would import the whole code location again for every step (seconds each).
    executor=deploy.executor_from_env() or dg.in_process_executor,
    sensors=[automation.survey_automation_sensor, models.openai_fine_tuning_sensor, recovery.dead_run_sensor],
    schedules=[automation.wvs_wave_observation_schedule],
    # CULTURE_ASSETS_PROFILE (default | demo) and CULTURE_ASSETS_LIMIT choose models, data and limits
    resources=resources_for(current_profile(), current_limit()),
)
