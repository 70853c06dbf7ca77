"""The paper's quality analyses of the augmented questions: perplexity, diversity gain, LLM-as-judge."""

from __future__ import annotations

import math
import random
from dataclasses import dataclass
from typing import Sequence

import numpy as np
from pydantic import BaseModel, ConfigDict, Field

from culture_assets.augment.embedder import Embedder
from culture_assets.augment.equivalence import judge_scores
from culture_assets.llm import ChatRunner


class QualitySettings(BaseModel):
    """What the augmentation quality analysis measures (the augmentation_quality asset's config derives its fields from these)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    perplexity_model: str = Field(default="", description="Causal LM name or path; empty: the llm resource's local_model, else skipped.")
    perplexity_batch_size: int = Field(default=16, ge=1, description="Sentences scored per forward pass.")
    judge_sample: int = Field(default=0, ge=0, description="(seed, variant) pairs rated by the llm with the paper's rubric; 0: off.")
    judge_pass_score: int = Field(default=4, ge=1, le=5, description="Rubric score a pair needs to count as equivalent (paper: 4).")
    sample_seed: int = Field(default=0, description="Seed of the judged pairs' sample.")


@dataclass(frozen=True)
class Perplexity:
    corpus: float  # exp(total NLL / total predicted tokens): the token-level mean over the whole set
    mean_sentence: float  # mean over sentences of exp(each sentence's mean token NLL)
    tokens: int
    sentences: int


def perplexity(texts: Sequence[str], model_name_or_path: str, batch_size: int = 16, device: str = "cpu") -> Perplexity:
    """Perplexity of sentences under a causal LM, in padded batches.

    Each sentence is scored on its own (BOS + text); every real token after the first is
    predicted, padding is masked out of both numerator and token count, so the mean is over
    tokens, not over positions or batches.
    """
    import torch

    from culture_assets.model_loading import load_causal_lm, load_tokenizer

    if not texts:
        raise ValueError("perplexity of an empty set of sentences")
    tokenizer = load_tokenizer(model_name_or_path, field="perplexity_model", padding_side="right")
    model = load_causal_lm(model_name_or_path, field="perplexity_model", device=device, dtype=torch.float32)
    bos = [tokenizer.bos_token_id] if tokenizer.bos_token_id is not None else []
    total_nll, total_tokens, sentence_ppl = 0.0, 0, []
    for start in range(0, len(texts), batch_size):
        encoded = [bos + tokenizer(t, add_special_tokens=False)["input_ids"] for t in texts[start:start + batch_size]]
        width = max(len(ids) for ids in encoded)
        input_ids = torch.full((len(encoded), width), tokenizer.pad_token_id, dtype=torch.long)
        mask = torch.zeros((len(encoded), width), dtype=torch.long)
        for row, ids in enumerate(encoded):
            input_ids[row, : len(ids)] = torch.tensor(ids)
            mask[row, : len(ids)] = 1
        with torch.no_grad():
            logits = model(input_ids=input_ids.to(device), attention_mask=mask.to(device)).logits.float()
        log_probs = torch.log_softmax(logits[:, :-1], dim=-1)
        targets = input_ids[:, 1:].to(device)
        target_mask = mask[:, 1:].to(device).float()
        nll = -log_probs.gather(-1, targets.unsqueeze(-1)).squeeze(-1) * target_mask
        per_sentence_nll = nll.sum(dim=1)
        per_sentence_tokens = target_mask.sum(dim=1)
        total_nll += float(per_sentence_nll.sum())
        total_tokens += int(per_sentence_tokens.sum())
        sentence_ppl += [math.exp(float(n) / max(float(c), 1.0)) for n, c in zip(per_sentence_nll, per_sentence_tokens)]
    return Perplexity(math.exp(total_nll / max(total_tokens, 1)), float(np.mean(sentence_ppl)), total_tokens, len(texts))


def diversity_gain(seed_texts: Sequence[str], augmented_texts: Sequence[str], embedder: Embedder) -> float:
    """Mean over augmented sentences of the cosine distance to the nearest seed sentence.

    Bilmes' diversity gain of a new set over a base set (the measure the paper reports), in
    sentence-embedding space: N + M encodings in one batch, then one N x M matrix product.
    """
    if not seed_texts or not augmented_texts:
        raise ValueError("diversity gain needs seed and augmented sentences")
    vectors = embedder.encode(list(seed_texts) + list(augmented_texts))
    seeds, augmented = vectors[: len(seed_texts)], vectors[len(seed_texts):]
    nearest = (augmented @ seeds.T).max(axis=1)
    return float(np.mean(1.0 - nearest))


@dataclass(frozen=True)
class JudgeSummary:
    scores: list[int]
    invalid: int
    mean: float
    std: float
    pass_rate: float
    pass_score: int


def judge_equivalence(pairs: Sequence[tuple[str, str]], runner: ChatRunner, pass_score: int = 4) -> JudgeSummary:
    """Rate (seed, variant) pairs 1-5 with the paper's rubric; unparseable ratings are counted, not guessed."""
    rated = judge_scores(pairs, runner)
    scores = [s for s in rated if s is not None]
    invalid = len(rated) - len(scores)
    if not scores:
        return JudgeSummary([], invalid, float("nan"), float("nan"), float("nan"), pass_score)
    values = np.array(scores, dtype=float)
    return JudgeSummary(scores, invalid, float(values.mean()), float(values.std(ddof=1)) if len(scores) > 1 else 0.0, float((values >= pass_score).mean()), pass_score)


def sample_pairs(pairs: Sequence[tuple[str, str]], n: int, seed: int = 0) -> list[tuple[str, str]]:
    """A reproducible sample of (seed, variant) pairs, as the paper rated 100."""
    if len(pairs) <= n:
        return list(pairs)
    return random.Random(seed).sample(list(pairs), n)
