"""The size ablation built from a real augmentation: the augmentation assets (generation and filter) run
against the fake OpenAI server for all 50 seed questions, then every culture's size_50/150/500/1000 sets.

Slow (minutes on 2 cores, most of it MiniLM encoding a few thousand sentences): run with --run-slow.
"""

from __future__ import annotations

from pathlib import Path

import dagster as dg
import polars as pl
import pytest

from culture_assets.assets import survey
from culture_assets.assets.augmentation import augmented_questions, paraphrases_and_templates, synonym_variants
from culture_assets.assets.training_sets import ablation_training_set
from culture_assets.cultures import load_registry
from culture_assets.io_manager import ArtifactIOManager
from culture_assets.resources import SurveySourceResource, WarehouseResource
from culture_assets.resources.augment import EmbedderResource
from culture_assets.resources.llm import LLMResource
from culture_assets.survey.questions import load_questions
from culture_assets.training.ablations import ABLATION_SIZES, ablation_spec, fixed_optimizer_steps, per_question_cap
from culture_assets.training.training_set import TrainingSetSpec, UnfillableSize, build_training_set, heldout_ids
from culture_assets_tests.fake_augmentation_llm import augmentation_chat_reply
from culture_assets_tests.fake_openai import FakeOpenAI

QUESTIONS = load_questions()
ASSETS = [survey.wvs_questions, survey.wvs_wave, survey.seed_survey, paraphrases_and_templates, synonym_variants, augmented_questions,
          ablation_training_set]
# enough paraphrases per request that the fake's rewordings with a closing sentence (its 25th on) come too, so
# every question can fill the default per-question cap; the meaning check (NLI, judge) has its own tests
# (test_meaning_check, test_augmentation): here the cosine threshold, the form check, the cross-question guard,
# de-duplication and the MMR selection under the default cap decide what is kept
AUGMENTATION_CONFIG = {"ops": {
    "paraphrases_and_templates": {"config": {"n_paraphrases": 50, "target_accepted": 40, "max_attempts": 2, "n_templates": 2}},
    "synonym_variants": {"config": {"fillings_per_template": 2}},
    "augmented_questions": {"config": {"nli_model": "", "llm_judge": "off"}},
}}
SAMPLES_PER_STEP, EPOCHS = 8, 3.0  # the trainer's defaults (batch 8, no accumulation, 3 epochs)


def resources(home: Path, server: FakeOpenAI) -> dict:
    return {
        "io_manager": ArtifactIOManager(data_home=str(home)),
        "warehouse": WarehouseResource(data_home=str(home)),
        "survey_source": SurveySourceResource(),
        "llm": LLMResource(model="fake-model", api_key="sk-test", base_url=server.base_url, backoff_base_s=0.01),
        "embedder": EmbedderResource(),
    }


def materialize(selection: list, home: Path, server: FakeOpenAI, instance: dg.DagsterInstance, partition: str | dg.MultiPartitionKey | None = None,
                run_config: dict | None = None) -> dg.ExecuteInProcessResult:
    return dg.materialize(ASSETS, selection=selection, partition_key=partition, resources=resources(home, server), instance=instance,
                          run_config=run_config, raise_on_error=False)


@pytest.mark.slow
def test_size_ablation_sets_build_for_every_culture_from_a_fake_server_augmentation(fake_openai: FakeOpenAI, data_home: Path) -> None:
    fake_openai.chat_reply = lambda body: augmentation_chat_reply(body, judge_faults=False)
    instance = dg.DagsterInstance.ephemeral()
    steps = [survey.wvs_questions, paraphrases_and_templates, synonym_variants, augmented_questions]
    assert materialize(steps, data_home, fake_openai, instance, run_config=AUGMENTATION_CONFIG).success
    augmented = pl.read_parquet(data_home / "assets" / "augmented_questions" / "all.parquet")
    per_question = augmented.filter(pl.col("step") != "seed").group_by("question_id").len()
    cap = per_question_cap(len(QUESTIONS))
    assert per_question["len"].max() == cap and per_question.height == len(QUESTIONS)

    heldout = heldout_ids(QUESTIONS, TrainingSetSpec())
    reached: dict[str, dict[int, int | str]] = {}
    answered_everything = []
    for culture in load_registry().cultures:
        assert materialize([survey.seed_survey], data_home, fake_openai, instance, culture.key).success
        answers = pl.read_parquet(data_home / "assets" / "seed_survey" / f"{culture.key}.parquet")
        trainable = set(answers.filter(~pl.col("never_asked"))["question_id"]) - heldout
        if len(trainable) == len(QUESTIONS) - len(heldout):
            answered_everything.append(culture.key)
        available = per_question.filter(pl.col("question_id").is_in(list(trainable)))["len"].sum()
        optimiser_steps = set()
        for size in ABLATION_SIZES:
            spec = ablation_spec(f"size_{size}", TrainingSetSpec())
            try:
                table = build_training_set(augmented, answers, QUESTIONS, culture, spec)
            except UnfillableSize as unfillable:
                assert size > available and unfillable.available == available, (culture.key, size, available)
                reached.setdefault(culture.key, {})[size] = f"unfillable: {available} of {size}"
                continue
            trained = table.filter(pl.col("split") != "heldout")
            assert trained.filter(pl.col("step") != "seed").height == size  # generated samples, on top of the seeds
            seeds = table.filter((pl.col("split") == "train") & (pl.col("step") == "seed"))
            assert set(seeds["question_id"]) == trainable  # every answered, not held-out seed is trained at every size
            optimiser_steps.add(fixed_optimizer_steps(seeds.height, SAMPLES_PER_STEP, EPOCHS))
            reached.setdefault(culture.key, {})[size] = size
        assert len(optimiser_steps) == 1, (culture.key, optimiser_steps)  # the same optimiser steps at every size
    print("size ablation per culture:", reached)
    fills_everything = [key for key, sizes in reached.items() if all(sizes[n] == n for n in ABLATION_SIZES)]
    assert set(answered_everything) <= set(fills_everything) and len(answered_everything) >= 6, (answered_everything, reached)
    assert str(reached["chinese"][1000]).startswith("unfillable")  # China answered 32 questions
    assert all(reached[key][n] == n for key in reached for n in (50, 150, 500))

    # through Dagster: the unfillable partition fails with what it reached, the next culture's same size still builds
    chinese = materialize([ablation_training_set], data_home, fake_openai, instance, dg.MultiPartitionKey({"culture": "chinese", "variant": "size_1000"}))
    assert not chinese.success
    reported = chinese.get_step_failure_events()[0].step_failure_data.user_failure_data.metadata
    assert reported["requested_size"].value == 1000 and reported["achievable_size"].value < 1000
    german = materialize([ablation_training_set], data_home, fake_openai, instance, dg.MultiPartitionKey({"culture": "german", "variant": "size_1000"}))
    assert german.success
    assert german.asset_materializations_for_node("ablation_training_set")[0].metadata["generated_samples"].value == 1000
