"""Batched log-likelihood scoring vs generate-then-parse, on the same model and rows.

    python bench/evaluation.py [--model DIR] [--dataset MANIFEST_ID] [--rows 200] [--batch-size N] [--device cpu|cuda]

Without --model a tiny random chat model is built in a temporary directory (scores mean
nothing; the speed ratio is the point). Its byte-level BPE tokenizer (--vocab, default 4096) is
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
per batch. The two ways take turns, --repeats times each; the medians are compared.
Ends with one JSON line: {"bench": "evaluation", "loglik_speedup": ..., "prediction_agreement": ...}.
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
from culture_assets.evaluation.loglik import choice_ids, choice_logliks, generate_constrained, load_local_model, prompts_ids
from culture_assets.evaluation.manifest import load_manifests
from culture_assets.evaluation.scoring import ScoringSettings
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


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default="")
    parser.add_argument("--dataset", default=DATASET, help="a manifest id")
    parser.add_argument("--rows", type=int, default=200)
    parser.add_argument("--batch-size", type=int, default=ScoringSettings().batch_size)
    parser.add_argument("--device", default=None)
    parser.add_argument("--vocab", type=int, default=4096, help="vocabulary of the tiny model's tokenizer")
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--threads", type=int, default=0, help="torch CPU threads for both ways (0: torch's default)")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)

    manifest, texts, tokenizer_corpus, source = rows_and_manifest(args.dataset, args.rows)
    with tempfile.TemporaryDirectory() as tmp:
        corpus = tokenizer_corpus + [manifest.prompt("x")] * 4 + list(manifest.verbalizers) * 50
        model_dir = args.model or str(build_tiny_chat_model(Path(tmp) / "tiny", corpus, vocab_size=args.vocab))
        local = load_local_model(model_dir, device=args.device)
        prompts = [manifest.messages(text) for text in texts]
        prompt_tokens = sum(map(len, prompts_ids(local.tokenizer, prompts)))
        answer_tokens = [len(ids) for ids in choice_ids(local.tokenizer, manifest.verbalizers)]
        chars_per_token = sum(map(len, texts)) / sum(map(len, local.tokenizer(texts, add_special_tokens=False)["input_ids"]))

        def batched_log_likelihood() -> list[str]:
            scores = choice_logliks(local, prompts, manifest.verbalizers, args.batch_size)
            return [manifest.label_set[int(i)] for i in np.argmax(scores, axis=1)]

        def generate_then_parse() -> list[str]:
            return [
                parse_answer(generate_constrained(local, p, manifest.verbalizers), manifest.label_set, manifest.verbalizers)
                for p in tqdm(prompts, desc="generate-then-parse", leave=False)
            ]

        choice_logliks(local, prompts[: args.batch_size], manifest.verbalizers, args.batch_size)  # warm-up
        generate_constrained(local, prompts[0], manifest.verbalizers)
        (batched_s, batched), (naive_s, generated) = interleaved_median_times([batched_log_likelihood, generate_then_parse], args.repeats)

    both = [(a, b) for a, b in zip(batched, generated) if b in manifest.label_set]
    agreement = sum(a == b for a, b in both) / len(both) if both else float("nan")
    speed_batched, speed_naive = len(prompts) / batched_s, len(prompts) / naive_s

    print(f"model: {model_dir if args.model else 'tiny random chat model'} on {local.device} ({torch.get_num_threads()} CPU threads); "
          f"rows: {len(prompts)} from {source}")
    print(f"prompts: {prompt_tokens / len(prompts):.1f} tokens on average; the texts: {chars_per_token:.2f} characters per token; "
          f"median of {args.repeats} runs each, batch size {args.batch_size}")
    print(f"labels: {manifest.label_set} as {manifest.verbalizers} ({answer_tokens} tokens)")
    print(f"{'':28s}{'examples/s':>12s}{'seconds':>10s}")
    print(f"{'batched log-likelihood':28s}{speed_batched:12.1f}{batched_s:10.2f}")
    print(f"{'generate-then-parse (1x1)':28s}{speed_naive:12.1f}{naive_s:10.2f}")
    print(f"speed-up: {speed_batched / speed_naive:.1f}x; parseable generations: {len(both)}/{len(prompts)}; "
          f"same prediction on {agreement:.1%} of them")
    print(json.dumps({"bench": "evaluation", "loglik_speedup": round(speed_batched / speed_naive, 2), "prediction_agreement": round(agreement, 4)}))


if __name__ == "__main__":
    main()
