"""The one place an OpenAI client is made (chat generation, scoring, fine-tuning jobs): explicit settings
first, else $OPENAI_API_KEY and $OPENAI_BASE_URL."""

from __future__ import annotations

import os

import openai

API_KEY_ENV = "OPENAI_API_KEY"
BASE_URL_ENV = "OPENAI_BASE_URL"


def resolved_api_key(api_key: str | None) -> str:
    return (api_key or os.environ.get(API_KEY_ENV, "")).strip()


def resolved_base_url(base_url: str | None) -> str | None:
    return base_url or os.environ.get(BASE_URL_ENV, "") or None


def openai_client(
    api_key: str | None = None, base_url: str | None = None, *, timeout_s: float = 600.0, max_retries: int = 2, asynchronous: bool = False
) -> openai.OpenAI | openai.AsyncOpenAI:
    """An OpenAI-compatible client (OpenAI, vLLM, Ollama ...) for the given or the environment's endpoint."""
    client_class = openai.AsyncOpenAI if asynchronous else openai.OpenAI
    return client_class(
        api_key=resolved_api_key(api_key) or None, base_url=resolved_base_url(base_url), timeout=timeout_s, max_retries=max_retries
    )
