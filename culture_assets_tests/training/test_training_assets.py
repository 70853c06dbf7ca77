"""Training and model assets through Dagster: real IO manager, real DuckDB, the tiny model, the fake OpenAI server."""

from __future__ import annotations

import json
from pathlib import Path

import dagster as dg
import polars as pl
import pytest

from culture_assets.assets import survey
from culture_assets.assets.models import ablation_model, culture_model, culturellm_one, heldout_topic_model, openai_fine_tuning_sensor
from culture_assets.assets.training_sets import ablation_training_set, heldout_topic_training_set, training_set
from culture_assets.resources.augment import EmbedderResource
from culture_assets.resources.llm import LLMResource
from culture_assets.training.ablations import fixed_optimizer_steps
from culture_assets_tests.fake_augmentation_llm import augmentation_chat_reply
from culture_assets.cultures import load_registry
from culture_assets.survey.questions import load_questions
from culture_assets.io_manager import ArtifactIOManager
from culture_assets.resources import SurveySourceResource, WarehouseResource
from culture_assets.training.lora import MANIFEST, directory_hash, load_adapter_model
from culture_assets.resources.training import TrainerResource
from culture_assets_tests.fake_openai import install_fine_tuning_routes
from culture_assets_tests.training.samples import augmented_questions as sample_rows
from culture_assets.survey.questions import load_questions
from culture_assets.training.training_set import ANSWER_INSTRUCTION, OPTIONS_LABEL

QUESTIONS = {q.id: q for q in load_questions()}


@dg.asset(group_name="augmentation", description="Stand-in for the augmentation stage's output (hand-made variants).")
def augmented_questions() -> pl.DataFrame:
    return sample_rows()


ASSETS = [survey.wvs_questions, survey.wvs_wave, survey.seed_survey, augmented_questions, training_set, ablation_training_set,
          culture_model, culturellm_one, ablation_model, heldout_topic_training_set, heldout_topic_model]


def resources(data_home: Path, trainer: TrainerResource, llm: LLMResource | None = None) -> dict:
    return {
        "io_manager": ArtifactIOManager(data_home=str(data_home)),
        "warehouse": WarehouseResource(data_home=str(data_home)),
        "survey_source": SurveySourceResource(),
        "trainer": trainer,
        "llm": llm or LLMResource(),  # only the native-language arm calls it (to translate)
        "embedder": EmbedderResource(),
    }


def run(selection: list, data_home: Path, trainer: TrainerResource, instance: dg.DagsterInstance, partition: str | None = None,
        raise_on_error: bool = True, llm: LLMResource | None = None, run_config: dict | None = None) -> dg.ExecuteInProcessResult:
    return dg.materialize(ASSETS, selection=selection, partition_key=partition, resources=resources(data_home, trainer, llm),
                          instance=instance, raise_on_error=raise_on_error, run_config=run_config)


def tiny_trainer(tiny_model_dir: Path, data_home: Path) -> TrainerResource:
    return TrainerResource(base_model=str(tiny_model_dir), models_dir=str(data_home / "models"), max_steps=4, batch_size=8,
                           save_steps=2, learning_rate=1e-2)


def prepare_training_sets(data_home: Path, trainer: TrainerResource, instance: dg.DagsterInstance) -> None:
    run([survey.wvs_questions, augmented_questions], data_home, trainer, instance)
    for culture in load_registry().keys:
        run([survey.seed_survey, training_set], data_home, trainer, instance, culture)


def test_training_sets_culture_models_and_culturellm_one(tiny_model_dir, data_home):
    instance = dg.DagsterInstance.ephemeral()
    trainer = tiny_trainer(tiny_model_dir, data_home)
    prepare_training_sets(data_home, trainer, instance)
    chinese_set = pl.read_parquet(data_home / "assets" / "training_set" / "chinese.parquet")
    assert {"sample_id", "question_id", "step", "split", "messages_json", "answer", "culture"} <= set(chinese_set.columns)

    records = {}
    for culture in ("german", "chinese"):
        result = run([culture_model], data_home, trainer, instance, culture)
        records[culture] = result.output_for_node("culture_model").model_dump(mode="json")
    german = records["german"]
    assert german["model_key"] == "german-default" and german["trainer"] == "local" and german["model_id"] is None
    assert german["base_model"] == str(tiny_model_dir.resolve())
    assert german["system_prompt"] == load_registry().get("german").system_prompt.english
    assert german["artifact_hash"] == directory_hash(Path(german["adapter_path"]))
    assert german["n_train"] > 100 and "heldout_question_ids" not in german  # wvs_alignment reads them from training_set
    assert json.loads((data_home / "assets" / "culture_model" / "german.json").read_text())["adapter_path"] == german["adapter_path"]
    assert records["chinese"]["adapter_path"] != german["adapter_path"]
    model, _ = load_adapter_model(german["adapter_path"])
    assert json.loads((Path(german["adapter_path"]) / MANIFEST).read_text())["global_step"] == 4

    one = run([culturellm_one], data_home, trainer, instance).output_for_node("culturellm_one").model_dump(mode="json")
    assert one["culture"] == "all" and one["model_key"] == "all-default" and set(one["system_prompts"]) == set(load_registry().keys)
    assert one["n_train"] > 8 * german["n_train"]

    warehouse = WarehouseResource(data_home=str(data_home)).get()
    lineage = warehouse.query("SELECT * FROM model_registry ORDER BY model_key")
    assert lineage["model_key"].to_list() == ["all-default", "chinese-default", "german-default"]
    row = lineage.filter(pl.col("model_key") == "german-default").row(0, named=True)
    german_set = pl.read_parquet(data_home / "assets" / "training_set" / "german.parquet")
    trained_ids = set(german_set.filter(pl.col("split") != "heldout")["sample_id"])
    assert set(json.loads(row["sample_ids_json"])) == trained_ids <= set(sample_rows()["sample_id"])
    assert row["training_set_version"] == german["training_set_version"] and row["artifact"] == german["adapter_path"]
    assert json.loads(row["hyperparameters_json"])["lora_config"]["r"] == 8

    # a second materialization with the same inputs reuses the adapter instead of training again
    again = run([culture_model], data_home, trainer, instance, "german").output_for_node("culture_model").model_dump(mode="json")
    assert again["adapter_path"] == german["adapter_path"] and again["artifact_hash"] == german["artifact_hash"]

    # the trainer's soft-label loss: targets are the training set's survey distributions, a different adapter
    soft_trainer = TrainerResource(**{**trainer.model_dump(), "target_loss": "survey_distribution"})
    soft = run([culture_model], data_home, soft_trainer, instance, "german").output_for_node("culture_model").model_dump(mode="json")
    assert soft["adapter_path"] != german["adapter_path"]
    assert json.loads((Path(soft["adapter_path"]) / MANIFEST).read_text())["hyperparameters"]["target_loss"] == "survey_distribution"


def test_ablation_models_are_materialized_per_culture_and_variant(tiny_model_dir, data_home, fake_openai):
    fake_openai.chat_reply = augmentation_chat_reply
    llm = LLMResource(model="fake-model", api_key="sk-test", base_url=fake_openai.base_url, backoff_base_s=0.01)
    instance = dg.DagsterInstance.ephemeral()
    trainer = tiny_trainer(tiny_model_dir, data_home)
    run([survey.wvs_questions, augmented_questions], data_home, trainer, instance)
    run([survey.seed_survey], data_home, trainer, instance, "korean")
    records, sets, metadata = {}, {}, {}
    for variant in ("seed_only", "prompt_english", "prompt_native"):
        key = dg.MultiPartitionKey({"culture": "korean", "variant": variant})
        result = run([ablation_training_set, ablation_model], data_home, trainer, instance, key, llm=llm)
        records[variant] = result.output_for_node("ablation_model").model_dump(mode="json")
        sets[variant] = result.output_for_node("ablation_training_set")
        metadata[variant] = result.asset_materializations_for_node("ablation_training_set")[0].metadata
    assert records["seed_only"]["model_key"] == "korean-seed_only" and records["seed_only"]["variant"] == "seed_only"
    assert records["seed_only"]["n_train"] < records["prompt_native"]["n_train"]
    # the native arm: the questions translated by the generator, the system prompt the English arm's
    english_prompt = load_registry().get("korean").system_prompt.english
    assert records["prompt_native"]["system_prompt"] == records["prompt_english"]["system_prompt"] == english_prompt
    questions = {arm: [json.loads(m)[1]["content"] for m in sets[arm]["messages_json"]] for arm in ("prompt_english", "prompt_native")}
    assert all(q.startswith("[Korean] ") for q in questions["prompt_native"]) and len(questions["prompt_native"]) == len(questions["prompt_english"])
    assert not any("[Korean]" in q for q in questions["prompt_english"])
    # the options and the instruction are translated too, the option numbers kept; the answers are the English arm's
    native_rows = sets["prompt_native"].sort("sample_id").iter_rows(named=True)
    for native, english in zip(native_rows, sets["prompt_english"].sort("sample_id").iter_rows(named=True)):
        question = QUESTIONS[native["question_id"]]
        user = json.loads(native["messages_json"])[1]["content"]
        options = " ".join(f"{code}. [Korean] {label}" for code, label in sorted(question.options.items()))
        assert user.endswith(f"\n[Korean] {OPTIONS_LABEL}: {options}\n[Korean] {ANSWER_INSTRUCTION}"), user
        assert native["answer"] == english["answer"] and native["sample_id"] == english["sample_id"]
    assert all(f"\n{OPTIONS_LABEL}: " in q and q.endswith(ANSWER_INSTRUCTION) for q in questions["prompt_english"])
    assert metadata["prompt_native"]["untranslated_texts"].value == 0
    assert metadata["prompt_native"]["back_translation_similarity_min"].value > 0.99  # the fake's back-translation restores the text
    sent = fake_openai.count(r"/chat/completions")
    assert sent > 0
    run([ablation_training_set], data_home, trainer, instance, dg.MultiPartitionKey({"culture": "korean", "variant": "prompt_native"}), llm=llm)
    assert fake_openai.count(r"/chat/completions") == sent  # translations come from the cache
    assert records["seed_only"]["adapter_path"] != records["prompt_native"]["adapter_path"]
    failed = run([ablation_training_set], data_home, trainer, instance, dg.MultiPartitionKey({"culture": "korean", "variant": "size_1000"}),
                 raise_on_error=False)
    assert not failed.success
    assert "asked for 1000 samples" in str(failed.get_step_failure_events()[0].event_specific_data.error)
    reported = failed.get_step_failure_events()[0].step_failure_data.user_failure_data.metadata
    assert reported["requested_size"].value == 1000 and 0 < reported["achievable_size"].value < 1000

    # size arms train the same optimiser steps whatever their size; the _epochs arm trains epochs instead
    by_epochs = TrainerResource(**{**trainer.model_dump(), "max_steps": -1, "epochs": 0.05})
    steps = {}
    for variant in ("size_50", "size_50_epochs"):
        key = dg.MultiPartitionKey({"culture": "korean", "variant": variant})
        record = run([ablation_training_set, ablation_model], data_home, by_epochs, instance, key).output_for_node("ablation_model").model_dump(mode="json")
        steps[variant] = json.loads((Path(record["adapter_path"]) / MANIFEST).read_text())["global_step"]
    table = pl.read_parquet(next((data_home / "assets" / "ablation_training_set").glob("korean*size_50.parquet")))
    seeds = table.filter((pl.col("split") == "train") & (pl.col("step") == "seed")).height
    assert steps["size_50"] == fixed_optimizer_steps(seeds, 8, 0.05) > steps["size_50_epochs"]


def test_openai_trainer_through_dagster_waits_for_the_job_without_paying_twice(data_home, fake_openai):
    fine_tuning = install_fine_tuning_routes(fake_openai)
    instance = dg.DagsterInstance.ephemeral()
    trainer = TrainerResource(kind="openai", base_model="gpt-4o-mini-2024-07-18", api_key="test", base_url=fake_openai.base_url)
    run([survey.wvs_questions, augmented_questions], data_home, trainer, instance)
    run([survey.seed_survey, training_set], data_home, trainer, instance, "turkish")

    pending = run([culture_model], data_home, trainer, instance, "turkish", raise_on_error=False)
    assert not pending.success
    failure = pending.get_step_failure_events()[0].event_specific_data.error
    (job_id,) = fine_tuning.jobs
    assert f"fine-tuning job {job_id} is queued" in str(failure)

    sensor_resources = {"trainer": trainer, "warehouse": WarehouseResource(data_home=str(data_home))}
    with dg.build_sensor_context(instance=instance, resources=sensor_resources) as context:
        assert list(openai_fine_tuning_sensor(context)) == []
    model_id = fine_tuning.succeed(job_id)
    with dg.build_sensor_context(instance=instance, resources=sensor_resources) as context:
        (request,) = list(openai_fine_tuning_sensor(context))
    assert request.partition_key == "turkish" and request.asset_selection == [dg.AssetKey("culture_model")]

    record = run([culture_model], data_home, trainer, instance, "turkish").output_for_node("culture_model").model_dump(mode="json")
    assert record["trainer"] == "openai" and record["model_id"] == model_id and record["adapter_path"] is None
    assert sum(1 for r in fake_openai.requests if r.method == "POST" and r.path == "/v1/fine_tuning/jobs") == 1
    lineage = WarehouseResource(data_home=str(data_home)).get().query("SELECT artifact, trainer FROM model_registry")
    assert lineage.row(0) == (model_id, "openai")


# slow (two tiny trainings, ~30 s): the demo end-to-end test runs these assets in the default run; the library test
# (test_training_set.py) checks that no row of a held-out topic is trained on
@pytest.mark.slow
def test_heldout_topic_models_never_train_on_their_topic_and_validate_on_it(tiny_model_dir, data_home):
    instance = dg.DagsterInstance.ephemeral()
    trainer = tiny_trainer(tiny_model_dir, data_home)
    run([survey.wvs_questions, augmented_questions], data_home, trainer, instance)
    folds = ["Religious Values", "Ethical Values And Norms"]
    config = {"ops": {"heldout_topic_training_set": {"config": {"folds": folds}}}}
    result = run([survey.seed_survey, heldout_topic_training_set, heldout_topic_model], data_home, trainer, instance, "german", run_config=config)
    table = result.asset_value("heldout_topic_training_set")
    topic_of = {q.id: q.topic for q in load_questions()}
    for fold in folds:
        rows = table.filter(pl.col("fold") == fold)
        trained = rows.filter(pl.col("split") != "heldout")
        assert not {topic_of[q] for q in trained["question_id"]} & {fold} and set(trained["step"]) == {"seed", "paraphrase", "synonym"}
        assert {topic_of[q] for q in rows.filter(pl.col("split") == "heldout")["question_id"]} == {fold}
    record = result.asset_value("heldout_topic_model")
    assert list(record["folds"]) == folds
    ethics = record["folds"]["Ethical Values And Norms"]
    assert ethics["model_key"] == "german-heldout_ethical_values_and_norms" and ethics["n_train"] == table.filter(
        (pl.col("fold") == "Ethical Values And Norms") & (pl.col("split") == "train")).height
    manifest = json.loads((Path(ethics["adapter_path"]) / MANIFEST).read_text())
    assert manifest["n_validation"] == 3  # the held-out topic's three seed questions are the validation set
    lineage = WarehouseResource(data_home=str(data_home)).get().query("SELECT model_key, sample_ids_json FROM model_registry ORDER BY model_key")
    assert lineage["model_key"].to_list() == ["german-heldout_ethical_values_and_norms", "german-heldout_religious_values"]
