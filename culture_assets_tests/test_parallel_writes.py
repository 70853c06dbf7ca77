"""Several writers, one DuckDB file: parallel culture backfills land every row; a held lock waits, then fails clearly."""

import os
import shutil
import subprocess
import sys
import multiprocessing
import threading
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import dagster as dg
import polars as pl
import pytest

from culture_assets.cli import project_root
from culture_assets.store.warehouse import Warehouse, WarehouseLockedError

CULTURES = ("arabic", "spanish")


def seed_survey_job() -> dg.JobDefinition:
    """The project's partitioned seed_survey job as a code location would load it (module level, so reconstructable)."""
    from culture_assets.definitions import defs

    return defs.resolve_job_def("seed_survey_job")


@pytest.fixture
def project_instance(data_home: Path) -> Path:
    """DAGSTER_HOME configured with the project's dagster.yaml (pools, run limits)."""
    home = data_home / "dagster_home"
    shutil.copyfile(project_root(Path(__file__).parent) / "dagster.yaml", home / "dagster.yaml")
    with dg.DagsterInstance.get():  # create the run/event storage once, as `dagster dev` would, before runs race
        pass
    return home


def run_partition(culture: str) -> tuple[bool, str, list[str], int]:
    with dg.DagsterInstance.get() as instance:
        with dg.execute_job(dg.reconstructable(seed_survey_job), instance, tags={"dagster/partition": culture}) as result:
            messages = [event.message or "" for event in result.all_events]
            return result.success, result.run_id, messages, os.getpid()


def test_two_culture_partitions_backfill_in_parallel_processes(project_instance: Path, data_home: Path) -> None:
    # one launching process per run, as the run launcher does: logging.config is not thread-safe,
    # so two runs started from threads of one process can deadlock inside Dagster's log setup
    with ProcessPoolExecutor(len(CULTURES), mp_context=multiprocessing.get_context("spawn")) as pool:
        results = dict(zip(CULTURES, pool.map(run_partition, CULTURES)))

    assert len({pid for _, _, _, pid in results.values()}) == len(CULTURES), "each run must write from its own process"
    for culture, (success, run_id, messages, _) in results.items():
        assert success, f"{culture} run {run_id} failed: {[m for m in messages if 'rror' in m]}"
        assert not [m for m in messages if "lock" in m.lower() and "warehouse" in m.lower()]

    landed = Warehouse(data_home / "warehouse.duckdb").query(
        "SELECT culture, count(*) AS n, count(DISTINCT question_id) AS questions FROM survey_distribution GROUP BY culture ORDER BY culture"
    )
    expected = []
    for culture in CULTURES:
        table = pl.read_parquet(data_home / "assets" / "seed_survey" / f"{culture}.parquet").filter(~pl.col("never_asked"))
        expected.append({"culture": culture, "n": int(table["codes"].list.len().sum()), "questions": table.height})
    assert landed.to_dicts() == expected


HOLDER = """
import sys, duckdb
con = duckdb.connect(sys.argv[1])
con.execute("CREATE TABLE IF NOT EXISTS held (x INTEGER)")
print("holding", flush=True)
sys.stdin.readline()
con.close()
print("released", flush=True)
"""


@pytest.fixture
def warehouse_with_rows(tmp_path: Path) -> tuple[Warehouse, pl.DataFrame]:
    warehouse = Warehouse(tmp_path / "warehouse.duckdb")
    rows = pl.DataFrame(
        {
            "culture": ["german"] * 2, "question_id": ["Q27"] * 2, "code": [1, 2], "share": [0.25, 0.75],
            "modal_answer": [2, 2], "n_valid": [100, 100], "never_asked": [False, False],
            "pooling": ["equal_country"] * 2, "survey_version": ["v1"] * 2, "run_id": ["r1"] * 2,
        }
    )
    warehouse.replace_rows("survey_distribution", rows, {"culture": "german"})
    return warehouse, rows


def hold_lock(path: Path) -> subprocess.Popen:
    holder = subprocess.Popen(
        [sys.executable, "-c", HOLDER, str(path)], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True
    )
    assert holder.stdout.readline().strip() == "holding"
    return holder


def test_locked_warehouse_fails_with_a_clear_message_and_keeps_its_data(warehouse_with_rows) -> None:
    warehouse, rows = warehouse_with_rows
    holder = hold_lock(warehouse.path)
    try:
        impatient = Warehouse(warehouse.path, lock_timeout_s=1.0)
        with pytest.raises(WarehouseLockedError) as raised:
            impatient.replace_rows("survey_distribution", rows.with_columns(pl.lit(0.5).alias("share")), {"culture": "german"})
        message = str(raised.value)
        assert str(warehouse.path) in message and "another process" in message and "duckdb_writer" in message
    finally:
        holder.communicate("\n", timeout=30)
    kept = warehouse.query("SELECT code, share FROM survey_distribution WHERE culture = 'german' ORDER BY code")
    assert kept.to_dicts() == [{"code": 1, "share": 0.25}, {"code": 2, "share": 0.75}]


def test_warehouse_waits_for_the_lock_then_writes(warehouse_with_rows) -> None:
    warehouse, rows = warehouse_with_rows
    holder = hold_lock(warehouse.path)
    outcome: dict[str, object] = {}

    def write() -> None:
        try:
            outcome["rows"] = Warehouse(warehouse.path, lock_timeout_s=60).replace_rows(
                "survey_distribution", rows.with_columns(pl.lit(0.5).alias("share")), {"culture": "german"}
            )
        except Exception as exc:  # surfaced by the assertion below
            outcome["error"] = exc

    writer = threading.Thread(target=write)
    writer.start()
    writer.join(timeout=1.5)
    assert writer.is_alive(), "the writer must be waiting while another process holds the file"
    assert holder.communicate("\n", timeout=30)[0].strip() == "released"
    writer.join(timeout=60)
    assert outcome == {"rows": 2}
    assert warehouse.query("SELECT DISTINCT share FROM survey_distribution")["share"].to_list() == [0.5]
