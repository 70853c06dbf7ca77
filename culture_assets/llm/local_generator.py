"""A local transformers chat model as generator, used when no API key is configured.

- One model in memory (CPU or one GPU); the chat template comes from the tokenizer.
- Batched: the runner hands over up to `batch_size` requests at once; their prompts are
  left-padded into one batch and decoded together, one forward pass per new token for the
  whole batch, with a key/value cache. Each row keeps its own temperature, top_p, seed and
  max_tokens; a finished row stops counting while the others go on.
- Constrained: a request whose `response_format` is `{"type": "json_schema", "json_schema":
  {"schema": ...}}` (the OpenAI form) or `{"type": "json_object"}` is decoded under that
  schema with llguidance: at every step only tokens that keep the text a valid prefix of a
  matching JSON document are allowed, and the end of the reply only once the document is
  complete. docs/generation.md says why llguidance.
- `seed` seeds the row's own random generator, so a seeded request samples the same tokens
  whichever batch it lands in (up to float rounding differences between batch shapes).
- A reply that reaches max_tokens before its JSON document is complete comes back as the
  valid-but-unfinished prefix (finish reason "length"), so the caller's strict parser rejects
  it as malformed and keeps the raw text; it is also logged.
"""

from __future__ import annotations

import asyncio
import inspect
import json
import logging
import threading
from dataclasses import dataclass, field
from typing import Any, Mapping, Sequence

from culture_assets.llm.errors import LLMModelError, LLMRequestError
from culture_assets.llm.generator import ChatPrompt, Completion
from culture_assets.errors import InputError
from culture_assets.shared_prefix import cache_argument, common_prefix_length, encode_prefix

log = logging.getLogger(__name__)

# JSON as chat models write it ({"a": 1, "b": [2, 3]}), with no free whitespace: a model
# may not pad a reply with spaces or newlines until it runs out of tokens.
JSON_LAYOUT = {"whitespace_flexible": False, "item_separator": ", ", "key_separator": ": "}


def response_schema(response_format: Mapping[str, Any] | None) -> dict[str, Any] | None:
    """The JSON schema an OpenAI-style `response_format` asks for; None for free text."""
    if not response_format or response_format.get("type") == "text":
        return None
    kind = response_format.get("type")
    if kind == "json_object":
        return {"type": "object"}
    if kind == "json_schema":
        schema = (response_format.get("json_schema") or {}).get("schema")
        if not isinstance(schema, Mapping):
            raise LLMRequestError("response_format: field 'json_schema.schema' must be a JSON schema object")
        return dict(schema)
    raise LLMRequestError(f"response_format: type {kind!r} is not supported (expected 'text', 'json_object' or 'json_schema')")


@dataclass
class _Row:
    """One request being decoded: its settings, its grammar matcher and the tokens generated so far."""

    prompt: list[int]
    max_new_tokens: int
    temperature: float
    top_p: float
    rng: Any  # torch.Generator or None (the global generator)
    matcher: Any  # llguidance.LLMatcher or None
    tokens: list[int] = field(default_factory=list)
    finish_reason: str | None = None


class LocalChatGenerator:
    def __init__(self, model_name_or_path: str, default_max_new_tokens: int = 256, batch_size: int = 16, device: str | None = None):
        if batch_size < 1:
            raise ValueError("batch_size must be at least 1")
        self.model = model_name_or_path
        self.default_max_new_tokens = default_max_new_tokens
        self.batch_size = batch_size
        self.device = device
        self._loaded: tuple[Any, Any] | None = None
        self._grammar_tokenizer: Any = None
        self._lock = threading.Lock()

    def describe(self) -> str:
        return f"local transformers model {self.model}"

    def _load(self) -> tuple[Any, Any]:
        if self._loaded is None:
            from culture_assets.model_loading import load_causal_lm, load_tokenizer

            try:
                tokenizer = load_tokenizer(self.model, field="local_model", require_chat_template=True, padding_side="left")
                model = load_causal_lm(self.model, field="local_model", device=self.device)
            except InputError as exc:
                raise LLMModelError(f"{exc}. Or set OPENAI_API_KEY to generate with an endpoint.") from None
            self._loaded = (tokenizer, model)
        return self._loaded

    def _matcher(self, tokenizer: Any, vocab_size: int, schema: Mapping[str, Any]) -> Any:
        import llguidance
        import llguidance.hf

        if self._grammar_tokenizer is None:  # about a second for a large vocabulary: built once
            self._grammar_tokenizer = llguidance.hf.from_tokenizer(tokenizer, n_vocab=vocab_size)
        grammar = llguidance.LLMatcher.grammar_from_json_schema(json.dumps(schema), defaults=JSON_LAYOUT)
        matcher = llguidance.LLMatcher(self._grammar_tokenizer, grammar, log_level=0)
        if matcher.is_error():
            raise LLMRequestError(f"response_format: the JSON schema cannot be enforced: {' '.join(matcher.get_error().split())}")
        return matcher

    def _row(self, tokenizer: Any, model: Any, messages: ChatPrompt, params: Mapping[str, Any]) -> _Row:
        import torch

        prompt = tokenizer.apply_chat_template([dict(m) for m in messages], add_generation_prompt=True, tokenize=False)
        schema = response_schema(params.get("response_format"))
        rng = None
        if params.get("seed") is not None:
            rng = torch.Generator().manual_seed(int(params["seed"]))  # sampling runs on CPU logits
        return _Row(
            prompt=tokenizer(prompt, add_special_tokens=False)["input_ids"],
            max_new_tokens=int(params.get("max_tokens") or self.default_max_new_tokens),
            temperature=float(params.get("temperature") or 0.0),
            top_p=float(params.get("top_p") or 1.0),
            rng=rng,
            matcher=self._matcher(tokenizer, model.config.vocab_size, schema) if schema is not None else None,
        )

    def generate(self, requests: Sequence[tuple[ChatPrompt, Mapping[str, Any]]]) -> list[Completion]:
        """Completions in request order, `batch_size` prompts per batch."""
        with self._lock:
            tokenizer, model = self._load()
            completions: list[Completion] = []
            for start in range(0, len(requests), self.batch_size):
                rows = [self._row(tokenizer, model, messages, params) for messages, params in requests[start:start + self.batch_size]]
                decode_batch(model, rows, pad_id=tokenizer.pad_token_id, stop_ids=end_of_reply_ids(tokenizer, model))
                completions += [self._completion(tokenizer, row) for row in rows]
            return completions

    def _completion(self, tokenizer: Any, row: _Row) -> Completion:
        if row.matcher is not None and row.finish_reason == "length" and not row.matcher.is_accepting():
            log.warning("%s: reply cut at max_tokens=%d before its JSON document was complete", self.model, row.max_new_tokens)
        text = tokenizer.decode(row.tokens, skip_special_tokens=True)
        return Completion(content=text.strip(), prompt_tokens=len(row.prompt), completion_tokens=len(row.tokens), finish_reason=row.finish_reason or "stop")

    async def complete(self, messages: ChatPrompt, params: Mapping[str, Any]) -> Completion:
        return (await self.complete_batch([(messages, params)]))[0]

    async def complete_batch(self, requests: Sequence[tuple[ChatPrompt, Mapping[str, Any]]]) -> list[Completion]:
        return await asyncio.to_thread(self.generate, requests)

    async def aclose(self) -> None:
        """Nothing to release per batch: the model stays loaded for the next one."""


def end_of_reply_ids(tokenizer: Any, model: Any) -> set[int]:
    """End-of-reply tokens: the tokenizer's and the generation config's (instruct models often name several)."""
    configured = getattr(model.generation_config, "eos_token_id", None)
    ids = set(configured if isinstance(configured, list) else [configured] if configured is not None else [])
    if tokenizer.eos_token_id is not None:
        ids.add(tokenizer.eos_token_id)
    return ids


def _allowed_tokens(bitmask: Any, vocab_size: int) -> Any:
    """llguidance's packed int32 masks (32 tokens per word) as a boolean (rows, vocab) tensor."""
    import torch

    bits = (bitmask.unsqueeze(-1) >> torch.arange(32, dtype=torch.int32)) & 1
    return bits.reshape(bitmask.shape[0], -1)[:, :vocab_size].bool()


def _next_token(logits: Any, row: _Row) -> int:
    """Greedy at temperature 0, else nucleus sampling from the row's own generator."""
    import torch

    if row.temperature <= 0:
        return int(torch.argmax(logits))
    probs = torch.softmax(logits / row.temperature, dim=-1)
    if row.top_p < 1.0:
        sorted_probs, order = torch.sort(probs, descending=True)
        outside = torch.cumsum(sorted_probs, dim=-1) - sorted_probs > row.top_p
        sorted_probs[outside] = 0.0
        probs = torch.zeros_like(probs).scatter_(-1, order, sorted_probs)
    return int(torch.multinomial(probs, 1, generator=row.rng))


def decode_batch(model: Any, rows: Sequence[_Row], *, pad_id: int, stop_ids: set[int]) -> int:
    """Decode every row to a stop token, a complete JSON document or its max_new_tokens; fills `rows` in place.

    The tokens all prompts start with (chat template, system prompt, instruction) go through the
    model once and their keys/values are repeated for each row; each row's own tokens follow,
    left-padded, with positions that continue the prefix. A finished row leaves the batch (its
    slice of the key/value cache is dropped), so the remaining rows do not pay for it. Returns
    the number of prompt tokens shared.
    """
    import llguidance
    import llguidance.torch
    import torch

    device = model.device
    shared = common_prefix_length([row.prompt for row in rows], min(len(row.prompt) for row in rows) - 1) if len(rows) > 1 else 0
    prefix = encode_prefix(model.get_decoder(), rows[0].prompt[:shared], device)
    width = max(len(row.prompt) for row in rows) - shared
    input_ids = torch.full((len(rows), width), pad_id, dtype=torch.long)
    attention = torch.zeros((len(rows), shared + width), dtype=torch.long)
    attention[:, :shared] = 1
    for index, row in enumerate(rows):  # left padding after the prefix: every prompt ends where generation starts
        own = row.prompt[shared:]
        input_ids[index, width - len(own):] = torch.tensor(own)
        attention[index, shared + width - len(own):] = 1
    positions = (attention.cumsum(-1) - 1).clamp(min=0)[:, shared:]
    input_ids, attention, positions = input_ids.to(device), attention.to(device), positions.to(device)
    executor = llguidance.LLExecutor() if any(row.matcher is not None for row in rows) else None
    argument = cache_argument(model)
    # only the last position's logits are sampled from: the LM head over a whole prompt would cost as much as the model
    last_logits = {"logits_to_keep": 1} if "logits_to_keep" in inspect.signature(model.forward).parameters else {}
    cache = prefix.for_batch(len(rows))
    batch = list(rows)  # the unfinished rows, in batch order
    with torch.inference_mode():
        while True:
            output = model(input_ids=input_ids, attention_mask=attention, position_ids=positions, use_cache=True, **{argument: cache}, **last_logits)
            cache = getattr(output, argument)
            logits = output.logits[:, -1, :].float().cpu()
            constrained = [(row.matcher, slot) for slot, row in enumerate(batch) if row.matcher is not None]
            if constrained:
                bitmask = llguidance.torch.allocate_token_bitmask(len(batch), logits.shape[-1])
                llguidance.torch.fill_next_token_bitmask_par(executor, constrained, bitmask)
                allowed = _allowed_tokens(bitmask, logits.shape[-1])
                for _, slot in constrained:
                    logits[slot].masked_fill_(~allowed[slot], float("-inf"))
            next_ids = torch.tensor([_next_token(logits[slot], row) for slot, row in enumerate(batch)], dtype=torch.long)
            for row, token in zip(batch, next_ids.tolist()):
                row.tokens.append(token)
                if row.matcher is not None:
                    row.matcher.consume_token(token)
                if token in stop_ids or (row.matcher is not None and row.matcher.is_stopped()):
                    row.finish_reason = "stop"
                elif len(row.tokens) >= row.max_new_tokens:
                    row.finish_reason = "length"
            keep = [slot for slot, row in enumerate(batch) if row.finish_reason is None]
            if not keep:
                break
            if len(keep) < len(batch):
                kept = torch.tensor(keep, device=device)
                cache.batch_select_indices(kept)
                next_ids, attention, positions = next_ids[keep], attention[kept], positions[kept]
            batch = [batch[slot] for slot in keep]
            input_ids = next_ids.unsqueeze(-1).to(device)
            attention = torch.cat([attention, torch.ones((len(batch), 1), dtype=attention.dtype, device=device)], dim=-1)
            positions = positions[:, -1:] + 1
    return shared
