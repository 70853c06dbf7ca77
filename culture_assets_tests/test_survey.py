"""Survey loading and answer statistics on small hand-made files with known answers."""

from pathlib import Path

import polars as pl
import pytest

from culture_assets.cultures import Country, Culture, SystemPrompt
from culture_assets.errors import InputError
from culture_assets.survey.answers import read_answer_counts, survey_files
from culture_assets.survey.distribution import Pooling, check_countries, seed_survey_table
from culture_assets.survey.questions import WVSQuestion

Q_AGREE = WVSQuestion(id="Q1", topic="T", text="a", options={1: "Agree", 2: "Neutral", 3: "Disagree"})
Q_ZERO = WVSQuestion(id="Q2", topic="T", text="b", options={0: "Disagree", 1: "Hard to say", 2: "Agree"})
QUESTIONS = [Q_AGREE, Q_ZERO]
PROMPT = SystemPrompt(english="e", native="n")


def culture(*alphas: str) -> Culture:
    return Culture(
        key="test", display_name="Test", language="xx", language_name="X", system_prompt=PROMPT,
        countries=tuple(Country(name=a, alpha=a, numeric=1) for a in alphas),
    )


def write(path: Path, text: str) -> Path:
    path.write_text(text.strip() + "\n")
    return path


def counts_for(tmp_path: Path, text: str) -> pl.DataFrame:
    return read_answer_counts([write(tmp_path / "survey.csv", text)], ["Q1", "Q2"])


def test_missing_codes_are_dropped_and_weights_used(tmp_path):
    counts = counts_for(tmp_path, """
B_COUNTRY_ALPHA,Q1,Q2,W_WEIGHT
AAA,1,0,3.0
AAA,2,-1,1.0
AAA,-2,-4,5.0
AAA,-1,0,1.0
""")
    row = seed_survey_table(counts, QUESTIONS, culture("AAA"), Pooling.EQUAL_COUNTRY, "s").row(0, named=True)
    # valid Q1 answers: code 1 weight 3, code 2 weight 1 -> 0.75 / 0.25; the -2 and -1 are not averaged in
    assert row["distribution"] == pytest.approx([0.75, 0.25, 0.0])
    assert row["modal_answer"] == 1 and row["n_valid"] == 2 and row["n_missing"] == 2 and row["weighted"]
    q2 = seed_survey_table(counts, QUESTIONS, culture("AAA"), Pooling.EQUAL_COUNTRY, "s").row(1, named=True)
    assert q2["codes"] == [0, 1, 2] and q2["modal_answer"] == 0 and q2["distribution"] == pytest.approx([1.0, 0.0, 0.0])


def test_pooling_equal_country_versus_by_respondents(tmp_path):
    counts = counts_for(tmp_path, "B_COUNTRY_ALPHA,Q1,Q2\n" + "AAA,1,1\n" * 1 + "AAA,3,1\n" * 1 + "BBB,3,1\n" * 8)
    equal = seed_survey_table(counts, QUESTIONS, culture("AAA", "BBB"), Pooling.EQUAL_COUNTRY, "s").row(0, named=True)
    pooled = seed_survey_table(counts, QUESTIONS, culture("AAA", "BBB"), Pooling.RESPONDENTS, "s").row(0, named=True)
    assert equal["distribution"] == pytest.approx([0.25, 0.0, 0.75])  # mean of (0.5, 0, 0.5) and (0, 0, 1)
    assert pooled["distribution"] == pytest.approx([0.1, 0.0, 0.9])  # 1 of 10 respondents chose 1
    assert not equal["weighted"] and equal["pooling"] == "equal_country"


def test_question_never_asked_is_flagged_not_labelled(tmp_path):
    counts = counts_for(tmp_path, "B_COUNTRY_ALPHA,Q1,Q2\nAAA,1,-4\nAAA,2,-4\n")
    row = seed_survey_table(counts, QUESTIONS, culture("AAA"), Pooling.EQUAL_COUNTRY, "s").row(1, named=True)
    assert row["never_asked"] and row["modal_answer"] is None and row["distribution"] is None
    assert row["reference_label"] == -4  # what the reference code would have trained on


def test_asked_in_one_country_only_uses_that_country(tmp_path):
    counts = counts_for(tmp_path, "B_COUNTRY_ALPHA,Q1,Q2\nAAA,1,2\nBBB,2,-4\n")
    row = seed_survey_table(counts, QUESTIONS, culture("AAA", "BBB"), Pooling.EQUAL_COUNTRY, "s").row(1, named=True)
    assert row["countries_answered"] == ["AAA"] and row["modal_answer"] == 2 and not row["never_asked"]


def test_ties_take_the_lowest_code_and_are_reported(tmp_path):
    counts = counts_for(tmp_path, "B_COUNTRY_ALPHA,Q1,Q2\nAAA,3,1\nAAA,1,1\n")
    row = seed_survey_table(counts, QUESTIONS, culture("AAA"), Pooling.EQUAL_COUNTRY, "s").row(0, named=True)
    assert row["modal_answer"] == 1 and row["mode_tied"]


def test_code_outside_the_scale_is_missing_data(tmp_path):
    counts = counts_for(tmp_path, "B_COUNTRY_ALPHA,Q1,Q2\nAAA,7,1\nAAA,2,1\n")
    row = seed_survey_table(counts, QUESTIONS, culture("AAA"), Pooling.EQUAL_COUNTRY, "s").row(0, named=True)
    assert row["n_valid"] == 1 and row["n_missing"] == 1 and row["modal_answer"] == 2


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ("B_COUNTRY_ALPHA,Q1\nAAA,1\n", r"missing column\(s\) \['Q2'\]"),
        ("B_COUNTRY_ALPHA,Q1,Q2\nAAA,1,2\nAAA,x,2\n", r"row 3, field 'Q1': expected an integer answer code, got 'x'|row 3, field 'Q1': expected an integer"),
        ("B_COUNTRY_ALPHA,Q1,Q2\nAAA,1,\n", r"row 2, field 'Q2': empty value"),
        ("", r"the file is empty"),
        ("B_COUNTRY_ALPHA,Q1,Q2\n", r"no respondent rows"),
        ("B_COUNTRY_ALPHA,Q1,Q2,W_WEIGHT\nAAA,1,1,heavy\n", r"row 2, field 'W_WEIGHT': expected a numeric weight"),
    ],
)
def test_bad_survey_csv_names_file_row_and_field(tmp_path, content, message):
    path = tmp_path / "bad.csv"
    path.write_text(content)
    with pytest.raises(InputError, match=message) as error:
        read_answer_counts([path], ["Q1", "Q2"])
    assert str(error.value).startswith(str(path))


def test_culture_naming_a_country_missing_from_the_survey(tmp_path):
    counts = counts_for(tmp_path, "B_COUNTRY_ALPHA,Q1,Q2\nAAA,1,1\n")
    with pytest.raises(InputError, match=r"culture 'test' names country \['GRC'\] which the survey does not contain"):
        check_countries(counts, culture("AAA", "GRC"), "survey.csv")


def test_a_country_in_two_files_is_refused(tmp_path):
    first = write(tmp_path / "a.csv", "B_COUNTRY_ALPHA,Q1,Q2\nAAA,1,1")
    second = write(tmp_path / "b.csv", "B_COUNTRY_ALPHA,Q1,Q2\nAAA,2,2")
    with pytest.raises(InputError, match="also appears in"):
        read_answer_counts([first, second], ["Q1", "Q2"])


def test_directory_source_finds_survey_csvs_only(tmp_path):
    write(tmp_path / "x" / "a.csv" if (tmp_path / "x").mkdir() is None else tmp_path, "B_COUNTRY_ALPHA,Q1,Q2\nAAA,1,1")
    write(tmp_path / "questions.csv", "topic,q_id\nT,1")
    assert [p.name for p in survey_files(tmp_path)] == ["a.csv"]
    with pytest.raises(InputError, match="survey source not found"):
        survey_files(tmp_path / "missing")
