"""Settings of the LLM layer, defined once: the `llm` Dagster resource derives its fields from these."""

from __future__ import annotations

from typing import Callable, Optional

from pydantic import BaseModel, ConfigDict, Field

from culture_assets.errors import InputError
from culture_assets.llm.cache import ResponseCache
from culture_assets.llm.client import API_KEY_ENV, BASE_URL_ENV, resolved_api_key, resolved_base_url
from culture_assets.llm.generator import ChatGenerator
from culture_assets.llm.local_generator import LocalChatGenerator
from culture_assets.llm.openai_generator import OpenAIChatGenerator
from culture_assets.llm.runner import Budget, ChatRunner, RetryPolicy
from culture_assets.store import Warehouse


class LLMSettings(BaseModel):
    """An OpenAI-compatible chat endpoint, or a local transformers chat model when there is no API key.

    The API key comes from `api_key` (in Dagster: dg.EnvVar("OPENAI_API_KEY")) or else $OPENAI_API_KEY;
    it is only handed to the HTTP client.
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    model: str = Field(default="gpt-4o-mini", description="Model name the endpoint serves.")
    api_key: Optional[str] = Field(default=None, description="Secret; use dg.EnvVar('OPENAI_API_KEY'). Empty: $OPENAI_API_KEY.")
    base_url: str = Field(default="", description="OpenAI-compatible base URL (vLLM, Ollama ...). Empty: $OPENAI_BASE_URL, else OpenAI.")
    local_model: str = Field(default="", description="HF model name or path of a chat model used when no API key is set.")
    local_batch_size: int = Field(default=16, ge=1, description="Prompts the local model decodes together in one batch.")
    concurrency: int = Field(default=8, ge=1, description="Requests in flight at once.")
    max_retries: int = Field(default=5, ge=0)
    backoff_base_s: float = Field(default=1.0, ge=0, description="First backoff; doubles per retry, with jitter.")
    max_backoff_s: float = Field(default=60.0, ge=0, description="Cap on any wait, Retry-After included.")
    request_timeout_s: float = Field(
        default=45.0, gt=0,
        description="Seconds to wait for one answer; a request unanswered twice fails the step (default: within 2 minutes).",
    )
    max_requests: Optional[int] = Field(default=None, ge=0, description="Budget per run: requests sent (cache hits are free).")
    max_tokens: Optional[int] = Field(default=None, ge=0, description="Budget per run: prompt + completion tokens.")
    default_max_tokens: int = Field(default=512, ge=1, description="Completion cap assumed by the estimate when a request sets none.")
    dry_run: bool = Field(default=False, description="Log the calls and tokens a run would spend, then stop before sending.")

    @property
    def uses_api(self) -> bool:
        return bool(resolved_api_key(self.api_key))

    @property
    def model_name(self) -> str:
        """The name recorded in lineage and the cache: the API model, or the local model."""
        return self.model if self.uses_api else self.local_model

    def api_generator(self, model: str | None = None) -> OpenAIChatGenerator:
        """The endpoint serving `model` (default: the configured one); an API key is required."""
        model = model or self.model
        key = resolved_api_key(self.api_key)
        if not key:
            raise InputError("llm settings", f"the API model {model!r} needs an API key: set {API_KEY_ENV}", field="api_key")
        return OpenAIChatGenerator(model, key, resolved_base_url(self.base_url), timeout_s=self.request_timeout_s)

    def generator(self) -> ChatGenerator:
        if self.uses_api:
            return self.api_generator()
        if not self.local_model:
            raise InputError(
                "llm settings",
                f"no LLM configured: set {API_KEY_ENV} (and {BASE_URL_ENV} for vLLM/Ollama), or set `local_model` "
                "to a local chat model name or path",
                field="local_model",
            )
        return LocalChatGenerator(self.local_model, default_max_new_tokens=self.default_max_tokens, batch_size=self.local_batch_size)

    def runner(
        self, warehouse: Warehouse | None, log: Callable[[str], None] | None = None, generator: ChatGenerator | None = None
    ) -> ChatRunner:
        """A fresh runner (its own budget and stats) caching into `warehouse`'s llm_cache table;
        `generator` defaults to the configured one."""
        return ChatRunner(
            generator or self.generator(),
            ResponseCache(warehouse) if warehouse is not None else None,
            concurrency=self.concurrency,
            retry=RetryPolicy(self.max_retries, self.backoff_base_s, self.max_backoff_s),
            budget=Budget(self.max_requests, self.max_tokens),
            dry_run=self.dry_run,
            default_max_tokens=self.default_max_tokens,
            log=log,
        )
