"""Evaluation through Dagster end to end: tiny local models (base + LoRA) and a fake chat API, two cultures."""

import json

import dagster as dg
import numpy as np
import polars as pl
import pytest

from culture_assets.assets.evaluation import cross_culture_alignment, culture_scores, eval_dataset, wvs_alignment
from culture_assets.assets.reports import culture_report
from culture_assets.cultures import load_registry
from culture_assets.assets.survey import seed_survey, wvs_questions, wvs_wave
from culture_assets.evaluation.report import TINY_WARNING
from culture_assets.resources.evaluation import EvalDataResource
from culture_assets.resources.llm import LLMResource
from culture_assets.io_manager import ArtifactIOManager
from culture_assets.resources import SurveySourceResource, WarehouseResource
from culture_assets.resources.augment import EmbedderResource
from culture_assets.store import Warehouse
from culture_assets_tests.evaluation_fixtures import (
    YES_NO, api_record, local_record, make_adapter, model_record_assets, offensive_rows, with_culture_prompts, write_dataset,
)

CULTURES = ["english", "german"]
FOLDS = ["Religious Values", "Ethical Values And Norms"]  # Q169-Q170 and Q196-Q198
HELDOUT = ["Q169", "Q170", "Q196", "Q197", "Q198"]
ALIGNED = {"heldout_topic_model", "base", "base_culture_prompt", "nearest_trained_question", "pooled_cultures"}
EVAL_ASSETS = [eval_dataset, culture_scores, wvs_alignment, cross_culture_alignment]


def _resources(data_home, data_dir, manifests_dir, chat_url="http://127.0.0.1:9/v1"):
    return {
        "io_manager": ArtifactIOManager(data_home=str(data_home)),
        "warehouse": WarehouseResource(data_home=str(data_home)),
        "survey_source": SurveySourceResource(),
        "eval_data": EvalDataResource(data_dir=str(data_dir), manifests_dir=str(manifests_dir)),
        "llm": LLMResource(base_url=chat_url, api_key="test-key", max_retries=3, backoff_base_s=0.01),
        "embedder": EmbedderResource(),
    }


def _run_all(records, one, resources, cultures=CULTURES, matrix=True):
    instance = dg.DagsterInstance.ephemeral()
    upstream = model_record_assets(records, one, FOLDS)
    assets = [wvs_wave, wvs_questions, seed_survey, *upstream, *EVAL_ASSETS, culture_report]
    assert dg.materialize(assets, selection=["wvs_questions", "culturellm_one"], resources=resources, instance=instance).success
    for culture in cultures:
        selection = ["seed_survey", "heldout_topic_model", "culture_model", "eval_dataset", "culture_scores", "wvs_alignment"]
        assert dg.materialize(assets, selection=selection, partition_key=culture, resources=resources, instance=instance).success
    # the matrix and the pooled baseline read every culture: the others get their survey and held-out-topic scores only
    for culture in sorted(set(load_registry().keys) - set(cultures)) if matrix else []:
        selection = ["seed_survey", "heldout_topic_model", "wvs_alignment"]
        assert dg.materialize(assets, selection=selection, partition_key=culture, resources=resources, instance=instance).success
    final = ["cross_culture_alignment", "culture_report"] if matrix else ["culture_report"]
    result = dg.materialize(assets, selection=final, resources=resources, instance=instance)
    assert result.success
    return result


@pytest.fixture(scope="module")
def adapters(tiny_model_dir, tmp_path_factory):
    root = tmp_path_factory.mktemp("adapters")
    return {name: make_adapter(tiny_model_dir, root / name, seed) for seed, name in enumerate(["english", "german", "one"])}


def test_tiny_local_models_scored_end_to_end_for_two_cultures(data_home, tmp_path, tiny_model_dir, adapters):
    data_dir, manifests_dir = tmp_path / "data", tmp_path / "manifests"
    for culture in CULTURES:
        write_dataset(data_dir, manifests_dir, f"{culture}_offense", culture, offensive_rows(14))
        write_dataset(data_dir, manifests_dir, f"{culture}_threat", culture,
                      [{"tweet": f"threat {i}", "label": str(i % 2)} for i in range(10)], labels=YES_NO)
    records = {c: local_record(c, tiny_model_dir, adapters.get(c, adapters["one"])) for c in load_registry().keys}
    one = with_culture_prompts(local_record("all", tiny_model_dir, adapters["one"]), CULTURES)
    report = _run_all(records, one, _resources(data_home, data_dir, manifests_dir))

    metrics = Warehouse(data_home / "warehouse.duckdb").query("SELECT * FROM metrics ORDER BY culture, dataset, model, metric")
    f1 = metrics.filter((pl.col("metric") == "macro_f1") & (pl.col("variant") == "default") & (pl.col("dataset") != "average_unflagged"))
    # 2 cultures x (2 datasets + the average) x 4 models
    assert f1.height == 2 * 3 * 4
    assert set(f1["model"]) == {"base", "base_culture_prompt", "culture_model", "culturellm_one"}
    assert f1.filter(pl.col("dataset") == "english_offense")["n"].to_list() == [14] * 4
    assert (f1["invalid_rate"] == 0).all() and f1["tiny_model"].all()
    assert ((f1["ci_low"] <= f1["value"] + 1e-9) & (f1["value"] <= f1["ci_high"] + 1e-9) & (f1["value"] <= 1)).all()
    assert f1["config_hash"].n_unique() > 4
    wvs = metrics.filter(pl.col("dataset") == "wvs_heldout")
    # per culture: the held-out-topic models, the base model with and without the prompt, and the two baselines; 3 metrics
    wvs = wvs.filter(pl.col("culture").is_in(CULTURES))
    assert set(wvs["model"]) == ALIGNED and wvs.height == 2 * len(ALIGNED) * 3 and (wvs["n"] == len(HELDOUT)).all()
    assert wvs.filter(pl.col("metric") == "js_distance")["value"].is_between(0, 1).all()
    per_question = pl.read_parquet(data_home / "assets" / "wvs_alignment" / "english.parquet")
    assert set(per_question.filter(pl.col("model") == "heldout_topic_model")["question_id"]) == set(HELDOUT)
    assert set(per_question.filter(pl.col("model") == "heldout_topic_model")["source"]) == {"loglik"}
    # the cross-culture matrix: every model culture against every survey, in DuckDB and in the report
    matrix = Warehouse(data_home / "warehouse.duckdb").query("SELECT * FROM alignment_matrix ORDER BY metric, model_culture, survey_culture")
    cultures = load_registry().keys
    assert matrix.height == len(cultures) ** 2 * 2 and set(matrix["model_culture"]) == set(matrix["survey_culture"]) == set(cultures)
    assert (matrix.filter(pl.col("survey_culture").is_in(CULTURES))["n"] == len(HELDOUT)).all() and matrix.filter(pl.col("metric") == "js_distance")["value"].is_between(0, 1).all()

    # per-row predictions are the asset's value; the stored metric is the F1 of those predictions
    predictions = pl.read_parquet(data_home / "assets" / "culture_scores" / "english.parquet")
    assert predictions.height == 4 * (14 + 10)
    from culture_assets.evaluation.metrics import macro_f1
    base = predictions.filter((pl.col("model") == "base") & (pl.col("dataset") == "english_offense"))
    stored = f1.filter((pl.col("model") == "base") & (pl.col("dataset") == "english_offense") & (pl.col("culture") == "english"))
    assert stored["value"][0] == pytest.approx(macro_f1(base["label"].to_list(), base["prediction"].to_list(), ["OFF", "NOT"]))

    # trivial baselines beside the models, on the same rows
    trivial = metrics.filter((pl.col("variant") == "trivial_baseline") & (pl.col("dataset") == "english_offense"))
    assert set(trivial["model"]) == {"majority_class", "stratified_random"} and (trivial["n"] == 14).all()
    assert metrics.filter(pl.col("metric") == "macro_f1_calibrated").height == 2 * 2 * 4  # every local model, every dataset
    assert metrics.filter(pl.col("metric") == "auroc").height == 2 * 2 * 4  # both sets are binary

    store = Warehouse(data_home / "warehouse.duckdb")
    comparisons = store.query("SELECT * FROM comparisons ORDER BY culture, scope, model, baseline")
    # per culture: 3 comparisons x (2 datasets + the culture average); then 3 all-culture rows
    assert comparisons.filter(pl.col("scope") == "culture_average").height == 2 * 3
    assert comparisons.filter(pl.col("scope") == "all_cultures").height == 3
    assert comparisons.height == 2 * 3 * 3 + 3
    assert ((comparisons["ci_low"] <= comparisons["diff"] + 1e-9) & (comparisons["diff"] <= comparisons["ci_high"] + 1e-9)).all()
    assert comparisons["p_holm"].is_not_null().all() and (comparisons["p_holm"] >= comparisons["p_value"] - 1e-12).all()

    record = report.asset_value("culture_report")
    page = open(record["html"], encoding="utf-8").read()
    assert record["tiny_demo"] and TINY_WARNING in page and "english_threat" in page
    assert {p.rsplit("/", 1)[1] for p in record["plots"]} == {"differences.png", "f1_by_culture.png", "f1_by_task.png", "wvs_alignment.png", "alignment_matrix.png"}
    matrix_section = page.split("<h2>Cross-culture alignment matrix</h2>")[1].split("</table>")[0]
    assert matrix_section.count("<tr>") == 1 + matrix.height and "model_culture" in matrix_section
    assert all(open(p, "rb").read(4) == b"\x89PNG" for p in record["plots"])
    # provenance first, then the comparisons; the UI's markdown carries the same figures as images
    headings = [h.split("</h2>")[0] for h in page.split("<h2>")[1:]]
    assert headings[:2] == ["What produced this report", "Paired differences between models"]
    markdown = report.asset_materializations_for_node("culture_report")[0].metadata["report"].value
    assert markdown.count("data:image/png;base64,") == 5 and "git commit" in markdown
    for fact in ("| profile |", "| survey weighted (W_WEIGHT) |", "english 24 rows / 2 sets", "german 24 rows / 2 sets", "| evaluation rows in total | 48 |"):
        assert fact in markdown, fact


def test_a_run_with_another_sample_size_does_not_mix_into_the_report(data_home, tmp_path, tiny_model_dir, adapters):
    data_dir, manifests_dir = tmp_path / "data", tmp_path / "manifests"
    write_dataset(data_dir, manifests_dir, "english_offense", "english", offensive_rows(14))
    records = {"english": local_record("english", tiny_model_dir, adapters["english"])}
    one = with_culture_prompts(local_record("all", tiny_model_dir, adapters["one"]), ["english"])
    resources = _resources(data_home, data_dir, manifests_dir)
    instance = dg.DagsterInstance.ephemeral()
    assets = [*model_record_assets(records, one, FOLDS), eval_dataset, culture_scores, culture_report]
    assert dg.materialize(assets, selection=["culturellm_one"], resources=resources, instance=instance).success
    store = Warehouse(data_home / "warehouse.duckdb")
    reports = []
    for limit in (None, 6):
        run_config = {"ops": {"eval_dataset": {"config": {"sample_size": limit}}, "culture_scores": {"config": {"n_resamples": 50}}}}
        assert dg.materialize(assets, selection=["culture_model", "eval_dataset", "culture_scores"], partition_key="english",
                              resources=resources, instance=instance, run_config=run_config).success
        result = dg.materialize(assets, selection=["culture_report"], resources=resources, instance=instance)
        reports.append(result.asset_value("culture_report"))
    # both configurations stay in DuckDB ...
    stored = store.query("SELECT DISTINCT eval_config, n FROM metrics WHERE dataset = 'english_offense' AND model = 'base' AND metric = 'macro_f1'")
    assert sorted(stored["n"].to_list()) == [6, 14]
    assert store.query("SELECT count(DISTINCT config_hash) AS k FROM comparisons")["k"][0] == 2
    # ... and each report shows only its own
    first, second = reports
    assert first["eval_config"] != second["eval_config"]
    page = open(second["html"], encoding="utf-8").read()
    per_dataset = page.split("<h2>Per-dataset breakdown</h2>")[1].split("</table>")[0]
    assert "<td>6</td>" in per_dataset and "<td>14</td>" not in per_dataset


def test_chat_api_models_with_bad_inputs_score_what_they_can(data_home, tmp_path, fake_openai):
    data_dir, manifests_dir = tmp_path / "data", tmp_path / "manifests"
    for culture in CULTURES:
        write_dataset(data_dir, manifests_dir, f"{culture}_good", culture, offensive_rows(12))
    english = "english"
    write_dataset(data_dir, manifests_dir, "english_labels", english,
                  offensive_rows(6) + [{"tweet": "odd", "label": "MAYBE"}, {"tweet": "blank", "label": ""}])
    write_dataset(data_dir, manifests_dir, "english_malformed", english,
                  raw_text=json.dumps({"tweet": "a", "label": "OFF"}) + "\n{not json\n")
    write_dataset(data_dir, manifests_dir, "english_changed", english, offensive_rows(4))
    (data_dir / english / "english_changed.jsonl").write_text(json.dumps({"tweet": "edited", "label": "OFF"}) + "\n", encoding="utf-8")
    write_dataset(data_dir, manifests_dir, "english_missing", english, offensive_rows(4))
    (data_dir / english / "english_missing.jsonl").unlink()

    def reply(body):
        model, text = body["model"], body["messages"][-1]["content"]
        if "Answer with the number" in text:
            return "2" if model in ("ft-culture", "ft-german") else "maybe"
        if model == "ft-one":
            return "I cannot say."  # never a label: all invalid
        return "Offensive." if any(w in text for w in ("awful", "idiot", "go away", "hate")) else "not offensive"

    def top_logprobs(body):
        # only the German model's endpoint returns log-probabilities (of the answer codes); the others do not
        return {"1": -2.0, "2": -0.5, "3": -1.5, "4": -3.0} if body["model"] == "ft-german" and "Answer with the number" in body["messages"][-1]["content"] else {}

    fake_openai.chat_reply = reply
    fake_openai.chat_top_logprobs = top_logprobs
    records = {c: api_record(c, "ft-german" if c == "german" else "ft-culture") for c in CULTURES}
    one = api_record("all", "ft-one")
    resources = _resources(data_home, data_dir, manifests_dir, fake_openai.base_url)
    _run_all(records, one, resources, matrix=False)  # the matrix is the local test's

    store = Warehouse(data_home / "warehouse.duckdb")
    status = {r["dataset"]: r for r in store.query("SELECT * FROM eval_dataset_status WHERE culture = 'english'").iter_rows(named=True)}
    assert status["english_good"]["status"] == "loaded"
    assert status["english_missing"]["status"] == "missing" and "english_missing.jsonl" in status["english_missing"]["detail"]
    assert status["english_changed"]["status"] == "checksum_mismatch" and "sha256" in status["english_changed"]["detail"]
    assert status["english_malformed"]["status"] == "malformed"
    assert "english_malformed.jsonl, row 2" in status["english_malformed"]["detail"]
    labels = status["english_labels"]
    assert (labels["n_unknown_label"], labels["n_empty_label"], labels["n_sampled"]) == (1, 1, 6)
    assert "english/english_labels.jsonl:7 label 'MAYBE'" in labels["detail"]

    f1 = store.query("SELECT * FROM metrics WHERE metric = 'macro_f1' AND culture = 'english'")
    assert set(f1["dataset"]) == {"english_good", "english_labels", "average"}
    row = lambda model, dataset: f1.filter((pl.col("model") == model) & (pl.col("dataset") == dataset)).row(0, named=True)
    # the keyword rule is right on every row: the culture model (and base) score 1.0 with no invalid answers
    assert row("culture_model", "english_good")["value"] == pytest.approx(1.0)
    assert row("culture_model", "english_good")["invalid_rate"] == 0
    # CultureLLM-One never names a label: all invalid, all wrong
    assert (row("culturellm_one", "english_good")["value"], row("culturellm_one", "english_good")["invalid_rate"]) == (0.0, 1.0)
    wvs = store.query("SELECT * FROM metrics WHERE dataset = 'wvs_heldout' AND culture = 'english' AND metric = 'js_distance'")
    assert wvs.filter(pl.col("model") == "base")["invalid_rate"][0] == 1.0
    assert wvs.filter(pl.col("model") == "heldout_topic_model")["invalid_rate"][0] == 0.0
    # distributions from the endpoint's log-probabilities where it returns them, else the one answer (one-hot); said per question
    sources = {c: pl.read_parquet(data_home / "assets" / "wvs_alignment" / f"{c}.parquet").filter(pl.col("model") == "heldout_topic_model") for c in CULTURES}
    assert set(sources["english"]["source"]) == {"answer"} and sources["english"]["model_distribution"][0].to_list() == [0.0, 1.0, 0.0, 0.0]
    assert set(sources["german"]["source"]) == {"logprobs"}
    expected = np.exp([-2.0, -0.5, -1.5, -3.0]) / np.exp([-2.0, -0.5, -1.5, -3.0]).sum()
    assert sources["german"]["model_distribution"][0].to_list() == pytest.approx(expected.tolist())

    # a re-run is served from the cache: the fake server sees no new chat request
    sent = fake_openai.count(r"/chat/completions")
    instance = dg.DagsterInstance.ephemeral()
    upstream = model_record_assets(records, one, FOLDS)
    assets = [wvs_wave, wvs_questions, seed_survey, *upstream, *EVAL_ASSETS]
    dg.materialize(assets, selection=["culturellm_one"], resources=resources, instance=instance)
    assert dg.materialize(assets, selection=["seed_survey", "culture_model", "eval_dataset", "culture_scores"],
                          partition_key="english", resources=resources, instance=instance).success
    assert fake_openai.count(r"/chat/completions") == sent
