"""Which trainer fits the culture models, on which base model, and how: the settings and the choice, defined once.

`kind="local"` trains a LoRA adapter on a local transformers model (`base_model`: a hub name or a directory);
`kind="openai"` runs an OpenAI fine-tuning job (`base_model` is the API model name, the key comes from
`api_key` or OPENAI_API_KEY, the endpoint from `base_url` or OPENAI_BASE_URL). The Dagster `trainer`
resource derives its fields from TrainerSettings.
"""

from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Literal, Mapping, Optional, Sequence

import openai
from pydantic import BaseModel, ConfigDict, Field

from culture_assets.errors import InputError
from culture_assets.llm.client import openai_client
from culture_assets.settings import data_home
from culture_assets.store.warehouse import Warehouse
from culture_assets.training.lora import LoraHyperParameters, train_lora
from culture_assets.training.openai_jobs import FineTuningJobs, OpenAIFineTuningSettings

BASE_MODEL_ENV = "CULTURE_ASSETS_BASE_MODEL"
_LORA = LoraHyperParameters.model_fields
_OPENAI = OpenAIFineTuningSettings.model_fields


class FineTuningPending(RuntimeError):
    """The OpenAI job is still running; materialize again later (the sensor does it when it ends)."""

    def __init__(self, job_id: str, status: str, events: Sequence[str]):
        self.job_id, self.status, self.events = job_id, status, tuple(events)
        super().__init__(
            f"fine-tuning job {job_id} is {status}; nothing was paid twice. Materialize again later, or turn on "
            f"the openai_fine_tuning_sensor to do it when the job ends. Latest events: {list(events)[:3]}"
        )


@dataclass(frozen=True)
class FittedModel:
    trainer: str
    base_model: str
    adapter_path: str | None
    model_id: str | None
    artifact_hash: str
    hyperparameters: dict[str, Any]
    details: dict[str, Any]


class TrainerSettings(BaseModel):
    """Fits a model on chat samples with the configured trainer and base model."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    kind: Literal["local", "openai"] = "local"
    base_model: str = Field(default="", description=f"hub name or local directory (local), API model name (openai); empty means ${BASE_MODEL_ENV}")
    models_dir: str = Field(default="", description="where adapters go; empty means <data home>/models")
    chat_template: str = Field(default="", description="Jinja chat template for a tokenizer that has none")
    seed: int = _LORA["seed"]
    epochs: float = _LORA["epochs"]
    max_steps: int = _LORA["max_steps"]
    learning_rate: float = _LORA["learning_rate"]
    batch_size: int = _LORA["batch_size"]
    gradient_accumulation_steps: int = _LORA["gradient_accumulation_steps"]
    max_length: int = _LORA["max_length"]
    lora_r: int = _LORA["lora_r"]
    lora_alpha: int = _LORA["lora_alpha"]
    lora_dropout: float = _LORA["lora_dropout"]
    # peft reads a string as 'all-linear' or a regular expression over module names
    target_modules: str = Field(default=_LORA["target_modules"].default, description="peft target_modules: 'all-linear' or a regex over module names")
    warmup_steps: float = _LORA["warmup_steps"]
    save_steps: int = _LORA["save_steps"]
    target_loss: Literal["mode", "survey_distribution"] = _LORA["target_loss"]
    api_key: Optional[str] = Field(default=None, description="Secret for kind='openai'; empty: $OPENAI_API_KEY.")
    base_url: str = Field(default="", description="OpenAI-compatible base URL; empty: $OPENAI_BASE_URL, else OpenAI.")
    price_per_million_tokens: Optional[float] = _OPENAI["price_per_million_tokens"]
    max_cost_usd: float = _OPENAI["max_cost_usd"]
    resubmit_failed: bool = _OPENAI["resubmit_failed"]

    def resolved_base_model(self) -> str:
        chosen = self.base_model or os.environ.get(BASE_MODEL_ENV, "")
        if not chosen:
            raise InputError("trainer settings", f"no base model: set `base_model` or ${BASE_MODEL_ENV}", field="base_model")
        return chosen

    def models_root(self) -> Path:
        return Path(self.models_dir).expanduser().resolve() if self.models_dir else data_home() / "models"

    def lora_hyperparameters(self) -> LoraHyperParameters:
        return LoraHyperParameters.model_validate({name: getattr(self, name) for name in _LORA})

    def openai_settings(self, suffix: str) -> OpenAIFineTuningSettings:
        return OpenAIFineTuningSettings(
            base_model=self.resolved_base_model(), n_epochs=max(1, round(self.epochs)), seed=self.seed, suffix=suffix[:18],
            price_per_million_tokens=self.price_per_million_tokens, max_cost_usd=self.max_cost_usd,
            resubmit_failed=self.resubmit_failed,
        )

    def openai_client(self) -> openai.OpenAI:
        return openai_client(self.api_key, self.base_url)

    def fit(
        self,
        model_key: str,
        train_rows: Sequence[Sequence[dict[str, str]]],
        validation_rows: Sequence[Sequence[dict[str, str]]],
        warehouse: Warehouse,
        log: Callable[[str], None],
        asset_key: str | None = None,
        partition_key: str | None = None,
        distributions: tuple[Sequence[Mapping[str, float]] | None, Sequence[Mapping[str, float]] | None] = (None, None),
    ) -> FittedModel:
        """Train locally, or advance the OpenAI job one step (raising FineTuningPending while it runs).

        `distributions`: the train and validation rows' survey distributions, the targets of `target_loss="survey_distribution"`.
        """
        base_model = self.resolved_base_model()
        if self.kind == "local":
            params = self.lora_hyperparameters()
            adapter = train_lora(
                base_model, train_rows, self.models_root(), model_key, params,
                validation_rows=validation_rows, chat_template=self.chat_template, progress=log,
                train_distributions=distributions[0], validation_distributions=distributions[1],
            )
            log(f"{model_key}: adapter {adapter.path} ({'reused' if adapter.reused else 'trained'}, step {adapter.manifest['global_step']})")
            return FittedModel("local", adapter.manifest["base_model"], str(adapter.path), None, adapter.artifact_hash,
                               {**params.model_dump(mode="json"), "lora_config": adapter.manifest["lora_config"]}, adapter.manifest)
        if self.target_loss != "mode":
            raise InputError(
                "trainer settings", f"target_loss={self.target_loss!r} needs the local trainer; OpenAI fine-tuning trains on the answer text only",
                field="target_loss",
            )
        settings = self.openai_settings(model_key)
        jobs = FineTuningJobs(self.openai_client(), warehouse, log)
        outcome = jobs.advance(model_key, train_rows, settings, validation_rows, asset_key=asset_key, partition_key=partition_key)
        if outcome.pending or not outcome.fine_tuned_model:
            raise FineTuningPending(outcome.job_id, outcome.status, outcome.events)
        artifact_hash = hashlib.sha256(f"{outcome.job_id}\0{outcome.fine_tuned_model}".encode()).hexdigest()
        return FittedModel("openai", base_model, None, outcome.fine_tuned_model, artifact_hash, settings.model_dump(mode="json"),
                           {"job_id": outcome.job_id, "estimated_cost_usd": outcome.estimate.cost_usd,
                            "estimated_billed_tokens": outcome.estimate.billed_tokens})
