"""Two cultures' models train at the same time: training steps hold no writer-pool slot, and their short
warehouse writes all land. Runs as a backfill does: one run per culture, each with the multiprocess executor,
in the project's instance settings (pool limits from dagster.yaml)."""

from __future__ import annotations

import multiprocessing
import shutil
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import dagster as dg
import pytest

from culture_assets.assets import survey
from culture_assets.assets.training_sets import training_set
from culture_assets.cli import project_root
from culture_assets.resources.training import BASE_MODEL_ENV, TrainerResource
from culture_assets.settings import data_home as configured_data_home
from culture_assets_tests.training.test_training_assets import ASSETS, augmented_questions, resources

CULTURES = ("german", "chinese")
# as the other training tests: a few optimizer steps of the tiny model
TRAINER = TrainerResource(max_steps=4, save_steps=4, batch_size=8, learning_rate=1e-2)


def culture_model_job() -> dg.JobDefinition:
    """culture_model alone, as a code location would load it (module level, so reconstructable in a new process)."""
    job = dg.define_asset_job("culture_model_job", selection=["culture_model"])
    defs = dg.Definitions(assets=ASSETS, jobs=[job], resources=resources(configured_data_home(), TRAINER))
    return defs.resolve_job_def("culture_model_job")


def run_partition(culture: str) -> tuple[bool, str]:
    with dg.DagsterInstance.get() as instance:
        with dg.execute_job(dg.reconstructable(culture_model_job), instance, tags={"dagster/partition": culture}) as result:
            return result.success, result.run_id


def step_interval(instance: dg.DagsterInstance, run_id: str, step: str) -> tuple[float, float]:
    entries = [e for e in instance.all_logs(run_id) if e.step_key == step and e.dagster_event is not None]
    start = next(e.timestamp for e in entries if e.dagster_event.event_type == dg.DagsterEventType.STEP_START)
    end = next(e.timestamp for e in entries if e.dagster_event.event_type == dg.DagsterEventType.STEP_SUCCESS)
    return start, end


@pytest.mark.slow
def test_two_cultures_train_in_parallel_and_every_row_lands(tiny_model_dir: Path, data_home: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    home = data_home / "dagster_home"
    shutil.copyfile(project_root(Path(__file__).parent) / "dagster.yaml", home / "dagster.yaml")
    monkeypatch.setenv(BASE_MODEL_ENV, str(tiny_model_dir))
    with dg.DagsterInstance.get() as instance:
        assert dg.materialize([*ASSETS], selection=[survey.wvs_questions, augmented_questions], resources=resources(data_home, TRAINER), instance=instance).success
        for culture in CULTURES:
            assert dg.materialize(
                ASSETS, selection=[survey.seed_survey, training_set], partition_key=culture, resources=resources(data_home, TRAINER), instance=instance
            ).success

    with ProcessPoolExecutor(len(CULTURES), mp_context=multiprocessing.get_context("spawn")) as pool:
        runs = dict(zip(CULTURES, pool.map(run_partition, CULTURES)))

    with dg.DagsterInstance.get() as instance:
        for culture, (success, run_id) in runs.items():
            assert success, f"{culture} run {run_id} failed"
        (start_a, end_a), (start_b, end_b) = (step_interval(instance, run_id, "culture_model") for _, run_id in runs.values())
    overlap = min(end_a, end_b) - max(start_a, start_b)
    print(f"culture_model steps: {end_a - start_a:.1f} s and {end_b - start_b:.1f} s, overlapping {overlap:.1f} s")
    assert overlap > 0, "the two cultures' training steps ran one after the other"

    registry = resources(data_home, TRAINER)["warehouse"].get().query("SELECT model_key FROM model_registry ORDER BY model_key")
    assert registry["model_key"].to_list() == sorted(f"{culture}-default" for culture in CULTURES)
