"""The interface every chat generator (remote endpoint or local model) implements."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Mapping, Protocol, Sequence, runtime_checkable

ChatPrompt = Sequence[Mapping[str, Any]]


@dataclass(frozen=True)
class Completion:
    content: str
    prompt_tokens: int
    completion_tokens: int
    finish_reason: str = "stop"  # "length" when max_tokens cut the reply
    # the first answer token's likeliest alternatives (token -> log-probability), when logprobs were returned
    top_logprobs: dict[str, float] | None = None


class ChatGenerator(Protocol):
    model: str

    def describe(self) -> str:
        """Model and endpoint for logs (never the key)."""

    async def complete(self, messages: ChatPrompt, params: Mapping[str, Any]) -> Completion:
        """One chat completion. Raise TransientLLMError for retryable failures, LLMError for fatal ones."""

    async def aclose(self) -> None: ...


@runtime_checkable
class BatchChatGenerator(ChatGenerator, Protocol):
    """A generator that answers many requests in one call (a local model decoding them as one batch)."""

    batch_size: int

    async def complete_batch(self, requests: Sequence[tuple[ChatPrompt, Mapping[str, Any]]]) -> list[Completion]:
        """Completions in request order."""
