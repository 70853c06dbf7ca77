"""The meaning check: a variant is kept only if it says the same thing as its seed, both ways.

Sentence-embedding cosine cannot tell a statement from its inversion: with MiniLM, "men do not
make better political leaders than women do" is 0.97 from its seed and would be trained with the
seed's answer, i.e. the opposite attitude. Equivalence is mutual entailment, so each check asks in
both directions (seed -> variant and variant -> seed) and a variant must pass both:

- an NLI cross-encoder (sentence-transformers `CrossEncoder`, by hub name or directory): the
  entailment probability must reach `entailment_min` each way. The entailment label is found by
  name in the model's `id2label`, since NLI models order their labels differently
  (cross-encoder/nli-* use contradiction, entailment, neutral; others entailment first);
- an LLM judge with the paper's 1-5 rubric: the score must reach `pass_score` (paper: 4) each
  way; an unparseable or missing rating rejects (the variant is not known to be equivalent).

A check returns, per (seed, variant) pair, None (equivalent) or the reason it was rejected.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from typing import Callable, Sequence

import numpy as np

from culture_assets.augment.prompts import judge_messages
from culture_assets.augment.responses import MalformedResponse, parse_judge_score
from culture_assets.llm import ChatRequest, ChatRunner

DEFAULT_NLI_MODEL = "cross-encoder/nli-deberta-v3-small"
JUDGE_PARAMS = {"temperature": 0, "max_tokens": 16, "response_format": {"type": "json_object"}}

Pair = tuple[str, str]  # (seed, variant)
MeaningCheck = Callable[[Sequence[Pair]], list[str | None]]


@functools.lru_cache(maxsize=2)
def _load_cross_encoder(name_or_path: str, device: str):
    from sentence_transformers import CrossEncoder

    return CrossEncoder(name_or_path, device=device)


def entailment_label(id2label: dict[int, str], model: str) -> int:
    """The index of the entailment class, read by name from the model's config."""
    found = [int(i) for i, label in id2label.items() if str(label).lower().startswith("entail")]
    if len(found) != 1:
        raise ValueError(f"NLI model {model!r} has labels {dict(id2label)}: expected exactly one 'entailment' label")
    return found[0]


@dataclass(frozen=True)
class NliEquivalence:
    """Mutual entailment under an NLI cross-encoder, loaded on first use."""

    model: str = DEFAULT_NLI_MODEL
    entailment_min: float = 0.5
    device: str = "cpu"
    batch_size: int = 32

    def entailment(self, premises_hypotheses: Sequence[Pair]) -> np.ndarray:
        """P(entailment) of each (premise, hypothesis) pair."""
        encoder = _load_cross_encoder(self.model, self.device)
        index = entailment_label(encoder.model.config.id2label, self.model)
        probabilities = encoder.predict(list(premises_hypotheses), apply_softmax=True, batch_size=self.batch_size, show_progress_bar=False)
        return np.asarray(probabilities)[:, index]

    def __call__(self, pairs: Sequence[Pair]) -> list[str | None]:
        if not pairs:
            return []
        both = self.entailment(list(pairs) + [(variant, seed) for seed, variant in pairs])
        forward, backward = both[: len(pairs)], both[len(pairs):]
        reasons: list[str | None] = []
        for p_forward, p_backward in zip(forward, backward):
            failed = [f"{direction} p={p:.2f}" for direction, p in (("seed entails variant", p_forward), ("variant entails seed", p_backward)) if p < self.entailment_min]
            reasons.append(None if not failed else f"not equivalent by NLI ({self.model}): {'; '.join(failed)} below {self.entailment_min:.2f}")
        return reasons


def judge_scores(pairs: Sequence[Pair], runner: ChatRunner) -> list[int | None]:
    """The paper's 1-5 rating of each (A, B) pair; None where the reply is missing or not a rating."""
    outcomes = runner.run([ChatRequest.of(judge_messages(a, b), JUDGE_PARAMS) for a, b in pairs])
    scores: list[int | None] = []
    for outcome in outcomes:
        try:
            scores.append(parse_judge_score(outcome.content or ""))
        except MalformedResponse:
            scores.append(None)
    return scores


@dataclass(frozen=True)
class JudgeEquivalence:
    """The LLM judge asked both ways (seed as A, then the variant as A); replies are cached by the runner."""

    runner: ChatRunner
    pass_score: int = 4

    def __call__(self, pairs: Sequence[Pair]) -> list[str | None]:
        if not pairs:
            return []
        scores = judge_scores(list(pairs) + [(variant, seed) for seed, variant in pairs], self.runner)
        forward, backward = scores[: len(pairs)], scores[len(pairs):]
        reasons: list[str | None] = []
        for s_forward, s_backward in zip(forward, backward):
            shown = f"seed->variant {s_forward if s_forward is not None else 'no rating'}, variant->seed {s_backward if s_backward is not None else 'no rating'}"
            passed = all(s is not None and s >= self.pass_score for s in (s_forward, s_backward))
            reasons.append(None if passed else f"not equivalent by LLM judge ({self.runner.model}): {shown}, needs {self.pass_score} both ways")
        return reasons


def all_of(checks: Sequence[MeaningCheck]) -> MeaningCheck:
    """Checks in order; each later check sees only the pairs every earlier one passed (so a judge
    is not paid for a variant the NLI model already rejected). The first rejection is the reason."""

    def check(pairs: Sequence[Pair]) -> list[str | None]:
        reasons: list[str | None] = [None] * len(pairs)
        for one in checks:
            open_rows = [i for i, reason in enumerate(reasons) if reason is None]
            for i, reason in zip(open_rows, one([pairs[i] for i in open_rows])):
                reasons[i] = reason
        return reasons

    return check
