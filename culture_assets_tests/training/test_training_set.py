from __future__ import annotations

import json

import polars as pl
import pytest

from culture_assets.cultures import load_registry
from culture_assets.errors import InputError
from culture_assets.resources import SurveySourceResource
from culture_assets.survey.answers import read_answer_counts
from culture_assets.survey.distribution import Pooling, seed_survey_table
from culture_assets.survey.questions import load_questions
from culture_assets.training.ablations import ABLATION_SIZES, ABLATIONS, ablation_spec, fixed_optimizer_steps, per_question_cap
from culture_assets.training.training_set import (
    ANSWER_INSTRUCTION,
    PromptLanguage,
    Targets,
    TrainingSetSpec,
    UnfillableSize,
    build_training_set,
    heldout_questions,
    split_distributions,
    training_set_version,
)
from culture_assets_tests.training.samples import augmented_questions

QUESTIONS = load_questions()


def survey(culture_key: str) -> pl.DataFrame:
    source = SurveySourceResource()
    counts = read_answer_counts(source.files(), [q.id for q in QUESTIONS])
    return seed_survey_table(counts, QUESTIONS, load_registry().get(culture_key), Pooling.EQUAL_COUNTRY, source="test")


@pytest.fixture(scope="module")
def chinese_survey() -> pl.DataFrame:
    return survey("chinese")


def build(spec: TrainingSetSpec, culture: str = "chinese", seed_survey: pl.DataFrame | None = None) -> pl.DataFrame:
    table = seed_survey if seed_survey is not None else survey(culture)
    return build_training_set(augmented_questions(), table, QUESTIONS, load_registry().get(culture), spec)


def test_rows_pair_each_variant_with_the_modal_answer_in_chat_format(chinese_survey):
    table = build(TrainingSetSpec(heldout_count=0, validation_fraction=0.0), seed_survey=chinese_survey)
    modal = dict(chinese_survey.filter(~pl.col("never_asked")).select("question_id", "modal_answer").iter_rows())
    row = table.filter(pl.col("step") == "paraphrase").row(0, named=True)
    messages = json.loads(row["messages_json"])
    question = next(q for q in QUESTIONS if q.id == row["question_id"])
    assert [m["role"] for m in messages] == ["system", "user", "assistant"]
    assert messages[0]["content"] == load_registry().get("chinese").system_prompt.english
    assert question.option_text() in messages[1]["content"] and ANSWER_INSTRUCTION in messages[1]["content"]
    assert messages[1]["content"].startswith("In your opinion:") or messages[1]["content"].startswith("Tell me honestly.")
    assert messages[2]["content"] == row["answer"] == str(modal[row["question_id"]])
    assert set(table["split"]) == {"train"} and set(table["culture"]) == {"chinese"}
    # every row carries the culture's answer distribution over the options: the soft-label loss's target
    surveyed = chinese_survey.filter(pl.col("question_id") == row["question_id"]).row(0, named=True)
    assert json.loads(row["survey_distribution_json"]) == {str(c): share for c, share in zip(surveyed["codes"], surveyed["distribution"])}
    assert split_distributions(table, "train")[:3] == [json.loads(d) for d in table["survey_distribution_json"].head(3)]


def test_never_asked_questions_are_excluded(chinese_survey):
    never = set(chinese_survey.filter(pl.col("never_asked"))["question_id"])
    assert len(never) >= 10  # China was not asked 18 of the questions
    table = build(TrainingSetSpec(), seed_survey=chinese_survey)
    assert not never & set(table["question_id"])
    assert table.height == 4 * (50 - len(never))


def test_the_main_training_set_trains_every_answered_seed_question_with_no_validation_split():
    german = survey("german")
    table = build(TrainingSetSpec(), seed_survey=german)
    answered = set(german.filter(~pl.col("never_asked"))["question_id"])
    assert set(table["split"]) == {"train"}
    assert set(table.filter(pl.col("step") == "seed")["question_id"]) == answered and len(answered) == 50


def test_heldout_single_seed_questions_are_the_same_for_every_culture_and_never_trained_on():
    heldout = heldout_questions([q.id for q in QUESTIONS], 5, seed=0)
    table = build(TrainingSetSpec(heldout_count=5), culture="german")
    held = table.filter(pl.col("split") == "heldout")
    assert sorted(held["question_id"]) == heldout and set(held["step"]) == {"seed"}
    assert not set(heldout) & set(table.filter(pl.col("split") != "heldout")["question_id"])
    arabic = build(TrainingSetSpec(heldout_count=5), culture="arabic")
    assert set(arabic.filter(pl.col("split") == "heldout")["question_id"]) <= set(heldout)


def test_a_validation_split_takes_whole_questions_and_shares_none_with_training():
    table = build(TrainingSetSpec(validation_fraction=0.2), culture="german")
    validation, train = (table.filter(pl.col("split") == split) for split in ("validation", "train"))
    assert validation["question_id"].n_unique() == 10 and set(validation["step"]) == {"seed", "paraphrase", "synonym"}
    assert not set(validation["question_id"]) & set(train["question_id"])
    # every row of a validation question (seed and variants) is in validation, and the same questions for every culture
    assert validation.height == 4 * 10
    arabic = build(TrainingSetSpec(validation_fraction=0.2), culture="arabic")
    assert set(arabic.filter(pl.col("split") == "validation")["question_id"]) <= set(validation["question_id"])


def test_size_counts_generated_samples_on_top_of_every_seed_round_robin():
    table = build(TrainingSetSpec(size=60, heldout_count=0, validation_fraction=0.0), culture="german")
    assert table.filter(pl.col("step") == "seed").height == 50 and table.height == 50 + 60
    assert table.filter(pl.col("step") != "seed")["question_id"].n_unique() == 50
    small = build(TrainingSetSpec(size=20, heldout_count=0), culture="german")
    assert small.filter(pl.col("step") == "seed").height == 50 and small.filter(pl.col("step") != "seed").height == 20


def test_asking_for_more_samples_than_exist_is_a_clear_error():
    with pytest.raises(UnfillableSize, match=r"german: asked for 1000 samples \(generated, on top of the \d+ answered seeds\) but only \d+ exist") as error:
        build(TrainingSetSpec(size=1000), culture="german")
    assert error.value.requested == 1000 and 0 < error.value.available < 1000


def many_variants(per_question: int) -> pl.DataFrame:
    """What an augmentation that produced `per_question` accepted variants of every seed hands on."""
    seeds = augmented_questions(paraphrases=0, synonyms=0)
    rows = [
        {"sample_id": f"{q}-{step}-{i}", "question_id": q, "text": f"Variant {i} ({step}): {text}", "step": step,
         "parent_id": sid, "similarity": 0.9, "model": "fake", "prompt_hash": "p"}
        for sid, q, text in seeds.select("sample_id", "question_id", "text").iter_rows()
        for i in range(per_question) for step in (("paraphrase",) if i % 2 else ("synonym",))
    ]
    return pl.concat([seeds, pl.DataFrame(rows, schema=seeds.schema)])


def test_every_ablation_size_builds_for_every_culture_or_reports_what_it_could_reach():
    augmented = many_variants(per_question=25)
    for culture in load_registry().keys:
        answers = survey(culture)
        answered_trainable = answers.filter(~pl.col("never_asked")).height
        steps = set()
        for size in ABLATION_SIZES:
            spec = ablation_spec(f"size_{size}", TrainingSetSpec(validation_fraction=0.0))
            if size > 25 * answered_trainable:
                with pytest.raises(UnfillableSize, match=f"{culture}: asked for {size} samples"):
                    build_training_set(augmented, answers, QUESTIONS, load_registry().get(culture), spec)
                continue
            table = build_training_set(augmented, answers, QUESTIONS, load_registry().get(culture), spec)
            trained = table.filter(pl.col("split") != "heldout")
            assert trained.filter(pl.col("step") != "seed").height == size
            assert trained.filter(pl.col("step") == "seed").height == answered_trainable
            steps.add(fixed_optimizer_steps(answered_trainable, 8, 3.0))
        assert len(steps) == 1  # every size of a culture trains the same number of optimiser steps
    assert per_question_cap(50) * 50 >= max(ABLATION_SIZES)  # the filter keeps enough per trained question when all are answered


def test_step_arms_are_size_matched():
    augmented = many_variants(per_question=6)
    paraphrase_only = build_training_set(augmented, survey("german"), QUESTIONS, load_registry().get("german"), ablation_spec("plus_paraphrase", TrainingSetSpec()))
    both_steps = build_training_set(augmented, survey("german"), QUESTIONS, load_registry().get("german"), ablation_spec("plus_synonym", TrainingSetSpec()))
    generated = [t.filter((pl.col("split") != "heldout") & (pl.col("step") != "seed")) for t in (paraphrase_only, both_steps)]
    assert generated[0].height == generated[1].height > 0
    assert set(generated[0]["step"]) == {"paraphrase"} and set(generated[1]["step"]) == {"paraphrase", "synonym"}


def test_step_filter_and_ablation_variants():
    seed_only = build(ablation_spec("seed_only", TrainingSetSpec()), culture="german")
    assert set(seed_only["step"]) == {"seed"}
    plus_one = build(ablation_spec("plus_paraphrase", TrainingSetSpec()), culture="german")
    assert set(plus_one["step"]) == {"seed", "paraphrase"}
    with pytest.raises(InputError, match="native-language questions need translations"):
        build(ablation_spec("prompt_native", TrainingSetSpec()), culture="german")
    assert set(ABLATIONS) >= {"size_50", "size_150", "size_500", "size_1000", "seed_only", "plus_synonym", "prompt_english"}


def test_soft_targets_follow_the_distribution():
    german = survey("german")
    table = build(TrainingSetSpec(targets=Targets.DISTRIBUTION, heldout_count=0, validation_fraction=0.0), seed_survey=german)
    assert set(table["target"]) == {"sampled"}
    by_question = dict(german.select("question_id", "codes").iter_rows())
    assert all(int(a) in by_question[q] for q, a in table.select("question_id", "answer").iter_rows())
    modal = build(TrainingSetSpec(heldout_count=0, validation_fraction=0.0), seed_survey=german)
    assert (table.sort("sample_id")["answer"] != modal.sort("sample_id")["answer"]).sum() > 0
    again = build(TrainingSetSpec(targets=Targets.DISTRIBUTION, heldout_count=0, validation_fraction=0.0), seed_survey=german)
    assert training_set_version(again) == training_set_version(table)


def test_bad_augmented_rows_name_row_and_field():
    bad = augmented_questions().with_columns(pl.when(pl.int_range(pl.len()) == 3).then(pl.lit("Q999")).otherwise(pl.col("question_id")).alias("question_id"))
    with pytest.raises(InputError, match=r"row 4.*field 'question_id'.*Q999"):
        build_training_set(bad, survey("german"), QUESTIONS, load_registry().get("german"), TrainingSetSpec())
    with pytest.raises(ValueError, match="steps must include 'seed'"):
        TrainingSetSpec(steps=("paraphrase",))


def test_native_prompt_option_uses_registry_text():
    spec = TrainingSetSpec(prompt_language=PromptLanguage.NATIVE, heldout_count=0)
    table = build(spec, culture="korean")
    assert json.loads(table["messages_json"][0])[0]["content"] == load_registry().get("korean").system_prompt.native


def test_a_held_out_topic_never_appears_in_training_and_alignment_prompts_match_training():
    from culture_assets.evaluation.alignment import question_task
    from culture_assets.training.training_set import HeldoutTopicSpec, build_fold_training_sets, topics

    folds = topics(QUESTIONS)
    assert len(folds) == 7
    # the config a user gives (a validation fraction) does not take questions out of a fold model's training
    spec = HeldoutTopicSpec(validation_fraction=0.2)  # what the asset's config gives: the main spec and the folds
    table = build_fold_training_sets(augmented_questions(), survey("german"), QUESTIONS, load_registry().get("german"), spec, spec.folds)
    assert table["fold"].unique(maintain_order=True).to_list() == folds
    for topic in folds:
        fold = table.filter(pl.col("fold") == topic)
        in_topic = {q.id for q in QUESTIONS if q.topic == topic}
        trained = fold.filter(pl.col("split") != "heldout")
        assert not in_topic & set(trained["question_id"])  # no seed, paraphrase or synonym row of the topic
        assert set(trained["split"]) == {"train"} and trained["question_id"].n_unique() == 50 - len(in_topic)
        held = fold.filter(pl.col("split") == "heldout")
        assert set(held["question_id"]) == in_topic and set(held["step"]) == {"seed"}
    with pytest.raises(InputError, match="no question has topic 'Sports'"):
        build(TrainingSetSpec(heldout_topic="Sports"), culture="german")
    with pytest.raises(InputError, match=r"unknown topic\(s\) \['Sports'\]"):
        build_fold_training_sets(augmented_questions(), survey("german"), QUESTIONS, load_registry().get("german"), TrainingSetSpec(), ["Sports"])
    # the alignment prompt of a seed question is the training prompt of its seed row
    seed_row = build(TrainingSetSpec(), culture="german").filter(pl.col("step") == "seed").row(0, named=True)
    question = next(q for q in QUESTIONS if q.id == seed_row["question_id"])
    trained_messages = json.loads(seed_row["messages_json"])
    assert question_task(question, trained_messages[0]["content"]).prompts[0] == trained_messages[:2]
