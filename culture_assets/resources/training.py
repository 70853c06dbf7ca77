"""The `trainer` resource: the library's TrainerSettings as Dagster config (same fields, defaults and bounds)."""

from __future__ import annotations

from typing import Literal, Optional

import dagster as dg

from culture_assets.training.trainer import BASE_MODEL_ENV, FineTuningPending, TrainerSettings

__all__ = ["BASE_MODEL_ENV", "FineTuningPending", "TrainerResource"]

_FIELDS = TrainerSettings.model_fields


class TrainerResource(dg.ConfigurableResource):
    """Fits a model on chat samples with the configured trainer and base model (see culture_assets.training.trainer)."""

    kind: Literal["local", "openai"] = _FIELDS["kind"]
    base_model: str = _FIELDS["base_model"]
    models_dir: str = _FIELDS["models_dir"]
    chat_template: str = _FIELDS["chat_template"]
    seed: int = _FIELDS["seed"]
    epochs: float = _FIELDS["epochs"]
    max_steps: int = _FIELDS["max_steps"]
    learning_rate: float = _FIELDS["learning_rate"]
    batch_size: int = _FIELDS["batch_size"]
    gradient_accumulation_steps: int = _FIELDS["gradient_accumulation_steps"]
    max_length: int = _FIELDS["max_length"]
    lora_r: int = _FIELDS["lora_r"]
    lora_alpha: int = _FIELDS["lora_alpha"]
    lora_dropout: float = _FIELDS["lora_dropout"]
    target_modules: str = _FIELDS["target_modules"]
    warmup_steps: float = _FIELDS["warmup_steps"]
    save_steps: int = _FIELDS["save_steps"]
    target_loss: Literal["mode", "survey_distribution"] = _FIELDS["target_loss"]
    api_key: Optional[str] = _FIELDS["api_key"]
    base_url: str = _FIELDS["base_url"]
    price_per_million_tokens: Optional[float] = _FIELDS["price_per_million_tokens"]
    max_cost_usd: float = _FIELDS["max_cost_usd"]
    resubmit_failed: bool = _FIELDS["resubmit_failed"]

    def settings(self) -> TrainerSettings:
        return TrainerSettings.model_validate({name: getattr(self, name) for name in _FIELDS})
