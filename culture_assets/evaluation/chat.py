"""Score a chat API model (OpenAI, vLLM, Ollama ...): temperature 0, one constrained answer, strict parser.

The prompt lists the label verbalizers and asks for exactly one; with `structured=True` the
request also carries a JSON schema whose `answer` is an enum of them (structured outputs). The
parser accepts an answer only when, after normalising case, whitespace, quotes and a final full
stop, it IS one verbalizer (or its raw label). Anything else is INVALID: it counts as wrong and
its rate is reported, instead of being guessed from substrings as the reference code did.
"""

from __future__ import annotations

import asyncio
import json
from typing import Any, Awaitable, Callable, Sequence

from culture_assets.evaluation.manifest import normalise_answer
from culture_assets.evaluation.metrics import INVALID

Messages = list[dict[str, str]]
# The one call the scorer makes: (model, messages, extra request params) -> the reply text.
ChatComplete = Callable[[str, Messages, dict[str, Any]], Awaitable[str]]


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


def openai_chat(base_url: str | None, api_key: str | None, timeout_s: float = 60.0, max_retries: int = 5) -> ChatComplete:
    """A ChatComplete on the plain `openai` AsyncOpenAI client (retries 429/5xx with backoff itself).

    The project's cached, budgeted LLM layer (culture_assets/llm, issue 4) can replace this by
    providing the same callable.
    """
    import os

    from openai import AsyncOpenAI

    # a local vLLM / Ollama server needs no key; the client insists on one
    key = api_key or os.environ.get("OPENAI_API_KEY") or "not-needed"
    # the client's connection pool belongs to one event loop, and each task runs in its own loop
    clients: dict[int, AsyncOpenAI] = {}

    async def complete(model: str, messages: Messages, params: dict[str, Any]) -> str:
        loop = id(asyncio.get_running_loop())
        if loop not in clients:
            clients.clear()
            clients[loop] = AsyncOpenAI(base_url=base_url or None, api_key=key, timeout=timeout_s, max_retries=max_retries)
        response = await clients[loop].chat.completions.create(model=model, messages=messages, **params)
        return response.choices[0].message.content or ""

    return complete


async def ask_all(complete: ChatComplete, model: str, prompts: Sequence[Messages], params: dict[str, Any], concurrency: int = 8) -> list[str | None]:
    """Every prompt's reply, at most `concurrency` in flight; a failed request yields None (invalid)."""
    gate = asyncio.Semaphore(concurrency)

    async def one(messages: Messages) -> str | None:
        async with gate:
            try:
                return await complete(model, messages, params)
            except Exception:  # noqa: BLE001 - after the client's retries, a failed call is an invalid answer, reported as such
                return None

    return list(await asyncio.gather(*(one(m) for m in prompts)))
