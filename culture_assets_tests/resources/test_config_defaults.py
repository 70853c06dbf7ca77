"""Each setting's default lives in the library: the Dagster config schema of a resource shows the same defaults,
bounds and descriptions as the library's pydantic settings it derives from."""

from __future__ import annotations

import dagster as dg
import pytest
from pydantic import BaseModel

from culture_assets.llm.settings import LLMSettings
from culture_assets.resources.llm import LLMResource
from culture_assets.resources.training import TrainerResource
from culture_assets.training.lora import LoraHyperParameters
from culture_assets.training.openai_jobs import OpenAIFineTuningSettings
from culture_assets.training.trainer import TrainerSettings


def schema_defaults(resource: type[dg.ConfigurableResource]) -> dict[str, object]:
    fields = resource.to_config_schema().as_field().config_type.fields
    return {name: field.default_value if field.default_provided else None for name, field in fields.items()}


@pytest.mark.parametrize(("resource", "settings"), [(LLMResource, LLMSettings), (TrainerResource, TrainerSettings)])
def test_resource_schema_defaults_are_the_library_defaults(resource: type[dg.ConfigurableResource], settings: type[BaseModel]) -> None:
    assert set(schema_defaults(resource)) == set(settings.model_fields)
    assert schema_defaults(resource) == {name: field.default for name, field in settings.model_fields.items()}


def test_every_lora_hyperparameter_is_settable_from_the_launchpad_with_the_library_default() -> None:
    defaults = schema_defaults(TrainerResource)
    for name, field in LoraHyperParameters.model_fields.items():
        assert defaults[name] == field.default, name
    for name in ("price_per_million_tokens", "max_cost_usd", "resubmit_failed"):
        assert defaults[name] == OpenAIFineTuningSettings.model_fields[name].default


def test_resource_config_reaches_the_library_settings_and_keeps_its_bounds() -> None:
    trainer = TrainerResource(warmup_steps=3, target_modules="q_proj|v_proj", lora_r=4)
    assert trainer.settings().lora_hyperparameters().model_dump() == {
        **LoraHyperParameters().model_dump(), "warmup_steps": 3, "target_modules": "q_proj|v_proj", "lora_r": 4,
    }
    with pytest.raises(Exception, match="greater than or equal to 1"):
        LLMResource(concurrency=0)


def test_the_api_key_can_come_from_an_env_var(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OPENAI_API_KEY", "sk-from-env")

    @dg.asset
    def uses_llm(llm: LLMResource) -> str:
        return llm.settings().api_key or ""

    result = dg.materialize([uses_llm], resources={"llm": LLMResource(api_key=dg.EnvVar("OPENAI_API_KEY"))})
    assert result.output_for_node("uses_llm") == "sk-from-env"
