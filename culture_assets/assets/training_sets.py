"""Training stage: each culture's chat-format training set, and the ablation variants of it."""

import dagster as dg
import polars as pl

from culture_assets.cultures import culture_partitions, load_registry
from culture_assets.markdown import markdown_table
from culture_assets.resources import SurveySourceResource
from culture_assets.training.ablations import ABLATIONS, ablation_spec
from culture_assets.training.training_set import (
    STEPS,
    PromptLanguage,
    Targets,
    TrainingSetSpec,
    UnfillableSize,
    build_training_set,
    training_set_version,
    training_summary,
)

GROUP = "training"
CULTURES = culture_partitions()
ABLATION_PARTITIONS = dg.MultiPartitionsDefinition(
    {"culture": CULTURES, "variant": dg.StaticPartitionsDefinition(list(ABLATIONS))}
)


class TrainingSetConfig(dg.Config):
    size: int | None = None
    steps: list[str] = list(STEPS)
    heldout_count: int = 5
    validation_fraction: float = 0.1
    targets: Targets = Targets.MODE
    prompt_language: PromptLanguage = PromptLanguage.ENGLISH
    seed: int = 0

    def spec(self) -> TrainingSetSpec:
        return TrainingSetSpec(
            size=self.size, steps=tuple(self.steps), heldout_count=self.heldout_count,
            validation_fraction=self.validation_fraction, targets=self.targets,
            prompt_language=self.prompt_language, seed=self.seed,
        )


def _materialize(
    context: dg.AssetExecutionContext, culture_key: str, spec: TrainingSetSpec, augmented: pl.DataFrame,
    seed_survey: pl.DataFrame, survey_source: SurveySourceResource,
) -> dg.Output:
    culture = load_registry().get(culture_key)
    try:
        table = build_training_set(augmented, seed_survey, survey_source.questions(), culture, spec)
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
            "heldout_question_ids": dg.MetadataValue.json(sorted(table.filter(pl.col("split") == "heldout")["question_id"].unique().to_list())),
            "spec": dg.MetadataValue.json(spec.model_dump(mode="json")),
            "by_split_and_step": dg.MetadataValue.md(markdown_table(training_summary(table))),
            "example": dg.MetadataValue.json(table.filter(pl.col("split") == "train")["messages_json"].head(1).to_list()),
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
    survey_source: SurveySourceResource,
) -> dg.Output:
    return _materialize(context, context.partition_key, config.spec(), augmented_questions, seed_survey, survey_source)


@dg.asset(
    group_name=GROUP,
    kinds={"python", "parquet"},
    partitions_def=ABLATION_PARTITIONS,
    ins={
        "augmented_questions": dg.AssetIn(),
        "seed_survey": dg.AssetIn(partition_mapping=dg.MultiToSingleDimensionPartitionMapping(partition_dimension_name="culture")),
    },
    description="A culture's training set under one of the paper's ablations (size, augmentation steps, prompt language).",
)
def ablation_training_set(
    context: dg.AssetExecutionContext,
    config: TrainingSetConfig,
    augmented_questions: pl.DataFrame,
    seed_survey: pl.DataFrame,
    survey_source: SurveySourceResource,
) -> dg.Output:
    keys = ABLATION_PARTITIONS.get_partition_key_from_str(context.partition_key).keys_by_dimension
    spec = ablation_spec(keys["variant"], config.spec())
    return _materialize(context, keys["culture"], spec, augmented_questions, seed_survey, survey_source)
