"""Backfilling one culture from the command line touches only that culture; all-culture assets are left stale."""

import dagster as dg
from dagster._core.definitions.data_version import StaleStatus
from dagster._utils.test.data_versions import get_stale_status_resolver

from culture_assets.pipeline import materialize_in_stages
from culture_assets.store.warehouse import Warehouse
from culture_assets_tests.graph_stand_ins import DEFS


def materialized(instance: dg.DagsterInstance, key: str) -> set[str] | bool:
    node = DEFS.resolve_asset_graph().get(dg.AssetKey(key))
    if node.partitions_def is None:
        return instance.get_latest_materialization_event(node.key) is not None
    return instance.get_materialized_partitions(node.key)


def test_one_culture_backfill_leaves_all_culture_assets_stale(data_home) -> None:
    with dg.DagsterInstance.get() as instance:
        materialize_in_stages(DEFS, instance, select="seed_survey*", partitions=["english", "german"])
        assert materialized(instance, "all_cultures_downstream")
        before = instance.get_latest_materialization_event(dg.AssetKey("all_cultures_downstream")).timestamp
        assert get_stale_status_resolver(instance, list(DEFS.assets)).get_status(dg.AssetKey("all_cultures_downstream")) == StaleStatus.FRESH

        results = materialize_in_stages(DEFS, instance, select="seed_survey*", partitions=["german"], partitioned_only=True)

        assert all(result.success for result in results)
        touched = {
            (event.asset_key.to_user_string(), event.partition)
            for result in results
            for event in result.get_asset_materialization_events()
            for event in [event.event_specific_data.materialization]
        }
        assert touched == {("seed_survey", "german"), ("answers_downstream", "german"), ("scores_downstream", "german")}
        assert instance.get_latest_materialization_event(dg.AssetKey("all_cultures_downstream")).timestamp == before
        resolver = get_stale_status_resolver(instance, list(DEFS.assets))
        assert resolver.get_status(dg.AssetKey("all_cultures_downstream")) == StaleStatus.STALE
        assert resolver.get_status(dg.AssetKey("questions_downstream")) != StaleStatus.STALE
    cultures = Warehouse(data_home / "warehouse.duckdb").query("SELECT DISTINCT culture FROM survey_distribution ORDER BY 1")
    assert cultures["culture"].to_list() == ["english", "german"]
