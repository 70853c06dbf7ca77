"""Evaluation stage: the culture datasets, each model's macro-F1 on them, and WVS alignment."""


import dagster as dg
import polars as pl

from culture_assets.cultures import load_registry
from culture_assets.evaluation.alignment import (
    ALIGNMENT_METRICS,
    HELDOUT_TOPIC_MODEL,
    POOLED,
    align_culture,
    cross_culture_matrix,
    diagonal_wins,
    pooled_baseline,
    survey_targets,
)
from culture_assets.evaluation.cache import EvalCache
from culture_assets.evaluation.loader import DatasetStatus, EvalSampleSettings, load_datasets
from culture_assets.evaluation.models import Role, base_models, models_under_test, trained_model
from culture_assets.evaluation.chat import chat_runner
from culture_assets.evaluation.download import LICENSE_NOTE, dataset_provenance, download_evaluation_data, progress_logger
from culture_assets.resources.evaluation import EvalDataResource
from culture_assets.evaluation.scoring import ScoringSettings
from culture_assets.evaluation.comparisons import CULTURE_AVERAGE
from culture_assets.evaluation.loglik import load_local_model
from culture_assets.evaluation.training_fit import answer_accuracy, training_rows
from culture_assets.survey.questions import load_questions
from culture_assets.evaluation.suite import AVERAGE, MAJORITY, STRATIFIED, BootstrapSettings, EvaluationSettings, score_culture
from culture_assets.evaluation.store import write_culture_evaluation, write_dataset_status, write_metrics
from culture_assets.markdown import markdown_table
from culture_assets.partitions import ABLATION_PARTITIONS, CULTURES
from culture_assets.resources.augment import EmbedderResource
from culture_assets.resources.llm import LLMResource
from culture_assets.resources import WarehouseResource, library_settings
from culture_assets.settings import data_home
from culture_assets.profiles import profile_default
from culture_assets.store import Warehouse
from culture_assets.store.warehouse import WRITER_POOL
from culture_assets.survey.questions import questions_from_table
from culture_assets.training.model_record import ModelRecord

GROUP = "evaluation"


_SAMPLE = EvalSampleSettings.model_fields
_SCORING = EvaluationSettings.model_fields


class EvalDatasetConfig(dg.Config):
    """The library's EvalSampleSettings (culture_assets.evaluation.loader) as asset config."""

    sample_size: int | None = profile_default("EvalDatasetConfig", "sample_size", _SAMPLE["sample_size"])
    seed: int = _SAMPLE["seed"]
    verify_checksum: bool = _SAMPLE["verify_checksum"]

    def sample(self) -> str:
        return library_settings(self, EvalSampleSettings).sample()


class ScoringConfig(dg.Config):
    """The library's EvaluationSettings (culture_assets.evaluation.suite) as asset config."""

    batch_size: int = _SCORING["batch_size"]
    structured_output: bool = _SCORING["structured_output"]
    device: str = _SCORING["device"]
    n_resamples: int = profile_default("ScoringConfig", "n_resamples", _SCORING["n_resamples"])
    bootstrap_seed: int = _SCORING["bootstrap_seed"]
    max_invalid_rate: float = _SCORING["max_invalid_rate"]
    chat_logprobs: bool = _SCORING["chat_logprobs"]

    def settings(self) -> ScoringSettings:
        return library_settings(self, EvaluationSettings).scoring()

    def bootstrap(self) -> BootstrapSettings:
        return library_settings(self, EvaluationSettings).bootstrap()

    def recorded(self, eval_dataset: pl.DataFrame) -> dict:
        """The settings that change scores (not batch size, device or check thresholds) and the
        evaluation sample, hashed into each metric row."""
        sample = eval_dataset["sample"][0] if "sample" in eval_dataset.columns and eval_dataset.height else "all_rows"
        return {"scoring": self.model_dump(exclude={"batch_size", "device", "max_invalid_rate"}), "sample": sample}


def _average_table(metrics: pl.DataFrame) -> pl.DataFrame:
    return metrics.filter((pl.col("dataset") == AVERAGE) & (pl.col("metric") == "macro_f1")).select(
        "model", "value", "ci_low", "ci_high", "n", "invalid_rate")


def _chat_runners(llm: LLMResource, store: Warehouse, context: dg.AssetExecutionContext, *records: ModelRecord):
    """Runners of the LLM layer, one per API model, only when a model is served by an API."""
    if not any(record.trainer == "openai" for record in records):
        return None
    settings = llm.settings()
    return lambda model: chat_runner(settings, model, store, context.log.info)


@dg.asset(
    group_name=GROUP,
    kinds={"python", "github"},
    description="The evaluation datasets the manifests name, downloaded from the reference repository's archive at a pinned commit and "
    "checked against their sha256 (nothing is downloaded when CULTURE_ASSETS_EVAL_DATA names a directory).",
)
def evaluation_data(context: dg.AssetExecutionContext, eval_data: EvalDataResource) -> dg.MaterializeResult:
    manifests = eval_data.manifests()
    if eval_data.user_data_path() is None:
        installed = download_evaluation_data(eval_data.url(), manifests, data_home(), progress_logger(context.log.info), context.log.info)
        record = installed.record
        version = dg.DataVersion(record.version)
        fetched = {
            "source": "already downloaded and verified: nothing fetched" if installed.reused else "downloaded",
            "url": dg.MetadataValue.url(record.url),
            "archive_sha256": record.archive_sha256,
            "archive_bytes": record.archive_bytes,
            "archive_top_folder": record.top_folder,
            "resumed_from_byte": record.resumed_from_byte,
            "files": record.files,
            "bytes": record.bytes,
        }
    else:
        version = None
        fetched = {"source": "the directory the user set (CULTURE_ASSETS_EVAL_DATA or the resource's data_dir): nothing downloaded"}
    data_dir = eval_data.data_path()
    datasets = pl.DataFrame(dataset_provenance(manifests, data_dir))
    for row in datasets.filter(~pl.col("status").is_in(["verified", DatasetStatus.NOT_AVAILABLE.value])).iter_rows(named=True):
        context.log.warning(f"{row['dataset']}: {row['status']} in {data_dir}")
    return dg.MaterializeResult(
        metadata={
            **fetched,
            "data_dir": dg.MetadataValue.path(str(data_dir)),
            "datasets_verified": datasets.filter(pl.col("status") == "verified").height,
            "datasets_declared": datasets.height,
            "license": dg.MetadataValue.md(LICENSE_NOTE),
            "datasets": dg.MetadataValue.md(markdown_table(datasets, max_rows=100)),
        },
        data_version=version,
    )


@dg.asset(
    group_name=GROUP,
    kinds={"python", "parquet", "duckdb"},
    partitions_def=CULTURES,
    pool=WRITER_POOL,
    deps=[evaluation_data],
    description="The culture's evaluation datasets from the manifests: checked, labels validated, a fixed-seed sample per task.",
    check_specs=[
        dg.AssetCheckSpec(
            "declared_datasets_loaded",
            asset="eval_dataset",
            description="Every dataset the manifests declare for the culture was found, matched its sha256 and parsed.",
        )
    ],
)
def eval_dataset(context: dg.AssetExecutionContext, config: EvalDatasetConfig, eval_data: EvalDataResource, warehouse: WarehouseResource):
    culture = context.partition_key
    manifests = eval_data.manifests(culture)
    rows, status = load_datasets(manifests, eval_data.data_path(), config.sample_size, config.seed, config.verify_checksum)
    write_dataset_status(warehouse.get(), culture, status, context.run.run_id)
    rows = rows.with_columns(pl.lit(config.sample()).alias("sample"))
    problems = status.filter(pl.col("status") != DatasetStatus.LOADED.value)
    for row in problems.iter_rows(named=True):
        context.log.warning(f"{row['dataset']}: {row['status']}: {row['detail']}")
    dropped = status.filter((pl.col("n_empty_label") + pl.col("n_unknown_label") + pl.col("n_empty_text")) > 0)
    yield dg.Output(
        rows,
        metadata={
            "datasets_declared": len(manifests),
            "datasets_loaded": status.height - problems.height,
            "rows": rows.height,
            "status": dg.MetadataValue.md(markdown_table(status.drop("culture"))),
            "rows_dropped": dg.MetadataValue.md(markdown_table(dropped.select("dataset", "n_empty_label", "n_unknown_label", "n_empty_text"))),
        },
    )
    yield dg.AssetCheckResult(
        check_name="declared_datasets_loaded",
        passed=problems.height == 0,
        severity=dg.AssetCheckSeverity.WARN,
        metadata={"problems": dg.MetadataValue.md(markdown_table(problems.select("dataset", "status", "detail")))},
        description=None if problems.is_empty() else f"{problems.height} of {len(manifests)} datasets not scored: {problems['dataset'].to_list()}",
    )


@dg.asset(
    group_name=GROUP,
    kinds={"pytorch", "openai", "duckdb", "parquet"},
    partitions_def=CULTURES,
    ins={"culture_model": dg.AssetIn(), "culturellm_one": dg.AssetIn(), "eval_dataset": dg.AssetIn()},
    description="Macro-F1 (cluster-bootstrap 95% CIs) of base, base + culture prompt, culture model and CultureLLM-One per dataset, "
    "trivial baselines, calibrated decisions, and paired differences between the models.",
    check_specs=[
        dg.AssetCheckSpec("invalid_rate_below_threshold", asset="culture_scores",
                          description="No model gives unparseable answers on more than `max_invalid_rate` of a culture's rows."),
        dg.AssetCheckSpec("culture_model_not_below_prompted_base", asset="culture_scores",
                          description="The culture model does not score below base + culture prompt with a paired CI excluding 0."),
    ],
)
def culture_scores(
    context: dg.AssetExecutionContext,
    config: ScoringConfig,
    culture_model: dict,
    culturellm_one: dict,
    eval_dataset: pl.DataFrame,
    eval_data: EvalDataResource,
    llm: LLMResource,
    warehouse: WarehouseResource,
):
    culture = load_registry().get(context.partition_key)
    records = ModelRecord.from_stored(culture_model, "culture_model"), ModelRecord.from_stored(culturellm_one, "culturellm_one")
    models = models_under_test(culture.key, *records, culture.system_prompt.english)
    manifests = {m.id: m for m in eval_data.manifests(culture.key)}
    store = warehouse.get()
    chat = _chat_runners(llm, store, context, *records)
    evaluation = score_culture(
        culture.key, models, manifests, eval_dataset, EvalCache(store), chat, config.settings(), config.bootstrap(),
        run_config=config.recorded(eval_dataset), log=context.log.info,
    )
    write_culture_evaluation(store, culture.key, evaluation, context.run.run_id)
    metrics, comparisons = evaluation.metrics, evaluation.comparisons
    tiny = any(m.tiny for m in models)
    averages = _average_table(metrics)
    per_dataset = metrics.filter((pl.col("dataset") != AVERAGE) & (pl.col("metric") == "macro_f1"))
    yield dg.Output(
        evaluation.predictions,
        metadata={
            "culture": culture.display_name,
            "datasets_scored": per_dataset["dataset"].n_unique(),
            "comparisons": dg.MetadataValue.md(markdown_table(
                comparisons.filter(pl.col("scope") == CULTURE_AVERAGE).select("model", "baseline", "diff", "ci_low", "ci_high", "p_value", "n_clusters"))),
            "average_macro_f1": dg.MetadataValue.md(markdown_table(averages)),
            "per_dataset": dg.MetadataValue.md(markdown_table(
                per_dataset.pivot(on="model", index="dataset", values="value", aggregate_function="first"), max_rows=100)),
            "eval_config": metrics["eval_config"][0] if metrics.height else "",
            "tiny_demo_model": tiny,
            **({"warning": "tiny random demo model: these scores test the wiring and mean nothing"} if tiny else {}),
        },
    )
    yield _invalid_rate_check(metrics, config.max_invalid_rate)
    yield _culture_model_check(comparisons)


TRAINING_FIT_CHECK = dg.AssetCheckSpec(
    "reproduces_training_answers", asset="culture_model",
    description="The fine-tuned model picks its training answers more often than the base model does (training-answer accuracy).",
)


def training_fit_check(record: ModelRecord, training_set: pl.DataFrame) -> dg.AssetCheckResult:
    """culture_model's check (WARN): training-answer accuracy of the fine-tuned model vs its base."""
    if record.trainer != "local":
        return dg.AssetCheckResult(check_name=TRAINING_FIT_CHECK.name, passed=True, severity=dg.AssetCheckSeverity.WARN,
                                   metadata={"measured": False}, description="not measured: an API model has no local weights to score")
    rows = training_rows(training_set)
    options = {q.id: q.valid_codes for q in load_questions()}
    tuned = answer_accuracy(load_local_model(record.base_model, record.adapter_path), rows, options)
    base = answer_accuracy(load_local_model(record.base_model), rows, options)
    return dg.AssetCheckResult(
        check_name=TRAINING_FIT_CHECK.name,
        passed=bool(tuned > base),
        severity=dg.AssetCheckSeverity.WARN,
        metadata={"training_answer_accuracy": tuned, "base_training_answer_accuracy": base, "rows": rows.height},
        description=None if tuned > base else f"the fine-tuned model reproduces {tuned:.1%} of its training answers, the base model {base:.1%}",
    )


def _invalid_rate_check(metrics: pl.DataFrame, threshold: float) -> dg.AssetCheckResult:
    rates = metrics.filter((pl.col("dataset") == AVERAGE) & (pl.col("metric") == "macro_f1") & ~pl.col("model").is_in([MAJORITY, STRATIFIED]))
    above = rates.filter(pl.col("invalid_rate") > threshold)
    return dg.AssetCheckResult(
        check_name="invalid_rate_below_threshold",
        passed=above.is_empty(),
        severity=dg.AssetCheckSeverity.WARN,
        metadata={"threshold": threshold, "invalid_rate": dg.MetadataValue.md(markdown_table(rates.select("model", "invalid_rate", "n")))},
        description=None if above.is_empty() else f"invalid answers above {threshold:.0%}: " + ", ".join(
            f"{r['model']} {r['invalid_rate']:.1%}" for r in above.iter_rows(named=True)),
    )


def _culture_model_check(comparisons: pl.DataFrame) -> dg.AssetCheckResult:
    against = comparisons.filter((pl.col("model") == "culture_model") & (pl.col("baseline") == "base_culture_prompt"))
    worse = against.filter(pl.col("ci_high") < 0)
    return dg.AssetCheckResult(
        check_name="culture_model_not_below_prompted_base",
        passed=worse.is_empty(),
        severity=dg.AssetCheckSeverity.WARN,
        metadata={"culture_model_minus_prompted_base": dg.MetadataValue.md(markdown_table(
            against.select("scope", "diff", "ci_low", "ci_high", "p_value", "p_holm"), max_rows=100))},
        description=None if worse.is_empty() else "the culture model scores below base + culture prompt (paired 95% CI below 0) on: "
        + ", ".join(worse["scope"].to_list()),
    )


@dg.asset(
    group_name=GROUP,
    kinds={"pytorch", "openai", "duckdb", "parquet"},
    partitions_def=CULTURES,
    description="Held-out WVS topics: each held-out-topic model on the topic it never saw, beside the base model (with and without "
    "the culture prompt) and the nearest-trained-question baseline: Jensen-Shannon and Wasserstein distance to the survey, modal accuracy.",
)
def wvs_alignment(
    context: dg.AssetExecutionContext,
    config: ScoringConfig,
    heldout_topic_model: dict,
    seed_survey: pl.DataFrame,
    wvs_questions: pl.DataFrame,
    embedder: EmbedderResource,
    llm: LLMResource,
    warehouse: WarehouseResource,
) -> dg.Output:
    culture = load_registry().get(context.partition_key)
    records = heldout_topic_model["folds"]
    if not records:
        raise dg.Failure(description=f"{culture.display_name}: heldout_topic_model holds no fold model; materialize it with at least one fold")
    stored = {topic: ModelRecord.from_stored(record, f"heldout_topic_model[{topic}]") for topic, record in records.items()}
    fold_models = {topic: trained_model(record, Role.CULTURE_MODEL) for topic, record in stored.items()}
    bases = base_models(next(iter(fold_models.values())), culture.system_prompt.english)
    questions = questions_from_table(wvs_questions)
    targets = survey_targets(seed_survey)
    store = warehouse.get()
    chat = _chat_runners(llm, store, context, *stored.values())
    metrics, per_question = align_culture(
        culture.key, fold_models, bases, questions, targets, embedder.get().encode, EvalCache(store), chat, config.settings(),
        config.bootstrap(), run_config=config.recorded(pl.DataFrame()), log=context.log.info,
    )
    write_metrics(store, metrics, context.run.run_id, culture.key, list(ALIGNMENT_METRICS), metrics["model"].unique().to_list())
    never_asked = per_question.filter((pl.col("model") == HELDOUT_TOPIC_MODEL) & ~pl.col("asked"))["question_id"].to_list()
    if never_asked:
        context.log.warning(f"held-out questions never asked in {culture.display_name}, left out of its scores: {never_asked}")
    sources = per_question.group_by("model", "source").len().sort("model", "source")
    return dg.Output(
        per_question,
        metadata={
            "culture": culture.display_name,
            "heldout_topics": dg.MetadataValue.json(list(fold_models)),
            "heldout_questions": dg.MetadataValue.json(per_question.filter(pl.col("model") == HELDOUT_TOPIC_MODEL)["question_id"].to_list()),
            "never_asked_heldout": dg.MetadataValue.json(never_asked),
            # loglik: local option log-likelihoods; logprobs: the endpoint's option-token log-probabilities; answer: one answer, one-hot
            "distribution_source": dg.MetadataValue.md(markdown_table(sources)),
            "alignment": dg.MetadataValue.md(markdown_table(metrics.select("model", "metric", "value", "ci_low", "ci_high", "n", "invalid_rate"))),
            "tiny_demo_model": bool(metrics["tiny_model"].any()),
        },
    )


@dg.asset(
    group_name=GROUP,
    kinds={"duckdb", "parquet"},
    pool=WRITER_POOL,
    ins={
        "wvs_alignment": dg.AssetIn(partition_mapping=dg.AllPartitionMapping()),
        "seed_survey": dg.AssetIn(partition_mapping=dg.AllPartitionMapping()),
        "wvs_questions": dg.AssetIn(),
    },
    description="Culture A's held-out-topic models against culture B's survey on the held-out questions (the diagonal should win), "
    "and each culture's pooled-other-cultures baseline; in DuckDB (alignment_matrix, metrics).",
)
def cross_culture_alignment(
    context: dg.AssetExecutionContext,
    config: ScoringConfig,
    wvs_alignment: dict[str, pl.DataFrame],
    seed_survey: dict[str, pl.DataFrame],
    wvs_questions: pl.DataFrame,
    warehouse: WarehouseResource,
) -> dg.Output:
    targets = {culture: survey_targets(table) for culture, table in seed_survey.items()}
    answers = pl.concat([wvs_alignment[c] for c in sorted(wvs_alignment)], how="vertical")
    by_id = {q.id: q for q in questions_from_table(wvs_questions)}
    store = warehouse.get()
    for culture in sorted(wvs_alignment):
        # the questions and order this culture's models were summarised on, so the resamples are theirs
        scored = set(wvs_alignment[culture].filter((pl.col("model") == HELDOUT_TOPIC_MODEL) & pl.col("asked"))["question_id"].to_list())
        metrics, _ = pooled_baseline(culture, [q for q in by_id.values() if q.id in scored], targets, config.bootstrap())
        write_metrics(store, metrics, context.run.run_id, culture, list(ALIGNMENT_METRICS), [POOLED])
    matrix = cross_culture_matrix(answers.filter(pl.col("model") == HELDOUT_TOPIC_MODEL), {c: targets[c] for c in sorted(wvs_alignment)}, config.bootstrap())
    store.replace_rows("alignment_matrix", matrix.with_columns(pl.lit(context.run.run_id).alias("run_id")), {})
    wins = diagonal_wins(matrix)
    return dg.Output(
        matrix,
        metadata={
            "cultures": len(wvs_alignment),
            "diagonal_wins": f"{int(wins['diagonal_wins'].sum())} of {wins.height} surveys are closest to their own culture's model (JS distance)",
            "closest_model_per_survey": dg.MetadataValue.md(markdown_table(wins)),
            "js_distance": dg.MetadataValue.md(markdown_table(
                matrix.filter(pl.col("metric") == "js_distance").pivot(on="survey_culture", index="model_culture", values="value").sort("model_culture"))),
        },
    )


@dg.asset(
    group_name=GROUP,
    kinds={"pytorch", "openai", "duckdb", "parquet"},
    partitions_def=ABLATION_PARTITIONS,
    ins={
        "ablation_model": dg.AssetIn(),
        "eval_dataset": dg.AssetIn(partition_mapping=dg.MultiToSingleDimensionPartitionMapping(partition_dimension_name="culture")),
    },
    description="Macro-F1 (paired bootstrap 95% CI) of one ablation model on its culture's datasets: a point of the report's ablation figures.",
)
def ablation_scores(
    context: dg.AssetExecutionContext,
    config: ScoringConfig,
    ablation_model: dict,
    eval_dataset: pl.DataFrame,
    eval_data: EvalDataResource,
    llm: LLMResource,
    warehouse: WarehouseResource,
) -> dg.Output:
    culture = ABLATION_PARTITIONS.get_partition_key_from_str(context.partition_key).keys_by_dimension["culture"]
    record = ModelRecord.from_stored(ablation_model, "ablation_model")
    model = trained_model(record, Role.CULTURE_MODEL)
    store = warehouse.get()
    evaluation = score_culture(
        culture, [model], {m.id: m for m in eval_data.manifests(culture)}, eval_dataset, EvalCache(store),
        _chat_runners(llm, store, context, record), config.settings(), config.bootstrap(),
        run_config=config.recorded(eval_dataset), log=context.log.info,
    )
    # the trivial baselines and comparisons are the culture_scores asset's to write
    metrics = evaluation.metrics.filter(pl.col("model") == model.label)
    write_metrics(store, metrics, context.run.run_id, culture, metrics["metric"].unique().to_list(), [model.label])
    average = _average_table(metrics)
    return dg.Output(
        evaluation.predictions,
        metadata={"variant": model.variant, "n_train": model.n_train, "average_macro_f1": dg.MetadataValue.md(markdown_table(average))},
    )
