"""The Celery test's Dagster side, run in subprocesses whose environment picks the data home, registry and executor.

The culture partitions come from the registry when the definitions load, so a three-culture run needs processes that
load them with CULTURE_ASSETS_REGISTRY set. `culture_chain_job` is the reconstructable job the Celery workers load.

    python -m culture_assets_tests.celery_run upstream|single|celery CULTURE...
"""

from __future__ import annotations

import json
import multiprocessing
import sys
from concurrent.futures import ProcessPoolExecutor

import dagster as dg

CHAIN = ("seed_survey", "training_set", "culture_model", "culture_scores")
# what the chain reads but does not write: materialized once, before the single-process and Celery runs
UPSTREAM = "+key:culturellm_one or key:eval_dataset"
JOB_NAME = "culture_chain"


def culture_chain_job() -> dg.JobDefinition:
    """The chain as one asset job on the executor CULTURE_ASSETS_EXECUTOR names (module level: reconstructable)."""
    from culture_assets.definitions import ALL_ASSETS, defs
    from culture_assets.deploy import executor_from_env

    job = dg.define_asset_job(JOB_NAME, selection=dg.AssetSelection.assets(*CHAIN), executor_def=executor_from_env())
    return dg.Definitions(assets=ALL_ASSETS, resources=defs.resources, jobs=[job]).resolve_job_def(JOB_NAME)


def chain_run_config() -> dict:
    from culture_assets.profiles import asset_config_for, current_profile

    return {"ops": {op: {"config": config} for op, config in asset_config_for(current_profile()).items() if op in CHAIN}}


def materialize_upstream(cultures: list[str]) -> None:
    from culture_assets.definitions import MAIN_JOB_STAGES, defs
    from culture_assets.pipeline import InProcessLauncher, plan_stages, run_stages

    # the main job's stages, in this process (the profile's values are the config defaults)
    with dg.DagsterInstance.get() as instance:
        outcomes = run_stages(defs, plan_stages(defs, MAIN_JOB_STAGES, UPSTREAM), InProcessLauncher(defs, instance), instance, cultures, poll_s=0)
    failed = [f"{o.stage.job_name} [{o.partition}]: {o.status} {o.message}" for o in outcomes if o.status != "success"]
    if failed:
        raise SystemExit("upstream stages did not succeed:\n" + "\n".join(failed))


def run_single_process(cultures: list[str]) -> list[dict]:
    """The chain per culture with dg.materialize: every step in this one process."""
    from culture_assets.definitions import ALL_ASSETS, defs

    runs = []
    with dg.DagsterInstance.get() as instance:
        for culture in cultures:
            result = dg.materialize(ALL_ASSETS, selection=dg.AssetSelection.assets(*CHAIN), partition_key=culture, instance=instance,
                                    resources=dict(defs.resources), run_config=chain_run_config(), raise_on_error=False)
            runs.append({"culture": culture, "run_id": result.run_id, "success": result.success})
    return runs


def executed_steps(instance: dg.DagsterInstance, run_id: str) -> list[dict]:
    """Per step of a run: the Celery worker that ran it (from its engine event), start and end time, its pool."""
    from culture_assets.definitions import ALL_ASSETS

    pools = {a.op.name: a.op.pool for a in ALL_ASSETS if isinstance(a, dg.AssetsDefinition)}
    steps: dict[str, dict] = {}
    for record in instance.all_logs(run_id):
        event = record.dagster_event
        if event is None or event.step_key is None:
            continue
        step = steps.setdefault(event.step_key, {"step": event.step_key, "pool": pools.get(event.step_key), "worker": None})
        if event.event_type == dg.DagsterEventType.ENGINE_EVENT and "Celery worker" in event.engine_event_data.metadata:
            step["worker"] = event.engine_event_data.metadata["Celery worker"].value
        elif event.event_type == dg.DagsterEventType.STEP_START:
            step["start"] = record.timestamp
        elif event.event_type in (dg.DagsterEventType.STEP_SUCCESS, dg.DagsterEventType.STEP_FAILURE):
            step["end"] = record.timestamp
    return list(steps.values())


def run_errors(instance: dg.DagsterInstance, run_id: str) -> list[str]:
    """What a failed run logged at the run level and at its failed steps, for the test's assertion message."""
    errors = []
    for record in instance.all_logs(run_id):
        event = record.dagster_event
        if event is None:
            continue
        if event.event_type == dg.DagsterEventType.STEP_FAILURE:
            errors.append(f"{event.step_key}: {event.step_failure_data.error.to_string()[-1500:]}")
        elif event.event_type in (dg.DagsterEventType.RUN_FAILURE, dg.DagsterEventType.ENGINE_EVENT):
            error = getattr(event.event_specific_data, "error", None)
            errors.append(f"{event.event_type.value}: {event.message}" + (f"\n{error.to_string()[-1500:]}" if error else ""))
    return errors


def submit_to_celery(culture: str) -> dict:
    """One run of the chain for `culture`; the run process orchestrates, the Celery workers execute the steps."""
    from culture_assets_tests import celery_run  # by module name, so the workers can import the job's origin

    with dg.DagsterInstance.get() as instance:
        job = dg.reconstructable(celery_run.culture_chain_job)
        with dg.execute_job(job, instance, run_config=chain_run_config(), tags={"dagster/partition": culture}, raise_on_error=False) as result:
            run_id, success = result.run_id, result.success
        return {"culture": culture, "run_id": run_id, "success": success, "steps": executed_steps(instance, run_id),
                "errors": [] if success else run_errors(instance, run_id)}


def run_on_celery(cultures: list[str]) -> list[dict]:
    # one submitting process per run, as the run launcher does (Dagster's log setup is not thread-safe), all at once so
    # that both workers have steps waiting for them
    with ProcessPoolExecutor(len(cultures), mp_context=multiprocessing.get_context("spawn")) as pool:
        return list(pool.map(submit_to_celery, cultures))


def main(argv: list[str]) -> None:
    mode, cultures = argv[0], argv[1:]
    if mode == "upstream":
        materialize_upstream(cultures)
        runs: list[dict] = []
    elif mode == "single":
        runs = run_single_process(cultures)
    elif mode == "celery":
        runs = run_on_celery(cultures)
    else:
        raise SystemExit(f"unknown mode {mode!r}: expected upstream, single or celery")
    print(json.dumps(runs))


if __name__ == "__main__":
    main(sys.argv[1:])
