"""Each setting's default lives in the library: the Dagster config schema of every asset config and resource
shows the same defaults, bounds and descriptions as the library's pydantic settings it derives from, and a
config class or field the library does not define fails here."""

from __future__ import annotations

import ast
import inspect
import textwrap
from enum import Enum

import dagster as dg
import pytest
from pydantic import BaseModel

import culture_assets.definitions  # noqa: F401  (loads every asset module and resource of the code location)
from culture_assets.assets.augmentation import AugmentationQualityConfig, ParaphraseConfig, SemanticFilterConfig, SynonymConfig
from culture_assets.assets.evaluation import EvalDatasetConfig, ScoringConfig
from culture_assets.assets.reports import CultureReportConfig
from culture_assets.assets.survey import SeedSurveyConfig
from culture_assets.assets.training_sets import HeldoutTopicTrainingSetConfig, TrainingSetConfig
from culture_assets.augment.embedder import EmbedderSettings
from culture_assets.augment.generation import Step1Settings, Step2Settings
from culture_assets.augment.quality import QualitySettings
from culture_assets.augment.semantic_filter import FilterSettings
from culture_assets.evaluation.data_source import EvalDataSettings
from culture_assets.evaluation.loader import EvalSampleSettings
from culture_assets.evaluation.report import ReportSettings
from culture_assets.evaluation.suite import EvaluationSettings
from culture_assets.io_manager import ArtifactIOManager
from culture_assets.llm.settings import LLMSettings
from culture_assets.resources import SurveySourceResource, WarehouseResource
from culture_assets.resources.augment import EmbedderResource
from culture_assets.resources.evaluation import EvalDataResource
from culture_assets.resources.llm import LLMResource
from culture_assets.resources.training import TrainerResource
from culture_assets.storage import ArtifactStorageSettings
from culture_assets.store.warehouse import WarehouseSettings
from culture_assets.survey.distribution import SeedSurveySettings
from culture_assets.survey.source import SurveySourceSettings
from culture_assets.training.training_set import HeldoutTopicSpec, TrainingSetSpec
from culture_assets.training.lora import LoraHyperParameters
from culture_assets.training.openai_jobs import OpenAIFineTuningSettings
from culture_assets.training.trainer import TrainerSettings


# every Dagster config class and resource of the code location -> the library settings its fields come from
DERIVED_FROM: dict[type[dg.Config], type[BaseModel]] = {
    LLMResource: LLMSettings,
    TrainerResource: TrainerSettings,
    EmbedderResource: EmbedderSettings,
    EvalDataResource: EvalDataSettings,
    ParaphraseConfig: Step1Settings,
    SynonymConfig: Step2Settings,
    SemanticFilterConfig: FilterSettings,
    AugmentationQualityConfig: QualitySettings,
    TrainingSetConfig: TrainingSetSpec,
    HeldoutTopicTrainingSetConfig: HeldoutTopicSpec,
    SeedSurveyConfig: SeedSurveySettings,
    EvalDatasetConfig: EvalSampleSettings,
    ScoringConfig: EvaluationSettings,
    CultureReportConfig: ReportSettings,
    WarehouseResource: WarehouseSettings,
    SurveySourceResource: SurveySourceSettings,
    ArtifactIOManager: ArtifactStorageSettings,
}
# resources that expose every library setting (an asset config may leave some to the library's default)
WHOLE = {LLMResource, TrainerResource, EmbedderResource, EvalDataResource, WarehouseResource, SurveySourceResource, ArtifactIOManager}


def schema_defaults(config: type[dg.Config]) -> dict[str, object]:
    fields = config.to_config_schema().as_field().config_type.fields
    return {name: field.default_value if field.default_provided else None for name, field in fields.items()}


def project_config_classes() -> list[type[dg.Config]]:
    """Every subclass of dg.Config (asset configs, resources, IO managers) defined in culture_assets."""
    found, pending = set(), [dg.Config]
    while pending:
        for sub in pending.pop().__subclasses__():
            pending.append(sub)
            if sub.__module__.startswith("culture_assets."):
                found.add(sub)
    return sorted(found, key=lambda c: f"{c.__module__}.{c.__qualname__}")


def library_settings_of(config: type[dg.Config]) -> type[BaseModel]:
    derived = [DERIVED_FROM[base] for base in config.__mro__ if base in DERIVED_FROM]
    assert derived, f"{config.__module__}.{config.__qualname__} defines its settings by hand: derive its fields from a library pydantic model"
    return derived[0]


@pytest.mark.parametrize("config", project_config_classes(), ids=lambda c: c.__qualname__)
def test_every_dagster_config_default_is_the_library_default(config: type[dg.Config]) -> None:
    settings = library_settings_of(config)
    defaults = schema_defaults(config)
    for name, field in config.model_fields.items():
        assert name in settings.model_fields, f"{config.__qualname__}.{name} is not a field of {settings.__qualname__}"
        library = settings.model_fields[name]
        assert (field.default, field.description, field.metadata) == (library.default, library.description, library.metadata), name
        # Dagster shows an enum by its name
        assert defaults[name] == (library.default.name if isinstance(library.default, Enum) else library.default), name
    if config in WHOLE:
        assert set(config.model_fields) == set(settings.model_fields)
    hand_written = [name for name, value in class_body_defaults(config).items() if f"['{name}']" not in value]
    assert not hand_written, f"{config.__qualname__} writes these defaults by hand instead of taking the library's field: {hand_written}"


def class_body_defaults(config: type[dg.Config]) -> dict[str, str]:
    """Each field assigned in the class body -> the source of what it is assigned (e.g. `_FIELDS['model']`)."""
    body = ast.parse(textwrap.dedent(inspect.getsource(config))).body[0]
    assert isinstance(body, ast.ClassDef)
    return {
        node.target.id: ast.unparse(node.value)
        for node in body.body
        if isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name) and node.value is not None
    }


def test_no_config_class_is_missed() -> None:
    assert set(DERIVED_FROM) <= set(project_config_classes())


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
