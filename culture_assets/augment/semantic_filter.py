"""The semantic filter: keep variants close in meaning to their seed, and among those a diverse subset.

For each seed question: drop candidates below the cosine threshold, exact duplicates (after
normalising case, spaces and end punctuation) and near-duplicates of something already kept,
then pick up to `max_per_question` by standard maximal marginal relevance (MMR): each pick
maximises lambda * cos(candidate, seed) - (1 - lambda) * max cos(candidate, already kept).
The seed is not in the redundancy term: there, every candidate's redundancy would start at its
relevance, and the ranking would barely differ from taking the most similar ones (the reference
code), which keeps near-copies of the seed. Near-copies of the seed are rejected on their own.
Every question is handled on its own, so every seed is covered (stratified by question).

Before the selection, two vetoes act on the candidates above the threshold. The cross-question
guard rejects a variant nearer to another seed question than to its own (some WVS items are above
0.8 to each other, e.g. Q224-Q229): its answer would be ambiguous. The meaning check
(`equivalence`: NLI and/or LLM judge, both directions) rejects inversions that cosine cannot see.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Callable, Literal, Optional, Sequence

import numpy as np
import yaml
from pydantic import BaseModel, ConfigDict, Field

from culture_assets.augment.candidates import Candidate, SeedQuestion, seed_candidate
from culture_assets.augment.embedder import PACKAGED_ENCODER, Embedder
from culture_assets.augment.equivalence import DEFAULT_NLI_MODEL, MeaningCheck
from culture_assets.training.ablations import per_question_cap

DEFAULT_THRESHOLD = 0.8  # the paper's cut, for mean-pooled bert-base-uncased
PAPER_ENCODER = "bert-base-uncased"  # the paper's filter: this model, mean pooling, 0.8
CALIBRATION_FILE = Path(__file__).resolve().parents[1] / "data" / "filter_thresholds.yaml"


@dataclass(frozen=True)
class Threshold:
    value: float
    encoder: str
    source: str


def threshold_for(encoder_model: str) -> Threshold:
    """The cosine threshold calibrated for an encoder (culture_assets/data/filter_thresholds.yaml,
    written by bench/calibrate_threshold.py with its target and provenance); an encoder without an
    entry gets the paper's 0.8, said so in `source`."""
    encoder = encoder_model or PACKAGED_ENCODER
    table = yaml.safe_load(CALIBRATION_FILE.read_text(encoding="utf-8")) or {}
    entry = table.get(encoder)
    if entry is None:
        return Threshold(DEFAULT_THRESHOLD, encoder, f"the paper's cut, not calibrated for {encoder} (see bench/calibrate_threshold.py)")
    return Threshold(float(entry["threshold"]), encoder, f"{entry['target']} ({entry['provenance']})")


def resolved_threshold(configured: float | None, encoder: str) -> Threshold:
    """The configured cosine threshold, else the one calibrated for the encoder."""
    if configured is not None:
        return Threshold(configured, encoder or PACKAGED_ENCODER, "configured")
    return threshold_for(encoder)


# one setting shared by every step that compares a sentence with its seed
SIMILARITY_THRESHOLD = Field(default=None, ge=-1, le=1, description="Cosine to the seed; empty: the threshold calibrated for the embedder (data/filter_thresholds.yaml; the paper's 0.8 for bert-base-uncased).")

_END_PUNCTUATION = re.compile(r"[\s?.!…]+$")


def normalized_text(text: str) -> str:
    return _END_PUNCTUATION.sub("", " ".join(text.casefold().split()))


@dataclass(frozen=True)
class Decision:
    index: int
    accepted: bool
    reason: str | None


def below_threshold_reason(similarity: float, threshold: float) -> str:
    return f"similarity {similarity:.3f} below threshold {threshold:.2f}"


class FilterSettings(BaseModel):
    """The semantic filter's settings (the augmented_questions asset's config derives its fields from these).

    `similarity_threshold` and `max_per_question` left empty are resolved per run (`resolved`): the
    threshold calibrated for the encoder, and enough variants for the largest ablation size.
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    similarity_threshold: Optional[float] = SIMILARITY_THRESHOLD
    max_per_question: Optional[int] = Field(default=None, ge=1, description="Variants kept per seed question (the seed comes on top); empty: enough for the largest ablation size (1000 / questions).")
    mmr_lambda: float = Field(default=0.6, ge=0, le=1, description="1: most similar first; lower: more diverse.")
    near_duplicate: float = Field(default=0.98, gt=0, le=1, description="Cosine above which a variant repeats a kept one.")
    min_variants_per_question: int = Field(default=3, ge=0, description="The coverage check's minimum.")
    cross_question_guard: bool = Field(default=True, description="Reject a variant nearer to another seed question than to its own.")
    nli_model: str = Field(default=DEFAULT_NLI_MODEL, description="NLI cross-encoder (hub name or directory) for the two-way entailment check; empty: off.")
    nli_entailment_min: float = Field(default=0.5, ge=0, le=1, description="P(entailment) needed in each direction.")
    llm_judge: Literal["auto", "on", "off"] = Field(default="auto", description="Two-way LLM judge (paper's rubric); auto: on when the llm resource has an API key or a local model.")
    judge_pass_score: int = Field(default=4, ge=1, le=5, description="Rubric score needed in each direction (paper: 4).")

    def resolved(self, encoder: str, n_questions: int) -> "FilterSettings":
        """These settings with the threshold and the per-question cap filled in for this encoder and question count."""
        return self.model_copy(update={
            "similarity_threshold": resolved_threshold(self.similarity_threshold, encoder).value,
            "max_per_question": self.max_per_question or per_question_cap(n_questions),
        })


# cos(candidate j, candidate i) for each i of a list: how the selection asks for similarities,
# so the same decisions can be computed from one batch of embeddings or pair by pair
SimilarityTo = Callable[[int, Sequence[int]], np.ndarray]


def embedding_similarity(vectors: np.ndarray) -> SimilarityTo:
    """Similarities from L2-normalised embeddings already computed (one row per candidate)."""
    return lambda j, others: vectors[list(others)] @ vectors[j]


def select_diverse(
    seed_text: str,
    texts: Sequence[str],
    similarities: np.ndarray,
    similarity_to: SimilarityTo,
    settings: FilterSettings,
    ids: Sequence[str] | None = None,
) -> list[Decision]:
    """One decision per candidate of one seed question (`similarities`: each candidate's cosine to the seed);
    `settings` with its threshold and cap set (FilterSettings.resolved)."""
    threshold, cap = settings.similarity_threshold, settings.max_per_question
    if threshold is None or cap is None:
        raise ValueError("select_diverse needs FilterSettings with similarity_threshold and max_per_question set (see FilterSettings.resolved)")
    ids = list(ids) if ids is not None else [str(i) for i in range(len(texts))]
    decisions: dict[int, Decision] = {}
    seen = {normalized_text(seed_text): "the seed"}
    eligible: list[int] = []
    for i, text in enumerate(texts):
        key = normalized_text(text)
        if similarities[i] < threshold:
            decisions[i] = Decision(i, False, below_threshold_reason(float(similarities[i]), threshold))
        elif key in seen:
            decisions[i] = Decision(i, False, f"duplicate of {seen[key]}")
        else:
            seen[key] = ids[i]
            eligible.append(i)

    kept: list[int] = []
    remaining = []
    for i in eligible:
        if similarities[i] >= settings.near_duplicate:
            decisions[i] = Decision(i, False, f"near-duplicate (cosine {similarities[i]:.3f}) of the seed")
        else:
            remaining.append(i)
    # the highest cosine of each remaining candidate to a kept variant (none kept yet: 0)
    redundancy = {i: 0.0 for i in remaining}
    while remaining and len(kept) < cap:
        scores = [settings.mmr_lambda * similarities[i] - (1 - settings.mmr_lambda) * redundancy[i] for i in remaining]
        choice = remaining.pop(int(np.argmax(scores)))
        if redundancy[choice] >= settings.near_duplicate:
            decisions[choice] = Decision(choice, False, f"near-duplicate (cosine {redundancy[choice]:.3f}) of a kept sentence")
            continue
        kept.append(choice)
        decisions[choice] = Decision(choice, True, None)
        if remaining and len(kept) < cap:
            for i, similarity in zip(remaining, similarity_to(choice, remaining)):
                redundancy[i] = max(redundancy[i], float(similarity))
    for i in remaining:
        decisions[i] = Decision(i, False, f"not selected: {cap} more diverse variants kept for this question")
    return [decisions[i] for i in range(len(texts))]


def mean_pairwise_cosine(vectors: np.ndarray, groups: Sequence[str]) -> float:
    """The diversity figure of a selection: mean cosine between two kept variants of the same
    question (lower: more diverse), averaged over the pairs of every question."""
    total, pairs = 0.0, 0
    for group in set(groups):
        rows = vectors[[i for i, g in enumerate(groups) if g == group]]
        n = len(rows)
        if n > 1:
            gram = rows @ rows.T
            total += float((gram.sum() - np.trace(gram)) / 2)
            pairs += n * (n - 1) // 2
    return total / pairs if pairs else float("nan")


def filter_inputs(candidates: Sequence[Candidate], question_ids: set[str]) -> list[Candidate]:
    """The sentences the filter decides on: paraphrases and synonym variants their own step
    accepted, of the given seed questions, in the candidates' order."""
    return [c for c in candidates if c.step in ("paraphrase", "synonym") and c.accepted and c.question_id in question_ids]


def nearer_other_seed(own: np.ndarray, to_seeds: np.ndarray, own_column: np.ndarray, seed_ids: Sequence[str]) -> list[str | None]:
    """Per candidate: the guard's reason when some other seed is nearer than its own, else None.
    `to_seeds`: candidates x seeds cosines; `own_column`: each candidate's own seed's column."""
    others = to_seeds.copy()
    others[np.arange(len(own)), own_column] = -np.inf
    nearest = others.argmax(axis=1) if others.shape[1] > 1 else np.zeros(len(own), dtype=int)
    reasons: list[str | None] = []
    for i, k in enumerate(nearest):
        other = float(others[i, k]) if others.shape[1] > 1 else -np.inf
        reasons.append(None if other <= own[i] else f"nearer to another seed question ({seed_ids[k]}, cosine {other:.3f}) than to its own ({own[i]:.3f})")
    return reasons


def semantic_filter(
    seeds: Sequence[SeedQuestion],
    candidates: Sequence[Candidate],
    embedder: Embedder,
    settings: FilterSettings,
    meaning_check: MeaningCheck | None = None,
) -> list[Candidate]:
    """Final decision for every candidate (seed rows first, always kept): accepted = in the augmented set.

    Sentences rejected by their own step keep that reason; the rest go through the threshold, the
    cross-question guard, the meaning check (only on what is left above the threshold, so a judge
    is paid for nothing else), de-duplication and MMR selection per seed question. Each unique
    sentence is encoded once.
    """
    settings = settings.resolved(embedder.encoder, len(seeds))
    seed_rows = [seed_candidate(s) for s in seeds]
    known = {s.question_id for s in seeds}
    sentences = filter_inputs(candidates, known)
    texts = [s.text for s in seeds] + [c.text for c in sentences]
    vectors = embedder.encode(texts)
    column = {s.question_id: k for k, s in enumerate(seeds)}
    seed_text = {s.question_id: s.text for s in seeds}
    own_column = np.array([column[c.question_id] for c in sentences], dtype=int)
    to_seeds = vectors[len(seeds):] @ vectors[: len(seeds)].T
    own = to_seeds[np.arange(len(sentences)), own_column] if sentences else np.zeros(0)
    above = [i for i in range(len(sentences)) if own[i] >= settings.similarity_threshold]

    vetoed: dict[int, str] = {}
    if settings.cross_question_guard and above:
        guard = nearer_other_seed(own[above], to_seeds[above], own_column[above], [s.question_id for s in seeds])
        vetoed |= {i: reason for i, reason in zip(above, guard) if reason}
    if meaning_check is not None:
        # a copy of the seed needs no check: de-duplication rejects it
        open_rows = [i for i in above if i not in vetoed and normalized_text(sentences[i].text) != normalized_text(seed_text[sentences[i].question_id])]
        reasons = meaning_check([(seed_text[sentences[i].question_id], sentences[i].text) for i in open_rows])
        vetoed |= {i: reason for i, reason in zip(open_rows, reasons) if reason}

    candidate_vectors = vectors[len(seeds):]
    decided: dict[str, Candidate] = {}
    for i, reason in vetoed.items():
        decided[sentences[i].sample_id] = replace(sentences[i], similarity=float(own[i]), accepted=False, reason=reason)
    for seed in seeds:
        rows = [i for i, c in enumerate(sentences) if c.question_id == seed.question_id and i not in vetoed]
        if not rows:
            continue
        decisions = select_diverse(
            seed.text, [sentences[i].text for i in rows], own[rows], embedding_similarity(candidate_vectors[rows]), settings,
            ids=[sentences[i].sample_id for i in rows],
        )
        for i, decision in zip(rows, decisions):
            row = replace(sentences[i], similarity=float(own[i]), accepted=decision.accepted, reason=decision.reason)
            decided[row.sample_id] = row
    final = list(seed_rows)
    for c in candidates:
        if c.step == "template" or c.sample_id not in decided:
            final.append(c if c.step == "template" or not c.accepted else c.rejected("question is not among the seeds"))
        else:
            final.append(decided[c.sample_id])
    return final
