"""A run killed with SIGKILL while it holds the `duckdb_writer` pool slot does not wedge the data home:
the next run finds the dead run, marks it failed, frees its slot and finishes."""

import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import dagster as dg
import duckdb
import psutil
import pytest

from culture_assets.cli import project_root
from culture_assets.recovery import recover_dead_runs
from culture_assets.store.warehouse import WRITER_POOL

ROOT = project_root(Path(__file__).parent)
CLI = str(Path(sys.executable).with_name("culture-assets"))
# the seed_survey stage for one culture, run in a process of its own (a named run, in process)
IN_PROCESS_RUN = """
import dagster as dg
from culture_assets.definitions import defs, seed_survey_job
from culture_assets.pipeline import InProcessLauncher, plan_stages, run_stages
with dg.DagsterInstance.get() as instance:
    run_stages(defs, plan_stages(defs, [seed_survey_job], "seed_survey"), InProcessLauncher(defs, instance), instance, ["english"])
"""


@pytest.fixture
def project_instance(data_home: Path) -> Path:
    shutil.copyfile(ROOT / "dagster.yaml", data_home / "dagster_home" / "dagster.yaml")
    with dg.DagsterInstance.get():  # create the storage once, before two processes race on it
        pass
    return data_home


def pool_holders(instance: dg.DagsterInstance) -> set[str]:
    return {slot.run_id for slot in instance.event_log_storage.get_concurrency_info(WRITER_POOL).claimed_slots}


def kill_tree(pid: int) -> None:
    """SIGKILL a process and everything below it, as a lost machine or `kill -9` of each would."""
    try:
        root = psutil.Process(pid)
        family = [*root.children(recursive=True), root]
    except psutil.NoSuchProcess:
        return  # already gone (the run worker was the command's own process)
    for process in family:
        try:
            process.kill()
        except psutil.NoSuchProcess:
            pass
    psutil.wait_procs([root], timeout=10)


def start_and_kill_while_holding_the_pool(command: list[str], data_home: Path, timeout_s: float) -> str:
    """Start `command`, keep the warehouse locked so its writing step waits inside the pool, SIGKILL it there."""
    lock = duckdb.connect(str(data_home / "warehouse.duckdb"))  # another writer: the step holds its slot and waits
    process = subprocess.Popen(command, cwd=ROOT, env=os.environ.copy(), stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, start_new_session=True)
    try:
        deadline = time.monotonic() + timeout_s
        with dg.DagsterInstance.get() as instance:
            while not pool_holders(instance):
                assert process.poll() is None, f"the run ended before taking the pool: {process.stderr.read().decode()[-2000:]}"
                assert time.monotonic() < deadline, "the run never took the duckdb_writer slot"
                time.sleep(0.5)
            (holder,) = pool_holders(instance)
            worker = instance.all_logs(holder, of_type=dg.DagsterEventType.RUN_START)[-1].dagster_event.pid
        kill_tree(worker)
        kill_tree(process.pid)
    finally:
        lock.close()
        process.wait(timeout=30)
        process.stderr.close()
    return holder


def assert_wedged(holder: str) -> None:
    with dg.DagsterInstance.get() as instance:
        assert pool_holders(instance) == {holder}, "the dead run should still hold the slot (what used to wedge every later run)"
        assert instance.get_run_by_id(holder).status == dg.DagsterRunStatus.STARTED


def test_a_run_killed_in_the_pool_is_recovered_and_the_next_run_finishes(project_instance: Path) -> None:
    holder = start_and_kill_while_holding_the_pool([sys.executable, "-c", IN_PROCESS_RUN], project_instance, timeout_s=120)
    assert_wedged(holder)

    with dg.DagsterInstance.get() as instance:
        recovered = recover_dead_runs(instance)
        assert len(recovered) == 1 and holder in recovered[0] and "is gone" in recovered[0]
        assert instance.get_run_by_id(holder).status == dg.DagsterRunStatus.FAILURE
        assert not pool_holders(instance)
        assert recover_dead_runs(instance) == []  # a finished run is left alone
    finished = subprocess.run([sys.executable, "-c", IN_PROCESS_RUN], cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert finished.returncode == 0, finished.stderr[-3000:]


@pytest.mark.slow
def test_the_command_line_recovers_a_killed_run_and_finishes(project_instance: Path) -> None:
    command = [CLI, "run", "--select", "seed_survey", "--partition", "english"]
    holder = start_and_kill_while_holding_the_pool(command, project_instance, timeout_s=400)
    assert_wedged(holder)

    started = time.monotonic()
    second = subprocess.run(command, cwd=ROOT, capture_output=True, text=True, timeout=600)
    assert second.returncode == 0, second.stderr[-4000:]
    assert holder in second.stderr and "is gone" in second.stderr
    print(f"second run: {time.monotonic() - started:.0f}s")
