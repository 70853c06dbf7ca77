import pytest
import yaml

from culture_assets.errors import InputError
from culture_assets.survey.questions import load_questions, parse_options, parse_questions

PAPER_IDS = (
    [f"Q{i}" for i in range(27, 42)]
    + [f"Q{i}" for i in range(122, 139) if i not in (130, 131)]
    + [f"Q{i}" for i in range(158, 163)]
    + ["Q169", "Q170", "Q196", "Q197", "Q198"]
    + [f"Q{i}" for i in range(224, 234)]
)


def test_the_fifty_paper_questions_in_seven_topics():
    questions = load_questions()
    assert [q.id for q in questions] == PAPER_IDS
    assert len(questions) == 50
    assert len({q.topic for q in questions}) == 7


def test_scale_starting_at_zero_is_read_in_code_order():
    assert parse_options("2. Agree 1. Hard to say 0. Disagree") == {0: "Disagree", 1: "Hard to say", 2: "Agree"}


def test_ten_point_scale_gets_every_code():
    options = parse_options("1. Completely disagree 10. Completely agree ")
    assert list(options) == list(range(1, 11))
    assert options[1] == "Completely disagree" and options[10] == "Completely agree" and options[5] == "5"


def test_packaged_q31_has_the_typo_fixed_and_the_reference_string_is_rejected():
    q31 = {q.id: q for q in load_questions()}["Q31"]
    assert q31.options == {1: "Strongly agree", 2: "agree", 3: "Disagree", 4: "Strongly disagree"}
    with pytest.raises(InputError, match=r"\[4\] appear more than once"):
        parse_options("1. Strongly agree 2. agree 4. Disagree 4. Strongly disagree", "WVQ.jsonl Q31")


def test_reference_question_texts_match(reference_data):
    import json

    reference = {f"Q{r['q_id']}": r for r in map(json.loads, (reference_data / "WVQ.jsonl").read_text().splitlines())}
    for question in load_questions():
        assert question.text == reference[question.id]["q_content"].strip()
        if question.id != "Q31":
            assert question.options == parse_options(reference[question.id]["option"])


def test_empty_question_text_is_named():
    raw = yaml.safe_load("questions:\n  - {id: Q1, topic: T, text: '  ', options: '1. a 2. b'}\n")
    with pytest.raises(InputError, match=r"q.yaml, question 1, field 'text'"):
        parse_questions(raw, "q.yaml")
