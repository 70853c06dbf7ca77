"""The four models a culture is scored with, built from the training stage's model records.

base (the trainer's base model, no adapter, no system prompt), base_culture_prompt (the same
model told its culture in a system prompt), culture_model (the fine-tuned culture model) and
culturellm_one (the model trained on all cultures), from the ModelRecord of the `culture_model` /
`culturellm_one` assets (its contract: culture_assets.training.model_record.ModelRecord).
"""

from __future__ import annotations

import hashlib
import json
from enum import Enum
from typing import Literal

from pydantic import BaseModel, ConfigDict

from culture_assets.tiny_model import is_tiny_model
from culture_assets.training.model_record import ModelRecord


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


def trained_model(record: ModelRecord, role: Role) -> ModelUnderTest:
    return ModelUnderTest(
        role=role,
        trainer=record.trainer,
        base_model=record.base_model,
        adapter_path=record.adapter_path if record.trainer == "local" else None,
        api_model=record.model_id if record.trainer == "openai" else None,
        system_prompt=record.system_prompt or None,
        variant=record.variant,
        n_train=record.n_train,
        artifact_hash=record.artifact_hash,
    )


def models_under_test(culture: str, culture_record: ModelRecord, one_record: ModelRecord, culture_system_prompt: str) -> list[ModelUnderTest]:
    """The four models of the paper's comparison for one culture.

    CultureLLM-One was trained with each culture's own system prompt (`system_prompts` of its
    record), so it is asked with this culture's prompt.
    """
    culture_model = trained_model(culture_record, Role.CULTURE_MODEL)
    one = trained_model(one_record, Role.CULTURELLM_ONE)
    one_prompt = (one_record.system_prompts or {}).get(culture)
    if one_prompt:
        one = one.model_copy(update={"system_prompt": one_prompt})
    return [*base_models(culture_model, culture_system_prompt), culture_model, one]


def base_models(trained: ModelUnderTest, culture_system_prompt: str) -> list[ModelUnderTest]:
    """The base model a trained model started from, without and with the culture's system prompt."""
    base_api = trained.base_model if trained.trainer == "openai" else None
    base = ModelUnderTest(role=Role.BASE, trainer=trained.trainer, base_model=trained.base_model, api_model=base_api)
    return [base, base.model_copy(update={"role": Role.BASE_CULTURE_PROMPT, "system_prompt": culture_system_prompt})]
