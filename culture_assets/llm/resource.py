"""The Dagster resource "llm": configuration in, a ChatRunner out (one per asset run)."""

from __future__ import annotations

import os
from typing import Callable, Optional

import dagster as dg
from pydantic import Field

from culture_assets.llm.cache import ResponseCache
from culture_assets.llm.generator import ChatGenerator
from culture_assets.llm.local_generator import LocalChatGenerator
from culture_assets.llm.openai_generator import OpenAIChatGenerator
from culture_assets.llm.runner import Budget, ChatRunner, RetryPolicy
from culture_assets.store import Warehouse

API_KEY_ENV = "OPENAI_API_KEY"
BASE_URL_ENV = "OPENAI_BASE_URL"


class LLMResource(dg.ConfigurableResource):
    """An OpenAI-compatible chat endpoint, or a local transformers chat model when there is no API key.

    The API key comes from `api_key` (wire it as dg.EnvVar("OPENAI_API_KEY")) or else the
    OPENAI_API_KEY environment variable; it is only handed to the HTTP client.
    """

    model: str = Field(default="gpt-4o-mini", description="Model name the endpoint serves.")
    api_key: Optional[str] = Field(default=None, description="Secret; use dg.EnvVar('OPENAI_API_KEY'). Empty: $OPENAI_API_KEY.")
    base_url: str = Field(default="", description="OpenAI-compatible base URL (vLLM, Ollama ...). Empty: $OPENAI_BASE_URL, else OpenAI.")
    local_model: str = Field(default="", description="HF model name or path of a chat model used when no API key is set.")
    local_batch_size: int = Field(default=16, ge=1, description="Prompts the local model decodes together in one batch.")
    concurrency: int = Field(default=8, ge=1, description="Requests in flight at once.")
    max_retries: int = Field(default=5, ge=0)
    backoff_base_s: float = Field(default=1.0, ge=0, description="First backoff; doubles per retry, with jitter.")
    max_backoff_s: float = Field(default=60.0, ge=0, description="Cap on any wait, Retry-After included.")
    request_timeout_s: float = Field(default=60.0, gt=0)
    max_requests: Optional[int] = Field(default=None, ge=0, description="Budget per run: requests sent (cache hits are free).")
    max_tokens: Optional[int] = Field(default=None, ge=0, description="Budget per run: prompt + completion tokens.")
    default_max_tokens: int = Field(default=512, ge=1, description="Completion cap assumed by the estimate when a request sets none.")
    dry_run: bool = Field(default=False, description="Log the calls and tokens a run would spend, then stop before sending.")

    def _api_key(self) -> str:
        return (self.api_key or os.environ.get(API_KEY_ENV, "")).strip()

    @property
    def uses_api(self) -> bool:
        return bool(self._api_key())

    @property
    def model_name(self) -> str:
        """The name recorded in lineage and the cache: the API model, or the local model."""
        return self.model if self.uses_api else self.local_model

    def generator(self) -> ChatGenerator:
        key = self._api_key()
        if key:
            base_url = self.base_url or os.environ.get(BASE_URL_ENV, "") or None
            return OpenAIChatGenerator(self.model, key, base_url, timeout_s=self.request_timeout_s)
        if not self.local_model:
            raise dg.Failure(
                description=(
                    f"No LLM configured: set {API_KEY_ENV} (and {BASE_URL_ENV} for vLLM/Ollama), or set the llm "
                    "resource's `local_model` to a local chat model name or path."
                )
            )
        return LocalChatGenerator(self.local_model, default_max_new_tokens=self.default_max_tokens, batch_size=self.local_batch_size)

    def runner(self, warehouse: Warehouse | None, log: Callable[[str], None] | None = None) -> ChatRunner:
        """A fresh runner (its own budget and stats) caching into `warehouse`'s llm_cache table."""
        return ChatRunner(
            self.generator(),
            ResponseCache(warehouse) if warehouse is not None else None,
            concurrency=self.concurrency,
            retry=RetryPolicy(self.max_retries, self.backoff_base_s, self.max_backoff_s),
            budget=Budget(self.max_requests, self.max_tokens),
            dry_run=self.dry_run,
            default_max_tokens=self.default_max_tokens,
            log=log,
        )
