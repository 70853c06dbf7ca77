"""Strict parsing of the models' JSON replies. Anything off raises MalformedResponse with the reason."""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from typing import Any

from culture_assets.augment.prompts import SLOT_PATTERN

_FENCE = re.compile(r"^```(?:json)?\s*(.*?)\s*```$", re.DOTALL)


class MalformedResponse(ValueError):
    """The reply is not the JSON object the prompt asked for."""


def reply_object(content: str) -> dict[str, Any]:
    """The JSON object of a chat reply (a code fence around it tolerated); anything else raises MalformedResponse."""
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


def _object_of(field: str, items: dict[str, Any], min_items: int, max_items: int | None = None) -> dict[str, Any]:
    array = {"type": "array", "items": items, "minItems": min_items, **({"maxItems": max_items} if max_items else {})}
    return {"type": "object", "properties": {field: array}, "required": [field], "additionalProperties": False}


def step1_response_format(n_paraphrases: int, max_sentence_chars: int = MAX_SENTENCE_CHARS, min_sentence_chars: int = 1) -> dict[str, Any]:
    """The reply `parse_step1` reads, as a JSON schema, with as many paraphrases as the prompt asks for."""
    sentence = {"type": "string", "minLength": min_sentence_chars, "maxLength": max_sentence_chars}
    return _json_schema("paraphrases", _object_of("paraphrases", sentence, n_paraphrases, n_paraphrases))


def template_response_format(n_sentences: int) -> dict[str, Any]:
    """The reply `parse_templates` reads, as a JSON schema: one template per numbered step-1 sentence at most."""
    template = {
        "type": "object",
        "properties": {
            "sentence": {"type": "integer", "minimum": 1, "maximum": max(n_sentences, 1)},
            "template": {"type": "string", "minLength": 1, "maxLength": MAX_SENTENCE_CHARS},
        },
        "required": ["sentence", "template"],
        "additionalProperties": False,
    }
    return _json_schema("templates", _object_of("templates", template, 1, max(n_sentences, 1)))


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
    return _json_schema("fillings", _object_of("fillings", filling, 1))


def parse_step1(content: str) -> list[str]:
    """{"paraphrases": [str]} -> the paraphrases."""
    paraphrases = _strings(reply_object(content), "paraphrases")
    if not paraphrases:
        raise MalformedResponse("no paraphrases")
    return paraphrases


def slot_words(template: str) -> list[str]:
    """The words the template's slots replaced, in order."""
    return [" ".join(word.split()) for word in SLOT_PATTERN.findall(template)]


def template_problem(template: str, sentence: str) -> str | None:
    """Why a template cannot be used for its sentence, or None: it needs a slot, and putting each
    slot's recorded word back must give the sentence again (the slots say what they replaced)."""
    if not SLOT_PATTERN.search(template):
        return "template has no [x:word] slot"
    restored = SLOT_PATTERN.sub(lambda m: m.group(1), template)
    if " ".join(restored.casefold().split()) != " ".join(sentence.casefold().split()):
        return f"template does not restore its sentence (got {restored!r})"
    return None


@dataclass(frozen=True)
class TemplateReply:
    sentence_index: int  # 0-based, into the sentences of the request
    template: str


def parse_templates(content: str, n_sentences: int) -> tuple[list[TemplateReply], list[str]]:
    """{"templates": [{"sentence": n, "template": str}]} -> templates, and one reason per invalid entry."""
    entries = reply_object(content).get("templates")
    if not isinstance(entries, list) or not entries:
        raise MalformedResponse("field 'templates' must be a non-empty list")
    templates: list[TemplateReply] = []
    problems: list[str] = []
    for position, entry in enumerate(entries, start=1):
        number = entry.get("sentence") if isinstance(entry, dict) else None
        text = entry.get("template") if isinstance(entry, dict) else None
        if not isinstance(number, int) or not 1 <= number <= n_sentences:
            problems.append(f"template {position}: sentence {number!r} is not 1..{n_sentences}")
        elif not isinstance(text, str) or not text.strip():
            problems.append(f"template {position}: 'template' must be a non-empty string")
        else:
            templates.append(TemplateReply(number - 1, " ".join(text.split())))
    return templates, problems


_NEGATION = re.compile(r"\b(not|no|never|none|nobody|nothing|neither|nor|without)\b|n't\b", re.IGNORECASE)


def filling_problem(slots: list[str], replaced: list[str]) -> str | None:
    """A filling checked against the words its slots replaced: a synonym is another word, and does
    not bring in a negation the word did not have."""
    for new, old in zip(slots, replaced):
        if new.casefold() == old.casefold():
            return f"filling repeats the replaced word {old!r}"
        if _NEGATION.search(new) and not _NEGATION.search(old):
            return f"filling {new!r} negates the replaced word {old!r}"
    return None


@dataclass(frozen=True)
class Filling:
    template_index: int  # 0-based
    slots: list[str]


def parse_step2(content: str, slot_counts: list[int]) -> tuple[list[Filling], list[str]]:
    """{"fillings": [{"template": n, "slots": [str]}]} -> valid fillings, and one reason per invalid entry."""
    value = reply_object(content)
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
    fillings = iter(slots)
    return " ".join(SLOT_PATTERN.sub(lambda _: next(fillings), template).split())


def parse_judge_score(content: str) -> int:
    value = reply_object(content)
    score = value.get("score")
    if isinstance(score, bool) or not isinstance(score, int) or not 1 <= score <= 5:
        raise MalformedResponse(f"'score' must be an integer 1-5, got {score!r}")
    return score
