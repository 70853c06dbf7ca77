"""The main job as named Dagster runs: the selection split over the stage jobs of definitions.py, in order.

Each stage job is run once per culture partition (once if unpartitioned), tagged with its stage,
culture and profile. The runs of a stage are submitted together (the instance's run queue bounds
how many run at once) and the next stage starts when they are all done. A run downstream of a
failed run is not started: it is reported as skipped because of that failure.

How a run is started is the launcher's business: `WorkspaceLauncher` (culture_assets.launcher)
submits it to the code location like the UI does, so it can be re-executed from the UI;
`InProcessLauncher` runs it in this process.
"""

from __future__ import annotations

import sys
import time
from dataclasses import dataclass
from typing import Mapping, Protocol, Sequence, TextIO

import dagster as dg

# The main job leaves out the ablation models (9 cultures x 9 variants); select them explicitly.
DEFAULT_SELECTION = "not key:ablation_*"
STAGE_TAG = "culture_assets/stage"
CULTURE_TAG = "culture_assets/culture"
PROFILE_TAG = "culture_assets/profile"
ALL_CULTURES = "all"


class SelectionError(ValueError):
    """`--select` names nothing, or something no stage job runs."""


@dataclass(frozen=True)
class Stage:
    job_name: str
    keys: tuple[dg.AssetKey, ...]  # the selected assets of the job
    partitions_def: dg.PartitionsDefinition | None
    whole_job: bool  # every asset of the job is selected: launch the job as it is

    @property
    def asset_names(self) -> list[str]:
        return [key.to_user_string() for key in self.keys]


def resolve_selection(graph, select: str | None) -> set[dg.AssetKey]:
    """The materializable assets `select` names; SelectionError (one line) when it is malformed or names nothing."""
    text = select or DEFAULT_SELECTION
    try:
        chosen = dg.AssetSelection.from_string(text).resolve(graph)
    except Exception as exc:  # Dagster raises several types for syntax and unknown keys
        reason = " ".join(str(exc).split())
        raise SelectionError(f"--select {text!r}: {reason[:300]}") from None
    chosen = {key for key in chosen if graph.get(key).is_materializable}
    if not chosen:
        raise SelectionError(f"--select {text!r} matches no asset that can be materialized")
    return chosen


def plan_stages(
    defs: dg.Definitions, stage_jobs: Sequence[dg.UnresolvedAssetJobDefinition], select: str | None = None, partitioned_only: bool = False
) -> list[Stage]:
    """The selected assets, stage job by stage job in the order given (a topological order of the graph).

    `partitioned_only` leaves out the unpartitioned (all-culture) assets: a one-culture backfill.
    """
    graph = defs.resolve_asset_graph()
    chosen = resolve_selection(graph, select)
    stages, covered = [], set()
    for job in stage_jobs:
        job_keys = job.selection.resolve(graph)
        keys = tuple(sorted(job_keys & chosen, key=lambda k: k.to_user_string()))
        covered |= job_keys
        partitions_def = graph.get(next(iter(job_keys))).partitions_def
        if not keys or (partitioned_only and partitions_def is None):
            continue
        stages.append(Stage(job.name, keys, partitions_def, whole_job=set(keys) == job_keys))
    orphans = sorted(key.to_user_string() for key in chosen - covered)
    if orphans:
        raise SelectionError(f"--select {select!r}: no stage job runs {orphans}")
    return stages


def stage_partitions(partitions_def: dg.PartitionsDefinition, cultures: Sequence[str] | None) -> list[str]:
    """The stage's partition keys, restricted to `cultures` (a culture x variant key matches on its culture)."""
    keys = partitions_def.get_partition_keys()
    if not cultures:
        return keys
    return [key for key in keys if set(key.split("|")) & set(cultures)]


def _ancestors(graph, keys: Sequence[dg.AssetKey]) -> set[dg.AssetKey]:
    seen: set[dg.AssetKey] = set()
    todo = list(keys)
    while todo:
        for parent in graph.get(todo.pop()).parent_keys:
            if parent not in seen:
                seen.add(parent)
                todo.append(parent)
    return seen


def _related(partition: str | None, upstream_partition: str | None) -> bool:
    """Whether a run for `partition` reads what a run for `upstream_partition` writes.

    Same key when both have the same shape; a culture x variant key and a culture key when the culture
    matches; an unpartitioned run reads or writes every culture.
    """
    if partition is None or upstream_partition is None:
        return True
    if ("|" in partition) == ("|" in upstream_partition):
        return partition == upstream_partition
    return bool(set(partition.split("|")) & set(upstream_partition.split("|")))


@dataclass
class RunOutcome:
    stage: Stage
    partition: str | None
    status: str  # "success" | "failed" | "skipped"
    run_id: str | None = None
    message: str = ""

    @property
    def label(self) -> str:
        return f"{self.stage.job_name} [{self.partition or ALL_CULTURES}]"


class Launcher(Protocol):
    def submit(self, stage: Stage, partition: str | None, tags: Mapping[str, str]) -> str: ...

    def terminate(self, run_ids: Sequence[str]) -> None: ...


class InProcessLauncher:
    """Runs each stage job in this process (public `execute_in_process`); the runs carry the job's name."""

    def __init__(self, defs: dg.Definitions, instance: dg.DagsterInstance):
        self.defs, self.instance = defs, instance

    def submit(self, stage: Stage, partition: str | None, tags: Mapping[str, str]) -> str:
        job = self.defs.resolve_job_def(stage.job_name)
        result = job.execute_in_process(
            instance=self.instance, partition_key=partition, tags=dict(tags), raise_on_error=False,
            asset_selection=None if stage.whole_job else list(stage.keys),
        )
        return result.run_id

    def terminate(self, run_ids: Sequence[str]) -> None:
        """Nothing to stop: a run here has finished when `submit` returns."""


def _root_message(error) -> str:
    while error.cause is not None:  # Dagster wraps the asset's own exception; show that one
        error = error.cause
    return " ".join(error.message.split())[:400]


def failure_summary(instance: dg.DagsterInstance, run_id: str) -> str:
    """Each failed step with its root error, from the run's event log; else the run failure's message."""
    steps = instance.all_logs(run_id, of_type=dg.DagsterEventType.STEP_FAILURE)
    if steps:
        return "; ".join(f"{entry.step_key}: {_root_message(entry.dagster_event.step_failure_data.error)}" for entry in steps)
    runs = instance.all_logs(run_id, of_type=dg.DagsterEventType.RUN_FAILURE)
    return " ".join((runs[-1].message if runs else "run failed").split())[:400]


class Progress:
    """One status line per stage (rewritten in place on a terminal), one line per finished run."""

    def __init__(self, n_stages: int, stream: TextIO = sys.stderr):
        self.n_stages, self.stream = n_stages, stream
        self.started = time.monotonic()
        self.live = stream.isatty()
        self._last = ""

    def _elapsed(self, since: float | None = None) -> str:
        seconds = int(time.monotonic() - (since or self.started))
        return f"{seconds // 60}m{seconds % 60:02d}s"

    def status(self, index: int, stage: Stage, done: int, total: int, running: Sequence[str], stage_started: float) -> None:
        minutes = max(time.monotonic() - stage_started, 1e-9) / 60
        line = (
            f"[{index}/{self.n_stages}] {stage.job_name}: {done}/{total} runs done, {done / minutes:.1f}/min, "
            f"elapsed {self._elapsed()}" + (f"; running {', '.join(running)}" if running else "")
        )
        if self.live:
            self.stream.write("\r\033[K" + line)
            self.stream.flush()
            return
        state = f"{index} {done} {running}"  # off a terminal, a new line only when something changed
        if state != self._last:
            print(line, file=self.stream, flush=True)
            self._last = state

    def finished(self, outcome: RunOutcome) -> None:
        prefix = "\r\033[K" if self.live else ""
        detail = f": {outcome.message}" if outcome.message else ""
        print(f"{prefix}  {outcome.status:<7} {outcome.label}{detail}", file=self.stream, flush=True)


class StagesFailed(RuntimeError):
    """Some runs failed (and their downstream runs were skipped); everything else completed."""


def run_stages(
    defs: dg.Definitions,
    stages: Sequence[Stage],
    launcher: Launcher,
    instance: dg.DagsterInstance,
    partitions: Sequence[str] | None = None,
    tags: Mapping[str, str] | None = None,
    progress: Progress | None = None,
    poll_s: float = 1.0,
) -> list[RunOutcome]:
    """Run every stage's partitions, stage after stage; StagesFailed at the end names every failure and skip."""
    graph = defs.resolve_asset_graph()
    progress = progress or Progress(len(stages))
    outcomes: list[RunOutcome] = []
    for index, stage in enumerate(stages, 1):
        ancestors = _ancestors(graph, stage.keys)
        units = stage_partitions(stage.partitions_def, partitions) if stage.partitions_def else [None]
        in_flight: dict[str, RunOutcome] = {}
        stage_started = time.monotonic()
        for partition in units:
            blocker = next(
                (o for o in outcomes if o.status != "success" and ancestors & set(o.stage.keys) and _related(partition, o.partition)),
                None,
            )
            if blocker is not None:
                cause = blocker.message if blocker.status == "skipped" else f"skipped because {blocker.label} failed"
                outcome = RunOutcome(stage, partition, "skipped", message=cause)
                outcomes.append(outcome)
                progress.finished(outcome)
                continue
            run_tags = {**(tags or {}), STAGE_TAG: stage.job_name, CULTURE_TAG: (partition or ALL_CULTURES).split("|")[0]}
            if partition is not None:
                run_tags.update(stage.partitions_def.get_tags_for_partition_key(partition))
            run_id = launcher.submit(stage, partition, run_tags)
            in_flight[run_id] = RunOutcome(stage, partition, "running", run_id)
        try:
            while in_flight:
                for run_id, outcome in list(in_flight.items()):
                    run = instance.get_run_by_id(run_id)
                    if run is None or not run.is_finished:
                        continue
                    outcome.status = "success" if run.is_success else "failed"
                    if not run.is_success:
                        outcome.message = f"{failure_summary(instance, run_id)} (run {run_id})"
                    outcomes.append(in_flight.pop(run_id))
                    progress.finished(outcome)
                done = sum(o.stage is stage for o in outcomes)
                progress.status(index, stage, done, len(units), [o.partition or ALL_CULTURES for o in in_flight.values()], stage_started)
                if in_flight:
                    time.sleep(poll_s)
        except BaseException:
            launcher.terminate(list(in_flight))
            raise
    bad = [o for o in outcomes if o.status != "success"]
    if bad:
        failed = sum(o.status == "failed" for o in bad)
        raise StagesFailed(
            f"{failed} of {len(outcomes)} runs failed, {len(bad) - failed} skipped:\n" + "\n".join(f"  - {o.label}: {o.message}" for o in bad)
        )
    return outcomes
