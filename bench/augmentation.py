"""Benchmark: this project's augmentation vs the reference's sequential way, against one fake server.

Both sides talk to the same local OpenAI-compatible fake server (200 ms latency per request,
light rewordings of the seed question as replies) and use the same MiniLM model.

The reference way, reimplemented: strictly sequential calls, no cache. Step 1 asks for 5
numbered paraphrases per call and repeats the call (up to 10 times) until 5 pass the 0.8
filter. Step 2 takes those 5 sentences and makes one call per replaceable word (content
words: nouns, adjectives, adverbs, verbs; no POS tagger is installed, so stop words and words
of 3 letters or fewer are skipped) for 5 synonyms, one sentence per synonym; the sentences are
filtered in order until the question has 5 synonym variants (filtering stops early: generous
to the baseline). Every similarity is a separate pair with two encoder passes, no memo.
It is strictly sequential, so its time is linear in the number of questions: by default it runs
on the first --reference-questions of the seeds and its figures are scaled to all of them
(the per-question rates are what is compared; the printout says which were measured).

Ours: the package's paraphrase_step / synonym_step / semantic_filter with a ChatRunner
(concurrency 16, DuckDB cache starting empty), one JSON reply per question per step, each
unique sentence encoded once, on all questions.

Also: the embedding filter alone on the pipeline's candidates, batched vs one pair at a time
(same `select_diverse`, same decisions): `filter_speedup` times the seed-pair step, the
comparisons the reference's filter makes; `filter_whole_speedup` the whole filter, whose
near-duplicate and MMR steps also compare candidates with each other. And
diversity gain encodings (N + M vs 2 x N x M, counted; the two values checked equal on a subset).

Run: python bench/augmentation.py [--questions 50] [--reference-questions 10] [--filter-questions 5] [--device cpu|cuda]
Prints side-by-side figures, then one JSON line.
"""

from __future__ import annotations

import argparse
import json
import re
import sys
import tempfile
import time
from collections import defaultdict
from pathlib import Path
from typing import Callable, Sequence

import numpy as np
import openai
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from culture_assets.augment.candidates import SeedQuestion  # noqa: E402
from culture_assets.augment.embedder import Embedder  # noqa: E402
from culture_assets.augment.generation import Step1Settings, Step2Settings, paraphrase_step, synonym_step  # noqa: E402
from culture_assets.augment.quality import diversity_gain  # noqa: E402
from culture_assets.augment.semantic_filter import FilterSettings, filter_inputs, select_diverse, semantic_filter  # noqa: E402
from culture_assets.resources.llm import LLMResource  # noqa: E402
from culture_assets.store import Warehouse  # noqa: E402
from culture_assets.survey.questions import load_questions  # noqa: E402
from culture_assets_tests.fake_augmentation_llm import PREFIXES, SYNONYMS, augmentation_chat_reply  # noqa: E402
from culture_assets_tests.fake_openai import FakeOpenAI  # noqa: E402

THRESHOLD = 0.8
MAX_PER_QUESTION = 10
TARGET_PER_STEP = 5  # the reference: 5 paraphrases + 5 synonym variants per seed question
STOP_WORDS = set(
    "a an the and or but if of to in on at by for with from as is are was were be been being has have had do does did "
    "not no than then that this these those there their they them it its it's you your my our we us he she his her "
    "who whom which what when where why how all any some each other such more most less only own same so too very "
    "can will just should would could may might must over under into onto about against between through during".split()
)

# --- the fake server's replies to the reference's plain-text prompts --------------------------------
_NAIVE_STEP1 = re.compile(r"^Give me 5 numbered sentences that mean the same as: (.*)$", re.DOTALL)
_NAIVE_STEP2 = re.compile(r'^Give me 5 numbered synonyms of the word "(.*?)" as used in: (.*)$', re.DOTALL)


class BenchReplies:
    """Our JSON prompts go to the shared fake responder; the reference's prompts get numbered lists.
    A repeated step-1 call (the reference retries the same prompt) gets fresh rewordings."""

    def __init__(self) -> None:
        self.calls: dict[str, int] = defaultdict(int)

    def __call__(self, body: dict) -> str:
        prompt = body["messages"][-1]["content"]
        step1 = _NAIVE_STEP1.match(prompt)
        if step1:
            seed = step1.group(1)
            round_ = self.calls[seed]
            self.calls[seed] += 1
            lines = [self._reworded(seed, round_ * 5 + i) for i in range(4)] + ["What is your favourite colour of bicycle?"]
            return "\n".join(f"{i}. {line}" for i, line in enumerate(lines, start=1))
        step2 = _NAIVE_STEP2.match(prompt)
        if step2:
            word = step2.group(1)
            options = SYNONYMS.get(word.lower().strip(",.?:"), []) + [f"really {word}", f"truly {word}", f"quite {word}", f"very {word}", f"{word} indeed"]
            return "\n".join(f"{i}. {w}" for i, w in enumerate(options[:5], start=1))
        return augmentation_chat_reply(body)

    @staticmethod
    def _reworded(seed: str, i: int) -> str:
        body = seed[0].lower() + seed[1:]
        return f"{PREFIXES[i % len(PREFIXES)]}: {body}"


def numbered_lines(text: str) -> list[str]:
    return [m.group(1).strip() for m in re.finditer(r"^\s*\d+\.\s*(.+)$", text, re.MULTILINE)]


def replaceable_words(sentence: str) -> list[int]:
    words = sentence.split(" ")
    return [i for i, w in enumerate(words) if len(w.strip(",.?:")) > 3 and w.lower().strip(",.?:") not in STOP_WORDS]


class PairEncoder:
    """The reference's similarity: two encoder passes per comparison, nothing remembered."""

    def __init__(self, embedder: Embedder):
        self.model = embedder.model
        self.encoded = 0

    def one(self, text: str) -> np.ndarray:
        self.encoded += 1
        return self.model.encode([text], normalize_embeddings=True, convert_to_numpy=True, show_progress_bar=False)[0]

    def similarity(self, a: str, b: str) -> float:
        return float(self.one(a) @ self.one(b))


# --- the reference's way -------------------------------------------------------------------------------
def reference_augmentation(seeds: list[SeedQuestion], base_url: str, pairs: PairEncoder) -> dict:
    client = openai.OpenAI(api_key="sk-bench", base_url=base_url, max_retries=0)
    requests = 0

    def chat(prompt: str) -> str:
        nonlocal requests
        requests += 1
        reply = client.chat.completions.create(model="fake-model", messages=[{"role": "user", "content": prompt}], temperature=0.9)
        return reply.choices[0].message.content or ""

    accepted_total = 0
    start = time.perf_counter()
    for seed in seeds:
        paraphrases: list[str] = []
        for _ in range(10):
            if len(paraphrases) >= TARGET_PER_STEP:
                break
            for line in numbered_lines(chat(f"Give me 5 numbered sentences that mean the same as: {seed.text}")):
                if len(paraphrases) < TARGET_PER_STEP and line not in paraphrases and pairs.similarity(seed.text, line) > THRESHOLD:
                    paraphrases.append(line)
        generated: list[str] = []
        for sentence in paraphrases:
            words = sentence.split(" ")
            for index in replaceable_words(sentence):
                for synonym in numbered_lines(chat(f'Give me 5 numbered synonyms of the word "{words[index]}" as used in: {sentence}')):
                    generated.append(" ".join(words[:index] + [synonym] + words[index + 1:]))
        synonyms: list[str] = []
        for variant in generated:
            if len(synonyms) >= TARGET_PER_STEP:
                break
            if variant not in synonyms and variant not in paraphrases and pairs.similarity(seed.text, variant) > THRESHOLD:
                synonyms.append(variant)
        accepted_total += len(paraphrases) + len(synonyms)
    client.close()
    return {"wall_s": time.perf_counter() - start, "requests": requests, "accepted": accepted_total, "questions": len(seeds)}


# --- ours ----------------------------------------------------------------------------------------------
def our_augmentation(seeds: list[SeedQuestion], base_url: str, embedder: Embedder, workdir: Path) -> dict:
    llm = LLMResource(model="fake-model", api_key="sk-bench", base_url=base_url, concurrency=16)
    runner = llm.runner(Warehouse(workdir / "bench.duckdb"))
    start = time.perf_counter()
    step1, templates = paraphrase_step(seeds, runner, embedder, Step1Settings(similarity_threshold=THRESHOLD))
    step2 = synonym_step(seeds, templates.candidates, runner, embedder, Step2Settings(similarity_threshold=THRESHOLD))
    candidates = step1.candidates + templates.candidates + step2.candidates
    decided = semantic_filter(seeds, candidates, embedder, FilterSettings(similarity_threshold=THRESHOLD, max_per_question=MAX_PER_QUESTION))
    wall = time.perf_counter() - start
    accepted = [c for c in decided if c.accepted and c.step in ("paraphrase", "synonym")]
    return {"wall_s": wall, "requests": runner.stats.sent, "accepted": len(accepted), "candidates": candidates, "decided": decided}


# --- the filter alone, and diversity gain ----------------------------------------------------------
def filter_bench(seeds: list[SeedQuestion], candidates: list, pairs_encoder: PairEncoder, n_questions: int, device: str) -> dict:
    """The filter's decisions on the pipeline's candidates of the first questions, two ways.

    Ours: the package's `semantic_filter` (unique sentences encoded in one batch, every cosine from
    the vectors). One pair at a time: the same `select_diverse` on the same sentences, every cosine
    it needs (to the seed, then between candidates for the near-duplicate and MMR steps) from two
    encoder passes, each pair computed once. The decisions are checked equal. The seed-pair step is
    also timed on its own (the reference's filter makes only those comparisons): pairwise cosines
    to the seed vs one batched encoding of the same sentences.
    """
    # the cross-question guard is a veto before selection, not part of what the two ways compare
    settings = FilterSettings(similarity_threshold=THRESHOLD, max_per_question=MAX_PER_QUESTION, cross_question_guard=False)
    subset = seeds[:n_questions]
    question_ids = {s.question_id for s in subset}
    inputs = filter_inputs(candidates, question_ids)

    def pairwise(texts: list[str]) -> Callable[[int, Sequence[int]], np.ndarray]:
        return lambda j, others: np.array([pairs_encoder.similarity(texts[i], texts[j]) for i in others])

    naive: dict[str, tuple[bool, float]] = {}
    naive_seed_s = 0.0
    start = time.perf_counter()
    for seed in subset:
        rows = [c for c in inputs if c.question_id == seed.question_id]
        texts = [c.text for c in rows]
        seed_step = time.perf_counter()
        similarities = np.array([pairs_encoder.similarity(seed.text, t) for t in texts])
        naive_seed_s += time.perf_counter() - seed_step
        decisions = select_diverse(seed.text, texts, similarities, pairwise(texts), settings, ids=[c.sample_id for c in rows])
        naive.update({c.sample_id: (d.accepted, float(sim)) for c, d, sim in zip(rows, decisions, similarities)})
    naive_s = time.perf_counter() - start

    # fresh memos: nothing reused from the pipeline run or from each other
    start = time.perf_counter()
    Embedder(device=device).encode([s.text for s in subset] + [c.text for c in inputs])
    ours_seed_s = time.perf_counter() - start
    start = time.perf_counter()
    decided = semantic_filter(subset, [c for c in candidates if c.question_id in question_ids], Embedder(device=device), settings)
    ours_s = time.perf_counter() - start

    ours = {c.sample_id: (c.accepted, c.similarity) for c in decided if c.sample_id in naive}
    assert ours.keys() == naive.keys(), "the two ways decided on different sentences"
    assert all(ours[k][0] == naive[k][0] for k in naive), "batched and pairwise filters decided differently"
    assert np.allclose([ours[k][1] for k in naive], [naive[k][1] for k in naive], atol=1e-4), "batched and pairwise similarities differ"
    return {"candidates": len(inputs), "kept": sum(accepted for accepted, _ in ours.values()), "pairs": pairs_encoder.encoded // 2,
            "naive_s": naive_s, "ours_s": ours_s, "naive_seed_s": naive_seed_s, "ours_seed_s": ours_seed_s}


def naive_diversity_gain(seed_texts: list[str], augmented: list[str], pairs: PairEncoder) -> float:
    return float(np.mean([1 - max(pairs.similarity(a, s) for s in seed_texts) for a in augmented]))


def diversity_bench(seeds: list[SeedQuestion], decided: list, device: str) -> dict:
    seed_texts = [s.text for s in seeds]
    augmented = [c.text for c in decided if c.accepted and c.step in ("paraphrase", "synonym")]
    ours = Embedder(device=device)
    gain = diversity_gain(seed_texts, augmented, ours)
    n, m = len(seed_texts), len(augmented)
    check_seeds, check_aug = seed_texts[:3], augmented[:8]
    small_ours, small_naive = Embedder(device=device), PairEncoder(ours)
    same = abs(diversity_gain(check_seeds, check_aug, small_ours) - naive_diversity_gain(check_seeds, check_aug, small_naive)) < 1e-4
    assert small_naive.encoded == 2 * len(check_seeds) * len(check_aug), "the naive count is 2 x N x M"
    return {"n": n, "m": m, "gain": gain, "ours_encodings": ours.encoded, "naive_encodings": 2 * n * m, "same_value_on_subset": same,
            "subset": f"{len(check_seeds)} x {len(check_aug)}: ours {small_ours.encoded} vs naive {small_naive.encoded} encodings"}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--questions", type=int, default=50)
    parser.add_argument("--reference-questions", type=int, default=10, help="questions the sequential reference runs on (scaled to all)")
    parser.add_argument("--filter-questions", type=int, default=5, help="questions in the pairwise filter comparison")
    parser.add_argument("--latency", type=float, default=0.2)
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu", help="where the sentence encoder runs")
    args = parser.parse_args()

    seeds = [SeedQuestion(q.id, q.text) for q in load_questions()][: args.questions]
    embedder = Embedder(device=args.device)
    embedder.encode(["warm up the encoder"])
    with FakeOpenAI(latency_s=args.latency) as server, tempfile.TemporaryDirectory() as tmp:
        server.chat_reply = BenchReplies()
        ours = our_augmentation(seeds, server.base_url, embedder, Path(tmp))
        ours_requests_at_server = server.count(r"/chat/completions")
        reference = reference_augmentation(seeds[: args.reference_questions], server.base_url, PairEncoder(embedder))
        reference_requests_at_server = server.count(r"/chat/completions") - ours_requests_at_server
    assert ours_requests_at_server == ours["requests"] and reference_requests_at_server == reference["requests"]
    filtered = filter_bench(seeds, ours["candidates"], PairEncoder(embedder), args.filter_questions, args.device)
    diversity = diversity_bench(seeds, ours["decided"], args.device)

    scale = len(seeds) / reference["questions"]
    ref_wall, ref_requests, ref_accepted = reference["wall_s"] * scale, reference["requests"] * scale, reference["accepted"] * scale
    ref_rpa = reference["requests"] / max(reference["accepted"], 1)
    our_rpa = ours["requests"] / max(ours["accepted"], 1)
    measured = "measured" if scale == 1 else f"measured on {reference['questions']}, x{scale:.1f}"
    print(f"augmentation of {len(seeds)} seed questions, fake server latency {args.latency * 1000:.0f} ms/request, "
          f"sentence encoder on {args.device} ({torch.get_num_threads()} CPU threads)")
    print(f"reference way: {measured} (strictly sequential: {reference['wall_s'] / reference['questions']:.1f} s, "
          f"{reference['requests'] / reference['questions']:.1f} requests per question)")
    print(f"{'':34}{'reference way':>16}{'ours':>12}{'ratio':>10}")
    print(f"{'wall time (s)':34}{ref_wall:>16.1f}{ours['wall_s']:>12.1f}{ref_wall / ours['wall_s']:>10.1f}x")
    print(f"{'requests':34}{ref_requests:>16.0f}{ours['requests']:>12}")
    print(f"{'accepted variants':34}{ref_accepted:>16.0f}{ours['accepted']:>12}")
    print(f"{'requests per accepted variant':34}{ref_rpa:>16.3f}{our_rpa:>12.3f}{ref_rpa / our_rpa:>10.1f}x")
    print(f"embedding filter on {filtered['candidates']} candidates of {args.filter_questions} questions ({filtered['kept']} kept, same decisions both ways):")
    print(f"{'':34}{'pair at a time':>16}{'batched':>12}{'ratio':>10}")
    print(f"{'  whole filter, wall time (s)':34}{filtered['naive_s']:>16.2f}{filtered['ours_s']:>12.2f}{filtered['naive_s'] / filtered['ours_s']:>10.1f}x")
    print(f"{'  cosines computed':34}{filtered['pairs']:>16}{'':>12}")
    print(f"{'  seed pairs only, wall time (s)':34}{filtered['naive_seed_s']:>16.2f}{filtered['ours_seed_s']:>12.2f}"
          f"{filtered['naive_seed_s'] / filtered['ours_seed_s']:>10.1f}x")
    print(f"diversity gain of {diversity['m']} variants over {diversity['n']} seeds = {diversity['gain']:.4f}")
    print(f"{'  encoder passes':34}{diversity['naive_encodings']:>16}{diversity['ours_encodings']:>12}{diversity['naive_encodings'] / diversity['ours_encodings']:>10.1f}x")
    print(f"  checked on a subset ({diversity['subset']}): same value = {diversity['same_value_on_subset']}")
    print(json.dumps({
        "bench": "augmentation",
        "speedup_wall": round(ref_wall / ours["wall_s"], 2),
        "requests_per_accepted_ratio": round(ref_rpa / our_rpa, 2),
        "filter_speedup": round(filtered["naive_seed_s"] / filtered["ours_seed_s"], 2),
        "filter_whole_speedup": round(filtered["naive_s"] / filtered["ours_s"], 2),
        "diversity_encodings_ratio": round(diversity["naive_encodings"] / diversity["ours_encodings"], 2),
    }))


if __name__ == "__main__":
    main()
