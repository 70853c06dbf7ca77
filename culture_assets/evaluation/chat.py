"""Score a chat API model (OpenAI, vLLM, Ollama ...): temperature 0, one constrained answer, strict parser.

The prompt lists the label verbalizers and asks for exactly one; with `structured=True` the
request also carries a JSON schema whose `answer` is an enum of them (structured outputs). The
parser accepts an answer only when, after normalising case, whitespace, quotes and a final full
stop, it IS one of the verbalizers the prompt showed. A raw label the prompt never showed ("0",
"OFF", "HS") is INVALID too: a model fine-tuned to answer in digits must not have them silently
mapped to classes. INVALID counts as wrong and its rate is reported (with the macro-F1 on valid
answers beside the strict figure), instead of being guessed from substrings as the reference
code did.
When the endpoint returns log-probabilities (`logprobs`, asked for unless structured outputs
are on), the decision comes from them instead of the text: each verbalizer scores the
log-probability of the likeliest first answer token that starts it and starts no other
verbalizer, and the best-scoring verbalizer wins; these scores also feed calibration and AUROC.
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


# alternatives asked for the first answer token (OpenAI's maximum)
TOP_LOGPROBS = 20
# the score of a verbalizer none of whose first tokens was among the alternatives
UNSEEN_LOGPROB = -100.0


def request_params(verbalizers: Sequence[str], structured: bool, max_tokens: int = 16, logprobs: bool = False) -> dict[str, Any]:
    params: dict[str, Any] = {"temperature": 0, "max_tokens": max_tokens}
    if structured:
        params["response_format"] = answer_schema(verbalizers)
    elif logprobs:
        # with structured outputs the first token is '{', which says nothing about the answer
        params |= {"logprobs": True, "top_logprobs": TOP_LOGPROBS}
    return params


def verbalizer_logprobs(top_logprobs: dict[str, float], verbalizers: Sequence[str]) -> list[float] | None:
    """Each verbalizer's score from the first answer token's alternatives; None when no
    alternative starts exactly one verbalizer (the decision then falls back to the text)."""
    targets = [normalise_answer(v) for v in verbalizers]
    scores = [UNSEEN_LOGPROB] * len(verbalizers)
    seen = False
    for token, logprob in top_logprobs.items():
        piece = token.strip().lower()
        owners = [k for k, target in enumerate(targets) if piece and target.startswith(piece)]
        if len(owners) == 1:
            scores[owners[0]] = max(scores[owners[0]], logprob)
            seen = True
    return scores if seen else None


def parse_answer(output: str | None, labels: Sequence[str], verbalizers: Sequence[str], structured: bool = False) -> str:
    """The label whose verbalizer the output is, or INVALID."""
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
        if answer == normalise_answer(verbalizer):
            return label
    return INVALID


def chat_runner(llm: LLMSettings, model: str, warehouse: Warehouse, log: Callable[[str], None] | None = None) -> ChatRunner:
    """The LLM layer's cached, budgeted, retrying runner, for `model` (a base or fine-tuned model id)
    rather than the configured default model; responses go to the warehouse's llm_cache."""
    return llm.runner(warehouse, log, generator=llm.api_generator(model))
