"""Re-runs when a culture's survey answers change, declared on the assets and evaluated by Dagster.

`wvs_wave` is an observable source asset partitioned by culture: an observation records, per culture, the
fingerprint of that culture's countries' answers as the partition's data version. `wvs_wave_observation_schedule`
observes it (hourly by default); `seed_survey` also records the version it read, so an observation after a
materialization of the same answers is no change.

Every asset that reads the answers (`seed_survey` and everything downstream of it, chosen from the asset
graph, so stages added later are covered) carries `RERUN_ON_NEW_ANSWERS`: a partition that was materialized
before re-runs once an upstream partition on the answers' path has a new data version (for `seed_survey`: a
new fingerprint of its culture's answers). Only those cultures' partitions re-run, then the all-culture assets
built from them, then what reads those. Assets gathering several cultures' partitions (CultureLLM-One, the
report, every culture's scores of CultureLLM-One) also wait for those partitions to settle, so they run once
per change. Partitions never materialized are missing, not stale: a new wave starts no work nobody asked for.
What never reads answers (questions, augmentation, evaluation data) has no condition and never re-runs.
`survey_automation_sensor` evaluates the conditions; its runs carry the tag `culture_assets/trigger=wvs_wave`.
"""

from __future__ import annotations

import os
from typing import Iterable

import dagster as dg

WVS_WAVE = dg.AssetKey("wvs_wave")
SEED_SURVEY = dg.AssetKey("seed_survey")
SURVEY_DOWNSTREAM = dg.AssetSelection.assets(SEED_SURVEY).downstream()
# wvs_wave and everything computed from the answers; updates elsewhere (new questions, augmentation,
# evaluation data) are not what this automation reacts to.
ANSWERS_PATH = dg.AssetSelection.assets(WVS_WAVE).downstream()
OBSERVE_CRON_ENV = "CULTURE_ASSETS_SURVEY_RECHECK_CRON"
DEFAULT_OBSERVE_CRON = "0 * * * *"  # hourly
TRIGGER_TAG = "culture_assets/trigger"

_updating = dg.AutomationCondition.will_be_requested() | dg.AutomationCondition.in_progress()

RERUN_ON_NEW_ANSWERS = (
    dg.AutomationCondition.any_deps_updated().allow(ANSWERS_PATH).since_last_handled()
    & ~dg.AutomationCondition.missing()
    & ~dg.AutomationCondition.in_progress()
    & ~dg.AutomationCondition.any_deps_in_progress()
).with_label("rerun_on_new_answers")

# A parent built from several cultures' partitions is itself waiting while its own parents update; Dagster
# only counts a parent's request in this tick when both can share a run, so that wait is stated one level up.
PARENTS_SETTLING = dg.AutomationCondition.any_deps_match(
    dg.AutomationCondition.any_deps_match(_updating | dg.AutomationCondition.newly_updated()).allow(ANSWERS_PATH)
).allow(ANSWERS_PATH).with_label("parents_settling")

RERUN_ON_NEW_ANSWERS_WHEN_SETTLED = (RERUN_ON_NEW_ANSWERS & ~PARENTS_SETTLING).with_label("rerun_on_new_answers_when_settled")


def _partitions_by_key(assets: Iterable[dg.AssetsDefinition | dg.SourceAsset]) -> dict[dg.AssetKey, dg.PartitionsDefinition | None]:
    return {
        key: asset.partitions_def for asset in assets for key in ([asset.key] if isinstance(asset, dg.SourceAsset) else asset.keys)
    }


def with_answer_automation(assets: list[dg.AssetsDefinition | dg.SourceAsset]) -> list[dg.AssetsDefinition | dg.SourceAsset]:
    """The assets, with the re-run rule on every one that reads the answers.

    An asset whose parents are partitioned differently from it (it gathers several cultures, or is one culture
    of an all-culture asset) waits for those parents to settle; one in a culture's own chain runs with it.
    """
    readers = SURVEY_DOWNSTREAM.resolve(assets)
    on_answers_path = ANSWERS_PATH.resolve(assets)
    partitions = _partitions_by_key(assets)

    def automate(spec: dg.AssetSpec) -> dg.AssetSpec:
        if spec.key not in readers:
            return spec
        gathers = any(
            partitions.get(dep.asset_key) != spec.partitions_def for dep in spec.deps if dep.asset_key in on_answers_path
        )
        return spec.replace_attributes(automation_condition=RERUN_ON_NEW_ANSWERS_WHEN_SETTLED if gathers else RERUN_ON_NEW_ANSWERS)

    return [asset if isinstance(asset, dg.SourceAsset) else dg.map_asset_specs(automate, [asset])[0] for asset in assets]


survey_automation_sensor = dg.AutomationConditionSensorDefinition(
    "survey_automation_sensor",
    target=SURVEY_DOWNSTREAM,
    run_tags={TRIGGER_TAG: "wvs_wave"},
    default_status=dg.DefaultSensorStatus.RUNNING,
    description="Re-runs the materialized partitions whose cultures' survey answers changed (rerun_on_new_answers on each asset).",
)

wvs_wave_observation_job = dg.define_asset_job(
    "wvs_wave_observation_job",
    selection=dg.AssetSelection.assets(WVS_WAVE),
    description="Observe the survey in use: each culture's answers fingerprint becomes its wvs_wave data version.",
)


def observe_cron() -> str:
    return os.environ.get(OBSERVE_CRON_ENV, "").strip() or DEFAULT_OBSERVE_CRON


wvs_wave_observation_schedule = dg.ScheduleDefinition(
    name="wvs_wave_observation_schedule",
    job=wvs_wave_observation_job,
    cron_schedule=observe_cron(),
    default_status=dg.DefaultScheduleStatus.RUNNING,
    description=f"Observes the survey location (cron from ${OBSERVE_CRON_ENV}, default hourly); a culture whose answers changed gets a new data version.",
)
