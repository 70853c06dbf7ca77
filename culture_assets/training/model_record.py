"""The record of a trained model (the culture_model contract) and its lineage row in `model_registry`."""

from __future__ import annotations

import json
from typing import Any

import polars as pl

from culture_assets.training.trainer import FittedModel
from culture_assets.training.training_set import training_set_version


def model_key(culture: str, variant: str) -> str:
    return f"{culture}-{variant}"


def model_record(culture: str, variant: str, fitted: FittedModel, table: pl.DataFrame, system_prompt: str) -> dict[str, Any]:
    """What evaluation needs to load and score the model; see CONTRACTS.md."""
    return {
        "model_key": model_key(culture, variant),
        "culture": culture,
        "variant": variant,
        "trainer": fitted.trainer,
        "base_model": fitted.base_model,
        "adapter_path": fitted.adapter_path,
        "model_id": fitted.model_id,
        "artifact_hash": fitted.artifact_hash,
        "training_set_version": training_set_version(table),
        "system_prompt": system_prompt,
        "n_train": table.filter(pl.col("split") == "train").height,
    }


def lineage_row(record: dict[str, Any], fitted: FittedModel, table: pl.DataFrame, run_id: str) -> pl.DataFrame:
    """One model_registry row: enough to trace a score back to the generated questions behind the model."""
    trained_on = table.filter(pl.col("split").is_in(["train", "validation"]))
    return pl.DataFrame(
        {
            "model_key": [record["model_key"]],
            "culture": [record["culture"]],
            "variant": [record["variant"]],
            "trainer": [record["trainer"]],
            "base_model": [record["base_model"]],
            "artifact": [record["adapter_path"] or record["model_id"]],
            "artifact_hash": [record["artifact_hash"]],
            "training_set_version": [record["training_set_version"]],
            "hyperparameters_json": [json.dumps(fitted.hyperparameters, sort_keys=True)],
            "sample_ids_json": [json.dumps(sorted(trained_on["sample_id"].unique().to_list()))],
            "run_id": [run_id],
        }
    )
