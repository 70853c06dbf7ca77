"""The main job's run plan: a failed partition's downstream runs are skipped by name, the others go on;
a bad --select or --partition is one line."""

import subprocess
import sys
from pathlib import Path

import dagster as dg
import pytest

from culture_assets.pipeline import InProcessLauncher, SelectionError, StagesFailed, plan_stages, run_stages

ROOT = Path(__file__).resolve().parents[1]
CLI = str(Path(sys.executable).with_name("culture-assets"))
CULTURES = dg.StaticPartitionsDefinition(["english", "german"])


@dg.asset(partitions_def=CULTURES)
def survey_answers(context: dg.AssetExecutionContext) -> None:
    if context.partition_key == "german":
        raise ValueError("german.csv, row 3, field 'Q27': expected a code, got 'x'")


@dg.asset(partitions_def=CULTURES, deps=[survey_answers])
def trained(context: dg.AssetExecutionContext) -> None:
    pass


@dg.asset(deps=[trained])
def trained_on_all() -> None:
    pass


@dg.asset
def unrelated() -> None:
    pass


STAGES = [
    dg.define_asset_job("answers_stage", selection=[survey_answers]),
    dg.define_asset_job("training_stage", selection=[trained]),
    dg.define_asset_job("all_cultures_stage", selection=[trained_on_all, unrelated]),
]
DEFS = dg.Definitions(assets=[survey_answers, trained, trained_on_all, unrelated], jobs=STAGES)


def test_a_failed_partition_skips_what_reads_it_and_nothing_else(data_home):
    with dg.DagsterInstance.get() as instance:
        with pytest.raises(StagesFailed) as failed:
            run_stages(DEFS, plan_stages(DEFS, STAGES), InProcessLauncher(DEFS, instance), instance, tags={"culture_assets/profile": "test"}, poll_s=0)
        runs = instance.get_runs()
    message = str(failed.value)
    assert message.startswith("1 of 5 runs failed, 2 skipped")
    assert "answers_stage [german]: survey_answers: ValueError: german.csv, row 3, field 'Q27'" in message
    assert "training_stage [german]: skipped because answers_stage [german] failed" in message
    assert "all_cultures_stage [all]: skipped because answers_stage [german] failed" in message
    assert "FileNotFoundError" not in message and "english" not in message
    # every run is a run of a named stage job, tagged with its stage, culture and profile
    assert sorted((run.job_name, run.tags["culture_assets/culture"], run.status.value) for run in runs) == [
        ("answers_stage", "english", "SUCCESS"), ("answers_stage", "german", "FAILURE"), ("training_stage", "english", "SUCCESS"),
    ]
    assert all(run.tags["culture_assets/stage"] == run.job_name and run.tags["culture_assets/profile"] == "test" for run in runs)


def test_a_selection_runs_part_of_a_stage_job_and_bad_selections_say_why():
    (stage,) = plan_stages(DEFS, STAGES, "unrelated")
    assert (stage.job_name, stage.asset_names, stage.whole_job) == ("all_cultures_stage", ["unrelated"], False)
    for bad, says in (("nonexistent", "nonexistent"), ("trained+++(", "Invalid selection"), ("tag:nothing=here", "matches no asset")):
        with pytest.raises(SelectionError, match=says) as error:
            plan_stages(DEFS, STAGES, bad)
        assert "\n" not in str(error.value)


def test_the_command_line_rejects_a_bad_selection_in_one_line(tmp_path):
    env = {"PATH": str(Path(sys.executable).parent), "CULTURE_ASSETS_HOME": str(tmp_path / "home"), "PYTHONPATH": str(ROOT)}
    result = subprocess.run([CLI, "run", "--select", "seed_survey+++("], cwd=ROOT, env=env, capture_output=True, text=True, timeout=120)
    assert result.returncode == 1
    errors = [line for line in result.stderr.splitlines() if line.startswith("culture-assets:")]
    assert len(errors) == 1 and "--select 'seed_survey+++(': Invalid selection" in errors[0], result.stderr[-2000:]
    assert "Traceback" not in result.stderr


VARIANTS = dg.MultiPartitionsDefinition({"culture": CULTURES, "variant": dg.StaticPartitionsDefinition(["big", "small"])})


@dg.asset(partitions_def=VARIANTS)
def variant_set(context: dg.AssetExecutionContext) -> None:
    if context.partition_key == "german|big":
        raise ValueError("asked for 1000 samples, 40 exist")


@dg.asset(partitions_def=VARIANTS, deps=[variant_set])
def variant_model() -> None:
    pass


VARIANT_STAGES = [dg.define_asset_job("variant_sets", selection=[variant_set]), dg.define_asset_job("variant_models", selection=[variant_model])]
VARIANT_DEFS = dg.Definitions(assets=[variant_set, variant_model], jobs=VARIANT_STAGES)


def test_a_failed_variant_skips_only_that_variant(data_home):
    with dg.DagsterInstance.get() as instance:
        with pytest.raises(StagesFailed) as failed:
            stages = plan_stages(VARIANT_DEFS, VARIANT_STAGES)
            run_stages(VARIANT_DEFS, stages, InProcessLauncher(VARIANT_DEFS, instance), instance, partitions=["german"], poll_s=0)
        models = [run.tags["dagster/partition"] for run in instance.get_runs() if run.job_name == "variant_models"]
    assert str(failed.value).startswith("1 of 4 runs failed, 1 skipped")
    assert "variant_models [german|big]: skipped because variant_sets [german|big] failed" in str(failed.value)
    assert models == ["german|small"]
