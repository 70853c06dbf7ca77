"""The augmentation assets run through Dagster against the fake OpenAI server and the packaged MiniLM."""

from __future__ import annotations

import os
import json
import signal
import socket
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import dagster as dg
import numpy as np
import polars as pl
import pytest
import yaml

from culture_assets.assets.augmentation import (
    augmentation_quality,
    augmented_questions,
    paraphrases_and_templates,
    synonym_variants,
)
from culture_assets.assets.survey import wvs_questions
from culture_assets.augment.candidates import SeedQuestion, seeds_from_frame
from culture_assets.augment.embedder import Embedder
from culture_assets.augment.quality import diversity_gain, perplexity
from culture_assets.augment.semantic_filter import FilterSettings, embedding_similarity, select_diverse, threshold_for
from culture_assets.errors import InputError
from culture_assets.io_manager import ArtifactIOManager
from culture_assets.resources.llm import LLMResource
from culture_assets.resources import SurveySourceResource, WarehouseResource
from culture_assets.resources.augment import EmbedderResource
from culture_assets.store import Warehouse
from culture_assets.survey.questions import load_questions
from culture_assets_tests.fake_augmentation_llm import augmentation_chat_reply
from culture_assets_tests.fake_openai import FakeOpenAI

# Chosen so the fake's scripted faults all occur: Q27, Q132 malformed step-1 replies; Q30 a malformed
# step-2 reply and a filling with the wrong slot count; Q35 a template without a slot.
QUESTION_IDS = ["Q27", "Q30", "Q35", "Q40", "Q132", "Q158"]
STEP_ASSETS = [wvs_questions, paraphrases_and_templates, synonym_variants, augmented_questions]
CHAT = r"/chat/completions"


def sent_bodies(server: FakeOpenAI) -> list[str]:
    return [json.dumps(r.body, sort_keys=True) for r in server.requests if r.path.endswith("/chat/completions")]


def attempts(server: FakeOpenAI, marker: str, question_text: str) -> set[int]:
    """The sampling seeds (attempt numbers) of the requests of one step for one seed question."""
    return {int(r.body.get("seed", 0)) for r in server.requests if marker in r.body["messages"][-1]["content"] and question_text in r.body["messages"][-1]["content"]}


def write_questions(path: Path, ids: list[str] = QUESTION_IDS, blank: str | None = None) -> Path:
    questions = [q for q in load_questions() if q.id in ids]
    items = [{"id": q.id, "topic": q.topic, "text": "" if q.id == blank else q.text, "options": q.option_text()} for q in questions]
    path.write_text(yaml.safe_dump({"questions": items}), encoding="utf-8")
    return path


def resources(home: Path, questions: Path, llm: LLMResource) -> dict:
    return {
        "io_manager": ArtifactIOManager(data_home=str(home)),
        "warehouse": WarehouseResource(data_home=str(home)),
        "survey_source": SurveySourceResource(questions_path=str(questions)),
        "llm": llm,
        "embedder": EmbedderResource(),
    }


def fake_llm(server: FakeOpenAI, **overrides) -> LLMResource:
    settings = {"model": "fake-model", "api_key": "sk-test", "base_url": server.base_url, "max_retries": 3, "backoff_base_s": 0.01, **overrides}
    return LLMResource(**settings)


def quality_config(tiny_model_dir: Path) -> dict:
    # the meaning check is the fake judge's: an NLI stand-in knows only its own fixture (test_meaning_check)
    return {"ops": {
        "augmented_questions": {"config": {"nli_model": "", "max_per_question": 10}},
        "augmentation_quality": {"config": {"perplexity_model": str(tiny_model_dir), "judge_sample": 12}},
    }}


def read(home: Path, key: str) -> pl.DataFrame:
    return pl.read_parquet(home / "assets" / key / "all.parquet")


def failure_message(result: dg.ExecuteInProcessResult) -> str:
    return "\n".join(event.event_specific_data.error.to_string() for event in result.get_step_failure_events())


@pytest.fixture
def augmentation_server(fake_openai: FakeOpenAI) -> FakeOpenAI:
    fake_openai.chat_reply = augmentation_chat_reply
    return fake_openai


def test_whole_augmentation_with_faults_then_a_free_rerun(augmentation_server: FakeOpenAI, data_home: Path, tmp_path: Path, tiny_model_dir: Path) -> None:
    server = augmentation_server
    server.fail_next(429, retry_after=0.02)
    server.fail_next(500, retry_after=0.01)
    server.fail_next(503)
    questions = write_questions(tmp_path / "questions.yaml")
    result = dg.materialize(
        [*STEP_ASSETS, augmentation_quality],
        resources=resources(data_home, questions, fake_llm(server)),
        run_config=quality_config(tiny_model_dir),
        instance=dg.DagsterInstance.ephemeral(),
    )
    assert result.success
    sent = server.count(CHAT)
    texts = {q.id: q.text for q in load_questions()}
    assert {0, 1} <= attempts(server, "different sentences that say exactly", texts["Q27"])  # malformed, asked again
    assert {0, 1} <= attempts(server, "different sentences that say exactly", texts["Q132"])
    assert attempts(server, "Templates:", texts["Q30"]) == {0, 1}
    judged = [r.body["messages"][-1]["content"] for r in server.requests if '{"score"' in r.body["messages"][-1]["content"]]
    # the filter's two-way meaning check asked each pair once; the quality sample's 12 came from the cache
    assert len(judged) > 12 and len(set(judged)) == len(judged)
    assert len(set(sent_bodies(server))) == sent - 3  # only the three faulted requests were sent twice

    augmented = read(data_home, "augmented_questions")
    assert augmented.columns == ["sample_id", "question_id", "text", "step", "parent_id", "similarity", "model", "prompt_hash"]
    assert set(augmented["step"]) == {"seed", "paraphrase", "synonym"}
    seeds = augmented.filter(pl.col("step") == "seed")
    assert sorted(seeds["question_id"]) == sorted(QUESTION_IDS) and seeds["parent_id"].null_count() == 6
    assert seeds["similarity"].to_list() == [1.0] * 6
    variants = augmented.filter(pl.col("step") != "seed")
    assert variants["similarity"].min() >= threshold_for("").value
    assert variants.group_by("question_id").len()["len"].min() >= 3
    assert variants.group_by("question_id").len()["len"].max() <= 10  # the configured max_per_question
    assert set(variants["model"]) == {"fake-model"} and variants["prompt_hash"].null_count() == 0
    assert augmented["sample_id"].n_unique() == augmented.height

    lineage = Warehouse(data_home / "warehouse.duckdb").query("SELECT * FROM sample_lineage")
    candidates = pl.concat([read(data_home, k) for k in ("paraphrases", "question_templates", "synonym_variants")])
    assert lineage.height == candidates.height + 6
    accepted_ids = set(lineage.filter(pl.col("accepted") & (pl.col("step") != "template"))["sample_id"])
    assert accepted_ids == set(augmented["sample_id"])
    reasons = lineage.filter(~pl.col("accepted"))["reason"].to_list()
    assert any(r.startswith("malformed response") for r in reasons)
    assert any(r.startswith("similarity") and "below threshold" in r for r in reasons)
    assert any(r.startswith("duplicate of") for r in reasons)
    assert any(r.startswith("unusable filling") for r in reasons)
    assert any(r == "template has no [x:word] slot" for r in reasons)
    assert any(r == "a statement turned into a question" for r in reasons)
    assert any(r.startswith("template does not restore its sentence") for r in reasons)
    assert any(r.startswith("unusable filling: filling repeats the replaced word") for r in reasons)
    assert any(r.startswith("not equivalent by LLM judge (fake-model)") for r in reasons)
    malformed = lineage.filter(pl.col("reason").str.starts_with("malformed response"))
    assert malformed["text"].str.starts_with("Sure! Here are").any()
    by_id = {row["sample_id"]: row for row in lineage.iter_rows(named=True)}
    # step 2 works on step-1 sentences: every template and synonym variant descends from the seed or an accepted paraphrase
    synonyms = lineage.filter(pl.col("step") == "synonym")
    for row in lineage.filter(pl.col("step").is_in(["synonym", "template"])).iter_rows(named=True):
        parent = by_id[row["parent_id"]]
        assert parent["step"] in ("seed", "paraphrase") and parent["similarity"] >= 0.8 and parent["question_id"] == row["question_id"]
    assert (synonyms.join(lineage.select("sample_id", pl.col("step").alias("parent_step")), left_on="parent_id", right_on="sample_id")["parent_step"] == "paraphrase").any()
    for row in lineage.filter(pl.col("step") == "paraphrase").iter_rows(named=True):
        assert by_id[row["parent_id"]]["step"] == "seed" and by_id[row["parent_id"]]["question_id"] == row["question_id"]

    filtered = result.asset_materializations_for_node("augmented_questions")[0].metadata
    assert filtered["threshold"].value == threshold_for("").value and filtered["threshold_encoder"].value == "all-MiniLM-L6-v2"
    assert 0 < filtered["mean_pairwise_cosine_within_question"].value < 1
    checks = {e.check_name: e.passed for e in result.get_asset_check_evaluations()}
    assert checks == {"every_question_covered": True, "similarity_above_threshold": True, "no_exact_duplicates": True, "option_scale_unchanged": True}
    quality = result.asset_materializations_for_node("augmentation_quality")[0].metadata
    assert quality["diversity_gain"].value > 0
    assert quality["embedding_encodings"].value == variants["text"].n_unique() + 6
    assert quality["perplexity_seed"].value > 1 and quality["perplexity_augmented"].value > 1
    assert quality["judge_pairs"].value == 12 and 3 <= quality["judge_mean"].value <= 5
    assert 0 <= quality["judge_pass_rate"].value <= 1
    assert "data:image/png;base64," in quality["plot"].value
    assert (data_home / "plots" / "augmentation_quality.png").stat().st_size > 1000

    rerun = dg.materialize(
        [*STEP_ASSETS, augmentation_quality],
        resources=resources(data_home, questions, fake_llm(server)),
        run_config=quality_config(tiny_model_dir),
        instance=dg.DagsterInstance.ephemeral(),
    )
    assert rerun.success
    assert server.count(CHAT) == sent  # everything came from the cache
    assert read(data_home, "augmented_questions").equals(augmented)


def test_dry_run_then_budget_stop_then_a_rerun_resumes(augmentation_server: FakeOpenAI, data_home: Path, tmp_path: Path) -> None:
    server = augmentation_server
    questions = write_questions(tmp_path / "questions.yaml")
    assets = [wvs_questions, paraphrases_and_templates]
    dry = dg.materialize(assets, resources=resources(data_home, questions, fake_llm(server, dry_run=True)), instance=dg.DagsterInstance.ephemeral(), raise_on_error=False)
    assert not dry.success and server.count(CHAT) == 0
    assert "dry run: 6 chat requests: 0 cached, 6 to send" in failure_message(dry)
    failure = dry.get_step_failure_events()[0].step_failure_data.user_failure_data
    assert failure.metadata["to_send"].value == 6 and failure.metadata["max_completion_tokens"].value == 6 * 1024

    capped = dg.materialize(assets, resources=resources(data_home, questions, fake_llm(server, max_requests=4, concurrency=2)), instance=dg.DagsterInstance.ephemeral())
    assert capped.success
    assert server.count(CHAT) == 4
    metadata = capped.asset_materializations_for_node("paraphrases_and_templates")[0].metadata
    assert metadata["budget_exhausted"].value is True and metadata["llm_requests_sent"].value == 4
    assert read(data_home, "paraphrases")["question_id"].n_unique() == 4

    full = dg.materialize(assets, resources=resources(data_home, questions, fake_llm(server)), instance=dg.DagsterInstance.ephemeral())
    assert full.success
    assert server.count(CHAT) > 4
    assert len(set(sent_bodies(server))) == server.count(CHAT)  # nothing paid twice
    assert read(data_home, "paraphrases")["question_id"].n_unique() == 6


def test_a_laptop_sized_run_augments_the_first_questions_only(augmentation_server: FakeOpenAI, data_home: Path, tmp_path: Path) -> None:
    questions = write_questions(tmp_path / "questions.yaml")
    run_config = {"ops": {"paraphrases_and_templates": {"config": {"max_questions": 2}}}}
    result = dg.materialize([wvs_questions, paraphrases_and_templates], resources=resources(data_home, questions, fake_llm(augmentation_server)),
                            run_config=run_config, instance=dg.DagsterInstance.ephemeral())
    assert result.success
    asked = {json.loads(body)["messages"][-1]["content"].split('Seed survey item: "')[1].split('"')[0] for body in sent_bodies(augmentation_server)}
    first_two = read(data_home, "wvs_questions")["text"].head(2).to_list()
    assert asked == set(first_two)
    assert read(data_home, "paraphrases")["question_id"].n_unique() == 2


def test_a_killed_materialization_resumes_without_repeating_calls(data_home: Path, tmp_path: Path) -> None:
    questions = write_questions(tmp_path / "questions.yaml")
    script = textwrap.dedent(
        """
        import sys
        import dagster as dg
        from culture_assets.assets.augmentation import paraphrases_and_templates
        from culture_assets.assets.survey import wvs_questions
        from culture_assets.resources.llm import LLMResource
        from culture_assets_tests.test_augmentation import resources
        from pathlib import Path
        base_url, home, questions = sys.argv[1:4]
        llm = LLMResource(model="fake-model", api_key="sk-test", base_url=base_url, concurrency=1)
        dg.materialize([wvs_questions, paraphrases_and_templates], resources=resources(Path(home), Path(questions), llm), instance=dg.DagsterInstance.ephemeral())
        """
    )
    with FakeOpenAI(latency_s=1.0) as server:
        server.chat_reply = augmentation_chat_reply
        env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[1])}
        child = subprocess.Popen([sys.executable, "-c", script, server.base_url, str(data_home), str(questions)], env=env)
        try:
            while server.count(CHAT) < 3 and child.poll() is None:
                time.sleep(0.05)
            time.sleep(0.5)
        finally:
            child.send_signal(signal.SIGKILL)
            child.wait()
        killed_after = server.count(CHAT)
        assert killed_after < 6, "the run finished before it could be killed"
        warehouse = Warehouse(data_home / "warehouse.duckdb")
        cached = int(warehouse.query("SELECT count(*) AS n FROM llm_cache")["n"][0])
        assert cached >= 2
        assert not (data_home / "assets" / "paraphrases" / "all.parquet").exists()

        server.latency_s = 0.0
        resumed = dg.materialize([wvs_questions, paraphrases_and_templates], resources=resources(data_home, questions, fake_llm(server)), instance=dg.DagsterInstance.ephemeral())
        assert resumed.success
        bodies = sent_bodies(server)
        assert len(bodies) > killed_after
        assert len(bodies) - len(set(bodies)) <= 1  # at most the call in flight when the run was killed is repeated
        assert read(data_home, "paraphrases")["question_id"].n_unique() == 6


def _closed_port_url() -> str:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return f"http://127.0.0.1:{probe.getsockname()[1]}/v1"


def _reject_model(server: FakeOpenAI) -> None:
    @server.route("POST", r"/v1/chat/completions")
    def unknown_model(body: dict, match) -> tuple[int, dict]:
        return 404, {"error": {"message": f"The model `{body['model']}` does not exist", "type": "invalid_request_error", "code": "model_not_found"}}


@pytest.mark.parametrize(
    "fault, expected",
    [
        ("unreachable", r"LLMUnreachableError.*OPENAI_BASE_URL"),
        ("bad_key", r"LLMAuthError.*refused the API key.*OPENAI_API_KEY"),
        ("unknown_model", r"LLMModelError.*rejected model 'gpt-nope'.*`model`"),
    ],
)
def test_llm_failures_are_clear_and_keep_what_was_generated(fault: str, expected: str, augmentation_server: FakeOpenAI, data_home: Path, tmp_path: Path) -> None:
    server = augmentation_server
    questions = write_questions(tmp_path / "questions.yaml")
    assets = [wvs_questions, paraphrases_and_templates]
    assert dg.materialize(assets, resources=resources(data_home, questions, fake_llm(server)), instance=dg.DagsterInstance.ephemeral()).success
    before = read(data_home, "paraphrases")
    warehouse = Warehouse(data_home / "warehouse.duckdb")
    cached = warehouse.query("SELECT count(*) AS n FROM llm_cache")["n"][0]

    more = write_questions(tmp_path / "more.yaml", QUESTION_IDS + ["Q29", "Q31"])
    if fault == "unreachable":
        llm = fake_llm(server, base_url=_closed_port_url(), max_retries=1)
    elif fault == "bad_key":
        server.api_key = "sk-the-right-key"
        llm = fake_llm(server)
    else:
        _reject_model(server)
        llm = fake_llm(server, model="gpt-nope")
    result = dg.materialize(assets, resources=resources(data_home, more, llm), instance=dg.DagsterInstance.ephemeral(), raise_on_error=False)
    assert not result.success
    assert __import__("re").search(expected, failure_message(result), __import__("re").DOTALL)
    assert read(data_home, "paraphrases").equals(before)
    assert warehouse.query("SELECT count(*) AS n FROM llm_cache")["n"][0] == cached


def test_an_empty_seed_question_is_named_and_nothing_is_lost(augmentation_server: FakeOpenAI, data_home: Path, tmp_path: Path) -> None:
    questions = write_questions(tmp_path / "questions.yaml")
    assets = [wvs_questions, paraphrases_and_templates]
    assert dg.materialize(assets, resources=resources(data_home, questions, fake_llm(augmentation_server)), instance=dg.DagsterInstance.ephemeral()).success
    before = read(data_home, "paraphrases")
    sent = augmentation_server.count(CHAT)
    blank = write_questions(tmp_path / "blank.yaml", blank="Q30")
    result = dg.materialize(assets, resources=resources(data_home, blank, fake_llm(augmentation_server)), instance=dg.DagsterInstance.ephemeral(), raise_on_error=False)
    assert not result.success
    message = failure_message(result)
    assert "blank.yaml" in message and "question 2" in message and "'text'" in message
    assert augmentation_server.count(CHAT) == sent
    assert read(data_home, "paraphrases").equals(before)

    with pytest.raises(InputError, match=r"row 2, field 'text'.*Q28 has an empty text"):
        seeds_from_frame(pl.DataFrame({"question_id": ["Q27", "Q28"], "text": ["Family matters", "   "]}))


def test_api_key_never_reaches_logs_metadata_cache_or_duckdb(data_home: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capfd: pytest.CaptureFixture[str], caplog: pytest.LogCaptureFixture, tiny_model_dir: Path) -> None:
    canary = "sk-CANARY-7f3e9b21d4c8a6e5"
    monkeypatch.setenv("OPENAI_API_KEY", canary)
    questions = write_questions(tmp_path / "questions.yaml", ["Q27", "Q40"])
    instance = dg.DagsterInstance.get()  # persistent, under the test's DAGSTER_HOME, so its event log can be searched
    with FakeOpenAI(api_key=canary) as server:
        server.chat_reply = augmentation_chat_reply
        llm = LLMResource(model="fake-model", api_key=dg.EnvVar("OPENAI_API_KEY"), base_url=server.base_url, backoff_base_s=0.01)
        result = dg.materialize([*STEP_ASSETS, augmentation_quality], resources=resources(data_home, questions, llm), run_config=quality_config(tiny_model_dir), instance=instance)
        assert result.success and server.count(CHAT) > 0
        assert all({k.lower(): v for k, v in r.headers.items()}["authorization"] == f"Bearer {canary}" for r in server.requests)  # the key was really used
        server.api_key = "sk-another-key"  # now the canary is refused: the error path must not echo it either
        failed = dg.materialize([wvs_questions, paraphrases_and_templates], resources=resources(data_home, write_questions(tmp_path / "q2.yaml", ["Q29"]), llm), instance=instance, raise_on_error=False)
        assert not failed.success
    metadata = [str(m.metadata) for node in ("paraphrases_and_templates", "synonym_variants", "augmented_questions", "augmentation_quality") for m in result.asset_materializations_for_node(node)]
    logs = [str(record.getMessage()) for record in caplog.records]
    logs += [str(event) for run in (result, failed) for event in instance.all_logs(run.run_id)]
    captured = capfd.readouterr()
    assert canary not in "\n".join(metadata + logs + [captured.out, captured.err, failure_message(failed)])
    cache = Warehouse(data_home / "warehouse.duckdb").query("SELECT * FROM llm_cache")
    assert cache.height > 0 and not any(canary in str(value) for row in cache.iter_rows() for value in row)
    stored = [p for p in data_home.rglob("*") if p.is_file()]
    assert any(p.name == "warehouse.duckdb" for p in stored) and any(p.suffix == ".db" for p in stored)
    leaking = [str(p) for p in stored if canary.encode() in p.read_bytes()]
    assert leaking == []


def test_mmr_keeps_diverse_variants_not_the_most_similar() -> None:
    seed = np.array([1.0, 0.0, 0.0])
    near = np.array([0.95, 0.312, 0.0])
    near2 = np.array([0.94, 0.341, 0.0])
    other = np.array([0.85, 0.0, 0.527])
    vectors = np.stack([v / np.linalg.norm(v) for v in (near, near2, other)])
    similarities = vectors @ seed
    settings = FilterSettings(similarity_threshold=0.8, max_per_question=2, mmr_lambda=0.5)
    decisions = select_diverse("seed", ["a", "b", "c"], similarities, embedding_similarity(vectors), settings)
    kept = [d.index for d in decisions if d.accepted]
    assert kept == [0, 2]  # the most similar pair would be [0, 1]
    assert decisions[1].reason.startswith("not selected")
    dupes = select_diverse("Work is a duty", ["work is a duty.", "c"], similarities[[0, 2]], embedding_similarity(vectors[[0, 2]]), FilterSettings(similarity_threshold=0.8, max_per_question=10))
    assert dupes[0].reason == "duplicate of the seed" and dupes[1].accepted


def test_diversity_gain_encodes_each_sentence_once() -> None:
    embedder = Embedder()
    seeds = ["Work is a duty towards society", "Science makes our lives easier"]
    augmented = ["Work is an obligation towards society", "Work is a duty towards society", "Honestly: science makes life easier"]
    gain = diversity_gain(seeds, augmented, embedder)
    assert embedder.encoded == 4  # N + M unique sentences, not N x M
    assert 0 < gain < 0.5
    assert diversity_gain(seeds, seeds, Embedder()) == pytest.approx(0.0, abs=1e-6)


def test_perplexity_is_the_token_level_mean_and_batching_does_not_change_it(tiny_model_dir: Path) -> None:
    import math

    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    texts = ["Work is a duty towards society", "Science and technology are making our lives healthier, easier, and more comfortable."]
    one_batch = perplexity(texts, str(tiny_model_dir), batch_size=2)
    separately = perplexity(texts, str(tiny_model_dir), batch_size=1)
    assert one_batch.corpus == pytest.approx(separately.corpus, rel=1e-4)
    tokenizer = AutoTokenizer.from_pretrained(tiny_model_dir)
    model = AutoModelForCausalLM.from_pretrained(tiny_model_dir).eval()
    nll, count = 0.0, 0
    for text in texts:
        ids = torch.tensor([[tokenizer.bos_token_id] + tokenizer(text, add_special_tokens=False)["input_ids"]])
        with torch.no_grad():
            loss = model(input_ids=ids, labels=ids).loss  # mean over this sentence's predicted tokens
        nll += float(loss) * (ids.shape[1] - 1)
        count += ids.shape[1] - 1
    assert one_batch.tokens == count
    assert one_batch.corpus == pytest.approx(math.exp(nll / count), rel=1e-4)


def test_packaged_minilm_loads_offline() -> None:
    script = "from culture_assets.augment.embedder import Embedder; print(Embedder().encode(['hello world']).shape)"
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1", "PYTHONPATH": str(Path(__file__).resolve().parents[1])}
    out = subprocess.run([sys.executable, "-c", script], env=env, capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr[-2000:]
    assert out.stdout.strip().endswith("(1, 384)")


def test_seed_questions_need_ids_and_texts() -> None:
    assert seeds_from_frame(pl.DataFrame({"question_id": ["Q1"], "text": [" Family  matters "]})) == [SeedQuestion("Q1", "Family matters")]
    with pytest.raises(InputError, match="missing column 'text'"):
        seeds_from_frame(pl.DataFrame({"question_id": ["Q1"]}))


def test_the_prompts_show_the_scale_and_their_template_example_obeys_the_instruction() -> None:
    from culture_assets.augment.prompts import TEMPLATE_EXAMPLE, paraphrase_messages, template_messages
    from culture_assets.augment.responses import filling_problem, slot_words, template_problem

    sentence, template = TEMPLATE_EXAMPLE
    assert template_problem(template, sentence) is None and 1 <= len(slot_words(template)) <= 3
    scale = "1. Strongly agree 2. Agree 3. Disagree 4. Strongly disagree"
    step1 = paraphrase_messages("Work is a duty towards society", 4, scale)[-1]["content"]
    assert f"Answer scale: {scale}" in step1 and "write statements (not questions)" in step1
    assert template in template_messages("Work is a duty towards society", ["Work is a duty towards society"], scale)[-1]["content"]
    assert template_problem("Work is a [x:duty] towards society", "Work is an obligation towards society").startswith("template does not restore")
    assert filling_problem(["obligation"], ["duty"]) is None
    assert filling_problem(["Duty"], ["duty"]) == "filling repeats the replaced word 'duty'"
    assert filling_problem(["not a duty"], ["duty"]).startswith("filling 'not a duty' negates")


def test_the_threshold_is_calibrated_per_encoder_and_the_papers_filter_is_named() -> None:
    minilm = threshold_for("")
    assert minilm.encoder == "all-MiniLM-L6-v2" and 0.5 < minilm.value < 0.8 and "95%" in minilm.source
    paper = threshold_for("bert-base-uncased")
    assert paper.value == 0.8 and "paper" in paper.source
    other = threshold_for("some/encoder")
    assert other.value == 0.8 and "not calibrated for some/encoder" in other.source


@pytest.mark.slow
def test_the_shipped_minilm_threshold_reproduces_from_the_reference(reference_data: Path) -> None:
    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "bench"))
    from calibrate_threshold import calibrated_threshold, reference_pairs

    pairs = reference_pairs(reference_data)
    embedder = Embedder()
    similarities = np.einsum("ij,ij->i", embedder.encode([a for a, _ in pairs]), embedder.encode([b for _, b in pairs]))
    assert calibrated_threshold(similarities, 0.95) == pytest.approx(threshold_for("").value, abs=1e-4)
