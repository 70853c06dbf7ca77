"""The tokens every prompt of a batch starts with, run through a decoder once and reused by every row.

Prompts built from one template (chat template, system prompt, instruction) share a long head;
both the scorer (`evaluation.loglik`) and the local generator (`llm.local_generator`) compute its
keys and values once per call and repeat them over the batch, so each row pays only for its own
tokens.
"""

from __future__ import annotations

import copy
import inspect
from dataclasses import dataclass
from typing import Any, Sequence


def common_prefix_length(sequences: Sequence[Sequence[int]], limit: int) -> int:
    """Leading tokens all `sequences` have in common, at most `limit`."""
    if not sequences:
        return 0
    first = sequences[0]
    length = 0
    while length < limit and all(s[length] == first[length] for s in sequences):
        length += 1
    return length


def cache_argument(module: Any) -> str:
    """The keyword a decoder takes its Cache under: `cache` (transformers >= 5.2x), `past_key_values` before."""
    return "cache" if "cache" in inspect.signature(module.forward).parameters else "past_key_values"


@dataclass(frozen=True)
class SharedPrefix:
    """The keys and values of a shared prefix, for one sequence."""

    length: int
    cache: Any  # a transformers DynamicCache; None when nothing is shared

    def for_batch(self, size: int) -> Any:
        """A cache holding the prefix once per row (a copy: a forward pass appends to the cache it is given)."""
        if self.cache is None:
            return None
        cache = copy.deepcopy(self.cache)
        cache.batch_repeat_interleave(size)
        return cache


NO_PREFIX = SharedPrefix(0, None)


def encode_prefix(decoder: Any, tokens: Sequence[int], device: Any) -> SharedPrefix:
    """Run `tokens` through `decoder` (a transformer stack, no LM head) once and keep their keys and values."""
    import torch
    from transformers import DynamicCache

    if not tokens:
        return NO_PREFIX
    cache = DynamicCache(config=decoder.config)
    with torch.inference_mode():
        decoder(input_ids=torch.tensor([list(tokens)], device=device), use_cache=True, **{cache_argument(decoder): cache})  # fills `cache`
    return SharedPrefix(len(tokens), cache)
