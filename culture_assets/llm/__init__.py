"""The LLM layer: an async, cached, budgeted chat client for any OpenAI-compatible endpoint.

Public API (stable; the evaluation stage builds on it):

    from culture_assets.llm import LLMSettings, ChatRunner, ChatRequest, ChatOutcome

    runner = LLMSettings(model=...).runner(warehouse, log=print)   # in Dagster: the "llm" resource's .runner(...)
    outcomes = runner.run([ChatRequest.of(messages, {"temperature": 0, "max_tokens": 8}, tag=row_id), ...])
    for outcome in outcomes:             # same order as the requests
        outcome.request.tag; outcome.status in {"ok", "cached", "budget_exhausted"}
        outcome.content                  # str, or None when the budget stopped the call
    runner.stats.as_metadata()           # requests sent, cache hits, retries, tokens, budget_exhausted
    runner.estimate(requests)            # RunEstimate: calls and tokens before spending (nothing sent)

- Cache: DuckDB table `llm_cache`, key = sha256 of canonical JSON (model, messages, params);
  written per response as it arrives, so re-runs and resumes send nothing twice.
- Concurrency: `LLMSettings.concurrency` requests in flight (asyncio); `runner.arun` is the async form.
- Retries: 429, 5xx, 408, timeouts and connection errors, exponential backoff with jitter, or the
  server's Retry-After (capped at `max_backoff_s`); `runner.stats.waits_s` lists every wait.
- Budget: `max_requests` / `max_tokens` per runner; no call starts once spent.
- Dry run: `dry_run=True` logs the estimate and raises DryRunStop before sending anything.
- Errors (all LLMError, messages name what to fix, never the key): LLMAuthError (401/403),
  LLMModelError (model not served), LLMUnreachableError, LLMRetriesExhausted, LLMTimeoutError (no answer within
  request_timeout_s, twice), LLMRequestError.
- Without an API key, `local_model` (a transformers chat model name or path) answers instead.
"""

from culture_assets.llm.cache import ResponseCache, cache_key
from culture_assets.llm.errors import (
    LLMAuthError,
    LLMError,
    LLMModelError,
    LLMRequestError,
    LLMRetriesExhausted,
    LLMTimeoutError,
    LLMUnreachableError,
    redact,
)
from culture_assets.llm.generator import ChatGenerator, Completion
from culture_assets.llm.local_generator import LocalChatGenerator
from culture_assets.llm.openai_generator import OpenAIChatGenerator
from culture_assets.llm.runner import (
    Budget,
    ChatOutcome,
    ChatRequest,
    ChatRunner,
    DryRunStop,
    RetryPolicy,
    RunEstimate,
    RunStats,
)
from culture_assets.llm.settings import LLMSettings

__all__ = [
    "Budget",
    "ChatGenerator",
    "ChatOutcome",
    "ChatRequest",
    "ChatRunner",
    "Completion",
    "DryRunStop",
    "LLMAuthError",
    "LLMError",
    "LLMModelError",
    "LLMRequestError",
    "LLMSettings",
    "LLMRetriesExhausted",
    "LLMTimeoutError",
    "LLMUnreachableError",
    "LocalChatGenerator",
    "OpenAIChatGenerator",
    "ResponseCache",
    "RetryPolicy",
    "RunEstimate",
    "RunStats",
    "cache_key",
    "redact",
]
