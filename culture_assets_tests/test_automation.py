"""The WVS-wave sensor and weekly re-check: a new survey version re-runs exactly what its answers made stale."""

import shutil
from importlib import resources
from pathlib import Path

import dagster as dg
import polars as pl
import pytest
from dagster._core.definitions.reconstruct import ReconstructableRepository

from culture_assets.assets import survey
from culture_assets.automation import CULTURES_TAG, DEFAULT_RECHECK_CRON, RECHECK_CRON_ENV, WaveCursor, recheck_cron
from culture_assets.definitions import defs as project_defs
from culture_assets.resources import SURVEY_ENV
from culture_assets.survey.answers import PACKAGED_COUNTS
from culture_assets_tests.graph_stand_ins import DEFS, STAND_INS


@pytest.fixture
def survey_file(data_home: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A copy of the packaged answer counts, configured as the survey in use via CULTURE_ASSETS_SURVEY."""
    target = tmp_path / "wave" / "wvs_answer_counts.csv"
    target.parent.mkdir()
    shutil.copyfile(str(resources.files("culture_assets.data").joinpath(PACKAGED_COUNTS)), target)
    monkeypatch.setenv(SURVEY_ENV, str(target))
    return target


@pytest.fixture
def defs_and_instance(survey_file: Path):
    defs = DEFS
    with dg.DagsterInstance.get() as instance:
        assets = [survey.wvs_questions, survey.seed_survey, *STAND_INS]
        resources_ = dict(project_defs.resources)
        for culture in ("english", "german"):
            result = dg.materialize(
                assets,
                selection=["seed_survey", "answers_downstream"],
                partition_key=culture,
                instance=instance,
                resources=resources_,
            )
            assert result.success
        result = dg.materialize(
            assets, selection=["wvs_questions", "all_cultures_downstream", "questions_downstream"], instance=instance, resources=resources_
        )
        assert result.success
        for culture in ("english", "german"):
            assert dg.materialize(assets, selection=["scores_downstream"], partition_key=culture, instance=instance, resources=resources_).success
        yield defs, instance


def tick(defs: dg.Definitions, instance: dg.DagsterInstance, cursor: str | None):
    context = dg.build_sensor_context(instance=instance, cursor=cursor, definitions=defs, resources=dict(defs.resources))
    return defs.resolve_sensor_def("wvs_wave_sensor").evaluate_tick(context)


def requested(data) -> dict[str, set[str | None]]:
    """asset key -> partitions requested by the tick's backfill(s)."""
    out: dict[str, set[str | None]] = {}
    for request in data.run_requests:
        assert request.requires_backfill_daemon(), "the refresh must be one ordered asset backfill"
        for target in request.asset_graph_subset.iterate_asset_partitions():
            out.setdefault(target.asset_key.to_user_string(), set()).add(target.partition_key)
    return out


def change_country(survey_file: Path, alpha: str) -> None:
    """A corrected release: more respondents gave the first valid answer to Q27 in one country."""
    counts = pl.read_csv(survey_file)
    bump = (pl.col("country_alpha") == alpha) & (pl.col("question_id") == "Q27") & (pl.col("code") == 1)
    assert counts.filter(bump).height == 1
    counts.with_columns(
        pl.when(bump).then(pl.col("respondents") + 500).otherwise(pl.col("respondents")).alias("respondents"),
        pl.when(bump).then(pl.col("weighted") + 500).otherwise(pl.col("weighted")).alias("weighted"),
    ).write_csv(survey_file)


def test_new_wave_triggers_exactly_the_stale_assets(defs_and_instance, survey_file: Path) -> None:
    defs, instance = defs_and_instance

    first = tick(defs, instance, None)
    assert first.run_requests == [] and "nothing to re-run" in first.skip_message
    unchanged = tick(defs, instance, first.cursor)
    assert unchanged.run_requests == [] and "unchanged" in unchanged.skip_message

    change_country(survey_file, "DEU")
    changed = tick(defs, instance, unchanged.cursor or first.cursor)
    assert requested(changed) == {
        "seed_survey": {"german"},
        "answers_downstream": {"german"},
        "all_cultures_downstream": {None},
        # every culture's scores depend on the all-culture model retrained from German's new answers
        "scores_downstream": {"english", "german"},
    }
    assert changed.run_requests[0].tags[CULTURES_TAG] == "german"
    assert WaveCursor.parse(changed.cursor).version != WaveCursor.parse(first.cursor).version

    again = tick(defs, instance, changed.cursor)
    assert again.run_requests == [] and "unchanged" in again.skip_message


def test_refresh_after_rematerializing_is_empty(defs_and_instance, survey_file: Path) -> None:
    """Once the stale culture is re-run on the new wave, a fresh look (no cursor) finds nothing stale."""
    defs, instance = defs_and_instance
    change_country(survey_file, "USA")
    result = dg.materialize(
        [survey.seed_survey], partition_key="english", instance=instance, resources=dict(project_defs.resources)
    )
    assert result.success
    data = tick(defs, instance, None)
    assert data.run_requests == [] and "nothing to re-run" in data.skip_message


def test_corrupt_survey_is_reported_and_launches_nothing(defs_and_instance, survey_file: Path) -> None:
    defs, instance = defs_and_instance
    baseline = tick(defs, instance, None)
    lines = survey_file.read_text().splitlines()
    lines[5] = ",".join(lines[5].split(",")[:-2] + ["", lines[5].split(",")[-1]])  # an empty weighted count
    survey_file.write_text("\n".join(lines) + "\n")

    data = tick(defs, instance, baseline.cursor)
    assert data.run_requests == []
    assert str(survey_file) in data.skip_message and "weighted" in data.skip_message
    assert "nothing launched" in data.skip_message
    repeat = tick(defs, instance, data.cursor)
    assert repeat.run_requests == [] and repeat.skip_message == data.skip_message
    assert instance.get_backfills() == []


def test_weekly_recheck_submits_the_same_backfill(defs_and_instance, survey_file: Path) -> None:
    defs, instance = defs_and_instance
    # As the schedule launches it: the job reconstructed from its code location, which knows the whole graph.
    job = ReconstructableRepository.for_module("culture_assets_tests.graph_stand_ins", "DEFS").get_reconstructable_job("survey_recheck_job")
    change_country(survey_file, "IRQ")  # Arabic was never materialized: missing, not stale
    with dg.execute_job(job, instance) as result:
        assert result.success
    assert instance.get_backfills() == []

    change_country(survey_file, "DEU")
    with dg.execute_job(job, instance) as result:
        assert result.success
    (backfill,) = instance.get_backfills()
    subset = backfill.asset_backfill_data.target_subset
    assert {(t.asset_key.to_user_string(), t.partition_key) for t in subset.iterate_asset_partitions()} == {
        ("seed_survey", "german"),
        ("answers_downstream", "german"),
        ("all_cultures_downstream", None),
        ("scores_downstream", "english"),
        ("scores_downstream", "german"),
    }
    assert backfill.tags[CULTURES_TAG] == "german"

    # While that refresh runs, neither the sensor nor the next re-check plans the same work again.
    busy = tick(defs, instance, None)
    assert busy.run_requests == [] and backfill.backfill_id in busy.skip_message
    with dg.execute_job(job, instance) as result:
        assert result.success
    assert len(instance.get_backfills()) == 1


def test_schedule_cron_comes_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    assert recheck_cron() == DEFAULT_RECHECK_CRON
    monkeypatch.setenv(RECHECK_CRON_ENV, "*/15 * * * *")
    assert recheck_cron() == "*/15 * * * *"
