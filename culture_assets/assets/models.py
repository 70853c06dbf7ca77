"""Models stage: one fine-tuned model per culture, CultureLLM-One on all cultures, and the ablation models."""

import json
from typing import Any, Callable

import dagster as dg
import polars as pl

from culture_assets.assets.evaluation import TRAINING_FIT_CHECK, training_fit_check
from culture_assets.cultures import load_registry
from culture_assets.partitions import ABLATION_PARTITIONS, CULTURES
from culture_assets.resources import WarehouseResource
from culture_assets.training.ablations import fixed_optimizer_steps, trains_fixed_steps
from culture_assets.training.model_record import ModelRecord, lineage_row, model_key, model_record
from culture_assets.training.openai_jobs import PENDING, pending_jobs
from culture_assets.resources.training import FineTuningPending, TrainerResource
from culture_assets.markdown import markdown_table
from culture_assets.training.training_set import fold_slug, split_distributions, split_rows

GROUP = "models"


def _fit(
    context: dg.AssetExecutionContext,
    trainer: TrainerResource,
    warehouse: WarehouseResource,
    table: pl.DataFrame,
    culture: str,
    variant: str,
    system_prompt: str,
    validation_split: str = "validation",
) -> tuple[ModelRecord, dict[str, Any]]:
    """(model record, metadata) of one fine-tuned model; FineTuningPending while its API job runs."""
    key = model_key(culture, variant)
    fitted = trainer.settings().fit(
        key, split_rows(table, "train"), split_rows(table, validation_split), warehouse.get(), context.log.info,
        asset_key=context.asset_key.to_user_string(),
        partition_key=context.partition_key if context.has_partition_key else None,
        distributions=(split_distributions(table, "train"), split_distributions(table, validation_split)),
    )
    record = model_record(culture, variant, fitted, table, system_prompt)
    warehouse.get().upsert_rows("model_registry", lineage_row(record, fitted, table, context.run.run_id))
    details = {k: v for k, v in fitted.details.items() if isinstance(v, (int, float, str)) and v is not None}
    return record, {
        **details,
        "model_key": key,
        "trainer": fitted.trainer,
        "base_model": fitted.base_model,
        "artifact": dg.MetadataValue.path(fitted.adapter_path) if fitted.adapter_path else str(fitted.model_id),
        "artifact_hash": fitted.artifact_hash,
        "training_set_version": record.training_set_version[:12],
        "n_train": record.n_train,
        "hyperparameters": dg.MetadataValue.json(fitted.hyperparameters),
    }


def _pending_failure(pending: list[FineTuningPending]) -> dg.Failure:
    """The step fails while API jobs run; openai_fine_tuning_sensor re-materializes it when they end."""
    return dg.Failure(
        description="; ".join(str(p) for p in pending),
        metadata={"job_id": ", ".join(p.job_id for p in pending), "status": ", ".join(p.status for p in pending)},
        allow_retries=False,
    )


def _output(fit: Callable[[], tuple[ModelRecord, dict[str, Any]]]) -> dg.Output:
    """The model `fit` trains, as the asset's output; a failure naming the API job while it runs."""
    try:
        record, metadata = fit()
    except FineTuningPending as pending:
        raise _pending_failure([pending]) from pending
    return dg.Output(record, metadata=metadata)


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
    output = _output(lambda: _fit(context, trainer, warehouse, training_set, culture.key, "default", _system_prompt(training_set)))
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
    output = _output(lambda: _fit(context, trainer, warehouse, table, "all", "default", ""))
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
    return _output(lambda: _fit(
        context, trainer, warehouse, ablation_training_set, keys["culture"], keys["variant"], _system_prompt(ablation_training_set)
    ))


@dg.asset(
    group_name=GROUP,
    kinds={"pytorch", "openai", "duckdb"},
    partitions_def=CULTURES,
    description="A culture's held-out-topic models, one per fold of heldout_topic_training_set: each never saw its topic, "
    "which is its validation set; the WVS alignment scores each on its topic.",
)
def heldout_topic_model(
    context: dg.AssetExecutionContext, heldout_topic_training_set: pl.DataFrame, trainer: TrainerResource, warehouse: WarehouseResource
) -> dg.Output:
    culture = load_registry().get(context.partition_key)
    records: dict[str, ModelRecord] = {}
    summary: list[dict[str, Any]] = []
    pending: list[FineTuningPending] = []
    # folds train one after another; a re-run reuses every fold already trained (same inputs, same adapter or API job)
    for fold in heldout_topic_training_set["fold"].unique(maintain_order=True).to_list():
        table = heldout_topic_training_set.filter(pl.col("fold") == fold).drop("fold")
        try:
            record, metadata = _fit(
                context, trainer, warehouse, table, culture.key, f"heldout_{fold_slug(fold)}", _system_prompt(table), validation_split="heldout"
            )
        except FineTuningPending as waiting:
            pending.append(waiting)
            continue
        records[fold] = record
        summary.append({"fold": fold, "model_key": metadata["model_key"], "n_train": record.n_train,
                        "eval_loss_last": metadata.get("eval_loss_last"), "artifact": str(record.adapter_path or record.model_id)})
        context.log.info(f"{culture.display_name}: fold {fold!r} trained ({len(records)} done)")
    if pending:
        raise _pending_failure(pending)
    return dg.Output(
        {"culture": culture.key, "folds": {fold: record.model_dump(mode="json") for fold, record in records.items()}},
        metadata={
            "culture": culture.display_name,
            "folds": len(records),
            "models": dg.MetadataValue.md(markdown_table(pl.DataFrame(
                summary, schema={"fold": pl.String, "model_key": pl.String, "n_train": pl.Int64, "eval_loss_last": pl.Float64, "artifact": pl.String}))),
        },
    )


@dg.sensor(
    asset_selection=[culture_model, culturellm_one, ablation_model, heldout_topic_model],
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
