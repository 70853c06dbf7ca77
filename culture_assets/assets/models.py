"""Models stage: one fine-tuned model per culture, CultureLLM-One on all cultures, and the ablation models."""

import json

import dagster as dg
import polars as pl

from culture_assets.assets.evaluation import TRAINING_FIT_CHECK, training_fit_check
from culture_assets.cultures import load_registry
from culture_assets.partitions import ABLATION_PARTITIONS, CULTURES
from culture_assets.resources import WarehouseResource
from culture_assets.training.ablations import fixed_optimizer_steps, trains_fixed_steps
from culture_assets.training.model_record import lineage_row, model_key, model_record
from culture_assets.training.openai_jobs import PENDING, pending_jobs
from culture_assets.resources.training import FineTuningPending, TrainerResource
from culture_assets.training.training_set import split_distributions, split_rows

GROUP = "models"


def _fit_and_register(
    context: dg.AssetExecutionContext,
    trainer: TrainerResource,
    warehouse: WarehouseResource,
    table: pl.DataFrame,
    culture: str,
    variant: str,
    system_prompt: str,
) -> dg.Output:
    key = model_key(culture, variant)
    try:
        fitted = trainer.settings().fit(
            key, split_rows(table, "train"), split_rows(table, "validation"), warehouse.get(), context.log.info,
            asset_key=context.asset_key.to_user_string(),
            partition_key=context.partition_key if context.has_partition_key else None,
            distributions=(split_distributions(table, "train"), split_distributions(table, "validation")),
        )
    except FineTuningPending as pending:
        raise dg.Failure(
            description=str(pending), metadata={"job_id": pending.job_id, "status": pending.status}, allow_retries=False
        ) from pending
    record = model_record(culture, variant, fitted, table, system_prompt)
    warehouse.get().upsert_rows("model_registry", lineage_row(record, fitted, table, context.run.run_id))
    details = {k: v for k, v in fitted.details.items() if isinstance(v, (int, float, str)) and v is not None}
    return dg.Output(
        record,
        metadata={
            **details,
            "model_key": key,
            "trainer": fitted.trainer,
            "base_model": fitted.base_model,
            "artifact": dg.MetadataValue.path(fitted.adapter_path) if fitted.adapter_path else str(fitted.model_id),
            "artifact_hash": fitted.artifact_hash,
            "training_set_version": record.training_set_version[:12],
            "n_train": record.n_train,
            "hyperparameters": dg.MetadataValue.json(fitted.hyperparameters),
        },
    )


def _system_prompt(table: pl.DataFrame) -> str:
    first = table["messages_json"].head(1).to_list()
    return json.loads(first[0])[0]["content"] if first else ""


@dg.asset(
    group_name=GROUP,
    kinds={"pytorch", "openai", "duckdb"},
    partitions_def=CULTURES,
    description="A culture's fine-tuned model: a LoRA adapter directory (local) or a fine-tuned API model id (OpenAI).",
    check_specs=[TRAINING_FIT_CHECK],
)
def culture_model(
    context: dg.AssetExecutionContext, training_set: pl.DataFrame, trainer: TrainerResource, warehouse: WarehouseResource
):
    culture = load_registry().get(context.partition_key)
    output = _fit_and_register(context, trainer, warehouse, training_set, culture.key, "default", _system_prompt(training_set))
    yield output
    yield training_fit_check(output.value, training_set)


@dg.asset(
    group_name=GROUP,
    kinds={"pytorch", "openai", "duckdb"},
    ins={"training_set": dg.AssetIn(partition_mapping=dg.AllPartitionMapping())},
    description="CultureLLM-One: one model fine-tuned on every culture's training set, each sample with its culture's system prompt.",
)
def culturellm_one(
    context: dg.AssetExecutionContext, training_set: dict[str, pl.DataFrame], trainer: TrainerResource, warehouse: WarehouseResource
) -> dg.Output:
    table = pl.concat([training_set[key] for key in sorted(training_set)], how="vertical")
    output = _fit_and_register(context, trainer, warehouse, table, "all", "default", "")
    # each culture is trained (and so should be prompted) with its own system prompt
    prompts = {key: _system_prompt(training_set[key]) for key in sorted(training_set)}
    return dg.Output(output.value.model_copy(update={"system_prompts": prompts}), metadata=output.metadata)


@dg.asset(
    group_name=GROUP,
    kinds={"pytorch", "openai", "duckdb"},
    partitions_def=ABLATION_PARTITIONS,
    description="A culture model trained on one ablation variant of its training set, for the paper's ablation figures.",
)
def ablation_model(
    context: dg.AssetExecutionContext, ablation_training_set: pl.DataFrame, trainer: TrainerResource, warehouse: WarehouseResource
) -> dg.Output:
    keys = ABLATION_PARTITIONS.get_partition_key_from_str(context.partition_key).keys_by_dimension
    if trains_fixed_steps(keys["variant"]) and trainer.max_steps <= 0:
        seeds = ablation_training_set.filter((pl.col("split") == "train") & (pl.col("step") == "seed")).height
        steps = fixed_optimizer_steps(seeds, trainer.batch_size * trainer.gradient_accumulation_steps, trainer.epochs)
        context.log.info(f"{keys['variant']}: {steps} optimiser steps, the same for every size")
        trainer = trainer.model_copy(update={"max_steps": steps})
    return _fit_and_register(
        context, trainer, warehouse, ablation_training_set, keys["culture"], keys["variant"], _system_prompt(ablation_training_set)
    )


@dg.sensor(
    asset_selection=[culture_model, culturellm_one, ablation_model],
    minimum_interval_seconds=600,
    default_status=dg.DefaultSensorStatus.STOPPED,
    description="Re-materializes a model whose OpenAI fine-tuning job has finished (one status call per pending job).",
)
def openai_fine_tuning_sensor(context: dg.SensorEvaluationContext, trainer: TrainerResource, warehouse: WarehouseResource):
    pending = pending_jobs(warehouse.get())
    if pending.height == 0:
        return
    client = trainer.settings().openai_client()
    for row in pending.iter_rows(named=True):
        job = client.fine_tuning.jobs.retrieve(row["job_id"])
        if job.status in PENDING or not row["asset_key"]:
            continue
        context.log.info(f"{row['model_key']}: job {job.id} is {job.status}")
        yield dg.RunRequest(
            run_key=f"{job.id}:{job.status}",
            asset_selection=[dg.AssetKey.from_user_string(row["asset_key"])],
            partition_key=row["partition_key"],
        )
