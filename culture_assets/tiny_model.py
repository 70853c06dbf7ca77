"""A tiny random-initialised chat model built locally, without downloading anything.

Used by the tests and by the offline demo profile, whose scores mean nothing: it exists to
run the real loading, training and scoring code end to end on a laptop CPU in minutes.
The tokenizer is a byte-level BPE trained on the given corpus, so any text can be encoded.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Iterable

from culture_assets.settings import atomic_write_text

# A minimal ChatML template, the format of Qwen-style instruct models.
CHAT_TEMPLATE = (
    "{% for message in messages %}"
    "{{ '<|im_start|>' + message['role'] + '\n' + message['content'] + '<|im_end|>' + '\n' }}"
    "{% endfor %}"
    "{% if add_generation_prompt %}{{ '<|im_start|>assistant\n' }}{% endif %}"
)
SPECIAL_TOKENS = ["<|endoftext|>", "<|im_start|>", "<|im_end|>", "<pad>"]
TINY_MARKER = "culture_assets_tiny_model.json"


def build_tiny_chat_model(
    target: Path,
    corpus: Iterable[str],
    vocab_size: int = 512,
    hidden_size: int = 64,
    layers: int = 2,
    heads: int = 4,
    seed: int = 0,
) -> Path:
    """Write a tokenizer (with chat template) and a random Llama-architecture causal LM to `target`."""
    import torch
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import LlamaConfig, LlamaForCausalLM, PreTrainedTokenizerFast

    target.mkdir(parents=True, exist_ok=True)
    tokenizer_core = Tokenizer(models.BPE())
    tokenizer_core.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tokenizer_core.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size, special_tokens=SPECIAL_TOKENS, initial_alphabet=pre_tokenizers.ByteLevel.alphabet()
    )
    tokenizer_core.train_from_iterator(list(corpus), trainer=trainer)
    tokenizer = PreTrainedTokenizerFast(
        tokenizer_object=tokenizer_core,
        eos_token="<|im_end|>",
        bos_token="<|endoftext|>",
        pad_token="<pad>",
        unk_token=None,
    )
    tokenizer.chat_template = CHAT_TEMPLATE
    tokenizer.save_pretrained(target)

    torch.manual_seed(seed)
    config = LlamaConfig(
        vocab_size=len(tokenizer),
        hidden_size=hidden_size,
        intermediate_size=hidden_size * 2,
        num_hidden_layers=layers,
        num_attention_heads=heads,
        num_key_value_heads=heads,
        max_position_embeddings=512,
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id,
        tie_word_embeddings=True,
    )
    model = LlamaForCausalLM(config)
    model.save_pretrained(target)
    atomic_write_text(target / TINY_MARKER, json.dumps({"tiny_demo_model": True, "seed": seed}))
    return target


def is_tiny_model(path: str | Path) -> bool:
    """True for a model built here: reports label its scores as a wiring demo."""
    return (Path(path) / TINY_MARKER).exists()
