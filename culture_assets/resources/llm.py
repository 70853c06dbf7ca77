"""The Dagster resource "llm": configuration in, a ChatRunner out (one per asset run).

Its fields are the library's LLMSettings fields (same defaults, bounds and descriptions), so a default lives
in culture_assets.llm.settings only.
"""

from __future__ import annotations

from typing import Callable, Optional

import dagster as dg

from culture_assets.resources import library_settings
from culture_assets.llm.generator import ChatGenerator
from culture_assets.llm.runner import ChatRunner
from culture_assets.llm.client import API_KEY_ENV, BASE_URL_ENV
from culture_assets.llm.settings import LLMSettings
from culture_assets.store import Warehouse

__all__ = ["API_KEY_ENV", "BASE_URL_ENV", "LLMResource"]

_FIELDS = LLMSettings.model_fields


class LLMResource(dg.ConfigurableResource):
    """An OpenAI-compatible chat endpoint, or a local transformers chat model when there is no API key."""

    model: str = _FIELDS["model"]
    api_key: Optional[str] = _FIELDS["api_key"]
    base_url: str = _FIELDS["base_url"]
    local_model: str = _FIELDS["local_model"]
    concurrency: int = _FIELDS["concurrency"]
    max_retries: int = _FIELDS["max_retries"]
    backoff_base_s: float = _FIELDS["backoff_base_s"]
    max_backoff_s: float = _FIELDS["max_backoff_s"]
    request_timeout_s: float = _FIELDS["request_timeout_s"]
    max_requests: Optional[int] = _FIELDS["max_requests"]
    max_tokens: Optional[int] = _FIELDS["max_tokens"]
    default_max_tokens: int = _FIELDS["default_max_tokens"]
    local_batch_size: int = _FIELDS["local_batch_size"]
    dry_run: bool = _FIELDS["dry_run"]

    def settings(self) -> LLMSettings:
        return library_settings(self, LLMSettings)

    @property
    def uses_api(self) -> bool:
        return self.settings().uses_api

    @property
    def model_name(self) -> str:
        return self.settings().model_name

    def generator(self) -> ChatGenerator:
        return self.settings().generator()

    def runner(self, warehouse: Warehouse | None, log: Callable[[str], None] | None = None) -> ChatRunner:
        return self.settings().runner(warehouse, log)
