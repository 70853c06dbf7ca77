"""Local generation: batched + schema-constrained (the product) vs one prompt at a time, unconstrained (before).

    python bench/generation.py [--prompts 16] [--batch-size 16] [--layers 2] [--sentence-chars 16] [--repeats 2] [--device cpu|cuda]

Both ways run the same model on the same prompts: the augmentation's step-1 prompts
(`paraphrase_messages`, with its default 8 paraphrases and the answer scale) built from the first
--prompts WVS seed questions, sampled at the augmentation's temperature (0.9) with a seed per
prompt, at most --max-tokens new tokens.
The model is random, of a realistic small shape: --layers layers of the Qwen2.5-0.5B
architecture (hidden 896, MLP 4864, 14 query / 2 key-value heads), with a byte-level BPE
tokenizer (--vocab) trained here on the WVS questions; the shape is printed. Its replies
mean nothing; speed and parseability are the point.
- "one at a time" is the generator as it was: each prompt rendered with the chat template and
  decoded alone by `model.generate`, no constraint; the reply is parsed as the augmentation
  parses it.
- "batched" is `LocalChatGenerator`: --batch-size prompts, the instruction they all start with
  computed once, their own tokens left-padded into one batch after it, decoded together under
  the step-1 JSON schema (`step1_response_format`) with llguidance.
A random model does not write sentences of a sensible length on its own (it closes a string
early or never), so the bench's schema asks for sentences of exactly --sentence-chars
characters, standing in for real paraphrases (which are longer); with every token at least one
character, the whole reply then fits in --max-tokens (by default the reply's length in characters).
The two ways take turns, --repeats times each, so a change in the machine's load falls on both;
medians are compared. Tokens/s counts generated tokens (prompt processing included in the time).
Ends with one JSON line: {"bench": "generation", "batched_speedup": ..., "parse_rate": ...,
"parse_rate_unconstrained": ...}.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any, Callable, Sequence

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import jsonschema  # noqa: E402
import torch  # noqa: E402

from culture_assets.augment.generation import Step1Settings  # noqa: E402
from culture_assets.augment.prompts import paraphrase_messages  # noqa: E402
from culture_assets.augment.responses import MalformedResponse, parse_step1, step1_response_format  # noqa: E402
from culture_assets.llm.local_generator import LocalChatGenerator  # noqa: E402
from culture_assets.survey.questions import load_questions  # noqa: E402
from culture_assets.tiny_model import build_tiny_chat_model  # noqa: E402

QWEN25_SHAPE = {"hidden_size": 896, "intermediate_size": 4864, "num_attention_heads": 14, "num_key_value_heads": 2}
# the augmentation's step-1 settings: paraphrases asked for per seed question, temperature
N_PARAPHRASES, TEMPERATURE = Step1Settings.n_paraphrases, Step1Settings.temperature


def build_model(target: Path, layers: int, vocab: int) -> Path:
    """A random Qwen2 model of the 0.5B width with a tokenizer trained on the WVS questions."""
    from transformers import AutoTokenizer, Qwen2Config, Qwen2ForCausalLM

    corpus = [q.text + " " + q.option_text() for q in load_questions()]
    corpus += [m["content"] for q in load_questions() for m in paraphrase_messages(q.text, N_PARAPHRASES, q.option_text())]
    source = build_tiny_chat_model(target / "tokenizer-source", corpus * 4, vocab_size=vocab)
    tokenizer = AutoTokenizer.from_pretrained(source)
    model_dir = target / "qwen25-shaped"
    tokenizer.save_pretrained(model_dir)
    torch.manual_seed(0)
    config = Qwen2Config(**QWEN25_SHAPE, num_hidden_layers=layers, vocab_size=len(tokenizer), tie_word_embeddings=True,
                         max_position_embeddings=4096, bos_token_id=tokenizer.bos_token_id, eos_token_id=tokenizer.eos_token_id,
                         pad_token_id=tokenizer.pad_token_id)
    Qwen2ForCausalLM(config).save_pretrained(model_dir)
    return model_dir


def one_at_a_time(tokenizer: Any, model: Any, prompts: Sequence[list[dict[str, str]]], max_tokens: int) -> list[tuple[str, int]]:
    """The generator before batching: one prompt per `generate` call, no constraint. (text, new tokens) per prompt."""
    replies = []
    for seed, messages in enumerate(prompts):
        input_ids = tokenizer.apply_chat_template(messages, add_generation_prompt=True, return_tensors="pt", return_dict=True)["input_ids"].to(model.device)
        torch.manual_seed(seed)
        with torch.no_grad():
            output = model.generate(input_ids, attention_mask=torch.ones_like(input_ids), max_new_tokens=max_tokens, do_sample=True,
                                    temperature=TEMPERATURE, top_p=1.0, top_k=0, pad_token_id=tokenizer.pad_token_id)
        new_tokens = output[0, input_ids.shape[1]:]
        replies.append((tokenizer.decode(new_tokens, skip_special_tokens=True).strip(), int(new_tokens.shape[0])))
    return replies


def batched(generator: LocalChatGenerator, prompts: Sequence[list[dict[str, str]]], max_tokens: int, response_format: dict) -> list[tuple[str, int]]:
    requests = [(messages, {"temperature": TEMPERATURE, "max_tokens": max_tokens, "seed": seed, "response_format": response_format})
                for seed, messages in enumerate(prompts)]
    return [(c.content, c.completion_tokens) for c in generator.generate(requests)]


def prompt_processing_seconds(tokenizer: Any, model: Any, generator: LocalChatGenerator, prompts: Sequence[list[dict[str, str]]], together: bool) -> float:
    """Time to the first new token: each prompt alone through the model, or the batch through the generator
    (the instruction all prompts share computed once, each prompt's own tokens left-padded after it)."""
    start = time.perf_counter()
    if together:
        generator.generate([(p, {"max_tokens": 1}) for p in prompts])
        return time.perf_counter() - start
    with torch.inference_mode():
        for messages in prompts:
            text = tokenizer.apply_chat_template(messages, add_generation_prompt=True, tokenize=False)
            model(**tokenizer([text], return_tensors="pt", add_special_tokens=False).to(model.device))
    return time.perf_counter() - start


def parses(reply: str, schema: dict) -> bool:
    """The augmentation's strict parser accepts it and it matches the schema."""
    try:
        parse_step1(reply)
        jsonschema.validate(json.loads(reply), schema)
    except (MalformedResponse, json.JSONDecodeError, jsonschema.ValidationError):
        return False
    return True


def interleaved(runs: Sequence[Callable[[], list[tuple[str, int]]]], repeats: int) -> list[tuple[list[float], list[tuple[str, int]]]]:
    """(seconds of each repeat, last replies) of each run; the runs take turns, the first one alternating."""
    times: list[list[float]] = [[] for _ in runs]
    results: list[list[tuple[str, int]]] = [[] for _ in runs]
    for repeat in range(repeats):
        order = range(len(runs)) if repeat % 2 == 0 else reversed(range(len(runs)))
        for i in order:
            start = time.perf_counter()
            results[i] = runs[i]()
            times[i].append(time.perf_counter() - start)
            print(f"  repeat {repeat + 1}: {'batched' if i else 'one at a time'} {times[i][-1]:.1f}s", flush=True)
    return list(zip(times, results))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--prompts", type=int, default=16)
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--layers", type=int, default=2)
    parser.add_argument("--vocab", type=int, default=4096)
    parser.add_argument("--max-tokens", type=int, default=0, help="default: the longest reply the schema allows")
    parser.add_argument("--sentence-chars", type=int, default=16)
    parser.add_argument("--repeats", type=int, default=2, help="each repeat is minutes on a loaded 2-core machine")
    parser.add_argument("--device", default="cpu")
    args = parser.parse_args()

    response_format = step1_response_format(N_PARAPHRASES, max_sentence_chars=args.sentence_chars, min_sentence_chars=args.sentence_chars)
    schema = response_format["json_schema"]["schema"]
    longest = json.dumps({"paraphrases": ["x" * args.sentence_chars] * N_PARAPHRASES})
    args.max_tokens = args.max_tokens or len(longest)
    if len(longest) > args.max_tokens:
        raise SystemExit(f"--max-tokens {args.max_tokens} < {len(longest)} characters of the longest reply the schema allows; raise it or lower --sentence-chars")
    prompts = [paraphrase_messages(q.text, N_PARAPHRASES, q.option_text()) for q in load_questions()[: args.prompts]]

    with tempfile.TemporaryDirectory() as workdir:
        model_dir = build_model(Path(workdir), args.layers, args.vocab)
        generator = LocalChatGenerator(str(model_dir), batch_size=args.batch_size, device=args.device)
        tokenizer, model = generator._load()
        prompt_texts = [tokenizer.apply_chat_template(p, add_generation_prompt=True, tokenize=False) for p in prompts]
        prompt_tokens = [len(tokenizer(text, add_special_tokens=False)["input_ids"]) for text in prompt_texts]
        chars_per_token = sum(map(len, prompt_texts)) / sum(prompt_tokens)
        parameters = sum(p.numel() for p in model.parameters())
        print(f"model: random Qwen2 ({args.layers} layers, hidden {QWEN25_SHAPE['hidden_size']}, MLP {QWEN25_SHAPE['intermediate_size']}, "
              f"{QWEN25_SHAPE['num_attention_heads']}/{QWEN25_SHAPE['num_key_value_heads']} heads, vocab {len(tokenizer)}, "
              f"{parameters / 1e6:.0f}M parameters, float32) on {args.device}, {torch.get_num_threads()} torch threads")
        print(f"prompts: {len(prompts)} step-1 augmentation prompts of WVS questions, {statistics.mean(prompt_tokens):.0f} tokens on average "
              f"({chars_per_token:.1f} characters per token); "
              f"batch {args.batch_size}, at most {args.max_tokens} new tokens, temperature {TEMPERATURE}; load average {os.getloadavg()[0]:.1f}")
        logging.getLogger("culture_assets.llm.local_generator").setLevel(logging.ERROR)  # the warm-up's replies are cut on purpose
        batched(generator, prompts[:2], 4, response_format)  # warm-up: grammar tokenizer, first-call allocations
        logging.getLogger("culture_assets.llm.local_generator").setLevel(logging.WARNING)
        (naive_times, naive), (batch_times, constrained) = interleaved(
            [lambda: one_at_a_time(tokenizer, model, prompts, args.max_tokens), lambda: batched(generator, prompts, args.max_tokens, response_format)],
            args.repeats,
        )
        naive_prompt_s = prompt_processing_seconds(tokenizer, model, generator, prompts, together=False)
        batch_prompt_s = prompt_processing_seconds(tokenizer, model, generator, prompts, together=True)

    naive_rate = sum(n for _, n in naive) / statistics.median(naive_times)
    batched_rate = sum(n for _, n in constrained) / statistics.median(batch_times)
    parse_rate = sum(parses(text, schema) for text, _ in constrained) / len(constrained)
    parse_rate_unconstrained = sum(parses(text, schema) for text, _ in naive) / len(naive)
    print(f"{'':<34}{'tokens':>8}{'median s':>10}{'tokens/s':>10}{'parse rate':>12}")
    print(f"{'one at a time, unconstrained':<34}{sum(n for _, n in naive):>8}{statistics.median(naive_times):>10.1f}{naive_rate:>10.1f}{parse_rate_unconstrained:>12.2f}")
    print(f"{'batched, schema-constrained':<34}{sum(n for _, n in constrained):>8}{statistics.median(batch_times):>10.1f}{batched_rate:>10.1f}{parse_rate:>12.2f}")
    print(f"of which prompt processing (time to the first token): one at a time {naive_prompt_s:.1f}s, batched {batch_prompt_s:.1f}s; "
          f"new tokens/s without it: one at a time {sum(n for _, n in naive) / (statistics.median(naive_times) - naive_prompt_s):.1f}, "
          f"batched {sum(n for _, n in constrained) / (statistics.median(batch_times) - batch_prompt_s):.1f}")
    print(f"example constrained reply: {constrained[0][0]}")
    print(f"load average at the end {os.getloadavg()[0]:.1f}")
    print(json.dumps({"bench": "generation", "batched_speedup": round(batched_rate / naive_rate, 2), "parse_rate": parse_rate,
                      "parse_rate_unconstrained": parse_rate_unconstrained}))


if __name__ == "__main__":
    main()
