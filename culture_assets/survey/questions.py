"""The WVS seed questions and their answer scales."""

from __future__ import annotations

import re
from importlib import resources
from pathlib import Path
from typing import Sequence

import polars as pl
import yaml
from pydantic import BaseModel, ConfigDict, Field

from culture_assets.errors import InputError

# "1. Strongly agree 2. agree" / "2. Agree 1. Hard to say 0. Disagree" / "1. Completely disagree 10. Completely agree"
_OPTION = re.compile(r"(?:^|\s)(\d{1,2})\.\s+(.+?)(?=\s+\d{1,2}\.\s|\s*$)")


class WVSQuestion(BaseModel):
    model_config = ConfigDict(frozen=True)

    id: str = Field(pattern=r"^Q\d+$")
    topic: str
    text: str = Field(min_length=1)
    options: dict[int, str] = Field(min_length=2, description="answer code -> label, in ascending code order")

    @property
    def valid_codes(self) -> list[int]:
        return sorted(self.options)

    @property
    def is_ordinal_ten_point(self) -> bool:
        return self.valid_codes == list(range(1, 11))

    def option_text(self) -> str:
        """The scale as shown to a model: '1. Strongly agree 2. Agree ...' in code order."""
        return " ".join(f"{code}. {label}" for code, label in sorted(self.options.items()))


def parse_options(text: str, source: str = "options") -> dict[int, str]:
    """Parse a WVS answer scale string into {code: label}.

    Codes may start at 0 and may be listed in descending order. A scale that names only its
    end points (1 ... 10) gets the unnamed codes in between, labelled with their number, since
    respondents could pick any of them.
    """
    found = [(int(code), label.strip()) for code, label in _OPTION.findall(text)]
    if len(found) < 2:
        raise InputError(source, f"expected at least two numbered options like '1. Agree 2. Disagree', got {text!r}")
    codes = [code for code, _ in found]
    duplicates = sorted({code for code in codes if codes.count(code) > 1})
    if duplicates:
        raise InputError(source, f"option code(s) {duplicates} appear more than once in {text!r}")
    options = dict(found)
    low, high = min(options), max(options)
    if high - low + 1 > len(options):
        if len(options) == 2:
            options = {code: options.get(code, str(code)) for code in range(low, high + 1)}
        else:
            raise InputError(source, f"option codes {sorted(options)} have gaps in {text!r}")
    return dict(sorted(options.items()))


def parse_questions(raw: object, source: str) -> list[WVSQuestion]:
    if not isinstance(raw, dict) or not isinstance(raw.get("questions"), list):
        raise InputError(source, "expected a mapping with a 'questions' list")
    questions: list[WVSQuestion] = []
    for index, item in enumerate(raw["questions"], start=1):
        entry = f"question {index}"
        if not isinstance(item, dict):
            raise InputError(source, "expected a mapping with id, topic, text, options", row=entry)
        for field in ("id", "topic", "text", "options"):
            if not str(item.get(field) or "").strip():
                raise InputError(source, "is missing or empty", row=entry, field=field)
        options = parse_options(str(item["options"]), f"{source}, {entry} ({item['id']})")
        questions.append(
            WVSQuestion(id=str(item["id"]), topic=str(item["topic"]), text=str(item["text"]).strip(), options=options)
        )
    ids = [q.id for q in questions]
    if len(set(ids)) != len(ids):
        raise InputError(source, f"question ids repeat: {sorted({i for i in ids if ids.count(i) > 1})}")
    return questions


def questions_table(questions: Sequence[WVSQuestion]) -> pl.DataFrame:
    """The questions as the `wvs_questions` asset stores them: one row each, the scale as parallel code/label lists."""
    return pl.DataFrame(
        {
            "question_id": [q.id for q in questions],
            "topic": [q.topic for q in questions],
            "text": [q.text for q in questions],
            "codes": [q.valid_codes for q in questions],
            "labels": [[q.options[c] for c in q.valid_codes] for q in questions],
        }
    )


def questions_from_table(table: pl.DataFrame) -> list[WVSQuestion]:
    """The inverse of `questions_table`: what assets reading `wvs_questions` work with."""
    return [
        WVSQuestion(id=row["question_id"], topic=row["topic"], text=row["text"], options=dict(zip(row["codes"], row["labels"])))
        for row in table.iter_rows(named=True)
    ]


def load_questions(path: Path | None = None) -> list[WVSQuestion]:
    """The seed questions: the packaged 50 WVS Wave 7 questions, or a YAML file of the same shape."""
    if path is None:
        text = resources.files("culture_assets.data").joinpath("wvs_questions.yaml").read_text(encoding="utf-8")
        source = "culture_assets/data/wvs_questions.yaml"
    else:
        if not path.is_file():
            raise InputError(str(path), "seed question file not found")
        text, source = path.read_text(encoding="utf-8"), str(path)
    return parse_questions(yaml.safe_load(text), source)
