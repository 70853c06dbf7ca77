"""Strict parsing of the models' JSON replies. Anything off raises MalformedResponse with the reason."""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from typing import Any

from culture_assets.augment.prompts import SLOT

_FENCE = re.compile(r"^```(?:json)?\s*(.*?)\s*```$", re.DOTALL)


class MalformedResponse(ValueError):
    """The reply is not the JSON object the prompt asked for."""


def _object(content: str) -> dict[str, Any]:
    text = content.strip()
    fenced = _FENCE.match(text)  # many chat models wrap JSON in a code fence even when told not to
    if fenced:
        text = fenced.group(1)
    try:
        value = json.loads(text)
    except json.JSONDecodeError as exc:
        raise MalformedResponse(f"not JSON ({exc.msg} at char {exc.pos})") from None
    if not isinstance(value, dict):
        raise MalformedResponse(f"expected a JSON object, got {type(value).__name__}")
    return value


def _strings(value: dict[str, Any], field: str) -> list[str]:
    items = value.get(field)
    if not isinstance(items, list) or not all(isinstance(item, str) for item in items):
        raise MalformedResponse(f"field {field!r} must be a list of strings")
    return [" ".join(item.split()) for item in items if item.strip()]


# Longest sentence a reply may hold: far above any survey question, low enough that a model
# that never closes a string still ends within the token budget.
MAX_SENTENCE_CHARS = 400


def _json_schema(name: str, schema: dict[str, Any]) -> dict[str, Any]:
    """An OpenAI-style `response_format`: endpoints that enforce schemas and the local generator decode to it."""
    return {"type": "json_schema", "json_schema": {"name": name, "schema": schema}}


def step1_response_format(n_paraphrases: int, n_templates: int, max_sentence_chars: int = MAX_SENTENCE_CHARS, min_sentence_chars: int = 1) -> dict[str, Any]:
    """The reply `parse_step1` reads, as a JSON schema, with as many paraphrases and templates as the prompt asks for."""
    sentences = {"type": "string", "minLength": min_sentence_chars, "maxLength": max_sentence_chars}
    return _json_schema("paraphrases", {
        "type": "object",
        "properties": {
            "paraphrases": {"type": "array", "items": sentences, "minItems": n_paraphrases, "maxItems": n_paraphrases},
            "templates": {"type": "array", "items": sentences, "minItems": n_templates, "maxItems": n_templates},
        },
        "required": ["paraphrases", "templates"],
        "additionalProperties": False,
    })


def step2_response_format(n_templates: int) -> dict[str, Any]:
    """The reply `parse_step2` reads, as a JSON schema."""
    filling = {
        "type": "object",
        "properties": {
            "template": {"type": "integer", "minimum": 1, "maximum": max(n_templates, 1)},
            "slots": {"type": "array", "items": {"type": "string", "minLength": 1, "maxLength": MAX_SENTENCE_CHARS // 4}, "minItems": 1},
        },
        "required": ["template", "slots"],
        "additionalProperties": False,
    }
    return _json_schema("fillings", {
        "type": "object",
        "properties": {"fillings": {"type": "array", "items": filling, "minItems": 1}},
        "required": ["fillings"],
        "additionalProperties": False,
    })


@dataclass(frozen=True)
class Step1Reply:
    paraphrases: list[str]
    templates: list[str]
    invalid_templates: list[str]


def parse_step1(content: str) -> Step1Reply:
    """{"paraphrases": [str], "templates": [str]}; a template without a [x] slot is kept aside as invalid."""
    value = _object(content)
    paraphrases = _strings(value, "paraphrases")
    templates = _strings(value, "templates") if "templates" in value else []
    if not paraphrases:
        raise MalformedResponse("no paraphrases")
    return Step1Reply(
        paraphrases=paraphrases,
        templates=[t for t in templates if SLOT in t],
        invalid_templates=[t for t in templates if SLOT not in t],
    )


@dataclass(frozen=True)
class Filling:
    template_index: int  # 0-based
    slots: list[str]


def parse_step2(content: str, slot_counts: list[int]) -> tuple[list[Filling], list[str]]:
    """{"fillings": [{"template": n, "slots": [str]}]} -> valid fillings, and one reason per invalid entry."""
    value = _object(content)
    entries = value.get("fillings")
    if not isinstance(entries, list) or not entries:
        raise MalformedResponse("field 'fillings' must be a non-empty list")
    fillings: list[Filling] = []
    problems: list[str] = []
    for position, entry in enumerate(entries, start=1):
        if not isinstance(entry, dict):
            problems.append(f"filling {position}: expected an object")
            continue
        number, slots = entry.get("template"), entry.get("slots")
        if not isinstance(number, int) or not 1 <= number <= len(slot_counts):
            problems.append(f"filling {position}: template {number!r} is not 1..{len(slot_counts)}")
        elif not isinstance(slots, list) or not all(isinstance(s, str) and s.strip() for s in slots):
            problems.append(f"filling {position}: 'slots' must be a list of non-empty strings")
        elif len(slots) != slot_counts[number - 1]:
            problems.append(f"filling {position}: {len(slots)} slots for a template with {slot_counts[number - 1]}")
        else:
            fillings.append(Filling(number - 1, [" ".join(s.split()) for s in slots]))
    if not fillings:
        raise MalformedResponse("no usable filling: " + "; ".join(problems))
    return fillings, problems


def fill_template(template: str, slots: list[str]) -> str:
    parts = template.split(SLOT)
    sentence = parts[0] + "".join(slot + rest for slot, rest in zip(slots, parts[1:]))
    return " ".join(sentence.split())


def parse_judge_score(content: str) -> int:
    value = _object(content)
    score = value.get("score")
    if isinstance(score, bool) or not isinstance(score, int) or not 1 <= score <= 5:
        raise MalformedResponse(f"'score' must be an integer 1-5, got {score!r}")
    return score
