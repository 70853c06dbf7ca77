"""A culture's answer to each seed question, computed the way survey statistics should be.

- Codes outside the question's scale (WVS negatives: don't know, no answer, not asked, missing)
  are missing data: they are dropped, never averaged in.
- Shares use the WVS weight when the source had one, and are pooled over the culture's countries,
  each country counting equally by default (a culture is not defined by which country sampled more
  people) or by respondents as an option.
- A question with no valid answer in any of the culture's countries is flagged `never_asked` and
  gets no label.
"""

from __future__ import annotations

from enum import Enum
from typing import Sequence

import polars as pl

from culture_assets.cultures import Culture
from culture_assets.errors import InputError
from culture_assets.survey.questions import WVSQuestion


class Pooling(str, Enum):
    EQUAL_COUNTRY = "equal_country"
    RESPONDENTS = "respondents"


SEED_SURVEY_SCHEMA = {
    "culture": pl.String,
    "question_id": pl.String,
    "topic": pl.String,
    "codes": pl.List(pl.Int64),
    "distribution": pl.List(pl.Float64),
    "modal_answer": pl.Int64,
    "mode_tied": pl.Boolean,
    "n_valid": pl.Int64,
    "n_missing": pl.Int64,
    "countries_answered": pl.List(pl.String),
    "never_asked": pl.Boolean,
    "weighted": pl.Boolean,
    "pooling": pl.String,
    "reference_label": pl.Int64,
}


def check_countries(counts: pl.DataFrame, culture: Culture, source: str) -> None:
    present = set(counts["country_alpha"].unique().to_list())
    unknown = [alpha for alpha in culture.country_alphas if alpha not in present]
    if unknown:
        raise InputError(
            source,
            f"culture {culture.key!r} names country {unknown} which the survey does not contain "
            f"(countries present: {sorted(present)}); fix the registry entry or the survey source",
            field="countries",
        )


def reference_label(codes: Sequence[int], respondents: Sequence[int]) -> int | None:
    """The reference implementation's label: int() of the mean of all raw codes, missing codes included.

    Kept only to report how often it disagrees with the modal valid answer.
    """
    total = sum(respondents)
    if total == 0:
        return None
    return int(sum(c * n for c, n in zip(codes, respondents)) / total)


def question_answer(
    counts: pl.DataFrame, question: WVSQuestion, culture: Culture, pooling: Pooling
) -> dict[str, object]:
    """One row of `seed_survey`: the pooled distribution over the question's valid codes."""
    rows = counts.filter(pl.col("question_id") == question.id)
    valid_codes = question.valid_codes
    valid = rows.filter(pl.col("code").is_in(valid_codes))
    per_country = valid.group_by("country_alpha").agg(pl.col("weighted").sum().alias("total"))
    answered = sorted(per_country.filter(pl.col("total") > 0)["country_alpha"].to_list())
    shares = {code: 0.0 for code in valid_codes}
    if answered:
        if pooling is Pooling.EQUAL_COUNTRY:
            normalised = valid.join(per_country, on="country_alpha").filter(pl.col("total") > 0)
            normalised = normalised.with_columns((pl.col("weighted") / pl.col("total") / len(answered)).alias("share"))
        else:
            grand_total = float(per_country["total"].sum())
            normalised = valid.with_columns((pl.col("weighted") / grand_total).alias("share"))
        for code, share in normalised.group_by("code").agg(pl.col("share").sum()).iter_rows():
            shares[int(code)] = float(share)
    distribution = [shares[code] for code in valid_codes]
    best = max(distribution) if answered else None
    modal = [code for code, share in zip(valid_codes, distribution) if best is not None and share == best]
    return {
        "culture": culture.key,
        "question_id": question.id,
        "topic": question.topic,
        "codes": valid_codes,
        "distribution": distribution if answered else None,
        # ties go to the lowest code so the label is deterministic; `mode_tied` reports them
        "modal_answer": modal[0] if modal else None,
        "mode_tied": len(modal) > 1,
        "n_valid": int(valid["respondents"].sum()),
        "n_missing": int(rows.filter(~pl.col("code").is_in(valid_codes))["respondents"].sum()),
        "countries_answered": answered,
        "never_asked": not answered,
        "weighted": bool((rows["weight_source"] != "none").any()),
        "pooling": pooling.value,
        "reference_label": reference_label(rows["code"].to_list(), rows["respondents"].to_list()),
    }


def seed_survey_table(
    counts: pl.DataFrame, questions: Sequence[WVSQuestion], culture: Culture, pooling: Pooling, source: str
) -> pl.DataFrame:
    """Per question: distribution over valid codes, mode, n valid, never-asked flag."""
    check_countries(counts, culture, source)
    mine = counts.filter(pl.col("country_alpha").is_in(list(culture.country_alphas)))
    rows = [question_answer(mine, question, culture, pooling) for question in questions]
    return pl.DataFrame(rows, schema=SEED_SURVEY_SCHEMA)


def unflagged_unanswered(table: pl.DataFrame) -> list[str]:
    """Questions with neither a modal answer nor the never-asked flag (must be empty)."""
    return table.filter(pl.col("modal_answer").is_null() & ~pl.col("never_asked"))["question_id"].to_list()
