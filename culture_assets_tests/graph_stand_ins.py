"""The survey stage of the project plus light stand-ins for the later stages, so automation tests see
the shape of the full graph without training or scoring anything.

One culture-partitioned asset reading the answers (like training_set), one unpartitioned asset over all
cultures (like culturellm_one), a culture-partitioned asset depending on both (like culture_scores), an
unpartitioned asset over those (like culture_report), and one that reads only the questions (like
augmented_questions). The project's automation rule is applied to them as to the project's assets.
"""

import dagster as dg

from culture_assets import automation
from culture_assets.assets import survey
from culture_assets.definitions import defs as project_defs
from culture_assets.partitions import culture_partitions

CULTURES = culture_partitions()


@dg.asset(partitions_def=CULTURES, deps=["seed_survey"])
def answers_downstream(context: dg.AssetExecutionContext) -> None:
    context.log.info(f"built from {context.partition_key}'s answers")


@dg.asset(deps=[answers_downstream])
def all_cultures_downstream() -> None:
    pass


@dg.asset(partitions_def=CULTURES, deps=[answers_downstream, all_cultures_downstream])
def scores_downstream() -> None:
    pass


@dg.asset(deps=[scores_downstream])
def report_downstream() -> None:
    pass


@dg.asset(deps=["wvs_questions"])
def questions_downstream() -> None:
    pass


STAGE_JOBS = [  # the main job's stages over this graph, in topological order (as definitions.MAIN_JOB_STAGES)
    dg.define_asset_job("questions_stage", selection=dg.AssetSelection.assets("wvs_questions", "questions_downstream")),
    dg.define_asset_job("answers_stage", selection=dg.AssetSelection.assets("seed_survey", "answers_downstream")),
    dg.define_asset_job("all_cultures_stage", selection=dg.AssetSelection.assets("all_cultures_downstream")),
    dg.define_asset_job("scores_stage", selection=dg.AssetSelection.assets("scores_downstream")),
    dg.define_asset_job("report_stage", selection=dg.AssetSelection.assets("report_downstream")),
]
ASSETS = automation.with_answer_automation(
    [
        *dg.load_assets_from_modules([survey]),
        answers_downstream, all_cultures_downstream, scores_downstream, report_downstream, questions_downstream,
    ]
)
DEFS = dg.Definitions(
    assets=ASSETS,
    jobs=[automation.wvs_wave_observation_job, *STAGE_JOBS],
    sensors=[automation.survey_automation_sensor],
    schedules=[automation.wvs_wave_observation_schedule],
    resources=project_defs.resources,
)
