"""What can go wrong talking to a model, each saying what to fix. Messages never carry the API key."""

from __future__ import annotations

import re

_KEY_LIKE = re.compile(r"\b(sk-[A-Za-z0-9_\-*]{4,}|Bearer\s+\S+)")


def redact(text: str, secret: str | None = None) -> str:
    """Remove the API key (and anything shaped like one, as servers echo masked keys) from a message."""
    if secret:
        text = text.replace(secret, "***")
    return _KEY_LIKE.sub("***", text)


class LLMError(RuntimeError):
    """A failure that stops the batch; responses already received stay in the cache."""


class LLMAuthError(LLMError):
    """The server refused the API key (401/403)."""


class LLMModelError(LLMError):
    """The server does not serve the configured model."""


class LLMUnreachableError(LLMError):
    """No connection to the endpoint after all retries."""


class LLMRetriesExhausted(LLMError):
    """Rate limits, server errors or timeouts persisted through every retry."""


class LLMTimeoutError(LLMError):
    """The endpoint accepted the request but did not answer within the request timeout, twice."""


class LLMRequestError(LLMError):
    """The server rejected the request itself (4xx other than auth/model)."""


class TransientLLMError(Exception):
    """A failure worth retrying (429, 5xx, timeout, dropped connection), with the server's Retry-After if any."""

    def __init__(self, message: str, retry_after_s: float | None = None, unreachable: bool = False, timed_out: bool = False):
        super().__init__(message)
        self.retry_after_s = retry_after_s
        self.unreachable = unreachable
        self.timed_out = timed_out
