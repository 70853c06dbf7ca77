"""Hand-made augmented_questions rows (the augmentation stage's contract) for training tests."""

from __future__ import annotations

import hashlib

import polars as pl

from culture_assets.survey.questions import load_questions

PARAPHRASE_FRAMES = ("In your opinion: {}", "Tell me honestly. {}")
SYNONYM_FRAME = "Frankly, in your view: {}"


def _id(*parts: str) -> str:
    return hashlib.sha256("|".join(parts).encode()).hexdigest()[:16]


def augmented_questions(paraphrases: int = 2, synonyms: int = 1) -> pl.DataFrame:
    """Seed rows for all 50 questions plus `paraphrases` paraphrases and `synonyms` synonym variants each."""
    rows = []
    for question in load_questions():
        seed_id = _id(question.id, "seed")
        rows.append({"sample_id": seed_id, "question_id": question.id, "text": question.text, "step": "seed",
                     "parent_id": None, "similarity": 1.0, "model": None, "prompt_hash": None})
        for index, frame in enumerate(PARAPHRASE_FRAMES[:paraphrases]):
            para_id = _id(question.id, "paraphrase", str(index))
            rows.append({"sample_id": para_id, "question_id": question.id, "text": frame.format(question.text), "step": "paraphrase",
                         "parent_id": seed_id, "similarity": 0.9, "model": "hand", "prompt_hash": "p1"})
            if index < synonyms:
                rows.append({"sample_id": _id(question.id, "synonym", str(index)), "question_id": question.id,
                             "text": SYNONYM_FRAME.format(question.text), "step": "synonym", "parent_id": para_id,
                             "similarity": 0.85, "model": "hand", "prompt_hash": "p2"})
    return pl.DataFrame(rows, schema_overrides={"parent_id": pl.String, "model": pl.String, "prompt_hash": pl.String})
