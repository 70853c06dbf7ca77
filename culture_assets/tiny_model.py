"""Random-initialised chat models built locally, without downloading anything.

The tiny one is used by the tests and by the offline demo profile, whose scores mean nothing: it
exists to run the real loading, training and scoring code end to end on a laptop CPU in minutes.
The benches also build one with the real shape of Qwen2.5-0.5B-Instruct, to measure speed and
memory on that shape without its weights. The tokenizer is a byte-level BPE trained on the given
corpus, so any text can be encoded.
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
# Qwen2.5-0.5B-Instruct's architecture (its config.json): about 494M parameters, 136M of them the tied embedding
QWEN2_5_0_5B_SHAPE = {
    "hidden_size": 896, "intermediate_size": 4864, "num_hidden_layers": 24, "num_attention_heads": 14,
    "num_key_value_heads": 2, "vocab_size": 151936, "tie_word_embeddings": True, "rope_theta": 1000000.0,
    "rms_norm_eps": 1e-6, "max_position_embeddings": 32768,
}


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
    from transformers import LlamaConfig, LlamaForCausalLM

    tokenizer = build_chat_tokenizer(target, corpus, vocab_size)
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


def build_qwen2_5_0_5b_shape(target: Path, corpus: Iterable[str], layers: int | None = None, seed: int = 0) -> Path:
    """A random Qwen2 causal LM with Qwen2.5-0.5B-Instruct's shape (optionally fewer layers) and a small BPE tokenizer.

    The tokenizer covers only the first few hundred ids of the 151,936-row embedding; the compute per token (the
    layers and the full-vocabulary output projection) is the real model's. Not marked as the tiny demo model.
    """
    import torch
    from transformers import Qwen2Config, Qwen2ForCausalLM

    tokenizer = build_chat_tokenizer(target, corpus)
    shape = {**QWEN2_5_0_5B_SHAPE, "num_hidden_layers": layers or QWEN2_5_0_5B_SHAPE["num_hidden_layers"]}
    torch.manual_seed(seed)
    config = Qwen2Config(**shape, bos_token_id=tokenizer.bos_token_id, eos_token_id=tokenizer.eos_token_id,
                         pad_token_id=tokenizer.pad_token_id)
    Qwen2ForCausalLM(config).save_pretrained(target)
    return target


def build_chat_tokenizer(target: Path, corpus: Iterable[str], vocab_size: int = 512):
    """A byte-level BPE tokenizer trained on `corpus`, with a ChatML template, saved to `target`."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

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
    return tokenizer


def is_tiny_model(path: str | Path) -> bool:
    """True for a model built here: reports label its scores as a wiring demo."""
    return (Path(path) / TINY_MARKER).exists()
