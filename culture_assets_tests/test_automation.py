"""Declarative automation: a culture whose survey answers change re-runs exactly what was built from them.

Each test drives Dagster's own evaluation (`dg.evaluate_automation_conditions`, as the sensor does each tick)
and materializes what it requests (`dg.materialize`), until nothing more is requested.
"""

import shutil
from collections import Counter
from importlib import resources
from pathlib import Path

import dagster as dg
import polars as pl
import pytest

from culture_assets.automation import DEFAULT_OBSERVE_CRON, OBSERVE_CRON_ENV, TRIGGER_TAG, observe_cron
from culture_assets.cultures import load_registry
from culture_assets.resources import SURVEY_ENV
from culture_assets.survey.answers import PACKAGED_COUNTS, answers_fingerprint, read_answer_counts
from culture_assets.survey.questions import load_questions
from culture_assets_tests.graph_stand_ins import ASSETS, DEFS

WVS_WAVE = dg.AssetKey("wvs_wave")
MATERIALIZABLE = [key for key in DEFS.resolve_asset_graph().get_all_asset_keys() if key != WVS_WAVE]
Requested = tuple[str, str | None]


@pytest.fixture
def survey_file(data_home: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A copy of the packaged answer counts, configured as the survey in use via CULTURE_ASSETS_SURVEY."""
    target = tmp_path / "wave" / "wvs_answer_counts.csv"
    target.parent.mkdir()
    shutil.copyfile(str(resources.files("culture_assets.data").joinpath(PACKAGED_COUNTS)), target)
    monkeypatch.setenv(SURVEY_ENV, str(target))
    return target


def materialize(instance: dg.DagsterInstance, keys: list[str], partition: str | None = None) -> None:
    result = dg.materialize(ASSETS, selection=keys, partition_key=partition, instance=instance, resources=dict(DEFS.resources))
    assert result.success


def observe(instance: dg.DagsterInstance) -> dg.ExecuteInProcessResult:
    """What the observation schedule launches."""
    return DEFS.resolve_job_def("wvs_wave_observation_job").execute_in_process(instance=instance, raise_on_error=False)


@pytest.fixture
def automated(survey_file: Path):
    """English and German built through to the report; then the sensor's first tick (which never requests)."""
    with dg.DagsterInstance.get() as instance:
        for culture in ("english", "german"):
            materialize(instance, ["seed_survey", "answers_downstream"], culture)
        materialize(instance, ["wvs_questions", "all_cultures_downstream", "questions_downstream"])
        for culture in ("english", "german"):
            materialize(instance, ["scores_downstream"], culture)
        materialize(instance, ["report_downstream"])
        first = dg.evaluate_automation_conditions(defs=DEFS, instance=instance)
        assert first.total_requested == 0
        yield instance, first.cursor


def run_until_settled(instance: dg.DagsterInstance, cursor: str, ticks: int = 12) -> tuple[Counter[Requested], str]:
    """Tick and materialize what each tick requests, until two ticks in a row request nothing."""
    requested: Counter[Requested] = Counter()
    idle = 0
    for _ in range(ticks):
        result = dg.evaluate_automation_conditions(defs=DEFS, instance=instance, cursor=cursor)
        cursor = result.cursor
        by_partition: dict[str | None, list[str]] = {}
        for key in MATERIALIZABLE:
            for partition in result.get_requested_partitions(key):
                requested[(key.to_user_string(), partition)] += 1
                by_partition.setdefault(partition, []).append(key.to_user_string())
        idle = 0 if by_partition else idle + 1
        if idle == 2:
            return requested, cursor
        for partition, keys in by_partition.items():
            materialize(instance, keys, partition)
    raise AssertionError(f"still requesting after {ticks} ticks: {requested}")


def change_country(survey_file: Path, alpha: str) -> None:
    """A corrected release: more respondents gave the first valid answer to Q27 in one country."""
    counts = pl.read_csv(survey_file)
    bump = (pl.col("country_alpha") == alpha) & (pl.col("question_id") == "Q27") & (pl.col("code") == 1)
    assert counts.filter(bump).height == 1
    counts.with_columns(
        pl.when(bump).then(pl.col("respondents") + 500).otherwise(pl.col("respondents")).alias("respondents"),
        pl.when(bump).then(pl.col("weighted") + 500).otherwise(pl.col("weighted")).alias("weighted"),
    ).write_csv(survey_file)


def observed_version(instance: dg.DagsterInstance, culture: str) -> str | None:
    records = instance.fetch_observations(dg.AssetRecordsFilter(asset_key=WVS_WAVE, asset_partitions=[culture]), limit=1).records
    return records[0].asset_observation.data_version if records else None


def test_a_german_correction_reruns_exactly_what_was_built_from_german_answers(automated, survey_file: Path) -> None:
    instance, cursor = automated
    assert observe(instance).success
    counts = read_answer_counts([survey_file], [q.id for q in load_questions()])
    for culture in load_registry().cultures:  # each culture's answers fingerprint is its wvs_wave data version
        assert observed_version(instance, culture.key) == answers_fingerprint(counts, culture.country_alphas)
    unchanged, cursor = run_until_settled(instance, cursor)
    assert unchanged == Counter(), "observing the answers seed_survey was built from is no change"

    change_country(survey_file, "IRQ")  # Arabic was never materialized: missing, not stale
    assert observe(instance).success
    never_built, cursor = run_until_settled(instance, cursor)
    assert never_built == Counter()

    english_before = observed_version(instance, "english")
    change_country(survey_file, "DEU")
    assert observe(instance).success
    assert observed_version(instance, "english") == english_before
    requested, cursor = run_until_settled(instance, cursor)
    assert requested == Counter(
        {
            ("seed_survey", "german"): 1,
            ("answers_downstream", "german"): 1,
            ("all_cultures_downstream", None): 1,
            # every culture's scores read the all-culture asset rebuilt from German's new answers
            ("scores_downstream", "english"): 1,
            ("scores_downstream", "german"): 1,
            ("report_downstream", None): 1,
        }
    )

    assert observe(instance).success
    again, _ = run_until_settled(instance, cursor)
    assert again == Counter()


def test_a_corrupt_survey_fails_the_observation_naming_the_file_and_requests_nothing(automated, survey_file: Path) -> None:
    instance, cursor = automated
    lines = survey_file.read_text().splitlines()
    lines[5] = ",".join(lines[5].split(",")[:-2] + ["", lines[5].split(",")[-1]])  # an empty weighted count
    survey_file.write_text("\n".join(lines) + "\n")

    result = observe(instance)
    assert not result.success
    (failure,) = [event for event in result.all_events if event.is_step_failure]
    message = failure.step_failure_data.error.to_string()  # with its cause, the InputError
    assert str(survey_file) in message and "weighted" in message
    requested, _ = run_until_settled(instance, cursor)
    assert requested == Counter()


def test_the_sensor_tags_its_runs_and_covers_only_what_reads_answers() -> None:
    sensor = DEFS.resolve_sensor_def("survey_automation_sensor")
    assert sensor.run_tags == {TRIGGER_TAG: "wvs_wave"}
    graph = DEFS.resolve_asset_graph()
    automated = {key.to_user_string() for key in graph.get_all_asset_keys() if graph.get(key).automation_condition}
    assert automated == {"seed_survey", "answers_downstream", "all_cultures_downstream", "scores_downstream", "report_downstream"}


def test_observation_cron_comes_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    assert observe_cron() == DEFAULT_OBSERVE_CRON
    monkeypatch.setenv(OBSERVE_CRON_ENV, "*/15 * * * *")
    assert observe_cron() == "*/15 * * * *"
