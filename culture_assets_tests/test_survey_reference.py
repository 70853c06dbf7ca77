"""The survey statistics against the CultureLLM reference copy of WVS Wave 7 (skipped when absent)."""

import csv
from collections import Counter
from pathlib import Path

import pytest

from culture_assets.cultures import load_registry
from culture_assets.resources import SurveySourceResource
from culture_assets.survey.answers import SUMMARY_ROW_LABELS, read_answer_counts
from culture_assets.survey.distribution import Pooling, seed_survey_table
from culture_assets.survey.questions import load_questions

FOLDERS = {"IRQ": "Arabic/Iraq.csv", "JOR": "Arabic/Jordan.csv", "BGD": "Bengali/Bangladesh.csv", "CHN": "China/China.csv",
           "USA": "English/United States.csv", "DEU": "Germany/Germany.csv", "KOR": "Korean/South Korea.csv",
           "BRA": "Portuguese/Brazil.csv", "ARG": "Spanish/Argentina.csv", "MEX": "Spanish/Mexico.csv", "TUR": "Turkey/Turkey.csv"}
QUESTIONS = {q.id: q for q in load_questions()}


def raw_codes(reference: Path, alpha: str, question: str) -> list[int]:
    """Hand count: the respondents' raw codes, read with the csv module, summary rows left out."""
    with (reference / FOLDERS[alpha]).open(newline="") as handle:
        return [int(row[question]) for row in csv.DictReader(handle) if row["B_COUNTRY"] not in SUMMARY_ROW_LABELS]


def hand_shares(codes: list[int], valid: list[int]) -> dict[int, float]:
    kept = [c for c in codes if c in valid]
    return {code: kept.count(code) / len(kept) for code in valid} if kept else {}


@pytest.fixture(scope="module")
def packaged_tables():
    source = SurveySourceResource()
    counts = read_answer_counts(source.files(), list(QUESTIONS))
    registry = load_registry()
    return {key: seed_survey_table(counts, list(QUESTIONS.values()), registry.get(key), Pooling.EQUAL_COUNTRY, "packaged") for key in registry.keys}


def rows_by_question(table):
    return {row["question_id"]: row for row in table.iter_rows(named=True)}


def test_packaged_counts_equal_the_reference_survey_files(reference_data):
    files = [reference_data / path for path in FOLDERS.values()]
    from_reference = read_answer_counts(files, list(QUESTIONS))
    packaged = read_answer_counts(SurveySourceResource().files(), list(QUESTIONS))
    assert from_reference.sort("country_alpha", "question_id", "code").equals(packaged.sort("country_alpha", "question_id", "code"))


def test_arabic_pools_iraq_and_jordan_equally(reference_data, packaged_tables):
    arabic = rows_by_question(packaged_tables["arabic"])
    for question in ["Q27", "Q33", "Q122", "Q158", "Q224"]:
        valid = QUESTIONS[question].valid_codes
        iraq = hand_shares(raw_codes(reference_data, "IRQ", question), valid)
        jordan = hand_shares(raw_codes(reference_data, "JOR", question), valid)
        expected = [(iraq[c] + jordan[c]) / 2 for c in valid]
        assert arabic[question]["distribution"] == pytest.approx(expected), question
        assert arabic[question]["countries_answered"] == ["IRQ", "JOR"]
        assert arabic[question]["n_valid"] == sum(
            1 for a in ("IRQ", "JOR") for c in raw_codes(reference_data, a, question) if c in valid
        )


def test_every_china_question_never_asked_is_flagged(reference_data, packaged_tables):
    never = [q for q, question in QUESTIONS.items() if not any(c in question.valid_codes for c in raw_codes(reference_data, "CHN", q))]
    china = packaged_tables["chinese"]
    assert len(never) == 18
    assert sorted(china.filter(china["never_asked"])["question_id"].to_list()) == sorted(never)
    arabic = packaged_tables["arabic"]
    assert sorted(arabic.filter(arabic["never_asked"])["question_id"].to_list()) == ["Q226", "Q36"]


@pytest.mark.parametrize(("culture", "alpha", "question"), [("english", "USA", "Q27"), ("german", "DEU", "Q158"), ("korean", "KOR", "Q122"), ("turkish", "TUR", "Q196")])
def test_modal_answer_equals_a_hand_count(reference_data, packaged_tables, culture, alpha, question):
    valid = QUESTIONS[question].valid_codes
    tally = Counter(c for c in raw_codes(reference_data, alpha, question) if c in valid)
    assert rows_by_question(packaged_tables[culture])[question]["modal_answer"] == tally.most_common(1)[0][0]


def test_report_modes_that_differ_from_the_reference_label(reference_data, packaged_tables, capsys):
    """The reference trains on int(mean of all raw codes, missing codes included); count where that differs from the mode."""
    registry = load_registry()
    report = {}
    for key, table in packaged_tables.items():
        expected_differs = 0
        for question, row in rows_by_question(table).items():
            codes = [c for alpha in registry.get(key).country_alphas for c in raw_codes(reference_data, alpha, question)]
            reference_label = int(sum(codes) / len(codes))
            assert row["reference_label"] == reference_label, (key, question)
            expected_differs += (not row["never_asked"]) and row["modal_answer"] != reference_label
        differs = table.filter(~table["never_asked"] & (table["modal_answer"] != table["reference_label"])).height
        assert differs == expected_differs
        report[key] = differs
    with capsys.disabled():
        print("\nquestions whose mode differs from the reference label:", report)
    assert all(count > 0 for count in report.values())  # the reference's averaging really does mislabel
