"""The project's log-likelihood scorer vs lm-evaluation-harness (and vs generate-then-parse), on
the same model, rows, prompts and verbalizers.

    python bench/evaluation.py [--model DIR] [--dataset MANIFEST_ID] [--rows 300] [--device cpu|cuda]
        [--hidden 512] [--layers 8] [--model-vocab 151936] [--generate]

The peer is lm-evaluation-harness's `HFLM.loglikelihood` (bench-only extra `bench`): the same
model object, each (chat prompt, verbalizer + end-of-turn token) pair as a request, the way an
lm-eval multiple-choice task scores. lm-eval moves the prompt's trailing newline into every
continuation; that adds the same term to each label's score, so the argmax is unchanged. Each
tool runs at its best batch size (a short sweep picks it), then the two take turns --repeats
times and the medians are compared; the per-example agreement of the argmax is printed.

Without --model a random chat model is built in a temporary directory (--hidden, --layers; the
scores mean nothing, the speed ratio is the point), its embedding matrix resized to
--model-vocab rows (default: Qwen2.5's 151,936, so the output layer costs what a real chat
model's does; 0 keeps the tokenizer's size). Its byte-level BPE tokenizer (--vocab, default 4096) is
trained on OTHER rows of the dataset than the scored ones, plus the instruction and the
verbalizers, so that, as with real chat tokenizers, common words and the one-word answers are
single tokens; the printout gives characters per token (real tokenizers: about 3-4.5).
Rows come from a manifest dataset (default a yes/no one) of the reference data when
CULTURELLM_REFERENCE_DATA (default ../shared/data/culturellm) is present, else from generated
sentences. The naive way decodes each example's answer with greedy generation constrained to
the label verbalizers (what a well-behaved instruct model does: the answer, then end of turn),
one example at a time, then parses it strictly; the batched way is the project's scorer
(`choice_logliks` with the project's default batch size): the instruction prefix shared by all
prompts is computed once, each example's labels are packed into one sequence, one forward pass
per batch. With --generate, generate-then-parse is timed too (slow: one example at a time).
Ends with one JSON line: {"bench": "evaluation", "lm_eval_speedup": ..., "lm_eval_agreement": ...,
"ours_examples_per_s": ..., "lm_eval_examples_per_s": ..., ["loglik_speedup", "prediction_agreement"]}.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import tempfile
import time
from pathlib import Path
from typing import Callable, Sequence

import numpy as np
import torch
from tqdm import tqdm

from culture_assets.evaluation.chat import parse_answer
from culture_assets.evaluation.loader import load_dataset
from culture_assets.evaluation.loglik import (
    LocalModel, answer_ids, choice_logliks, end_of_turn_id, generate_constrained, load_local_model, prompts_ids,
)
from culture_assets.evaluation.manifest import load_manifests
from culture_assets.tiny_model import build_tiny_chat_model

DATASET = "portuguese_toldbr_insult_abusive"  # tweets with a yes/no label
REFERENCE = Path(os.environ.get("CULTURELLM_REFERENCE_DATA", Path(__file__).resolve().parents[1] / ".." / "shared" / "data" / "culturellm"))


def rows_and_manifest(dataset: str, n: int):
    """(manifest, n texts to score, other texts to train the tokenizer on, where they come from)."""
    manifest = next(m for m in load_manifests() if m.id == dataset)
    if (REFERENCE / manifest.files[0].path).exists():
        texts = load_dataset(manifest, REFERENCE.resolve(), sample_size=2 * n, seed=0).rows["text"].to_list()
        source = f"{dataset} (reference data)"
    else:
        texts = [f"Sentence number {i}: people from {'far' if i % 2 else 'near'} are {'lazy' if i % 3 else 'kind'}." for i in range(2 * n)]
        source = "generated sentences"
    return manifest, texts[:n], texts[n:], source


def interleaved_median_times(runs: Sequence[Callable[[], object]], repeats: int) -> list[tuple[float, object]]:
    """(median seconds, last result) of each run, the runs taking turns so that a change in the
    machine's load falls on all of them alike."""
    times: list[list[float]] = [[] for _ in runs]
    results: list[object] = [None] * len(runs)
    for _ in range(repeats):
        for i, run in enumerate(runs):
            start = time.perf_counter()
            results[i] = run()
            times[i].append(time.perf_counter() - start)
    return [(statistics.median(t), r) for t, r in zip(times, results)]


def random_model(directory: Path, corpus: list[str], vocab: int, hidden: int, layers: int, model_vocab: int) -> Path:
    """A random chat model of the given shape; its embeddings padded to `model_vocab` rows."""
    from transformers import AutoModelForCausalLM

    path = build_tiny_chat_model(directory, corpus, vocab_size=vocab, hidden_size=hidden, layers=layers, heads=max(hidden // 64, 1))
    if model_vocab:
        model = AutoModelForCausalLM.from_pretrained(path)
        model.resize_token_embeddings(model_vocab, mean_resizing=False)
        model.save_pretrained(path)
    return path


def lm_eval_scorer(local: LocalModel, batch_size: int, device: str):
    """lm-eval's HFLM around the same model object and tokenizer."""
    from lm_eval.models.huggingface import HFLM

    return HFLM(pretrained=local.model, tokenizer=local.tokenizer, batch_size=batch_size, device=device, max_length=4096)


def lm_eval_predictions(harness, prompts_text: Sequence[str], continuations: Sequence[str], labels: Sequence[str]) -> list[str]:
    from lm_eval.api.instance import Instance

    requests = [
        Instance(request_type="loglikelihood", doc={}, arguments=(prompt, continuation), idx=k, metadata=("bench", i, 1))
        for i, prompt in enumerate(prompts_text) for k, continuation in enumerate(continuations)
    ]
    scores = np.array([logprob for logprob, _ in harness.loglikelihood(requests, disable_tqdm=True)]).reshape(len(prompts_text), len(continuations))
    return [labels[int(i)] for i in np.argmax(scores, axis=1)]


def fastest(candidates: Sequence[int], make_run: Callable[[int, int], Callable[[], object]], rows: int) -> int:
    """The batch size with the shortest timed run on the first `rows` rows (after a warm-up run)."""
    timings = {}
    for size in candidates:
        run = make_run(size, rows)
        run()
        start = time.perf_counter()
        run()
        timings[size] = time.perf_counter() - start
    return min(timings, key=timings.get)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default="")
    parser.add_argument("--dataset", default=DATASET, help="a manifest id")
    parser.add_argument("--rows", type=int, default=300)
    parser.add_argument("--batch-sizes", default="8,16,32", help="batch sizes tried (on 2x the largest rows) for each tool; each runs at its fastest")
    parser.add_argument("--device", default=None)
    parser.add_argument("--vocab", type=int, default=4096, help="vocabulary of the random model's tokenizer")
    parser.add_argument("--model-vocab", type=int, default=151936, help="rows of the random model's embedding matrix (0: the tokenizer's)")
    parser.add_argument("--hidden", type=int, default=512)
    parser.add_argument("--layers", type=int, default=8)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--threads", type=int, default=0, help="torch CPU threads for every tool (0: torch's default)")
    parser.add_argument("--generate", action="store_true", help="also time generate-then-parse, one example at a time")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)

    manifest, texts, tokenizer_corpus, source = rows_and_manifest(args.dataset, args.rows)
    labels, verbalizers = manifest.label_set, manifest.verbalizers
    with tempfile.TemporaryDirectory() as tmp:
        corpus = tokenizer_corpus + [manifest.prompt("x")] * 4 + list(verbalizers) * 50
        model_dir = args.model or str(random_model(Path(tmp) / "random", corpus, args.vocab, args.hidden, args.layers, args.model_vocab))
        local = load_local_model(model_dir, device=args.device)
        device = str(local.device)
        prompts = [manifest.messages(text) for text in texts]
        prompts_text = local.tokenizer.apply_chat_template(prompts, add_generation_prompt=True, tokenize=False)
        end_token = local.tokenizer.convert_ids_to_tokens(end_of_turn_id(local.tokenizer))
        continuations = [verbalizer + end_token for verbalizer in verbalizers]
        prompt_tokens = sum(map(len, prompts_ids(local.tokenizer, prompts)))
        answer_tokens = [len(ids) for ids in answer_ids(local.tokenizer, verbalizers)]
        chars_per_token = sum(map(len, texts)) / sum(map(len, local.tokenizer(texts, add_special_tokens=False)["input_ids"]))

        def ours(batch_size: int, rows: int = len(prompts)) -> Callable[[], list[str]]:
            return lambda: [labels[int(i)] for i in np.argmax(choice_logliks(local, prompts[:rows], verbalizers, batch_size), axis=1)]

        def theirs(batch_size: int, rows: int = len(prompts)) -> Callable[[], list[str]]:
            harness = lm_eval_scorer(local, batch_size, device)
            return lambda: lm_eval_predictions(harness, prompts_text[:rows], continuations, labels)

        sizes = [int(b) for b in args.batch_sizes.split(",")]
        sweep_rows = min(len(prompts), max(sizes) * 2)
        ours_batch, theirs_batch = fastest(sizes, ours, sweep_rows), fastest(sizes, theirs, sweep_rows)
        runs = [ours(ours_batch), theirs(theirs_batch)]
        if args.generate:
            runs.append(lambda: [
                parse_answer(generate_constrained(local, p, verbalizers), labels, verbalizers)
                for p in tqdm(prompts, desc="generate-then-parse", leave=False)
            ])
        timed = interleaved_median_times(runs, args.repeats)

    (ours_s, ours_pred), (theirs_s, theirs_pred) = timed[0], timed[1]
    n = len(prompts)
    agreement = sum(a == b for a, b in zip(ours_pred, theirs_pred)) / n
    print(f"model: {model_dir if args.model else f'random chat model, hidden {args.hidden}, {args.layers} layers'} "
          f"(vocabulary {local.model.config.vocab_size}) on {device} ({torch.get_num_threads()} CPU threads); rows: {n} from {source}")
    print(f"prompts: {prompt_tokens / n:.1f} tokens on average; the texts: {chars_per_token:.2f} characters per token; "
          f"median of {args.repeats} interleaved runs each")
    print(f"labels: {labels} as {verbalizers} + end of turn {end_token!r} ({answer_tokens} tokens)")
    print(f"{'':34s}{'batch':>6s}{'examples/s':>12s}{'seconds':>10s}")
    print(f"{'culture-assets choice_logliks':34s}{ours_batch:6d}{n / ours_s:12.1f}{ours_s:10.2f}")
    print(f"{'lm-eval HFLM.loglikelihood':34s}{theirs_batch:6d}{n / theirs_s:12.1f}{theirs_s:10.2f}")
    result = {"bench": "evaluation", "lm_eval_speedup": round(theirs_s / ours_s, 2), "lm_eval_agreement": round(agreement, 4),
              "ours_examples_per_s": round(n / ours_s, 1), "lm_eval_examples_per_s": round(n / theirs_s, 1)}
    print(f"speed-up vs lm-eval: {theirs_s / ours_s:.1f}x; same argmax on {sum(a == b for a, b in zip(ours_pred, theirs_pred))}/{n} examples")
    if args.generate:
        naive_s, generated = timed[2]
        both = [(a, b) for a, b in zip(ours_pred, generated) if b in labels]
        same = sum(a == b for a, b in both) / len(both) if both else float("nan")
        print(f"{'generate-then-parse (1x1)':34s}{1:6d}{n / naive_s:12.1f}{naive_s:10.2f}")
        print(f"speed-up vs generate-then-parse: {naive_s / ours_s:.1f}x; parseable generations: {len(both)}/{n}; same prediction on {same:.1%}")
        result |= {"loglik_speedup": round(naive_s / ours_s, 2), "prediction_agreement": round(same, 4)}
    print(json.dumps(result))


if __name__ == "__main__":
    main()
