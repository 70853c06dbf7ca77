"""Re-runs when the WVS wave changes: a sensor on the survey's content hash, a weekly re-check, backfills.

What is stale after a new survey version is decided per culture, from the graph and the instance:
a culture is stale when the answers of its countries (`answers_fingerprint`) differ from those recorded
on its latest `seed_survey` materialization. The refresh then covers, for each stale culture, every
materialized partition of `seed_survey` and everything derived from it through the graph's partition
mappings: the culture's own downstream partitions, the unpartitioned assets over all cultures (CultureLLM-One,
the report), and what depends on those (every culture's scores of a retrained CultureLLM-One). Everything is
selected from the asset graph, so stages added later are picked up with no change here; assets that do not
read the answers (the questions, their augmentation, evaluation data) are not downstream of `seed_survey`
and are never re-run. Partitions that were never materialized are missing, not stale: a new wave does not
start work nobody asked for.

The refresh is submitted as one asset backfill, so Dagster orders it: each culture's chain runs as soon
as its parents are done, the unpartitioned assets after all of their cultures. Per-culture assets use
CULTURE_BACKFILL_POLICY (one run per culture partition, see docs/operations.md).
"""

import json
import os
from dataclasses import dataclass
from typing import Iterable

import dagster as dg

# Dagster's own sensor daemon and UI submit asset backfills through these; no public constructor exists yet.
from dagster._core.definitions.assets.graph.asset_graph_subset import AssetGraphSubset
from dagster._core.definitions.assets.graph.base_asset_graph import BaseAssetGraph
from dagster._core.definitions.events import AssetKeyPartitionKey
from dagster._core.execution.backfill import BulkActionStatus, PartitionBackfill
from dagster._core.utils import make_new_backfill_id
from dagster._time import get_current_timestamp

from culture_assets.assets.survey import FINGERPRINT_METADATA
from culture_assets.cultures import load_registry
from culture_assets.errors import InputError
from culture_assets.resources import SurveySourceResource
from culture_assets.survey.answers import answers_fingerprint, content_hash, read_answer_counts
from culture_assets.survey.distribution import check_countries

SEED_SURVEY = dg.AssetKey("seed_survey")
SURVEY_DOWNSTREAM = dg.AssetSelection.assets(SEED_SURVEY).downstream()
RECHECK_CRON_ENV = "CULTURE_ASSETS_SURVEY_RECHECK_CRON"
DEFAULT_RECHECK_CRON = "0 6 * * 1"  # Mondays 06:00
SENSOR_INTERVAL_S = 60
TRIGGER_TAG = "culture_assets/trigger"
VERSION_TAG = "culture_assets/survey_version"
CULTURES_TAG = "culture_assets/stale_cultures"


@dataclass(frozen=True)
class RefreshPlan:
    """What a survey version makes stale: the cultures whose answers changed and the asset partitions to re-run."""

    version: str
    stale_cultures: tuple[str, ...]
    targets: tuple[AssetKeyPartitionKey, ...]

    def describe(self) -> str:
        if not self.stale_cultures:
            return f"survey version {self.version[:12]}: no materialized culture's answers changed; nothing to re-run"
        by_asset: dict[str, list[str]] = {}
        for target in self.targets:
            by_asset.setdefault(target.asset_key.to_user_string(), []).append(target.partition_key or "(all cultures)")
        assets = "; ".join(f"{key} [{', '.join(sorted(parts))}]" for key, parts in sorted(by_asset.items()))
        return f"survey version {self.version[:12]}: answers changed for {', '.join(self.stale_cultures)}; re-running {assets}"

    def backfill_subset(self, asset_graph: BaseAssetGraph) -> AssetGraphSubset:
        return AssetGraphSubset.from_asset_partition_set(set(self.targets), asset_graph)

    def tags(self, trigger: str) -> dict[str, str]:
        return {TRIGGER_TAG: trigger, VERSION_TAG: self.version[:12], CULTURES_TAG: ",".join(self.stale_cultures)}


def recorded_fingerprint(instance: dg.DagsterInstance, partition: str) -> str | None:
    """The answers fingerprint on the latest seed_survey materialization of `partition` (None if unrecorded)."""
    records = instance.fetch_materializations(
        dg.AssetRecordsFilter(asset_key=SEED_SURVEY, asset_partitions=[partition]), limit=1
    ).records
    if not records or records[0].asset_materialization is None:
        return None
    value = records[0].asset_materialization.metadata.get(FINGERPRINT_METADATA)
    return value.value if isinstance(value, dg.TextMetadataValue) else None


def stale_targets(
    instance: dg.DagsterInstance, asset_graph: BaseAssetGraph, stale_cultures: Iterable[str]
) -> tuple[AssetKeyPartitionKey, ...]:
    """Materialized asset partitions that derive from the stale cultures' seed_survey partitions.

    Follows the graph's partition mappings: a culture's own downstream partitions, the all-culture assets, and
    whatever depends on those (e.g. every culture's scores of a retrained CultureLLM-One).
    """
    frontier = [AssetKeyPartitionKey(SEED_SURVEY, culture) for culture in sorted(set(stale_cultures))]
    reached = set(frontier)
    while frontier:
        current = frontier.pop()
        for child in asset_graph.get_children_partitions(current.asset_key, current.partition_key):
            if child not in reached:
                reached.add(child)
                frontier.append(child)
    materialized: dict[dg.AssetKey, set[str | None]] = {}
    for key in {target.asset_key for target in reached}:
        if not asset_graph.get(key).is_materializable:
            materialized[key] = set()
        elif asset_graph.get(key).partitions_def is None:
            materialized[key] = {None} if instance.get_latest_materialization_event(key) is not None else set()
        else:
            materialized[key] = set(instance.get_materialized_partitions(key))
    targets = [target for target in reached if target.partition_key in materialized[target.asset_key]]
    return tuple(sorted(targets, key=lambda t: (t.asset_key.to_user_string(), t.partition_key or "")))


def plan_survey_refresh(
    instance: dg.DagsterInstance, asset_graph: BaseAssetGraph, survey_source: SurveySourceResource
) -> RefreshPlan:
    """Read and validate the survey in use and decide what it makes stale. Raises InputError on a bad survey."""
    files = survey_source.files()
    version = content_hash(files)
    counts = read_answer_counts(files, [q.id for q in survey_source.questions()])
    registry = load_registry()
    partitions = set(asset_graph.get(SEED_SURVEY).partitions_def.get_partition_keys())
    stale: list[str] = []
    for key in sorted(instance.get_materialized_partitions(SEED_SURVEY) & partitions):
        culture = registry.get(key)
        check_countries(counts, culture, str(survey_source.source()))
        if recorded_fingerprint(instance, key) != answers_fingerprint(counts, culture.country_alphas):
            stale.append(key)
    return RefreshPlan(version, tuple(stale), stale_targets(instance, asset_graph, stale))


def refresh_in_flight(instance: dg.DagsterInstance) -> str | None:
    """The id of a survey-refresh backfill still running, if any: planning again now would duplicate its work."""
    for backfill in instance.get_backfills(status=BulkActionStatus.REQUESTED):
        if TRIGGER_TAG in backfill.tags:
            return backfill.backfill_id
    return None


def in_flight_reason(backfill_id: str) -> str:
    return f"survey refresh backfill {backfill_id} is still running; the survey is checked again once it is done"


@dataclass(frozen=True)
class WaveCursor:
    """The sensor's memory: the last survey version it acted on, and why it was rejected if it was."""

    version: str | None = None
    rejected: str | None = None

    @classmethod
    def parse(cls, raw: str | None) -> "WaveCursor":
        return cls(**json.loads(raw)) if raw else cls()

    def dump(self) -> str:
        return json.dumps({"version": self.version, "rejected": self.rejected})


def rejection(error: InputError) -> str:
    return f"survey rejected, nothing launched: {error}. Fix or replace the file; the next version is checked again."


@dg.sensor(
    name="wvs_wave_sensor",
    asset_selection=SURVEY_DOWNSTREAM,
    minimum_interval_seconds=SENSOR_INTERVAL_S,
    default_status=dg.DefaultSensorStatus.RUNNING,
    description="Watches the survey's content hash; on a new version backfills seed_survey and what is stale below it, per culture.",
)
def wvs_wave_sensor(context: dg.SensorEvaluationContext, survey_source: SurveySourceResource) -> dg.SensorResult:
    cursor = WaveCursor.parse(context.cursor)
    try:
        version = survey_source.version()
    except InputError as exc:
        context.log.error(str(exc))
        return dg.SensorResult(skip_reason=dg.SkipReason(f"survey source unreadable: {exc}"))
    if version == cursor.version:
        reason = cursor.rejected or f"survey version {version[:12]} unchanged"
        return dg.SensorResult(skip_reason=dg.SkipReason(reason))
    # The cursor stays put, so the new version is planned against what the running refresh materializes.
    running = refresh_in_flight(context.instance)
    if running:
        return dg.SensorResult(skip_reason=dg.SkipReason(in_flight_reason(running)))
    try:
        plan = plan_survey_refresh(context.instance, context.repository_def.asset_graph, survey_source)
    except InputError as exc:
        message = rejection(exc)
        context.log.error(message)
        return dg.SensorResult(skip_reason=dg.SkipReason(message), cursor=WaveCursor(version, message).dump())
    context.log.info(plan.describe())
    new_cursor = WaveCursor(version).dump()
    if not plan.targets:
        return dg.SensorResult(skip_reason=dg.SkipReason(plan.describe()), cursor=new_cursor)
    request = dg.RunRequest.for_asset_graph_subset(plan.backfill_subset(context.repository_def.asset_graph), plan.tags("wvs_wave_sensor"))
    return dg.SensorResult(run_requests=[request], cursor=new_cursor)


@dg.op(description="Re-read the configured survey and submit a backfill of whatever its answers make stale.")
def request_survey_refresh(context: dg.OpExecutionContext, survey_source: SurveySourceResource) -> None:
    running = refresh_in_flight(context.instance)
    if running:
        context.log.info(in_flight_reason(running))
        return
    asset_graph = context.repository_def.asset_graph
    plan = plan_survey_refresh(context.instance, asset_graph, survey_source)
    context.log.info(plan.describe())
    if not plan.targets:
        return
    backfill_id = make_new_backfill_id()
    context.instance.add_backfill(
        PartitionBackfill.from_asset_graph_subset(
            backfill_id=backfill_id,
            backfill_timestamp=get_current_timestamp(),
            tags=plan.tags("wvs_wave_weekly_recheck"),
            dynamic_partitions_store=context.instance,
            asset_graph_subset=plan.backfill_subset(asset_graph),
            title=f"WVS survey {plan.version[:12]}",
            description=plan.describe(),
            run_config=None,
        )
    )
    context.log.info(f"submitted backfill {backfill_id}")


@dg.job(executor_def=dg.in_process_executor, description="Re-check the configured survey location and backfill what a new wave made stale.")
def survey_recheck_job() -> None:
    request_survey_refresh()


def recheck_cron() -> str:
    return os.environ.get(RECHECK_CRON_ENV, "").strip() or DEFAULT_RECHECK_CRON


wvs_wave_weekly_recheck = dg.ScheduleDefinition(
    name="wvs_wave_weekly_recheck",
    job=survey_recheck_job,
    cron_schedule=recheck_cron(),
    default_status=dg.DefaultScheduleStatus.RUNNING,
    description=f"Re-checks the survey location (cron from ${RECHECK_CRON_ENV}, default weekly) in case a wave arrived unwatched.",
)
