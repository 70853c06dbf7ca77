"""Checks on the augmented question set (pure functions; the asset turns them into AssetCheckResults)."""

from __future__ import annotations

import re

import polars as pl

from culture_assets.augment.semantic_filter import normalized_text

_NUMBERED_OPTION = re.compile(r"(?:^|\s)(\d{1,2})\.\s+[^\W\d]")


def questions_below_minimum(augmented: pl.DataFrame, question_ids: list[str], minimum: int) -> dict[str, int]:
    """Seed questions with fewer than `minimum` accepted variants (the seed row itself not counted)."""
    counts = dict(augmented.filter(pl.col("step") != "seed").group_by("question_id").len().iter_rows())
    return {q: int(counts.get(q, 0)) for q in question_ids if counts.get(q, 0) < minimum}


def rows_below_threshold(augmented: pl.DataFrame, threshold: float) -> pl.DataFrame:
    return augmented.filter(pl.col("similarity").is_null() | (pl.col("similarity") < threshold))


def exact_duplicates(augmented: pl.DataFrame) -> pl.DataFrame:
    """Rows whose normalised text repeats within the same question."""
    keyed = augmented.with_columns(pl.col("text").map_elements(normalized_text, return_dtype=pl.String).alias("normalized"))
    return keyed.filter(pl.struct("question_id", "normalized").is_duplicated()).select("sample_id", "question_id", "text")


def option_scale_problems(augmented: pl.DataFrame, questions: pl.DataFrame) -> list[str]:
    """The answer scale comes from the seed question: every row must map to a seed, and a variant must not
    list answer options of its own that differ from the seed's codes."""
    codes = {q: sorted(c) for q, c in questions.select("question_id", "codes").iter_rows()}
    problems = []
    for sample_id, question_id, text in augmented.select("sample_id", "question_id", "text").iter_rows():
        if question_id not in codes:
            problems.append(f"{sample_id}: question {question_id} is not a seed question")
            continue
        listed = sorted({int(code) for code in _NUMBERED_OPTION.findall(text)})
        if len(listed) >= 2 and listed != codes[question_id]:
            problems.append(f"{sample_id}: lists options {listed}, the seed scale of {question_id} is {codes[question_id]}")
    return problems
