"""A Postgres-backed Dagster instance (the scale-out storage) runs a seed_survey partition.

Starts a throwaway PostgreSQL server (Debian's `postgresql` package: initdb/pg_ctl) on a free 127.0.0.1 port in a
temporary directory, as the unprivileged `postgres` user when the tests run as root. Skips when the server
binaries or dagster-postgres are absent.
"""

import glob
import os
import pwd
import shutil
import subprocess
import tempfile
from pathlib import Path
from typing import Iterator

import dagster as dg
import pytest
import yaml

from culture_assets.assets import survey
from culture_assets.definitions import defs
from culture_assets.store.warehouse import Warehouse
from culture_assets_tests.dagster_dev import free_port


def postgres_bin() -> Path | None:
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"))
    if found:
        return Path(found[-1]).parent
    initdb = shutil.which("initdb")
    return Path(initdb).parent if initdb else None


def run_checked(args: list, **kwargs) -> None:
    done = subprocess.run(args, capture_output=True, text=True, **kwargs)
    if done.returncode:
        raise RuntimeError(f"{args[0].name} failed ({done.returncode}): {done.stdout}{done.stderr}")


@pytest.fixture
def postgres_server() -> Iterator[dict]:
    pytest.importorskip("dagster_postgres", reason="dagster-postgres is not installed (pip install -e '.[scale]')")
    bin_dir = postgres_bin()
    if bin_dir is None:
        pytest.skip("no PostgreSQL server binaries (apt-get install postgresql)")
    user = None
    if os.geteuid() == 0:  # initdb refuses to run as root
        try:
            user = pwd.getpwnam("postgres")
        except KeyError:
            pytest.skip("running as root and there is no 'postgres' user to run the server as")
    # Not under pytest's tmp dir: that is private to root, and the server user must reach its data directory.
    data = Path(tempfile.mkdtemp(prefix="culture-assets-pg-"))
    if user:
        os.chown(data, user.pw_uid, user.pw_gid)
    port = free_port()
    as_user = {"user": user.pw_uid, "group": user.pw_gid} if user else {}
    try:
        run_checked([bin_dir / "initdb", "-D", data / "db", "-U", "dagster", "--auth=trust", "-E", "UTF8"], **as_user)
        options = f"-h 127.0.0.1 -p {port} -k {data}"
        run_checked([bin_dir / "pg_ctl", "-D", data / "db", "-o", options, "-l", data / "server.log", "-w", "start"], **as_user)
        try:
            yield {"hostname": "127.0.0.1", "port": port, "username": "dagster", "password": "", "db_name": "postgres",
                   "scheme": "postgresql+psycopg2"}
        finally:
            run_checked([bin_dir / "pg_ctl", "-D", data / "db", "-m", "fast", "-w", "stop"], **as_user)
    finally:
        shutil.rmtree(data, ignore_errors=True)


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
