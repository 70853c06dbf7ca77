"""The meaning check: negations, antonym swaps and role swaps of real seed questions pass the cosine
cut but are rejected, by an NLI cross-encoder and by the LLM judge, each asked in both directions;
faithful paraphrases of the same seeds are kept.

What these tests prove, and what they do not: the NLI stand-in is a 2-layer BERT cross-encoder
taught the fixture's labels (meaning_fixture.build_tiny_nli), and the fake judge rates fixture
pairs by the same labels. Neither knows language. The tests prove that the filter path asks the
model (or judge) about every pair above the threshold in BOTH directions, reads the entailment
label by name, and acts on the answers: rejecting with the reason recorded in lineage, keeping
what both directions accept. Whether a real NLI model (cross-encoder/nli-deberta-v3-small) labels
these sentences correctly is a property of that model, not tested here (no hub on this machine).
"""

from __future__ import annotations

import json
from pathlib import Path

import dagster as dg
import polars as pl
import pytest

from culture_assets.assets.augmentation import augmented_questions, paraphrases_and_templates, synonym_variants
from culture_assets.assets.survey import wvs_questions
from culture_assets.augment.candidates import Candidate, SeedQuestion, sample_id, seed_candidate
from culture_assets.augment.embedder import Embedder
from culture_assets.augment.equivalence import DEFAULT_NLI_MODEL, JudgeEquivalence, NliEquivalence
from culture_assets.augment.semantic_filter import FilterSettings, semantic_filter
from culture_assets.store import Warehouse
from culture_assets_tests.fake_openai import FakeOpenAI
from culture_assets_tests.hub_cache import fill_hub_cache
from culture_assets_tests.meaning_fixture import INVERSIONS, ONE_WAY, PARAPHRASES, SEED_IDS, build_tiny_nli, judge_chat_reply, seed_texts
from culture_assets_tests.test_augmentation import fake_llm, resources, write_questions

SETTINGS = FilterSettings(similarity_threshold=0.8, max_per_question=10)


@pytest.fixture(scope="session")
def tiny_nli_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_tiny_nli(tmp_path_factory.mktemp("models") / "tiny-nli")


@pytest.fixture
def nli_hub(offline_hub: Path, tiny_nli_dir: Path) -> Path:
    """The tiny NLI stand-in in the offline hub cache under the default NLI model's real name."""
    fill_hub_cache(offline_hub, DEFAULT_NLI_MODEL, tiny_nli_dir)
    return offline_hub


def fixture_seeds() -> list[SeedQuestion]:
    return [SeedQuestion(q, text) for q, text in seed_texts().items()]


def fixture_candidates() -> list[Candidate]:
    rows = []
    for seed in fixture_seeds():
        parent = seed_candidate(seed).sample_id
        texts = INVERSIONS[seed.question_id] + [t for t, *_ in ONE_WAY.get(seed.question_id, [])] + PARAPHRASES[seed.question_id]
        rows += [Candidate(sample_id(seed.question_id, "paraphrase", t), seed.question_id, "paraphrase", t, parent, "hand", None, None, True, None) for t in texts]
    return rows


def outcome(decided: list[Candidate]) -> dict[str, Candidate]:
    return {c.text: c for c in decided if c.step == "paraphrase"}


def inverted() -> list[str]:
    return [t for q in SEED_IDS for t in INVERSIONS[q]] + [t for q in ONE_WAY for t, *_ in ONE_WAY[q]]


def faithful() -> list[str]:
    return [t for q in SEED_IDS for t in PARAPHRASES[q]]


def test_inversions_pass_the_cosine_cut_and_the_nli_check_rejects_them_both_ways(nli_hub: Path) -> None:
    embedder = Embedder()
    without = outcome(semantic_filter(fixture_seeds(), fixture_candidates(), embedder, SETTINGS))
    assert all(without[t].similarity >= SETTINGS.similarity_threshold for t in inverted() + faithful()), "the fixture should sit above the cosine cut"
    assert sum(without[t].accepted for t in inverted()) >= len(inverted()) // 2  # the rest only as near-copies of the seed

    decided = outcome(semantic_filter(fixture_seeds(), fixture_candidates(), embedder, SETTINGS, NliEquivalence()))  # by hub name
    assert [t for t in inverted() if decided[t].accepted] == []
    assert [t for t in faithful() if not decided[t].accepted] == []
    assert all(decided[t].reason.startswith(f"not equivalent by NLI ({DEFAULT_NLI_MODEL})") for t in inverted())
    # a weaker claim fails only variant -> seed, a stronger one only seed -> variant: both directions are asked
    weaker, stronger = ONE_WAY["Q29"][0][0], ONE_WAY["Q34"][0][0]
    assert "variant entails seed" in decided[weaker].reason and "seed entails variant" not in decided[weaker].reason
    assert "seed entails variant" in decided[stronger].reason and "variant entails seed" not in decided[stronger].reason


def test_the_llm_judge_rejects_inversions_asked_both_ways_and_caches(fake_openai: FakeOpenAI, data_home: Path) -> None:
    fake_openai.chat_reply = judge_chat_reply
    warehouse = Warehouse(data_home / "warehouse.duckdb")
    check = JudgeEquivalence(fake_llm(fake_openai).runner(warehouse), pass_score=4)
    decided = outcome(semantic_filter(fixture_seeds(), fixture_candidates(), Embedder(), SETTINGS, check))
    assert [t for t in inverted() if decided[t].accepted] == []
    assert [t for t in faithful() if not decided[t].accepted] == []
    assert all(decided[t].reason.startswith("not equivalent by LLM judge (fake-model)") for t in inverted())
    assert "seed->variant 5, variant->seed 3" in decided[ONE_WAY["Q29"][0][0]].reason

    asked = {tuple(json.loads(json.dumps(r.body["messages"][-1]["content"])).split('"')[1:4:2]) for r in fake_openai.requests}
    seeds = seed_texts()
    for text in inverted() + faithful():
        question = next(q for q in SEED_IDS if text in INVERSIONS[q] + PARAPHRASES[q] + [t for t, *_ in ONE_WAY.get(q, [])])
        assert (seeds[question], text) in asked and (text, seeds[question]) in asked
    sent = len(fake_openai.requests)
    assert sent == 2 * len(inverted() + faithful())
    again = outcome(semantic_filter(fixture_seeds(), fixture_candidates(), Embedder(), SETTINGS, JudgeEquivalence(fake_llm(fake_openai).runner(warehouse))))
    assert len(fake_openai.requests) == sent and {t: c.accepted for t, c in again.items()} == {t: c.accepted for t, c in decided.items()}


def fixture_generator(body: dict) -> str:
    """Step 1 answers each fixture seed with its hand-written variants; the judge rates by label."""
    prompt = body["messages"][-1]["content"]
    for question_id, seed in seed_texts().items():
        if f'Seed survey item: "{seed}"' in prompt:
            texts = INVERSIONS[question_id] + [t for t, *_ in ONE_WAY.get(question_id, [])] + PARAPHRASES[question_id]
            return json.dumps({"paraphrases": texts})
    return judge_chat_reply(body)


def test_the_augmentation_assets_reject_inversions_by_nli_and_judge_and_record_why(nli_hub: Path, fake_openai: FakeOpenAI, data_home: Path, tmp_path: Path) -> None:
    fake_openai.chat_reply = fixture_generator
    questions = write_questions(tmp_path / "questions.yaml", list(SEED_IDS))
    result = dg.materialize(
        [wvs_questions, paraphrases_and_templates, synonym_variants, augmented_questions],
        resources=resources(data_home, questions, fake_llm(fake_openai)),
        run_config={"ops": {"paraphrases_and_templates": {"config": {"n_templates": 0}}, "augmented_questions": {"config": {"min_variants_per_question": 2}}}},
        instance=dg.DagsterInstance.ephemeral(),
    )
    assert result.success
    metadata = result.asset_materializations_for_node("augmented_questions")[0].metadata
    assert metadata["meaning_checks"].value == f"nli:{DEFAULT_NLI_MODEL}, judge:fake-model"
    lineage = Warehouse(data_home / "warehouse.duckdb").query("SELECT text, accepted, reason FROM sample_lineage WHERE step = 'paraphrase'")
    by_text = {text: (accepted, reason) for text, accepted, reason in lineage.iter_rows()}
    assert [t for t in inverted() if by_text[t][0]] == []
    assert all(by_text[t][1].startswith("not equivalent by NLI") for t in inverted())
    assert [t for t in faithful() if not by_text[t][0]] == []
    judged = [json.loads(json.dumps(r.body))["messages"][-1]["content"] for r in fake_openai.requests if '{"score"' in r.body["messages"][-1]["content"]]
    assert len(judged) == 2 * len(faithful())  # the judge is paid only for what the NLI model let through


def test_a_variant_nearer_to_another_seed_is_rejected_by_the_cross_question_guard() -> None:
    texts = {"Q224": "In your view, how often do the following things occur in this country’s elections: Votes are counted fairly?",
             "Q229": "In your view, how often do the following things occur in this country’s elections: Election officials are fair?"}
    seeds = [SeedQuestion(q, t) for q, t in texts.items()]
    stray = "In your view, how often do the following things occur in this country’s elections: Officials running the elections are fair?"
    own = "In your view, how often are votes counted fairly in this country's elections?"
    candidates = [Candidate(sample_id("Q224", "paraphrase", t), "Q224", "paraphrase", t, None, "hand", None, None, True, None) for t in (stray, own)]
    decided = outcome(semantic_filter(seeds, candidates, Embedder(), SETTINGS))
    assert not decided[stray].accepted and decided[stray].reason.startswith("nearer to another seed question (Q229")
    assert decided[own].accepted
    unguarded = outcome(semantic_filter(seeds, candidates, Embedder(), FilterSettings(similarity_threshold=0.5, cross_question_guard=False)))
    assert unguarded[stray].accepted
