"""Score a local causal LM (optionally with a LoRA adapter) by the log-likelihood of each label.

The lm-evaluation-harness way, with two changes that save most of the compute:
- each example is ONE packed sequence `prompt + choice_1 + choice_2 + ...`. A block-diagonal
  attention mask lets every choice see the prompt and its own earlier tokens but not the other
  choices, and position ids restart after the prompt for each choice, so each choice is scored
  exactly as if it followed the prompt alone, while the prompt goes through the model once
  instead of once per label;
- the tokens every prompt starts with (chat template, system prompt, instruction) go through the
  model once per call; their keys and values are reused by every example.
Examples are padded into length-sorted batches; one forward pass scores a whole batch of
examples and labels.

Each label is scored as a complete answer: its tokens followed by the end-of-turn token of the
model's chat template. Without it a label that is a prefix of another ("1" of "10" with a
digit-splitting tokenizer) always scores at least as high as the longer one, which could never
win; with it, "1" pays for ending the answer where "10" pays for its "0"."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable, Sequence

import numpy as np

from culture_assets.shared_prefix import SharedPrefix, cache_argument, common_prefix_length, encode_prefix

Messages = list[dict[str, str]]


@dataclass
class LocalModel:
    tokenizer: Any
    model: Any
    name: str

    @property
    def device(self) -> Any:
        return next(self.model.parameters()).device


def load_local_model(base_model: str, adapter_path: str | None = None, device: str | None = None) -> LocalModel:
    """A base model from a path or hub name, with the LoRA adapter applied when given; eval mode."""
    from culture_assets.model_loading import load_causal_lm, load_tokenizer

    tokenizer = load_tokenizer(adapter_path or base_model, field="adapter_path" if adapter_path else "base_model")
    model = load_causal_lm(base_model, field="base_model", device=device, attn_implementation="sdpa")
    if adapter_path:
        from peft import PeftModel

        model = PeftModel.from_pretrained(model, adapter_path).to(model.device).eval()
    return LocalModel(tokenizer, model, f"{base_model}+{adapter_path}" if adapter_path else base_model)


def prompt_ids(tokenizer: Any, messages: Messages) -> list[int]:
    """The chat-formatted prompt up to where the assistant's answer starts."""
    return prompts_ids(tokenizer, [messages])[0]


def prompts_ids(tokenizer: Any, conversations: Sequence[Messages]) -> list[list[int]]:
    """`prompt_ids` of many conversations, tokenized in one batched call."""
    if not conversations:
        return []
    texts = tokenizer.apply_chat_template(list(conversations), add_generation_prompt=True, tokenize=False)
    return tokenizer(texts, add_special_tokens=False)["input_ids"]


def choice_ids(tokenizer: Any, choices: Sequence[str]) -> list[list[int]]:
    ids = [tokenizer(choice, add_special_tokens=False)["input_ids"] for choice in choices]
    empty = [c for c, i in zip(choices, ids) if not i]
    if empty:
        raise ValueError(f"choices {empty} encode to no tokens")
    return ids


_ANSWER_MARK = "\u2063ANSWER\u2063"


def end_of_turn_id(tokenizer: Any) -> int:
    """The token the chat template closes an assistant answer with (<|im_end|>, <|eot_id|>,
    <end_of_turn> ...): the first special token after the answer in a rendered turn; else EOS."""
    try:
        rendered = tokenizer.apply_chat_template(
            [{"role": "user", "content": "?"}, {"role": "assistant", "content": _ANSWER_MARK}], tokenize=False
        )
    except Exception:  # a template that cannot render an assistant turn: fall back to EOS below
        rendered = ""
    if _ANSWER_MARK in rendered:
        suffix = tokenizer(rendered.split(_ANSWER_MARK, 1)[1], add_special_tokens=False)["input_ids"]
        special = set(tokenizer.all_special_ids)
        closing = next((token for token in suffix if token in special), None)
        if closing is not None:
            return int(closing)
    if tokenizer.eos_token_id is None:
        raise ValueError(f"{tokenizer.name_or_path}: no end-of-turn token in the chat template and no EOS token")
    return int(tokenizer.eos_token_id)


def answer_ids(tokenizer: Any, choices: Sequence[str]) -> list[list[int]]:
    """Each choice as a complete answer: its tokens, then the end-of-turn token."""
    end = end_of_turn_id(tokenizer)
    return [ids + [end] for ids in choice_ids(tokenizer, choices)]


@dataclass(frozen=True)
class PackedExample:
    input_ids: list[int]
    position_ids: list[int]
    # (segment start, segment length) of each choice in input_ids
    segments: list[tuple[int, int]]
    prompt_length: int


def pack(prompt: list[int], choices: list[list[int]]) -> PackedExample:
    ids, positions, segments = list(prompt), list(range(len(prompt))), []
    for choice in choices:
        segments.append((len(ids), len(choice)))
        ids += choice
        positions += range(len(prompt), len(prompt) + len(choice))
    return PackedExample(ids, positions, segments, len(prompt))


def shared_prefix_length(examples: Sequence[PackedExample]) -> int:
    """Leading prompt tokens every example has in common (the chat template, system prompt and
    instruction), short of each prompt's last token, whose output predicts the first choice token."""
    return common_prefix_length([e.input_ids for e in examples], min(e.prompt_length for e in examples) - 1)


def segment_ids(examples: Sequence[PackedExample], start: int, length: int) -> np.ndarray:
    """(examples, length) from token `start` on: 0 for a prompt token, k for the k-th choice, -1 for padding."""
    segments = np.full((len(examples), length), -1, dtype=np.int64)
    for row, example in enumerate(examples):
        segments[row, : example.prompt_length - start] = 0
        for k, (begin, size) in enumerate(example.segments, start=1):
            segments[row, begin - start : begin - start + size] = k
    return segments


def attention_allowed(segments: Any, prefix_length: int) -> Any:
    """(batch, 1, length, prefix_length + length) bool for tokens after a shared prefix of `prefix_length`.

    Every token sees the whole shared prefix; after it, attention is causal, a prompt token sees
    prompt tokens and a choice token sees the prompt and its own choice only. Padding sees the
    prompt and itself, so no row is fully masked (that would give NaN).
    """
    import torch

    batch, length = segments.shape
    causal = torch.ones((length, length), dtype=torch.bool).tril()
    own = (segments[:, None, :] == 0) | (segments[:, None, :] == segments[:, :, None])
    return torch.cat([torch.ones((batch, length, prefix_length), dtype=torch.bool), causal & own], dim=2)[:, None]


def decoder_and_head(local: LocalModel) -> tuple[Any, Any]:
    """The transformer stack and the LM head (LoRA layers, when present, live inside the stack)."""
    causal_lm = local.model.get_base_model() if hasattr(local.model, "get_base_model") else local.model
    return causal_lm.get_decoder(), causal_lm.get_output_embeddings()


def encode_shared_prefix(local: LocalModel, examples: Sequence[PackedExample]) -> SharedPrefix:
    decoder, _ = decoder_and_head(local)
    return encode_prefix(decoder, examples[0].input_ids[: shared_prefix_length(examples)], local.device)


def score_packed(local: LocalModel, examples: Sequence[PackedExample], prefix: SharedPrefix) -> list[list[float]]:
    """Summed log-probability of each choice of each example, one forward pass for the batch.

    Only the tokens after `prefix` (shared by every example, see `encode_prefix`) go through the
    model here; the prefix's keys and values are repeated for each row.
    """
    import torch

    device = local.device
    decoder, head = decoder_and_head(local)
    skip = prefix.length
    length = max(len(e.input_ids) for e in examples) - skip
    pad_id = local.tokenizer.pad_token_id if local.tokenizer.pad_token_id is not None else 0
    input_ids = np.full((len(examples), length), pad_id, dtype=np.int64)
    position_ids = np.zeros((len(examples), length), dtype=np.int64)
    for row, example in enumerate(examples):
        input_ids[row, : len(example.input_ids) - skip] = example.input_ids[skip:]
        position_ids[row, : len(example.position_ids) - skip] = example.position_ids[skip:]
    allowed = attention_allowed(torch.from_numpy(segment_ids(examples, skip, length)), skip)
    dtype = next(local.model.parameters()).dtype
    mask = torch.zeros(allowed.shape, dtype=dtype).masked_fill_(~allowed, torch.finfo(dtype).min)
    # which position predicts each choice token: the prompt's last token for the first, then the previous token
    rows, positions, targets, owners = [], [], [], []
    for row, example in enumerate(examples):
        for k, (start, size) in enumerate(example.segments):
            for j in range(size):
                rows.append(row)
                positions.append((example.prompt_length - 1 if j == 0 else start + j - 1) - skip)
                targets.append(example.input_ids[start + j])
                owners.append((row, k))
    with torch.inference_mode():
        cache = prefix.for_batch(len(examples))
        hidden = decoder(
            input_ids=torch.from_numpy(input_ids).to(device),
            position_ids=torch.from_numpy(position_ids).to(device),
            attention_mask=mask.to(device),
            use_cache=cache is not None,
            **{cache_argument(decoder): cache},
        ).last_hidden_state
        # the LM head only where a choice token is predicted: full logits (batch x length x
        # vocabulary) would dominate memory and time with a real vocabulary
        selected = head(hidden[torch.tensor(rows, device=device), torch.tensor(positions, device=device)]).float()
        token_logprobs = torch.log_softmax(selected, dim=-1).gather(1, torch.tensor(targets, device=device)[:, None])[:, 0].cpu().numpy()
    scores = [[0.0] * len(e.segments) for e in examples]
    for (row, k), value in zip(owners, token_logprobs):
        scores[row][k] += float(value)
    return scores


def length_batches(lengths: Sequence[int], batch_size: int, max_batch_tokens: int) -> list[list[int]]:
    """Indices grouped longest first, each batch at most `batch_size` rows and `max_batch_tokens` padded tokens.

    Attention costs grow with the square of the padded length, so a long example shares its
    batch only with examples almost as long, and a batch of long ones is smaller.
    """
    order = sorted(range(len(lengths)), key=lambda i: lengths[i], reverse=True)
    batches: list[list[int]] = []
    for index in order:
        if batches and len(batches[-1]) < batch_size and (len(batches[-1]) + 1) * lengths[batches[-1][0]] <= max_batch_tokens:
            batches[-1].append(index)
        else:
            batches.append([index])
    return batches


def choice_logliks(
    local: LocalModel,
    prompts: Sequence[Messages],
    choices: Sequence[str],
    batch_size: int = 16,
    on_batch: Callable[[list[int], list[list[float]]], None] | None = None,
    max_batch_tokens: int = 8192,
) -> np.ndarray:
    """(len(prompts), len(choices)) summed log-likelihood of each choice, as a complete answer
    (see `answer_ids`), after each chat prompt.

    `on_batch(indices, scores)` is called after each batch with the prompts' indices (the caller
    writes its cache there, so a crash loses one batch at most).
    """
    continuations = answer_ids(local.tokenizer, choices)
    packed = [pack(prompt, continuations) for prompt in prompts_ids(local.tokenizer, prompts)]
    result = np.zeros((len(prompts), len(choices)))
    if not packed:
        return result
    prefix = encode_shared_prefix(local, packed)
    for chunk in length_batches([len(p.input_ids) for p in packed], batch_size, max_batch_tokens):
        scores = score_packed(local, [packed[i] for i in chunk], prefix)
        for i, row in zip(chunk, scores):
            result[i] = row
        if on_batch is not None:
            on_batch(chunk, [list(map(float, result[i])) for i in chunk])
    return result


def generate_constrained(local: LocalModel, messages: Messages, choices: Sequence[str]) -> str:
    """Greedy generation restricted to the choices' token sequences (one example): the naive way.

    Used as the comparison point of the benchmark: decoding answers token by token instead of
    scoring the label set in one pass.
    """
    import torch

    continuations = choice_ids(local.tokenizer, choices)
    prompt = prompt_ids(local.tokenizer, messages)
    eos = local.tokenizer.eos_token_id

    def allowed(_: int, generated: torch.Tensor) -> list[int]:
        so_far = generated[len(prompt) :].tolist()
        nexts = {c[len(so_far)] for c in continuations if c[: len(so_far)] == so_far and len(c) > len(so_far)}
        if any(c == so_far for c in continuations):
            nexts.add(eos)
        return sorted(nexts) or [eos]

    with torch.inference_mode():
        output = local.model.generate(
            input_ids=torch.tensor([prompt], device=local.device),
            attention_mask=torch.ones((1, len(prompt)), dtype=torch.long, device=local.device),
            max_new_tokens=max(len(c) for c in continuations) + 1,
            do_sample=False,
            prefix_allowed_tokens_fn=allowed,
            pad_token_id=local.tokenizer.pad_token_id,
            eos_token_id=eos,
        )
    generated = output[0, len(prompt) :].tolist()
    return local.tokenizer.decode([t for t in generated if t != eos], skip_special_tokens=True)
