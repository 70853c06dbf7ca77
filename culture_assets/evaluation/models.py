"""The four models a culture is scored with, built from the training stage's model records.

base (the trainer's base model, no adapter, no system prompt), base_culture_prompt (the same
model told its culture in a system prompt), culture_model (the fine-tuned culture model) and
culturellm_one (the model trained on all cultures). A record is the JSON dict of the
`culture_model` / `culturellm_one` assets (see CONTRACTS.md).
"""

from __future__ import annotations

import hashlib
import json
from enum import Enum
from typing import Any, Literal, Mapping

from pydantic import BaseModel, ConfigDict

from culture_assets.errors import InputError
from culture_assets.tiny_model import is_tiny_model


class Role(str, Enum):
    BASE = "base"
    BASE_CULTURE_PROMPT = "base_culture_prompt"
    CULTURE_MODEL = "culture_model"
    CULTURELLM_ONE = "culturellm_one"


class ModelUnderTest(BaseModel):
    model_config = ConfigDict(frozen=True)

    role: Role
    trainer: Literal["local", "openai"]
    base_model: str
    adapter_path: str | None = None
    api_model: str | None = None
    system_prompt: str | None = None
    variant: str = "default"
    n_train: int | None = None
    artifact_hash: str | None = None

    @property
    def fingerprint(self) -> str:
        """What determines the model's outputs; the system prompt is part of each cached request instead."""
        weights = [self.trainer, self.base_model, self.adapter_path and (self.artifact_hash or self.adapter_path), self.api_model]
        return hashlib.sha256(json.dumps(weights).encode()).hexdigest()[:16]

    @property
    def tiny(self) -> bool:
        return self.trainer == "local" and is_tiny_model(self.base_model)

    @property
    def label(self) -> str:
        return self.role.value if self.variant == "default" else f"{self.role.value}[{self.variant}]"


REQUIRED = ("trainer", "base_model", "system_prompt")


def _check_record(record: Mapping[str, Any], source: str) -> None:
    for field in REQUIRED:
        if field not in record:
            raise InputError(source, "model record lacks a required field", field=field)
    if record["trainer"] == "local" and not record.get("adapter_path"):
        raise InputError(source, "a local model record needs its LoRA adapter directory", field="adapter_path")
    if record["trainer"] == "openai" and not record.get("model_id"):
        raise InputError(source, "an OpenAI model record needs the fine-tuned model id", field="model_id")
    if record["trainer"] not in ("local", "openai"):
        raise InputError(source, f"unknown trainer {record['trainer']!r}; expected 'local' or 'openai'", field="trainer")


def trained_model(record: Mapping[str, Any], role: Role, source: str) -> ModelUnderTest:
    _check_record(record, source)
    return ModelUnderTest(
        role=role,
        trainer=record["trainer"],
        base_model=record["base_model"],
        adapter_path=record.get("adapter_path") if record["trainer"] == "local" else None,
        api_model=record.get("model_id") if record["trainer"] == "openai" else None,
        system_prompt=record.get("system_prompt") or None,
        variant=record.get("variant", "default"),
        n_train=record.get("n_train"),
        artifact_hash=record.get("artifact_hash"),
    )


def models_under_test(
    culture: str, culture_record: Mapping[str, Any], one_record: Mapping[str, Any], culture_system_prompt: str
) -> list[ModelUnderTest]:
    """The four models of the paper's comparison for one culture.

    CultureLLM-One was trained with each culture's own system prompt (`system_prompts` of its
    record), so it is asked with this culture's prompt.
    """
    culture_model = trained_model(culture_record, Role.CULTURE_MODEL, "culture_model record")
    one = trained_model(one_record, Role.CULTURELLM_ONE, "culturellm_one record")
    one_prompt = (one_record.get("system_prompts") or {}).get(culture)
    if one_prompt:
        one = one.model_copy(update={"system_prompt": one_prompt})
    return [*base_models(culture_model, culture_system_prompt), culture_model, one]


def base_models(trained: ModelUnderTest, culture_system_prompt: str) -> list[ModelUnderTest]:
    """The base model a trained model started from, without and with the culture's system prompt."""
    base_api = trained.base_model if trained.trainer == "openai" else None
    base = ModelUnderTest(role=Role.BASE, trainer=trained.trainer, base_model=trained.base_model, api_model=base_api)
    return [base, base.model_copy(update={"role": Role.BASE_CULTURE_PROMPT, "system_prompt": culture_system_prompt})]
