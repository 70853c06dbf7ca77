"""The record of a trained model (the value of the culture_model, culturellm_one and ablation_model assets)
and its lineage row in `model_registry`."""

from __future__ import annotations

import json
from typing import Any, Literal, Mapping

import polars as pl
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from culture_assets.errors import InputError
from culture_assets.training.trainer import FittedModel
from culture_assets.training.training_set import training_set_version


def model_key(culture: str, variant: str) -> str:
    return f"{culture}-{variant}"


class ModelRecord(BaseModel):
    """The contract between the model assets and the evaluation stage: everything needed to load and score a
    trained model. The model assets return it; the IO manager stores it as a JSON object with these fields
    (<storage>/<asset>/<partition>.json); the evaluation assets read it back with `from_stored`.

    - A `local` record names its LoRA adapter directory (`adapter_path`, loaded on top of `base_model`);
      an `openai` record names the fine-tuned API model (`model_id`, with `base_model` the API model it was tuned from).
    - `system_prompt` is the system message the model was trained with (empty: none); CultureLLM-One, trained
      on every culture with each culture's own prompt, carries them in `system_prompts` (culture key -> prompt)
      and is asked with the prompt of the culture it is scored on.
    - `artifact_hash` changes whenever the weights do: evaluation caches and metric rows are keyed by it.
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    model_key: str = Field(description="<culture>-<variant>: the model_registry row of this model.")
    culture: str = Field(description="Culture key, or 'all' for CultureLLM-One.")
    variant: str = Field(default="default", description="'default', or the ablation variant the training set was built for.")
    trainer: Literal["local", "openai"]
    base_model: str = Field(description="Hub name or directory (local), API model name (openai).")
    adapter_path: str | None = Field(default=None, description="LoRA adapter directory (local trainer).")
    model_id: str | None = Field(default=None, description="Fine-tuned API model id (openai trainer).")
    artifact_hash: str = Field(description="Hash of the adapter files or the API model id.")
    training_set_version: str = Field(description="Content hash of the training set the model was fitted on.")
    system_prompt: str = Field(description="System message of the training samples; empty: none.")
    n_train: int = Field(ge=0, description="Training rows (split 'train').")
    system_prompts: dict[str, str] | None = Field(default=None, description="CultureLLM-One only: culture key -> its system prompt.")

    @model_validator(mode="after")
    def _names_its_weights(self) -> "ModelRecord":
        if self.trainer == "local" and not self.adapter_path:
            raise ValueError("adapter_path: a local model record needs its LoRA adapter directory")
        if self.trainer == "openai" and not self.model_id:
            raise ValueError("model_id: an OpenAI model record needs the fine-tuned model id")
        return self

    @classmethod
    def from_stored(cls, value: Mapping[str, Any], asset: str) -> "ModelRecord":
        """The record `asset` stored; a malformed one raises InputError naming the asset and the field."""
        try:
            return cls.model_validate(value)
        except ValidationError as error:
            first = error.errors()[0]
            problem = str(first["msg"]).removeprefix("Value error, ")
            # a field's own error has its location; the weights check names its field first ("adapter_path: ...")
            field = ".".join(str(part) for part in first["loc"]) or problem.split(":")[0]
            raise InputError(
                f"{asset} record",
                f"malformed model record ({problem}); re-materialize {asset} (fields: culture_assets.training.model_record.ModelRecord)",
                field=field,
            ) from None


def model_record(culture: str, variant: str, fitted: FittedModel, table: pl.DataFrame, system_prompt: str) -> ModelRecord:
    return ModelRecord(
        model_key=model_key(culture, variant),
        culture=culture,
        variant=variant,
        trainer=fitted.trainer,  # type: ignore[arg-type]  (FittedModel.trainer is one of the two trainers)
        base_model=fitted.base_model,
        adapter_path=fitted.adapter_path,
        model_id=fitted.model_id,
        artifact_hash=fitted.artifact_hash,
        training_set_version=training_set_version(table),
        system_prompt=system_prompt,
        n_train=table.filter(pl.col("split") == "train").height,
    )


def lineage_row(record: ModelRecord, fitted: FittedModel, table: pl.DataFrame, run_id: str) -> pl.DataFrame:
    """One model_registry row: enough to trace a score back to the generated questions behind the model."""
    trained_on = table.filter(pl.col("split").is_in(["train", "validation"]))
    return pl.DataFrame(
        {
            "model_key": [record.model_key],
            "culture": [record.culture],
            "variant": [record.variant],
            "trainer": [record.trainer],
            "base_model": [record.base_model],
            "artifact": [record.adapter_path or record.model_id],
            "artifact_hash": [record.artifact_hash],
            "training_set_version": [record.training_set_version],
            "hyperparameters_json": [json.dumps(fitted.hyperparameters, sort_keys=True)],
            "sample_ids_json": [json.dumps(sorted(trained_on["sample_id"].unique().to_list()))],
            "run_id": [run_id],
        }
    )
