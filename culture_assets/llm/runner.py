"""ChatRunner: a batch of chat requests, answered from the cache or sent with bounded concurrency.

Order of events for `run(requests)`: cache lookup; the estimate (calls, tokens) is logged; a
dry run stops there by raising DryRunStop; otherwise the uncached requests are sent, at most
`concurrency` at a time (a generator that decodes batches, the local model, gets them
`batch_size` at a time in one call instead), each retried on 429/5xx/timeouts/connection drops with exponential
backoff and jitter, or exactly the server's Retry-After when it gives one (capped at
`max_backoff_s`). Each response is written to the cache as soon as it arrives. The budget
(requests and tokens per runner, i.e. per asset run) is checked before each call; once spent,
no further call starts and the remaining requests come back with status "budget_exhausted".
A fatal error (bad key, unknown model, unreachable endpoint, retries exhausted) cancels what
is in flight and is raised; everything received before it is already in the cache.
"""

from __future__ import annotations

import asyncio
import math
import random
import threading
from dataclasses import dataclass, field
from typing import Any, Callable, Literal, Mapping, Sequence

from culture_assets.llm.cache import CachedResponse, ResponseCache, cache_key, canonical_request
from culture_assets.llm.errors import LLMRetriesExhausted, LLMTimeoutError, LLMUnreachableError, TransientLLMError
from culture_assets.llm.generator import BatchChatGenerator, ChatGenerator, Completion

# the environment variable `culture-assets` reads into the llm resource's request_timeout_s
REQUEST_TIMEOUT_ENV = "CULTURE_ASSETS_LLM_TIMEOUT_S"
MAX_TIMEOUT_RETRIES = 1

Status = Literal["ok", "cached", "budget_exhausted"]


@dataclass(frozen=True)
class ChatRequest:
    """One chat call. `tag` is the caller's label for the result; it is not part of the cache key."""

    messages: tuple[Mapping[str, str], ...]
    params: Mapping[str, Any] = field(default_factory=dict)
    tag: Any = None

    @classmethod
    def of(cls, messages: Sequence[Mapping[str, str]], params: Mapping[str, Any] | None = None, tag: Any = None) -> "ChatRequest":
        return cls(tuple(dict(m) for m in messages), dict(params or {}), tag)


@dataclass(frozen=True)
class ChatOutcome:
    request: ChatRequest
    key: str
    status: Status
    content: str | None = None
    prompt_tokens: int = 0
    completion_tokens: int = 0
    top_logprobs: dict[str, float] | None = None

    @property
    def answered(self) -> bool:
        return self.content is not None


@dataclass(frozen=True)
class Budget:
    """Per-run spending limit; None means unlimited."""

    max_requests: int | None = None
    max_tokens: int | None = None


@dataclass(frozen=True)
class RetryPolicy:
    max_retries: int = 5
    backoff_base_s: float = 1.0
    max_backoff_s: float = 60.0

    def backoff(self, attempt: int, retry_after_s: float | None) -> float:
        """Retry-After when the server sent one, else base * 2^attempt with full jitter on the upper half."""
        if retry_after_s is not None:
            return min(retry_after_s, self.max_backoff_s)
        ceiling = self.backoff_base_s * (2**attempt)
        return min(ceiling / 2 + random.uniform(0, ceiling / 2), self.max_backoff_s)


@dataclass(frozen=True)
class RunEstimate:
    requests: int
    cached: int
    to_send: int
    prompt_tokens: int
    max_completion_tokens: int

    def describe(self) -> str:
        return (
            f"{self.requests} chat requests: {self.cached} cached, {self.to_send} to send "
            f"(~{self.prompt_tokens} prompt tokens, at most {self.max_completion_tokens} completion tokens)"
        )


class DryRunStop(Exception):
    """Raised by a dry run after the estimate, before anything is sent."""

    def __init__(self, estimate: RunEstimate):
        super().__init__(f"dry run: {estimate.describe()}; nothing was sent")
        self.estimate = estimate


@dataclass
class RunStats:
    sent: int = 0
    cache_hits: int = 0
    retries: int = 0
    waits_s: list[float] = field(default_factory=list)
    prompt_tokens: int = 0
    completion_tokens: int = 0
    budget_exhausted: bool = False

    @property
    def tokens(self) -> int:
        return self.prompt_tokens + self.completion_tokens

    def as_metadata(self) -> dict[str, float | int | bool]:
        return {
            "llm_requests_sent": self.sent,
            "llm_cache_hits": self.cache_hits,
            "llm_retries": self.retries,
            "llm_prompt_tokens": self.prompt_tokens,
            "llm_completion_tokens": self.completion_tokens,
            "llm_budget_exhausted": self.budget_exhausted,
        }


def estimate_prompt_tokens(messages: Sequence[Mapping[str, str]]) -> int:
    """About 4 characters per token plus a few per message: good enough to decide before spending."""
    return sum(math.ceil(len(str(m.get("content", ""))) / 4) + 4 for m in messages)


class ChatRunner:
    def __init__(
        self,
        generator: ChatGenerator,
        cache: ResponseCache | None = None,
        *,
        concurrency: int = 8,
        retry: RetryPolicy = RetryPolicy(),
        budget: Budget = Budget(),
        dry_run: bool = False,
        default_max_tokens: int = 512,
        log: Callable[[str], None] | None = None,
    ):
        if concurrency < 1:
            raise ValueError("concurrency must be at least 1")
        self.generator = generator
        self.cache = cache
        self.concurrency = concurrency
        self.retry = retry
        self.budget = budget
        self.dry_run = dry_run
        self.default_max_tokens = default_max_tokens
        self.log = log or (lambda message: None)
        self.stats = RunStats()

    @property
    def model(self) -> str:
        return self.generator.model

    def key(self, request: ChatRequest) -> str:
        return cache_key(self.model, request.messages, request.params)

    def _estimate(self, requests: Sequence[ChatRequest], cached: Mapping[str, CachedResponse]) -> RunEstimate:
        pending = [r for r in requests if self.key(r) not in cached]
        return RunEstimate(
            requests=len(requests),
            cached=len(requests) - len(pending),
            to_send=len(pending),
            prompt_tokens=sum(estimate_prompt_tokens(r.messages) for r in pending),
            max_completion_tokens=sum(int(r.params.get("max_tokens") or self.default_max_tokens) for r in pending),
        )

    def estimate(self, requests: Sequence[ChatRequest]) -> RunEstimate:
        """Calls and tokens the batch would spend, counting the cache; sends nothing."""
        cached = self.cache.lookup([self.key(r) for r in requests]) if self.cache is not None else {}
        return self._estimate(requests, cached)

    def run(self, requests: Sequence[ChatRequest]) -> list[ChatOutcome]:
        """Blocking form of `arun`; works inside or outside a running event loop."""
        try:
            asyncio.get_running_loop()
        except RuntimeError:
            return asyncio.run(self.arun(requests))
        result: list[list[ChatOutcome]] = []
        error: list[BaseException] = []

        def target() -> None:
            try:
                result.append(asyncio.run(self.arun(requests)))
            except BaseException as exc:  # re-raised in the caller's thread
                error.append(exc)

        thread = threading.Thread(target=target)
        thread.start()
        thread.join()
        if error:
            raise error[0]
        return result[0]

    async def arun(self, requests: Sequence[ChatRequest]) -> list[ChatOutcome]:
        """Outcomes in request order."""
        cache = self.cache
        keys = [self.key(r) for r in requests]
        cached = cache.lookup(keys) if cache is not None else {}
        estimate = self._estimate(requests, cached)
        self.log(f"{self.generator.describe()}: {estimate.describe()}")
        if self.dry_run and estimate.to_send:
            raise DryRunStop(estimate)

        outcomes: list[ChatOutcome | None] = [None] * len(requests)
        first_index: dict[str, int] = {}
        pending: list[int] = []
        for index, (request, key) in enumerate(zip(requests, keys)):
            if key in cached:
                hit = cached[key]
                outcomes[index] = ChatOutcome(request, key, "cached", hit.content, hit.prompt_tokens, hit.completion_tokens, hit.top_logprobs)
                self.stats.cache_hits += 1
            elif key in first_index:
                continue  # identical request in the same batch: answered once, below
            else:
                first_index[key] = index
                pending.append(index)

        semaphore = asyncio.Semaphore(self.concurrency)
        done = 0

        def record(index: int, completion: Completion) -> None:
            nonlocal done
            request, key = requests[index], keys[index]
            self.stats.prompt_tokens += completion.prompt_tokens
            self.stats.completion_tokens += completion.completion_tokens
            response = CachedResponse(completion.content, completion.prompt_tokens, completion.completion_tokens, completion.top_logprobs)
            if cache is not None:
                cache.put(key, self.model, canonical_request(self.model, request.messages, request.params), response)
            outcomes[index] = ChatOutcome(request, key, "ok", completion.content, completion.prompt_tokens, completion.completion_tokens,
                                          completion.top_logprobs)
            done += 1
            if done % 25 == 0 or done == len(pending):
                self.log(f"{done}/{len(pending)} chat calls done, {self.stats.tokens} tokens, {self.stats.retries} retries")

        def admit(index: int) -> bool:
            if not self._within_budget():
                outcomes[index] = ChatOutcome(requests[index], keys[index], "budget_exhausted")
                return False
            self.stats.sent += 1
            return True

        async def one(index: int) -> None:
            async with semaphore:
                if not admit(index):
                    return
                completion = await self._complete_with_retries(requests[index])
            record(index, completion)

        async def in_batches(generator: BatchChatGenerator) -> None:
            # a local model answers a batch in one decoding pass; the token budget is checked between batches
            for start in range(0, len(pending), generator.batch_size):
                batch = [index for index in pending[start:start + generator.batch_size] if admit(index)]
                if batch:
                    completions = await generator.complete_batch([(requests[i].messages, requests[i].params) for i in batch])
                    for index, completion in zip(batch, completions):
                        record(index, completion)

        if isinstance(self.generator, BatchChatGenerator):
            tasks = [asyncio.create_task(in_batches(self.generator))]
        else:
            tasks = [asyncio.create_task(one(index)) for index in pending]
        try:
            await asyncio.gather(*tasks)
        except BaseException:
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
            raise
        finally:
            # HTTP connections belong to this event loop; the next run opens its own.
            await self.generator.aclose()

        for index, key in enumerate(keys):
            if outcomes[index] is None:
                source = outcomes[first_index[key]]
                assert source is not None
                outcomes[index] = ChatOutcome(requests[index], key, source.status, source.content, source.prompt_tokens, source.completion_tokens,
                                              source.top_logprobs)
        if self.stats.budget_exhausted:
            skipped = sum(1 for o in outcomes if o is not None and o.status == "budget_exhausted")
            self.log(f"budget reached ({self.budget}): {skipped} requests not sent; re-run with a larger budget to resume from the cache")
        return [o for o in outcomes if o is not None]

    def _within_budget(self) -> bool:
        over_requests = self.budget.max_requests is not None and self.stats.sent >= self.budget.max_requests
        over_tokens = self.budget.max_tokens is not None and self.stats.tokens >= self.budget.max_tokens
        if over_requests or over_tokens:
            self.stats.budget_exhausted = True
            return False
        return True

    async def _complete_with_retries(self, request: ChatRequest) -> Completion:
        last: TransientLLMError | None = None
        timeouts = 0
        for attempt in range(self.retry.max_retries + 1):
            try:
                return await self.generator.complete(request.messages, request.params)
            except TransientLLMError as exc:
                last = exc
                timeouts += exc.timed_out
                # a server that accepted the request and stayed silent twice is stuck, not busy:
                # retrying it max_retries times would wait minutes before saying anything
                if attempt == self.retry.max_retries or timeouts > MAX_TIMEOUT_RETRIES:
                    break
                wait = self.retry.backoff(attempt, exc.retry_after_s)
                self.stats.retries += 1
                self.stats.waits_s.append(wait)
                await asyncio.sleep(wait)
        assert last is not None
        tries = attempt + 1
        if last.timed_out:
            raise LLMTimeoutError(
                f"{self.generator.describe()}: {last} ({tries} attempts). The limit is the llm resource's `request_timeout_s`: "
                f"for `culture-assets run` set {REQUEST_TIMEOUT_ENV}=SECONDS; in the UI's launchpad set "
                "resources: llm: config: request_timeout_s: SECONDS. Or check that the server is serving."
            )
        if last.unreachable:
            raise LLMUnreachableError(
                f"{self.generator.describe()}: {last} ({tries} attempts). Check that the server is running and that "
                "OPENAI_BASE_URL (or the llm resource's base_url) points at it."
            )
        raise LLMRetriesExhausted(
            f"{self.generator.describe()}: still failing after {tries} attempts ({last}). Lower the llm resource's "
            "`concurrency`, raise `max_retries`, or try later; responses received so far are cached."
        )


