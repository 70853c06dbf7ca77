"""The paper's ablations as named training-set variants, each trained like a main model.

Sizes 50/150/500/1000 (all augmentation steps); seed only / + step 1 (paraphrase) / + steps 1
and 2 (synonym) at full size; English vs native-language system prompt at full size. Every other
setting comes from the base spec, so a variant differs from the main model in one thing only.
"""

from __future__ import annotations

from typing import Any

from culture_assets.training.training_set import STEPS, TrainingSetSpec

ABLATIONS: dict[str, dict[str, Any]] = {
    "size_50": {"size": 50},
    "size_150": {"size": 150},
    "size_500": {"size": 500},
    "size_1000": {"size": 1000},
    "seed_only": {"size": None, "steps": ("seed",)},
    "plus_paraphrase": {"size": None, "steps": ("seed", "paraphrase")},
    "plus_synonym": {"size": None, "steps": STEPS},
    "prompt_english": {"size": None, "prompt_language": "english"},
    "prompt_native": {"size": None, "prompt_language": "native"},
}


def ablation_spec(variant: str, base: TrainingSetSpec) -> TrainingSetSpec:
    if variant not in ABLATIONS:
        raise KeyError(f"unknown ablation {variant!r}; known: {sorted(ABLATIONS)}")
    return TrainingSetSpec.model_validate({**base.model_dump(), **ABLATIONS[variant]})
