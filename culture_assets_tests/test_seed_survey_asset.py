"""seed_survey through Dagster: every culture from the shipped file, in parallel processes, and bad input."""

import os
import shutil
import subprocess
import sys
from pathlib import Path

import dagster as dg

from culture_assets.assets.survey import seed_survey, wvs_questions, wvs_wave
from culture_assets.io_manager import ArtifactIOManager
from culture_assets.resources import SurveySourceResource, WarehouseResource
from culture_assets.store import Warehouse

ROOT = Path(__file__).resolve().parents[1]
CULTURES = ["arabic", "bengali", "chinese", "english", "german", "korean", "portuguese", "spanish", "turkish"]


def resources(home: Path, survey: str = "") -> dict:
    return {
        "io_manager": ArtifactIOManager(data_home=str(home)),
        "warehouse": WarehouseResource(data_home=str(home)),
        "survey_source": SurveySourceResource(path=survey),
    }


def materialize(home: Path, partition: str, survey: str = "", raise_on_error: bool = True) -> dg.ExecuteInProcessResult:
    return dg.materialize(
        [wvs_wave, wvs_questions, seed_survey], selection=[seed_survey], partition_key=partition,
        resources=resources(home, survey), instance=dg.DagsterInstance.ephemeral(), raise_on_error=raise_on_error,
    )


def test_seed_survey_metadata_and_check(data_home):
    result = materialize(data_home, "chinese")
    materialization = result.asset_materializations_for_node("seed_survey")[0]
    assert materialization.metadata["questions_answered"].value == 32
    assert len(materialization.metadata["never_asked"].data) == 18
    assert "| question_id |" in materialization.metadata["answers"].value
    assert "mode_flip_probability" in materialization.metadata["answers"].value and "mode_margin" in materialization.metadata["answers"].value
    assert 0 <= materialization.metadata["mode_flip_probability_max"].value <= 1
    checks = {check.check_name: check for check in result.get_asset_check_evaluations()}
    assert set(checks) == {"every_question_answered_or_flagged", "answer_codes_within_scale"}
    assert all(check.passed for check in checks.values())
    stored = Warehouse(data_home / "warehouse.duckdb").query(
        "SELECT count(DISTINCT question_id) AS n FROM survey_distribution WHERE culture = 'chinese'"
    )
    assert stored["n"][0] == 32


def test_bad_survey_fails_and_keeps_the_previous_rows(data_home, tmp_path):
    materialize(data_home, "english")
    before = Warehouse(data_home / "warehouse.duckdb").query("SELECT * FROM survey_distribution ORDER BY question_id, code")
    bad = tmp_path / "wave8.csv"
    bad.write_text("B_COUNTRY_ALPHA,Q27\nUSA,1\n")
    result = materialize(data_home, "english", survey=str(bad), raise_on_error=False)
    assert not result.success
    failure = result.failure_data_for_node("seed_survey")
    assert "wave8.csv" in str(failure.error) and "missing column" in str(failure.error)
    after = Warehouse(data_home / "warehouse.duckdb").query("SELECT * FROM survey_distribution ORDER BY question_id, code")
    assert after.equals(before)


def run_cli(workdir: Path, home: Path) -> subprocess.Popen:
    env = {**os.environ, "CULTURE_ASSETS_HOME": str(home)}
    env.pop("DAGSTER_HOME", None)
    return subprocess.Popen(
        [str(Path(sys.executable).with_name("culture-assets")), "run", "--select", "seed_survey"],
        cwd=workdir, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
    )


def test_all_cultures_from_the_shipped_file_in_parallel_runs(tmp_path):
    """Run where no ../shared exists: the shipped counts file is enough. One run per culture, each its own
    process, all writing one DuckDB file."""
    workdir = tmp_path / "elsewhere" / "project"
    workdir.mkdir(parents=True)
    for name in ("workspace.yaml", "dagster.yaml"):
        shutil.copy(ROOT / name, workdir / name)
    assert not (workdir.parent / "shared").exists()
    home = tmp_path / "home"
    processes = [run_cli(workdir, home)]
    outputs = [p.communicate(timeout=600)[0] for p in processes]
    for process, output in zip(processes, outputs):
        assert process.returncode == 0, output[-3000:]
        assert "lock" not in output.lower() or "Could not set lock" not in output
    stored = Warehouse(home / "warehouse.duckdb").query(
        "SELECT culture, count(DISTINCT question_id) AS n FROM survey_distribution GROUP BY culture ORDER BY culture"
    )
    assert stored["culture"].to_list() == CULTURES
    assert dict(stored.iter_rows())["chinese"] == 32 and dict(stored.iter_rows())["arabic"] == 48
    assert sorted(p.name for p in (home / "assets" / "seed_survey").iterdir()) == [f"{c}.parquet" for c in CULTURES]
