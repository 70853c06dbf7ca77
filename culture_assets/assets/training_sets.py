"""Training stage: each culture's chat-format training set, and the ablation variants of it."""

import dagster as dg
import polars as pl

from culture_assets.cultures import load_registry
from culture_assets.markdown import markdown_table
from culture_assets.partitions import ABLATION_PARTITIONS, CULTURES
from culture_assets.profiles import profile_default
from culture_assets.survey.questions import questions_from_table
from culture_assets.assets.augmentation import run_llm_step
from culture_assets.resources import WarehouseResource, library_settings
from culture_assets.resources.augment import EmbedderResource
from culture_assets.resources.llm import LLMResource
from culture_assets.training.translation import translate_questions
from culture_assets.training.ablations import ABLATIONS, ablation_spec
from culture_assets.training.training_set import (
    PromptLanguage,
    Targets,
    HeldoutTopicSpec,
    TrainingSetSpec,
    UnfillableSize,
    build_fold_training_sets,
    build_training_set,
    heldout_question_ids,
    prompt_texts,
    training_set_version,
    training_summary,
)

GROUP = "training"


_SPEC = TrainingSetSpec.model_fields


class TrainingSetConfig(dg.Config):
    """The library's TrainingSetSpec (culture_assets.training.training_set) as asset config."""

    size: int | None = _SPEC["size"]
    steps: list[str] = _SPEC["steps"]
    heldout_count: int = _SPEC["heldout_count"]
    validation_fraction: float = _SPEC["validation_fraction"]
    targets: Targets = _SPEC["targets"]
    prompt_language: PromptLanguage = _SPEC["prompt_language"]
    seed: int = _SPEC["seed"]

    def spec(self) -> TrainingSetSpec:
        return library_settings(self, TrainingSetSpec)


def _translations(
    context: dg.AssetExecutionContext, spec: TrainingSetSpec, culture_key: str, augmented: pl.DataFrame, seed_survey: pl.DataFrame,
    wvs_questions: pl.DataFrame, llm: LLMResource, embedder: EmbedderResource, warehouse: WarehouseResource,
) -> tuple[dict[str, str], dict]:
    """The native arm's prompt texts in the culture's language (the questions the English set uses, their options,
    the instruction), and figures about them."""
    culture = load_registry().get(culture_key)
    questions = questions_from_table(wvs_questions)
    english = build_training_set(augmented, seed_survey, questions, culture, spec.model_copy(update={"question_language": PromptLanguage.ENGLISH}))
    texts = augmented.join(english.select("sample_id"), on="sample_id", how="semi")["text"].to_list()
    used = set(english["question_id"])
    texts += [t for q in questions if q.id in used for t in prompt_texts(q)]
    runner = llm.runner(warehouse.get(), log=context.log.info)
    translated = translate_questions(texts, culture.language_name, runner, embedder.get())
    similarities = [t.similarity for t in translated.values() if t.similarity is not None]
    failed = {t.text: t.reason for t in translated.values() if t.translation is None}
    if failed:
        context.log.warning(f"{culture_key}: {len(failed)} prompt texts have no usable translation; their rows are left out of the native arm")
    worst = sorted((t for t in translated.values() if t.similarity is not None), key=lambda t: t.similarity)[:10]
    figures = {
        "translation_model": llm.model_name,
        "translated_texts": len(translated) - len(failed),
        "untranslated_texts": len(failed),
        "back_translation_similarity_mean": float(sum(similarities) / len(similarities)) if similarities else float("nan"),
        "back_translation_similarity_min": float(min(similarities)) if similarities else float("nan"),
        "lowest_back_translations": dg.MetadataValue.md(markdown_table(pl.DataFrame(
            {"text": [t.text for t in worst], "translation": [t.translation for t in worst], "back_translation": [t.back_translation for t in worst], "similarity": [t.similarity for t in worst]},
            schema={"text": pl.String, "translation": pl.String, "back_translation": pl.String, "similarity": pl.Float64},
        ))),
    }
    return {t.text: t.translation for t in translated.values() if t.translation is not None}, figures


def _materialize(
    context: dg.AssetExecutionContext, culture_key: str, spec: TrainingSetSpec, augmented: pl.DataFrame,
    seed_survey: pl.DataFrame, wvs_questions: pl.DataFrame, translations: dict[str, str] | None = None, extra: dict | None = None,
) -> dg.Output:
    culture = load_registry().get(culture_key)
    try:
        table = build_training_set(augmented, seed_survey, questions_from_table(wvs_questions), culture, spec, translations)
    except UnfillableSize as unfillable:
        # this culture's partition fails with what it could reach; the other cultures' sets are not affected
        raise dg.Failure(
            description=str(unfillable),
            metadata={"culture": culture_key, "requested_size": unfillable.requested, "achievable_size": unfillable.available},
            allow_retries=False,
        ) from None
    never_asked = seed_survey.filter(pl.col("never_asked"))["question_id"].to_list()
    counts = {split: table.filter(pl.col("split") == split).height for split in ("train", "validation", "heldout")}
    context.log.info(f"{culture.display_name}: {counts}, never asked (excluded): {never_asked}")
    return dg.Output(
        table,
        metadata={
            "culture": culture.display_name,
            "training_set_version": training_set_version(table)[:12],
            **{f"n_{split}": n for split, n in counts.items()},
            "generated_samples": table.filter((pl.col("split") != "heldout") & (pl.col("step") != "seed")).height,
            "requested_size": spec.size if spec.size is not None else "all",
            "never_asked_excluded": dg.MetadataValue.json(never_asked),
            "heldout_question_ids": dg.MetadataValue.json(heldout_question_ids(table)),
            "spec": dg.MetadataValue.json(spec.model_dump(mode="json")),
            "by_split_and_step": dg.MetadataValue.md(markdown_table(training_summary(table))),
            "example": dg.MetadataValue.json(table.filter(pl.col("split") == "train")["messages_json"].head(1).to_list()),
            **(extra or {}),
        },
    )


@dg.asset(
    group_name=GROUP,
    kinds={"python", "parquet"},
    partitions_def=CULTURES,
    description="Accepted question variants paired with the culture's modal survey answer, as chat samples split train/validation/heldout.",
)
def training_set(
    context: dg.AssetExecutionContext,
    config: TrainingSetConfig,
    augmented_questions: pl.DataFrame,
    seed_survey: pl.DataFrame,
    wvs_questions: pl.DataFrame,
) -> dg.Output:
    return _materialize(context, context.partition_key, config.spec(), augmented_questions, seed_survey, wvs_questions)


@dg.asset(
    group_name=GROUP,
    kinds={"python", "parquet"},
    partitions_def=ABLATION_PARTITIONS,
    ins={
        "augmented_questions": dg.AssetIn(),
        "wvs_questions": dg.AssetIn(),
        "seed_survey": dg.AssetIn(partition_mapping=dg.MultiToSingleDimensionPartitionMapping(partition_dimension_name="culture")),
    },
    description="A culture's training set under one of the paper's ablations (size, augmentation steps, question language).",
)
def ablation_training_set(
    context: dg.AssetExecutionContext,
    config: TrainingSetConfig,
    augmented_questions: pl.DataFrame,
    seed_survey: pl.DataFrame,
    wvs_questions: pl.DataFrame,
    llm: LLMResource,
    embedder: EmbedderResource,
    warehouse: WarehouseResource,
) -> dg.Output:
    keys = ABLATION_PARTITIONS.get_partition_key_from_str(context.partition_key).keys_by_dimension
    spec = ablation_spec(keys["variant"], config.spec())
    translations, figures = None, None
    if spec.question_language is PromptLanguage.NATIVE:
        translations, figures = run_llm_step(
            lambda: _translations(context, spec, keys["culture"], augmented_questions, seed_survey, wvs_questions, llm, embedder, warehouse)
        )
    return _materialize(context, keys["culture"], spec, augmented_questions, seed_survey, wvs_questions, translations, figures)


class HeldoutTopicTrainingSetConfig(TrainingSetConfig):
    """The library's HeldoutTopicSpec (culture_assets.training.training_set) as asset config."""

    folds: list[str] = profile_default("HeldoutTopicTrainingSetConfig", "folds", HeldoutTopicSpec.model_fields["folds"])

    def spec(self) -> HeldoutTopicSpec:
        return library_settings(self, HeldoutTopicSpec)


@dg.asset(
    group_name=GROUP,
    kinds={"python", "parquet"},
    partitions_def=CULTURES,
    description="One training set per held-out WVS topic (column `fold`): no row of that topic is trained on; its seed questions "
    "are the `heldout` split, on which the WVS alignment measures generalisation.",
)
def heldout_topic_training_set(
    context: dg.AssetExecutionContext,
    config: HeldoutTopicTrainingSetConfig,
    augmented_questions: pl.DataFrame,
    seed_survey: pl.DataFrame,
    wvs_questions: pl.DataFrame,
) -> dg.Output:
    culture = load_registry().get(context.partition_key)
    spec = config.spec()
    table = build_fold_training_sets(augmented_questions, seed_survey, questions_from_table(wvs_questions), culture, spec, spec.folds)
    summary = table.group_by("fold", "split").len().pivot(on="split", index="fold", values="len").fill_null(0).sort("fold")
    context.log.info(f"{culture.display_name}: {summary.height} folds")
    return dg.Output(
        table,
        metadata={
            "culture": culture.display_name,
            "folds": dg.MetadataValue.json(summary["fold"].to_list()),
            "rows_by_fold_and_split": dg.MetadataValue.md(markdown_table(summary)),
            "training_set_version": training_set_version(table)[:12],
        },
    )
