"""Runs whose process is gone: mark them failed and free the pool slots they hold.

A run killed with SIGKILL (or whose machine lost power) never reports its end: Dagster keeps it
STARTED and keeps the concurrency slots its steps claimed, so every later step of the same pool
(`duckdb_writer`, limit 1) would wait for it forever. With the default run launcher every run
worker is a local process whose pid the run's start event records, so "gone" is decidable here.
`culture-assets run` calls `recover_dead_runs` before it starts anything, and `dead_run_sensor`
does the same every 30 s while the daemon runs (`culture-assets dev`, a deployment).
"""

from __future__ import annotations

import dagster as dg
import psutil

ALIVE_STATUSES = [dg.DagsterRunStatus.STARTED, dg.DagsterRunStatus.CANCELING]
# a pid reused by a process started after the run began is not the run's worker
PID_REUSE_TOLERANCE_S = 2.0


def run_worker_pid(instance: dg.DagsterInstance, run_id: str) -> int | None:
    """The pid of the process that started executing the run (its RUN_START event)."""
    starts = instance.all_logs(run_id, of_type=dg.DagsterEventType.RUN_START)
    return starts[-1].dagster_event.pid if starts and starts[-1].dagster_event else None


def process_alive(pid: int, since: float | None) -> bool:
    try:
        process = psutil.Process(pid)
        if process.status() == psutil.STATUS_ZOMBIE:
            return False
        return since is None or process.create_time() <= since + PID_REUSE_TOLERANCE_S
    except psutil.NoSuchProcess:
        return False


def recover_dead_runs(instance: dg.DagsterInstance) -> list[str]:
    """Mark runs whose worker process is gone as failed and free their slots; one line per recovered run."""
    if not isinstance(instance.run_launcher, dg.DefaultRunLauncher):
        return []  # workers elsewhere (k8s, Celery): Dagster's run monitoring watches those
    recovered = []
    for record in instance.get_run_records(filters=dg.RunsFilter(statuses=ALIVE_STATUSES)):
        run = record.dagster_run
        pid = run_worker_pid(instance, run.run_id)
        if pid is None or process_alive(pid, record.start_time):
            continue
        message = f"run worker (pid {pid}) is gone: marked failed by culture-assets, its concurrency slots freed"
        instance.report_run_failed(run, message)
        instance.event_log_storage.free_concurrency_slots_for_run(run.run_id)
        recovered.append(f"run {run.run_id} ({run.job_name}, {run.tags.get('dagster/partition', 'unpartitioned')}): {message}")
    return recovered


@dg.sensor(
    minimum_interval_seconds=30,
    default_status=dg.DefaultSensorStatus.RUNNING,
    description="Marks runs whose process is gone (killed, crashed) as failed and frees their pool slots, so no step waits for them.",
)
def dead_run_sensor(context: dg.SensorEvaluationContext) -> dg.SkipReason:
    recovered = recover_dead_runs(context.instance)
    for line in recovered:
        context.log.warning(line)
    return dg.SkipReason(f"recovered {len(recovered)} dead run(s)" if recovered else "no dead runs")
