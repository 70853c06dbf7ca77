"""Batched log-likelihood scoring vs generate-then-parse, on the same model and rows.

    python bench/evaluation.py [--model DIR] [--dataset MANIFEST_ID] [--rows 200] [--batch-size 32] [--device cpu|cuda]

Without --model a tiny random chat model is built in a temporary directory (scores mean
nothing; the speed ratio is the point). Rows come from a manifest dataset (default a yes/no one) of the
reference data when CULTURELLM_REFERENCE_DATA (default ../shared/data/culturellm) is present,
else from generated sentences. The naive way decodes each example's answer with greedy
generation constrained to the label verbalizers, one example at a time, then parses it
strictly; the batched way scores every label of a batch of examples in one forward pass.
Ends with one JSON line: {"bench": "evaluation", "loglik_speedup": ..., "prediction_agreement": ...}.
"""

from __future__ import annotations

import argparse
import json
import os
import tempfile
import time
from pathlib import Path

import numpy as np
from tqdm import tqdm

from culture_assets.evaluation.chat import parse_answer
from culture_assets.evaluation.loader import load_dataset
from culture_assets.evaluation.loglik import choice_logliks, generate_constrained, load_local_model
from culture_assets.evaluation.manifest import load_manifests
from culture_assets.tiny_model import build_tiny_chat_model

DATASET = "portuguese_toldbr_insult_abusive"  # tweets with a yes/no label
REFERENCE = Path(os.environ.get("CULTURELLM_REFERENCE_DATA", Path(__file__).resolve().parents[1] / ".." / "shared" / "data" / "culturellm"))


def rows_and_manifest(dataset: str, n: int):
    manifest = next(m for m in load_manifests() if m.id == dataset)
    if (REFERENCE / manifest.files[0].path).exists():
        load = load_dataset(manifest, REFERENCE.resolve(), sample_size=n, seed=0)
        return manifest, load.rows["text"].to_list(), load.rows["label"].to_list(), f"{dataset} (reference data)"
    texts = [f"Sentence number {i}: people from elsewhere are {'lazy' if i % 3 else 'kind'}." for i in range(n)]
    return manifest, texts, ["1" if i % 3 else "0" for i in range(n)], "generated sentences"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default="")
    parser.add_argument("--dataset", default=DATASET, help="a manifest id")
    parser.add_argument("--rows", type=int, default=200)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--device", default=None)
    parser.add_argument("--threads", type=int, default=0, help="torch CPU threads for both ways (0: torch's default)")
    args = parser.parse_args()
    if args.threads:
        import torch

        torch.set_num_threads(args.threads)

    manifest, texts, labels, source = rows_and_manifest(args.dataset, args.rows)
    with tempfile.TemporaryDirectory() as tmp:
        model_dir = args.model or str(build_tiny_chat_model(Path(tmp) / "tiny", texts + [manifest.prompt("x")] * 4))
        local = load_local_model(model_dir, device=args.device)
        prompts = [manifest.messages(text) for text in texts]

        choice_logliks(local, prompts[: args.batch_size], manifest.verbalizers, args.batch_size)  # warm-up
        start = time.perf_counter()
        scores = choice_logliks(local, prompts, manifest.verbalizers, args.batch_size)
        batched_s = time.perf_counter() - start
        batched = [manifest.label_set[int(i)] for i in np.argmax(scores, axis=1)]

        generate_constrained(local, prompts[0], manifest.verbalizers)  # warm-up
        start = time.perf_counter()
        generated = [
            parse_answer(generate_constrained(local, p, manifest.verbalizers), manifest.label_set, manifest.verbalizers)
            for p in tqdm(prompts, desc="generate-then-parse", leave=False)
        ]
        naive_s = time.perf_counter() - start

    both = [(a, b) for a, b in zip(batched, generated) if b in manifest.label_set]
    agreement = sum(a == b for a, b in both) / len(both) if both else float("nan")
    speed_batched, speed_naive = len(prompts) / batched_s, len(prompts) / naive_s
    import torch

    print(f"model: {model_dir if args.model else 'tiny random chat model'} on {local.device} ({torch.get_num_threads()} CPU threads); "
          f"rows: {len(prompts)} from {source}")
    print(f"labels: {manifest.label_set} as {manifest.verbalizers}")
    print(f"{'':28s}{'examples/s':>12s}{'seconds':>10s}")
    print(f"{'batched log-likelihood':28s}{speed_batched:12.1f}{batched_s:10.2f}")
    print(f"{'generate-then-parse (1x1)':28s}{speed_naive:12.1f}{naive_s:10.2f}")
    print(f"speed-up: {speed_batched / speed_naive:.1f}x; parseable generations: {len(both)}/{len(prompts)}; "
          f"same prediction on {agreement:.1%} of them")
    print(json.dumps({"bench": "evaluation", "loglik_speedup": round(speed_batched / speed_naive, 2), "prediction_agreement": round(agreement, 4)}))


if __name__ == "__main__":
    main()
