"""Backfilling one culture from the command line touches only that culture; all-culture assets are left stale."""

import dagster as dg
from dagster._core.definitions.data_version import StaleStatus
from dagster._utils.test.data_versions import get_stale_status_resolver

from culture_assets.pipeline import InProcessLauncher, RunOutcome, plan_stages, run_stages
from culture_assets.store.warehouse import Warehouse
from culture_assets_tests.graph_stand_ins import DEFS, STAGE_JOBS


def run_main_job(instance: dg.DagsterInstance, select: str, partitions: list[str], partitioned_only: bool = False) -> list[RunOutcome]:
    stages = plan_stages(DEFS, STAGE_JOBS, select, partitioned_only)
    return run_stages(DEFS, stages, InProcessLauncher(DEFS, instance), instance, partitions, poll_s=0)


def materialized(instance: dg.DagsterInstance, key: str) -> set[str] | bool:
    node = DEFS.resolve_asset_graph().get(dg.AssetKey(key))
    if node.partitions_def is None:
        return instance.get_latest_materialization_event(node.key) is not None
    return instance.get_materialized_partitions(node.key)


def test_one_culture_backfill_leaves_all_culture_assets_stale(data_home) -> None:
    with dg.DagsterInstance.get() as instance:
        run_main_job(instance, "seed_survey*", ["english", "german"])
        assert materialized(instance, "all_cultures_downstream")
        before = instance.get_latest_materialization_event(dg.AssetKey("all_cultures_downstream")).timestamp
        assert get_stale_status_resolver(instance, list(DEFS.assets)).get_status(dg.AssetKey("all_cultures_downstream")) == StaleStatus.FRESH

        outcomes = run_main_job(instance, "seed_survey*", ["german"], partitioned_only=True)

        assert [(o.stage.job_name, o.partition, o.status) for o in outcomes] == [("answers_stage", "german", "success"), ("scores_stage", "german", "success")]
        touched = {
            (entry.asset_materialization.asset_key.to_user_string(), entry.asset_materialization.partition)
            for outcome in outcomes
            for entry in instance.all_logs(outcome.run_id, of_type=dg.DagsterEventType.ASSET_MATERIALIZATION)
        }
        assert touched == {("seed_survey", "german"), ("answers_downstream", "german"), ("scores_downstream", "german")}
        assert instance.get_latest_materialization_event(dg.AssetKey("all_cultures_downstream")).timestamp == before
        resolver = get_stale_status_resolver(instance, list(DEFS.assets))
        assert resolver.get_status(dg.AssetKey("all_cultures_downstream")) == StaleStatus.STALE
        assert resolver.get_status(dg.AssetKey("questions_downstream")) != StaleStatus.STALE
    cultures = Warehouse(data_home / "warehouse.duckdb").query("SELECT DISTINCT culture FROM survey_distribution ORDER BY 1")
    assert cultures["culture"].to_list() == ["english", "german"]
