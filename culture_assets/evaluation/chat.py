"""Score a chat API model (OpenAI, vLLM, Ollama ...): temperature 0, one constrained answer, strict parser.

The prompt lists the label verbalizers and asks for exactly one; with `structured=True` the
request also carries a JSON schema whose `answer` is an enum of them (structured outputs). The
parser accepts an answer only when, after normalising case, whitespace, quotes and a final full
stop, it IS one verbalizer (or its raw label). Anything else is INVALID: it counts as wrong and
its rate is reported, instead of being guessed from substrings as the reference code did.
Requests go through the LLM layer (culture_assets.llm): concurrency, retries, budget and the
llm_cache table, so a re-run or a resumed run sends nothing twice.
"""

from __future__ import annotations

import json
from typing import Any, Callable, Sequence

from culture_assets.evaluation.manifest import normalise_answer
from culture_assets.evaluation.metrics import INVALID
from culture_assets.llm import ChatRunner
from culture_assets.llm.settings import LLMSettings
from culture_assets.store import Warehouse


def answer_schema(verbalizers: Sequence[str]) -> dict[str, Any]:
    return {
        "type": "json_schema",
        "json_schema": {
            "name": "answer",
            "strict": True,
            "schema": {
                "type": "object",
                "properties": {"answer": {"type": "string", "enum": list(verbalizers)}},
                "required": ["answer"],
                "additionalProperties": False,
            },
        },
    }


def request_params(verbalizers: Sequence[str], structured: bool, max_tokens: int = 16) -> dict[str, Any]:
    params: dict[str, Any] = {"temperature": 0, "max_tokens": max_tokens}
    if structured:
        params["response_format"] = answer_schema(verbalizers)
    return params


def parse_answer(output: str | None, labels: Sequence[str], verbalizers: Sequence[str], structured: bool = False) -> str:
    """The label the output names, or INVALID."""
    if output is None:
        return INVALID
    text = output
    if structured:
        try:
            parsed = json.loads(output)
        except json.JSONDecodeError:
            return INVALID
        if not isinstance(parsed, dict) or not isinstance(parsed.get("answer"), str):
            return INVALID
        text = parsed["answer"]
    answer = normalise_answer(text)
    for label, verbalizer in zip(labels, verbalizers):
        if answer in (normalise_answer(verbalizer), normalise_answer(label)):
            return label
    return INVALID


def chat_runner(llm: LLMSettings, model: str, warehouse: Warehouse, log: Callable[[str], None] | None = None) -> ChatRunner:
    """The LLM layer's cached, budgeted, retrying runner, for `model` (a base or fine-tuned model id)
    rather than the configured default model; responses go to the warehouse's llm_cache."""
    return llm.runner(warehouse, log, generator=llm.api_generator(model))
