"""Run profiles: which models, data and limits the resources use.

- `default`: a small open instruct model from the Hugging Face hub as generator and base model
  (CULTURE_ASSETS_GENERATOR_MODEL / CULTURE_ASSETS_BASE_MODEL override it with a name or a local
  directory), an OpenAI-compatible endpoint for generation when OPENAI_API_KEY is set, the
  evaluation datasets downloaded by the `evaluation_data` asset (or CULTURE_ASSETS_EVAL_DATA).
- `demo`: offline wiring demo: a tiny random model built locally and one synthetic evaluation
  set per culture. It runs the whole graph in minutes on 2 CPU cores; its scores mean nothing.

The profile is read from CULTURE_ASSETS_PROFILE when the definitions load, so `dagster dev`
and `culture-assets run` see the same resources.
"""

from __future__ import annotations

import os
from enum import Enum
from pathlib import Path
from typing import Any, TypeVar

import dagster as dg
from pydantic.fields import FieldInfo

from culture_assets.resources.augment import EmbedderResource
from culture_assets.cultures import load_registry
from culture_assets.demo import demo_assets, prepare_demo
from culture_assets.errors import InputError
from culture_assets.evaluation.download import check_reachable
from culture_assets.resources.evaluation import EvalDataResource
from culture_assets.io_manager import ArtifactIOManager
from culture_assets.resources.llm import API_KEY_ENV, BASE_URL_ENV, LLMResource
from culture_assets.llm.runner import REQUEST_TIMEOUT_ENV
from culture_assets.model_loading import model_problem
from culture_assets.resources import SurveySourceResource, WarehouseResource
from culture_assets.settings import data_home
from culture_assets.resources.training import BASE_MODEL_ENV, TrainerResource

PROFILE_ENV = "CULTURE_ASSETS_PROFILE"
LIMIT_ENV = "CULTURE_ASSETS_LIMIT"
GENERATOR_ENV = "CULTURE_ASSETS_GENERATOR_MODEL"
TRAINER_ENV = "CULTURE_ASSETS_TRAINER"
DEFAULT_HUB_MODEL = "Qwen/Qwen2.5-0.5B-Instruct"
DEMO_TRAINING_STEPS = 6
QUICK_FOLDS = ("Religious Values", "Ethical Values And Norms")
T = TypeVar("T")


class Profile(str, Enum):
    DEFAULT = "default"
    DEMO = "demo"


def current_profile() -> Profile:
    raw = os.environ.get(PROFILE_ENV, Profile.DEFAULT.value)
    try:
        return Profile(raw)
    except ValueError:
        raise InputError(f"${PROFILE_ENV}", f"{raw!r}: expected one of {[p.value for p in Profile]}") from None


def current_limit() -> int | None:
    raw = os.environ.get(LIMIT_ENV, "")
    if raw and (not raw.isdigit() or int(raw) < 1):
        raise InputError(f"${LIMIT_ENV}", f"{raw!r}: expected a positive integer")
    return int(raw) if raw else None


def generator_model() -> str:
    return os.environ.get(GENERATOR_ENV) or DEFAULT_HUB_MODEL


def base_model() -> str:
    return os.environ.get(BASE_MODEL_ENV) or DEFAULT_HUB_MODEL


def api_key_setting() -> dg.EnvVar | None:
    """The secret as a reference Dagster resolves at run time (never stored in run config); None without a key."""
    return dg.EnvVar(API_KEY_ENV) if os.environ.get(API_KEY_ENV) else None


def demo_root() -> Path:
    return data_home() / "demo"


class _BuildsDemoFiles:
    """Builds the demo's tiny model and datasets when a step first uses the resource, not when definitions load."""

    def setup_for_execution(self, context: dg.InitResourceContext) -> None:
        prepare_demo(demo_root(), load_registry().keys)


class DemoLLMResource(_BuildsDemoFiles, LLMResource):
    pass


class DemoTrainerResource(_BuildsDemoFiles, TrainerResource):
    pass


class DemoEvalDataResource(_BuildsDemoFiles, EvalDataResource):
    pass


def llm_settings() -> dict[str, Any]:
    """The llm resource's settings the environment overrides (the command line's way to set them)."""
    raw = os.environ.get(REQUEST_TIMEOUT_ENV, "")
    if not raw:
        return {}
    try:
        seconds = float(raw)
    except ValueError:
        seconds = 0.0
    if seconds <= 0:
        raise InputError(f"${REQUEST_TIMEOUT_ENV}", f"{raw!r}: expected a positive number of seconds")
    return {"request_timeout_s": seconds}


def resources_for(profile: Profile, limit: int | None = None) -> dict[str, Any]:
    """The Dagster resources of a profile; `limit` caps training steps (a laptop-sized run)."""
    shared: dict[str, Any] = {
        "io_manager": ArtifactIOManager(),
        "warehouse": WarehouseResource(),
        "survey_source": SurveySourceResource(),
        "embedder": EmbedderResource(),
    }
    if profile is Profile.DEMO:
        demo = demo_assets(demo_root())
        steps = min(limit or DEMO_TRAINING_STEPS, DEMO_TRAINING_STEPS)
        return {
            **shared,
            "llm": DemoLLMResource(local_model=str(demo.model_dir), default_max_tokens=64, **llm_settings()),
            "trainer": DemoTrainerResource(base_model=str(demo.model_dir), max_steps=steps, save_steps=steps),
            "eval_data": DemoEvalDataResource(data_dir=str(demo.eval_data_dir), manifests_dir=str(demo.manifests_dir)),
        }
    trainer_kind = os.environ.get(TRAINER_ENV, "local")
    return {
        **shared,
        "llm": LLMResource(local_model=generator_model(), api_key=api_key_setting(), **llm_settings()),
        "trainer": TrainerResource(kind=trainer_kind, base_model=base_model(), max_steps=limit or -1, api_key=api_key_setting()),
        "eval_data": EvalDataResource(),
    }


def asset_config_for(profile: Profile, limit: int | None = None) -> dict[str, dict[str, Any]]:
    """The asset config a profile changes: config class name -> field -> value."""
    config: dict[str, dict[str, Any]] = {}
    if profile is Profile.DEMO:
        # the tiny generator writes no valid JSON, so no variant passes: train on the seed questions
        config["ParaphraseConfig"] = {"max_attempts": 1, "max_tokens": 64}
        config["SynonymConfig"] = {"max_attempts": 1, "max_tokens": 64}
        # offline: no NLI model to load; the meaning check is the LLM judge's
        config["SemanticFilterConfig"] = {"min_variants_per_question": 0, "nli_model": ""}
        config["ScoringConfig"] = {"n_resamples": 200}
    if profile is Profile.DEMO or limit:
        # held-out-topic folds: the demo trains one per culture (the alignment's wiring), a limited run two of the seven (a first look)
        config["HeldoutTopicTrainingSetConfig"] = {"folds": list(QUICK_FOLDS[:1] if profile is Profile.DEMO else QUICK_FOLDS)}
    if limit:
        config["EvalDatasetConfig"] = {"sample_size": limit}
        config.setdefault("ParaphraseConfig", {})["max_questions"] = limit
    return config


def profile_default(config_class: str, field: str, default: T) -> T:
    """`default` (a value, or the library's pydantic field it derives from), or the same with what the
    current profile (and limit) sets for this config field as its default.

    Asset config classes take their defaults from here, so every way of launching (the command
    line, the launchpad, the UI's Materialize button, a backfill) runs with the profile's values,
    and the launchpad shows them as the defaults to change.
    """
    overrides = asset_config_for(current_profile(), current_limit()).get(config_class, {})
    if field not in overrides:
        return default
    if isinstance(default, FieldInfo):  # keep the library field's bounds and description
        return FieldInfo.merge_field_infos(default, default=overrides[field])  # type: ignore[return-value]
    return overrides[field]


# what each asset needs from the outside world, checked before a run starts
NEEDS_BY_ASSET = {
    "paraphrases": "generator", "question_templates": "generator", "synonym_variants": "generator",
    "culture_model": "base_model", "culturellm_one": "base_model", "ablation_model": "base_model", "heldout_topic_model": "base_model",
    "evaluation_data": "eval_data", "eval_dataset": "eval_data",
}


def preflight(profile: Profile, asset_names: set[str]) -> list[str]:
    """Problems that would stop a run of these assets later, found in seconds."""
    if profile is Profile.DEMO:
        return []
    needs = {NEEDS_BY_ASSET[name] for name in asset_names if name in NEEDS_BY_ASSET}
    problems: list[str] = []
    settings: dict[str, list[str]] = {}
    if "generator" in needs and not os.environ.get(API_KEY_ENV):
        settings.setdefault(generator_model(), []).append(
            f"{GENERATOR_ENV} to a local chat model directory, or {API_KEY_ENV} (and {BASE_URL_ENV}) for an endpoint"
        )
    if "base_model" in needs and os.environ.get(TRAINER_ENV, "local") == "local":
        settings.setdefault(base_model(), []).append(f"{BASE_MODEL_ENV} to a local base model directory")
    for name, fixes in settings.items():
        problem = model_problem(name)  # the loaders' own check, so the preflight and a run agree
        if problem:
            problems.append(f"{problem}; or set {'; and set '.join(fixes)}")
    if "eval_data" in needs and (problem := _eval_data_problem(EvalDataResource(), "evaluation_data" in asset_names)):
        problems.append(problem)
    return problems


def _eval_data_problem(eval_data: EvalDataResource, downloading: bool) -> str | None:
    """None when the datasets are in the directory the user set, already downloaded, or about to be and their archive can be fetched."""
    try:
        eval_data.data_path()
        return None
    except InputError as missing:
        if downloading and eval_data.user_data_path() is None:
            return check_reachable(eval_data.url())
        return str(missing)
