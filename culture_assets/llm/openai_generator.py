"""An OpenAI-compatible chat endpoint (OpenAI, vLLM, Ollama) as a generator.

The client's own retries are off (max_retries=0): ChatRunner retries, so that waits are
counted, capped and honour Retry-After in one place.
"""

from __future__ import annotations

import email.utils
import time
from typing import Any, Mapping, Sequence

import openai

from culture_assets.llm.client import openai_client
from culture_assets.llm.errors import (
    LLMAuthError,
    LLMModelError,
    LLMRequestError,
    TransientLLMError,
    redact,
)
from culture_assets.llm.generator import Completion


def retry_after_seconds(headers: Mapping[str, str] | None) -> float | None:
    """Seconds asked for by `retry-after-ms` / `retry-after` (a number or an HTTP date), else None."""
    if not headers:
        return None
    lowered = {k.lower(): v for k, v in headers.items()}
    for name, divisor in (("retry-after-ms", 1000.0), ("retry-after", 1.0)):
        value = lowered.get(name)
        if value is None:
            continue
        try:
            return max(0.0, float(value) / divisor)
        except ValueError:
            parsed = email.utils.parsedate_tz(value)
            if parsed is not None:
                return max(0.0, email.utils.mktime_tz(parsed) - time.time())
    return None


class OpenAIChatGenerator:
    def __init__(self, model: str, api_key: str, base_url: str | None = None, timeout_s: float = 60.0):
        self.model = model
        self.base_url = base_url or "https://api.openai.com/v1"
        self._api_key = api_key
        self._base_url_setting = base_url or None
        self.timeout_s = timeout_s
        self._client: openai.AsyncOpenAI | None = None

    def describe(self) -> str:
        return f"{self.model} at {self.base_url}"

    async def complete(self, messages: Sequence[Mapping[str, Any]], params: Mapping[str, Any]) -> Completion:
        if self._client is None:
            self._client = openai_client(
                self._api_key, self._base_url_setting, timeout_s=self.timeout_s, max_retries=0, asynchronous=True
            )
        try:
            response = await self._client.chat.completions.create(model=self.model, messages=list(messages), **params)
        except openai.APITimeoutError as exc:
            raise TransientLLMError(f"no answer within {self.timeout_s:g}s: {self._clean(exc)}", timed_out=True) from None
        except openai.APIConnectionError as exc:
            raise TransientLLMError(f"cannot connect to {self.base_url}: {self._clean(exc)}", unreachable=True) from None
        except openai.APIStatusError as exc:
            raise self._translate(exc) from None
        choice = response.choices[0] if response.choices else None
        content = (choice.message.content if choice is not None else None) or ""
        usage = response.usage
        first = choice.logprobs.content[0] if choice is not None and choice.logprobs and choice.logprobs.content else None
        return Completion(
            content=content,
            prompt_tokens=int(usage.prompt_tokens) if usage else 0,
            completion_tokens=int(usage.completion_tokens) if usage else 0,
            top_logprobs={t.token: float(t.logprob) for t in [first, *(first.top_logprobs or [])]} if first else None,
        )

    def _clean(self, exc: BaseException) -> str:
        return redact(str(getattr(exc, "message", None) or exc), self._api_key)

    def _translate(self, exc: openai.APIStatusError) -> Exception:
        status = exc.status_code
        message = self._clean(exc)
        code = (exc.code or "").lower()
        if status == 429 or status >= 500 or status == 408:
            return TransientLLMError(f"HTTP {status}: {message}", retry_after_seconds(dict(exc.response.headers)))
        if status in (401, 403):
            return LLMAuthError(
                f"{self.base_url} refused the API key (HTTP {status}: {message}). "
                "Set a valid OPENAI_API_KEY (or the llm resource's api_key) for this endpoint."
            )
        if status == 404 or "model" in code or "model" in message.lower():
            return LLMModelError(
                f"{self.base_url} rejected model {self.model!r} (HTTP {status}: {message}). "
                "Set the llm resource's `model` to a model this endpoint serves."
            )
        return LLMRequestError(f"{self.base_url} rejected the request (HTTP {status}: {message}).")

    async def aclose(self) -> None:
        if self._client is not None:
            client, self._client = self._client, None
            await client.close()
