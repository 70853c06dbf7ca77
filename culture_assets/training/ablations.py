"""The paper's ablations as named training-set variants, each trained like a main model.

- Sizes 50/150/500/1000 are generated samples on top of every answered seed question (the
  paper's definition). `size_N` trains a fixed number of optimiser steps, the same for every
  size (`fixed_optimizer_steps`), so a larger set is not also a longer training; `size_N_epochs`
  trains the configured epochs instead (the steps grow with the set), reported beside it.
- Steps: seed only / + step 1 (paraphrase) / + steps 1 and 2 (synonym). The two augmented arms
  are size-matched: both take as many generated samples as the paraphrase-only arm can fill, so
  they differ in where the samples come from, not how many there are (the reference: 500 vs 500).
- English vs native-language questions at full size (translated by the generator, the system
  prompt the same in both arms).
Every other setting comes from the base spec, so a variant differs from the main model in one thing only.
"""

from __future__ import annotations

import math
from typing import Any

from culture_assets.training.training_set import STEPS, TrainingSetSpec

ABLATION_SIZES = (50, 150, 500, 1000)
PARAPHRASE_STEPS = ("seed", "paraphrase")

ABLATIONS: dict[str, dict[str, Any]] = {
    **{f"size_{n}": {"size": n} for n in ABLATION_SIZES},
    **{f"size_{n}_epochs": {"size": n} for n in ABLATION_SIZES},
    "seed_only": {"size": None, "steps": ("seed",)},
    "plus_paraphrase": {"size": None, "steps": PARAPHRASE_STEPS, "size_matched_to": PARAPHRASE_STEPS},
    "plus_synonym": {"size": None, "steps": STEPS, "size_matched_to": PARAPHRASE_STEPS},
    "prompt_english": {"size": None, "prompt_language": "english"},
    # the paper's native arm: questions in the culture's language, the same (English) system prompt
    "prompt_native": {"size": None, "prompt_language": "english", "question_language": "native"},
}


def ablation_spec(variant: str, base: TrainingSetSpec) -> TrainingSetSpec:
    if variant not in ABLATIONS:
        raise KeyError(f"unknown ablation {variant!r}; known: {sorted(ABLATIONS)}")
    return TrainingSetSpec.model_validate({**base.model_dump(), **ABLATIONS[variant]})


def trains_fixed_steps(variant: str) -> bool:
    """The size arms compared at a fixed number of optimiser steps (not the `_epochs` ones)."""
    return variant.startswith("size_") and not variant.endswith("_epochs")


def fixed_optimizer_steps(answered_seeds: int, samples_per_step: int, epochs: float) -> int:
    """The optimiser steps every fixed-step size arm trains: what the largest size takes at the
    configured epochs, so the largest set sees each sample `epochs` times and the smaller ones
    repeat theirs more often."""
    return max(1, math.ceil(epochs * math.ceil((answered_seeds + max(ABLATION_SIZES)) / max(samples_per_step, 1))))


def per_question_cap(n_questions: int, heldout: int = TrainingSetSpec().heldout_count) -> int:
    """Variants to keep per seed question so the largest size can be filled from the trained
    questions when a culture answered every question (fewer answered: the size is reported unfillable)."""
    return math.ceil(max(ABLATION_SIZES) / max(n_questions - heldout, 1))
