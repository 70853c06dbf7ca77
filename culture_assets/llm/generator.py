"""The interface every chat generator (remote endpoint or local model) implements."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Mapping, Protocol, Sequence


@dataclass(frozen=True)
class Completion:
    content: str
    prompt_tokens: int
    completion_tokens: int
    # the first answer token's likeliest alternatives (token -> log-probability), when logprobs were returned
    top_logprobs: dict[str, float] | None = None


class ChatGenerator(Protocol):
    model: str

    def describe(self) -> str:
        """Model and endpoint for logs (never the key)."""

    async def complete(self, messages: Sequence[Mapping[str, Any]], params: Mapping[str, Any]) -> Completion:
        """One chat completion. Raise TransientLLMError for retryable failures, LLMError for fatal ones."""

    async def aclose(self) -> None: ...
