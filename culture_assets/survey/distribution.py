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

import numpy as np
import polars as pl
from pydantic import BaseModel, ConfigDict, Field

from culture_assets.cultures import Culture
from culture_assets.errors import InputError
from culture_assets.survey.questions import WVSQuestion


class Pooling(str, Enum):
    EQUAL_COUNTRY = "equal_country"
    RESPONDENTS = "respondents"


class SeedSurveySettings(BaseModel):
    """How a culture's answers are pooled (the seed_survey asset's config derives its fields from these)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    pooling: Pooling = Field(default=Pooling.EQUAL_COUNTRY, description="equal_country: each country of a culture weighs the same; respondents: every respondent does.")


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


def mode_stability(distribution: Sequence[float], n_valid: int, n_resamples: int = 2000, seed: int = 0) -> tuple[float, float]:
    """(margin, flip probability) of a question's modal answer.

    The margin is the mode's share minus the runner-up's. The flip probability is the share of
    multinomial resamples of `n_valid` respondents from the observed distribution whose mode (first
    code on ties, as the modal answer is chosen) is another code: how often sampling noise alone
    would change the training target. Design weights are not reflected in `n_valid`, so with
    weights the effective sample is smaller and the true flip probability somewhat higher.
    """
    shares = np.asarray(distribution, dtype=float)
    if n_valid <= 0 or shares.size == 0 or shares.sum() <= 0:
        return float("nan"), float("nan")
    shares = shares / shares.sum()
    ordered = np.sort(shares)[::-1]
    margin = float(ordered[0] - (ordered[1] if shares.size > 1 else 0.0))
    draws = np.random.default_rng(seed).multinomial(n_valid, shares, size=n_resamples)
    return margin, float((draws.argmax(axis=1) != int(np.argmax(shares))).mean())


def mode_stability_table(table: pl.DataFrame, n_resamples: int = 2000, seed: int = 0) -> pl.DataFrame:
    """question_id, mode_margin, mode_flip_probability for every answered question of a seed_survey table."""
    rows = [
        (question_id, *mode_stability(distribution, n_valid, n_resamples, seed))
        for question_id, distribution, n_valid in table.filter(~pl.col("never_asked")).select("question_id", "distribution", "n_valid").iter_rows()
    ]
    return pl.DataFrame(rows, schema={"question_id": pl.String, "mode_margin": pl.Float64, "mode_flip_probability": pl.Float64}, orient="row")


def unflagged_unanswered(table: pl.DataFrame) -> list[str]:
    """Questions with neither a modal answer nor the never-asked flag (must be empty)."""
    return table.filter(pl.col("modal_answer").is_null() & ~pl.col("never_asked"))["question_id"].to_list()
