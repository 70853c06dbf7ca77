"""The `wvs_questions` table is the questions themselves: assets reading it get back what was loaded."""

from culture_assets.survey.questions import load_questions, questions_from_table, questions_table


def test_questions_survive_the_wvs_questions_table() -> None:
    questions = load_questions()
    assert questions_from_table(questions_table(questions)) == questions
