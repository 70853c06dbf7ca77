"""Survey questions translated into a culture's language for the native-language ablation.

The paper's native arm trains on the questions in the culture's language and finds that English
as a unified input does better. Here the whole user turn is translated: the question, its answer
options and the instruction (`training_set.prompt_texts`), the option numbers kept; the system
prompt is the same as in the English arm, so the arms differ in the language of the user turn
only. Each translation is made by the generator (cached like every LLM call) and checked by
translating it back to English: the cosine between the original and the back-translation is
recorded, so a poor translation is visible.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

from culture_assets.augment.embedder import Embedder
from culture_assets.augment.prompts import JSON_SYSTEM, Messages
from culture_assets.augment.responses import MalformedResponse, reply_object
from culture_assets.llm import ChatRequest, ChatRunner

PARAMS = {"temperature": 0, "max_tokens": 256, "response_format": {"type": "json_object"}}


def translation_messages(text: str, target_language: str) -> Messages:
    user = (
        f"Translate this survey item into {target_language}. Keep its meaning and its form (a statement stays a "
        f"statement, a question a question, an answer option or an instruction stays one; keep any numbers)."
        f'\n\nItem: "{text}"\n\nReply as JSON: {{"translation": "..."}}'
    )
    return [{"role": "system", "content": JSON_SYSTEM}, {"role": "user", "content": user}]


def parse_translation(content: str) -> str:
    value = reply_object(content).get("translation")
    if not isinstance(value, str) or not value.strip():
        raise MalformedResponse("field 'translation' must be a non-empty string")
    return " ".join(value.split())


@dataclass(frozen=True)
class Translation:
    text: str
    translation: str | None  # None: no usable reply (the reason says why)
    back_translation: str | None
    similarity: float | None  # cosine(original, back-translation)
    reason: str | None


def _translate(texts: Sequence[str], language: str, runner: ChatRunner) -> list[tuple[str | None, str | None]]:
    """(translation, reason) per text."""
    results: list[tuple[str | None, str | None]] = []
    for outcome in runner.run([ChatRequest.of(translation_messages(t, language), PARAMS) for t in texts]):
        try:
            results.append((parse_translation(outcome.content or ""), None))
        except MalformedResponse as error:
            results.append((None, f"unusable translation into {language}: {error}"))
    return results


def translate_questions(texts: Sequence[str], language: str, runner: ChatRunner, embedder: Embedder) -> dict[str, Translation]:
    """Each unique text translated into `language`, then back into English and compared with the original."""
    unique = list(dict.fromkeys(texts))
    forward = _translate(unique, language, runner)
    translated = [(text, t) for text, (t, _) in zip(unique, forward) if t is not None]
    backward = dict(zip((text for text, _ in translated), _translate([t for _, t in translated], "English", runner)))
    pairs = [(text, back) for text, (back, _) in backward.items() if back is not None]
    vectors = embedder.encode([p for pair in pairs for p in pair]) if pairs else None
    similarity = {text: float(vectors[2 * i] @ vectors[2 * i + 1]) for i, (text, _) in enumerate(pairs)} if pairs else {}
    result: dict[str, Translation] = {}
    for text, (translation, reason) in zip(unique, forward):
        back, back_reason = backward.get(text, (None, None))
        result[text] = Translation(text, translation, back, similarity.get(text), reason or back_reason)
    return result
