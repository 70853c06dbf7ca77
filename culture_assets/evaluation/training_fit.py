"""Does a fine-tuned model reproduce its training answers better than its base model?

Each training conversation's question is asked again (system and user turns) and the answer
options (the question's valid WVS codes) are scored by log-likelihood; a hit is the trained
answer scoring highest. A LoRA that learnt nothing scores like the base model.
"""

from __future__ import annotations

import json
from typing import Mapping, Sequence

import polars as pl

from culture_assets.evaluation.loglik import LocalModel, choice_logliks

# enough rows to tell a trained model from its base, few enough to keep the check cheap
MAX_ROWS = 256


def training_rows(training_set: pl.DataFrame, max_rows: int = MAX_ROWS) -> pl.DataFrame:
    """The train split's (question_id, messages_json, answer), the first `max_rows` by sample id."""
    return training_set.filter(pl.col("split") == "train").sort("sample_id").head(max_rows).select("question_id", "messages_json", "answer")


def answer_accuracy(local: LocalModel, rows: pl.DataFrame, options: Mapping[str, Sequence[str]], batch_size: int = 16) -> float:
    """Share of rows whose trained answer is the model's likeliest option (NaN for no rows)."""
    if rows.is_empty():
        return float("nan")
    hits = 0
    for (question_id,), group in rows.group_by("question_id"):
        choices = [str(code) for code in options[question_id]]
        prompts = [json.loads(m)[:-1] for m in group["messages_json"].to_list()]  # without the assistant's answer
        best = choice_logliks(local, prompts, choices, batch_size).argmax(axis=1)
        hits += sum(choices[i] == answer for i, answer in zip(best, group["answer"].to_list()))
    return hits / rows.height
