"""The survey stage of the project plus light stand-ins for the later stages, so automation tests see
the shape of the full graph without training or scoring anything.

One culture-partitioned asset reading the answers (like training_set), one unpartitioned asset over all
cultures (like culturellm_one), a culture-partitioned asset depending on both (like culture_scores), and one
that reads only the questions (like augmented_questions).
"""

import dagster as dg

from culture_assets import automation
from culture_assets.assets import survey
from culture_assets.definitions import defs as project_defs


@dg.asset(partitions_def=survey.CULTURES, deps=["seed_survey"])
def answers_downstream(context: dg.AssetExecutionContext) -> None:
    context.log.info(f"built from {context.partition_key}'s answers")


@dg.asset(deps=[answers_downstream])
def all_cultures_downstream() -> None:
    pass


@dg.asset(partitions_def=survey.CULTURES, deps=[answers_downstream, all_cultures_downstream])
def scores_downstream() -> None:
    pass


@dg.asset(deps=["wvs_questions"])
def questions_downstream() -> None:
    pass


STAND_INS = [answers_downstream, all_cultures_downstream, scores_downstream, questions_downstream]
# the main job's stages over this graph, in topological order (as definitions.MAIN_JOB_STAGES)
STAGE_JOBS = [
    dg.define_asset_job("questions_stage", selection=dg.AssetSelection.assets("wvs_questions", "questions_downstream")),
    dg.define_asset_job("answers_stage", selection=dg.AssetSelection.assets("seed_survey", "answers_downstream")),
    dg.define_asset_job("all_cultures_stage", selection=dg.AssetSelection.assets("all_cultures_downstream")),
    dg.define_asset_job("scores_stage", selection=dg.AssetSelection.assets("scores_downstream")),
]
DEFS = dg.Definitions(
    assets=[*dg.load_assets_from_modules([survey]), *STAND_INS],
    jobs=[automation.survey_recheck_job, *STAGE_JOBS],
    sensors=[automation.wvs_wave_sensor],
    schedules=[automation.wvs_wave_weekly_recheck],
    resources=project_defs.resources,
)
