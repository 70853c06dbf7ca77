"""A Postgres-backed Dagster instance (the scale-out storage) runs a seed_survey partition.

The throwaway PostgreSQL server is the `postgres_server` fixture (culture_assets_tests/local_servers.py); the test
skips when the server binaries or dagster-postgres are absent.
"""

from pathlib import Path

import dagster as dg
import yaml

from culture_assets.assets import survey
from culture_assets.definitions import defs
from culture_assets.store.warehouse import Warehouse


def test_postgres_backed_instance_runs_a_partition(postgres_server: dict, data_home: Path) -> None:
    dagster_home = data_home / "dagster_home"
    instance_config = {
        "telemetry": {"enabled": False},
        "storage": {"postgres": {"postgres_db": postgres_server}},
        "concurrency": {"pools": {"default_limit": 1}},
    }
    (dagster_home / "dagster.yaml").write_text(yaml.safe_dump(instance_config))

    with dg.DagsterInstance.get() as instance:
        assert type(instance.run_storage).__name__ == "PostgresRunStorage"
        result = dg.materialize([survey.seed_survey], partition_key="korean", instance=instance, resources=dict(defs.resources))
        assert result.success
        assert instance.get_materialized_partitions(dg.AssetKey("seed_survey")) == {"korean"}
        assert instance.get_run_by_id(result.run_id).is_success

    rows = Warehouse(data_home / "warehouse.duckdb").query("SELECT culture, count(*) AS n FROM survey_distribution GROUP BY culture")
    assert rows["culture"].to_list() == ["korean"] and rows["n"][0] > 0
