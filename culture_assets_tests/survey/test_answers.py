"""Survey input: the reference layout's mean rows, file encodings, and answer codes outside a question's scale.

Every failure is raised before anything is written: no warehouse row lands for a survey that cannot be read.
"""

from __future__ import annotations

import shutil
from importlib import resources
from pathlib import Path

import dagster as dg
import polars as pl
import pytest

from culture_assets.assets import survey
from culture_assets.definitions import defs
from culture_assets.errors import InputError
from culture_assets.resources import SURVEY_ENV
from culture_assets.store import Warehouse
from culture_assets.survey.answers import (
    OUT_OF_SCALE_ERROR_SHARE,
    PACKAGED_COUNTS,
    SUMMARY_ROW_LABELS,
    out_of_scale_codes,
    read_answer_counts,
    read_survey,
    survey_files,
)
from culture_assets.survey.questions import load_questions

QUESTION_IDS = [q.id for q in load_questions()]


def respondent_csv(path: Path, alpha: str, numeric: int, rows: list[list[int]], with_means: bool) -> Path:
    """A per-country CSV as the CultureLLM reference copy lays it out: B_COUNTRY, B_COUNTRY_ALPHA, one column per question."""
    lines = ["B_COUNTRY,B_COUNTRY_ALPHA," + ",".join(QUESTION_IDS)]
    lines += [f"{numeric},{alpha}," + ",".join(str(code) for code in row) for row in rows]
    if with_means:
        means = [sum(column) / len(rows) for column in zip(*rows)]
        lines += [f"{label},," + ",".join(f"{mean:.3f}" for mean in means) for label in SUMMARY_ROW_LABELS]
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def test_a_directory_in_the_reference_layout_is_read_without_its_mean_rows(tmp_path: Path) -> None:
    german = respondent_csv(tmp_path / "Germany" / "Germany.csv", "DEU", 276, [[1] * len(QUESTION_IDS), [2] * len(QUESTION_IDS)], True)
    respondent_csv(tmp_path / "China" / "China.csv", "CHN", 156, [[3] * len(QUESTION_IDS)], False)
    (tmp_path / "China" / "some_eval_set.csv").write_text("text,label\nhello,1\n")

    answers = read_survey(survey_files(tmp_path), QUESTION_IDS)
    assert answers.summary_rows_dropped == {str(german): len(SUMMARY_ROW_LABELS)}
    q27 = answers.counts.filter(pl.col("question_id") == "Q27").select("country_alpha", "code", "respondents").sort("country_alpha", "code")
    assert q27.rows() == [("CHN", 3, 1), ("DEU", 1, 1), ("DEU", 2, 1)]


def test_the_reference_copy_directory_reads_as_the_packaged_counts(reference_data: Path) -> None:
    answers = read_survey(survey_files(reference_data), QUESTION_IDS)
    # every country file ends in mean rows: Avg alone (Iraq, Jordan) or Avg, Avg_First, Avg_Last
    assert len(answers.summary_rows_dropped) == 11 and set(answers.summary_rows_dropped.values()) == {1, len(SUMMARY_ROW_LABELS)}
    packaged = read_answer_counts([Path(str(resources.files("culture_assets.data").joinpath(PACKAGED_COUNTS)))], QUESTION_IDS)
    assert answers.counts.equals(packaged)


def test_seed_survey_says_which_mean_rows_it_left_out(tmp_path: Path, data_home: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    german = respondent_csv(tmp_path / "wave" / "Germany" / "Germany.csv", "DEU", 276, [[1] * len(QUESTION_IDS), [2] * len(QUESTION_IDS)], True)
    monkeypatch.setenv(SURVEY_ENV, str(tmp_path / "wave"))
    result = dg.materialize([survey.seed_survey], partition_key="german", resources=dict(defs.resources), instance=dg.DagsterInstance.ephemeral())
    metadata = result.asset_materializations_for_node("seed_survey")[0].metadata
    assert metadata["summary_rows_dropped"].value == {str(german): 3}


@pytest.mark.parametrize(
    ("content", "expected"),
    [
        ("B_COUNTRY_ALPHA,Q27\nDEU,1\n".encode("utf-16"), "the file is UTF-16 encoded; expected UTF-8"),
        ("B_COUNTRY_ALPHA,Q27\nDEU,1\n".encode("utf-16-le"), "the file is UTF-16 encoded; expected UTF-8"),
        (b"B_COUNTRY_ALPHA,Q27\nDEU,1\nDEU,\xff\xfe\x80\n", "row 3, field 'encoding': byte 0xff is not UTF-8 text; expected a UTF-8 CSV"),
        (bytes(range(256)) * 4, "field 'encoding'"),
    ],
    ids=["utf16-bom", "utf16-no-bom", "bad-byte-on-line-3", "random-bytes"],
)
def test_an_undecodable_file_names_itself_and_the_expected_encoding(tmp_path: Path, content: bytes, expected: str) -> None:
    path = tmp_path / "wave.csv"
    path.write_bytes(content)
    with pytest.raises(InputError) as raised:
        read_answer_counts(survey_files(path), QUESTION_IDS)
    message = str(raised.value)
    assert message.startswith(str(path)) and expected in message and "UTF" in message


def test_an_undecodable_survey_fails_seed_survey_before_writing(tmp_path: Path, data_home: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / "wave.csv"
    path.write_bytes(("B_COUNTRY_ALPHA," + ",".join(QUESTION_IDS) + "\n").encode("utf-16"))
    monkeypatch.setenv(SURVEY_ENV, str(path))
    with pytest.raises(InputError, match="culture 'german'.*UTF-16"):
        dg.materialize([survey.seed_survey], partition_key="german", resources=dict(defs.resources), instance=dg.DagsterInstance.ephemeral())
    assert Warehouse(data_home / "warehouse.duckdb").query("SELECT count(*) AS n FROM survey_distribution")["n"][0] == 0


def test_out_of_scale_codes_are_counted_per_question() -> None:
    counts = pl.DataFrame(
        {
            "country_alpha": ["DEU"] * 5 + ["FRA"],
            "question_id": ["Q1", "Q1", "Q1", "Q1", "Q2", "Q1"],
            "code": [1, 4, 99, -2, 0, 99],
            "respondents": [60, 30, 10, 50, 7, 1000],
            "weighted": [60.0, 30.0, 10.0, 50.0, 7.0, 1000.0],
            "weight_source": ["none"] * 6,
        }
    )
    outside = out_of_scale_codes(counts, {"Q1": [1, 2, 3, 4], "Q2": [0, 1]}, ["DEU"])
    # -2 is a WVS missing code, 0 is on Q2's scale, FRA is another culture's country
    assert outside.rows() == [("Q1", [99], 10, 0.1)]


def survey_with_code_99(tmp_path: Path, respondents: int) -> Path:
    """The packaged counts plus `respondents` Germans answering Q27 (a 1-4 scale) with 99."""
    target = tmp_path / "wvs_answer_counts.csv"
    shutil.copyfile(str(resources.files("culture_assets.data").joinpath(PACKAGED_COUNTS)), target)
    counts = pl.read_csv(target)
    extra = pl.DataFrame([{**counts.row(0, named=True), "country_alpha": "DEU", "question_id": "Q27", "code": 99,
                           "respondents": respondents, "weighted": float(respondents)}], schema=counts.schema)
    pl.concat([counts, extra]).write_csv(target)
    return target


@pytest.mark.parametrize(("respondents", "severity"), [(3, dg.AssetCheckSeverity.WARN), (500, dg.AssetCheckSeverity.ERROR)])
def test_codes_outside_the_scale_fail_the_scale_check(
    tmp_path: Path, data_home: Path, monkeypatch: pytest.MonkeyPatch, respondents: int, severity: dg.AssetCheckSeverity
) -> None:
    monkeypatch.setenv(SURVEY_ENV, str(survey_with_code_99(tmp_path, respondents)))
    result = dg.materialize(
        [survey.seed_survey], partition_key="german", resources=dict(defs.resources), instance=dg.DagsterInstance.ephemeral(),
        raise_on_error=False,
    )
    (check,) = [c for c in result.get_asset_check_evaluations() if c.check_name == "answer_codes_within_scale"]
    assert not check.passed and check.severity == severity
    assert check.metadata["out_of_scale_by_question"].value == {"Q27": respondents}
    assert check.metadata["error_share"].value == OUT_OF_SCALE_ERROR_SHARE
