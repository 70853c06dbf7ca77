"""Run profiles: which models, data and limits the resources use.

- `default`: a small open instruct model from the Hugging Face hub as generator and base model
  (CULTURE_ASSETS_GENERATOR_MODEL / CULTURE_ASSETS_BASE_MODEL override it with a name or a local
  directory), an OpenAI-compatible endpoint for generation when OPENAI_API_KEY is set, the
  evaluation datasets from CULTURE_ASSETS_EVAL_DATA.
- `demo`: offline wiring demo: a tiny random model built locally and one synthetic evaluation
  set per culture. It runs the whole graph in minutes on 2 CPU cores; its scores mean nothing.

The profile is read from CULTURE_ASSETS_PROFILE when the definitions load, so `dagster dev`
and `culture-assets run` see the same resources.
"""

from __future__ import annotations

import os
from enum import Enum
from typing import Any

from culture_assets.augment.resource import EmbedderResource
from culture_assets.cultures import load_registry
from culture_assets.demo import prepare_demo
from culture_assets.evaluation.loader import EVAL_DATA_ENV
from culture_assets.evaluation.resource import EvalDataResource
from culture_assets.io_manager import ArtifactIOManager
from culture_assets.llm import LLMResource
from culture_assets.llm.resource import API_KEY_ENV, BASE_URL_ENV
from culture_assets.model_loading import model_problem
from culture_assets.resources import SurveySourceResource, WarehouseResource
from culture_assets.settings import data_home
from culture_assets.training.resource import BASE_MODEL_ENV, TrainerResource

PROFILE_ENV = "CULTURE_ASSETS_PROFILE"
LIMIT_ENV = "CULTURE_ASSETS_LIMIT"
GENERATOR_ENV = "CULTURE_ASSETS_GENERATOR_MODEL"
TRAINER_ENV = "CULTURE_ASSETS_TRAINER"
DEFAULT_HUB_MODEL = "Qwen/Qwen2.5-0.5B-Instruct"
DEMO_TRAINING_STEPS = 6


class Profile(str, Enum):
    DEFAULT = "default"
    DEMO = "demo"


def current_profile() -> Profile:
    raw = os.environ.get(PROFILE_ENV, Profile.DEFAULT.value)
    try:
        return Profile(raw)
    except ValueError:
        raise SystemExit(f"{PROFILE_ENV}={raw!r}: expected one of {[p.value for p in Profile]}") from None


def current_limit() -> int | None:
    raw = os.environ.get(LIMIT_ENV, "")
    if raw and (not raw.isdigit() or int(raw) < 1):
        raise SystemExit(f"{LIMIT_ENV}={raw!r}: expected a positive integer")
    return int(raw) if raw else None


def generator_model() -> str:
    return os.environ.get(GENERATOR_ENV) or DEFAULT_HUB_MODEL


def base_model() -> str:
    return os.environ.get(BASE_MODEL_ENV) or DEFAULT_HUB_MODEL


def resources_for(profile: Profile, limit: int | None = None) -> dict[str, Any]:
    """The Dagster resources of a profile; `limit` caps training steps (a laptop-sized run)."""
    shared: dict[str, Any] = {
        "io_manager": ArtifactIOManager(),
        "warehouse": WarehouseResource(),
        "survey_source": SurveySourceResource(),
        "embedder": EmbedderResource(),
    }
    if profile is Profile.DEMO:
        demo = prepare_demo(data_home() / "demo", load_registry().keys)
        steps = min(limit or DEMO_TRAINING_STEPS, DEMO_TRAINING_STEPS)
        return {
            **shared,
            "llm": LLMResource(local_model=str(demo.model_dir), default_max_tokens=64),
            "trainer": TrainerResource(base_model=str(demo.model_dir), max_steps=steps, save_steps=steps),
            "eval_data": EvalDataResource(data_dir=str(demo.eval_data_dir), manifests_dir=str(demo.manifests_dir)),
        }
    trainer_kind = os.environ.get(TRAINER_ENV, "local")
    return {
        **shared,
        "llm": LLMResource(local_model=generator_model()),
        "trainer": TrainerResource(kind=trainer_kind, base_model=base_model(), max_steps=limit or -1),
        "eval_data": EvalDataResource(),
    }


def asset_config_for(profile: Profile, limit: int | None = None) -> dict[str, dict[str, Any]]:
    """Per-op config a run of this profile uses (op name -> config)."""
    config: dict[str, dict[str, Any]] = {}
    if profile is Profile.DEMO:
        # the tiny generator writes no valid JSON, so no variant passes: train on the seed questions
        config["paraphrases_and_templates"] = {"max_attempts": 1, "max_tokens": 64}
        config["synonym_variants"] = {"max_attempts": 1, "max_tokens": 64}
        config["augmented_questions"] = {"min_variants_per_question": 0}
        config["culture_scores"] = {"n_resamples": 200}
    if limit:
        config["eval_dataset"] = {"sample_size": limit}
    return config


# what each asset needs from the outside world, checked before a run starts
NEEDS_BY_ASSET = {
    "paraphrases": "generator", "question_templates": "generator", "synonym_variants": "generator",
    "culture_model": "base_model", "culturellm_one": "base_model", "ablation_model": "base_model",
    "eval_dataset": "eval_data",
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
    if "eval_data" in needs and not os.environ.get(EVAL_DATA_ENV):
        problems.append(f"no evaluation datasets: download them and set {EVAL_DATA_ENV} (check with `python -m culture_assets.evaluation.verify --data-dir DIR`)")
    return problems
