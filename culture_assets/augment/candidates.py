"""Candidate rows: every generated sentence, template or malformed reply, with its lineage."""

from __future__ import annotations

import hashlib
from dataclasses import asdict, dataclass, replace
from typing import Iterable, Sequence

import polars as pl

from culture_assets.errors import InputError

STEPS = ("seed", "paraphrase", "template", "synonym")

CANDIDATE_SCHEMA = {
    "sample_id": pl.String,
    "question_id": pl.String,
    "step": pl.String,
    "text": pl.String,
    "parent_id": pl.String,
    "model": pl.String,
    "prompt_hash": pl.String,
    "similarity": pl.Float64,
    "accepted": pl.Boolean,
    "reason": pl.String,
}


@dataclass(frozen=True)
class SeedQuestion:
    question_id: str
    text: str
    scale: str = ""  # "1. Strongly agree 2. Agree ...": shown to the generator so a statement stays a statement


@dataclass(frozen=True)
class Candidate:
    """`accepted`: passed its own step (valid reply, cosine above threshold; for a template: usable)."""

    sample_id: str
    question_id: str
    step: str
    text: str
    parent_id: str | None
    model: str | None
    prompt_hash: str | None
    similarity: float | None
    accepted: bool
    reason: str | None

    def rejected(self, reason: str) -> "Candidate":
        return replace(self, accepted=False, reason=reason)


def sample_id(question_id: str, step: str, text: str, salt: str = "") -> str:
    """Stable across runs: the same sentence for the same question and step has the same id."""
    return hashlib.sha256("\x1f".join((question_id, step, text, salt)).encode("utf-8")).hexdigest()[:16]


def seed_candidate(seed: SeedQuestion) -> Candidate:
    return Candidate(sample_id(seed.question_id, "seed", seed.text), seed.question_id, "seed", seed.text, None, None, None, 1.0, True, None)


def scale_texts(frame: pl.DataFrame) -> list[str]:
    """Each row's answer scale as "code. label" pairs, from the `codes` and `labels` columns when present."""
    if not {"codes", "labels"} <= set(frame.columns):
        return [""] * frame.height
    return [" ".join(f"{c}. {l}" for c, l in zip(codes or [], labels or [])) for codes, labels in frame.select("codes", "labels").iter_rows()]


def seeds_from_frame(frame: pl.DataFrame, source: str = "wvs_questions") -> list[SeedQuestion]:
    """Seed questions from a question table; an empty or missing text names its row and question id."""
    for column in ("question_id", "text"):
        if column not in frame.columns:
            raise InputError(source, f"missing column {column!r}; expected question_id and text")
    seeds: list[SeedQuestion] = []
    scales = scale_texts(frame)
    for row, (question_id, text) in enumerate(frame.select("question_id", "text").iter_rows(), start=1):
        if not str(question_id or "").strip():
            raise InputError(source, "is empty; every seed question needs an id like 'Q27'", row=row, field="question_id")
        if not str(text or "").strip():
            raise InputError(source, f"question {question_id} has an empty text; give the question sentence", row=row, field="text")
        seeds.append(SeedQuestion(str(question_id), " ".join(str(text).split()), scales[row - 1]))
    if not seeds:
        raise InputError(source, "has no seed questions")
    return seeds


def candidates_frame(candidates: Iterable[Candidate]) -> pl.DataFrame:
    return pl.DataFrame([asdict(c) for c in candidates], schema=CANDIDATE_SCHEMA)


def candidates_from_frame(frame: pl.DataFrame) -> list[Candidate]:
    return [Candidate(**row) for row in frame.select(list(CANDIDATE_SCHEMA)).iter_rows(named=True)]


def unique_by_id(candidates: Sequence[Candidate]) -> list[Candidate]:
    """First occurrence wins: the same sentence produced twice is one candidate."""
    first: dict[str, Candidate] = {}
    for candidate in candidates:
        first.setdefault(candidate.sample_id, candidate)
    return list(first.values())
