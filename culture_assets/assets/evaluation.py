"""Evaluation stage: the culture datasets, each model's macro-F1 on them, and WVS alignment."""


import dagster as dg
import polars as pl

from culture_assets.cultures import culture_partitions, load_registry
from culture_assets.evaluation.alignment import ALIGNMENT_METRICS, align_culture, survey_targets
from culture_assets.evaluation.cache import EvalCache
from culture_assets.evaluation.loader import DatasetStatus, load_datasets
from culture_assets.assets.training_sets import ABLATION_PARTITIONS
from culture_assets.evaluation.models import Role, models_under_test, trained_model
from culture_assets.evaluation.chat import chat_runner
from culture_assets.evaluation.resource import EvalDataResource
from culture_assets.evaluation.scoring import ScoringSettings
from culture_assets.evaluation.suite import AVERAGE, BootstrapSettings, score_culture
from culture_assets.evaluation.store import write_dataset_status, write_metrics
from culture_assets.markdown import markdown_table
from culture_assets.profiles import profile_default
from culture_assets.llm import LLMResource
from culture_assets.resources import SurveySourceResource, WarehouseResource
from culture_assets.store import Warehouse
from culture_assets.store.warehouse import WRITER_POOL

GROUP = "evaluation"
CULTURES = culture_partitions()


class EvalDatasetConfig(dg.Config):
    sample_size: int = profile_default("EvalDatasetConfig", "sample_size", 1000)  # the paper evaluated up to 1,000 rows per task
    seed: int = 0
    verify_checksum: bool = True


class ScoringConfig(dg.Config):
    batch_size: int = 16
    structured_output: bool = False  # send a JSON-schema enum of the labels to API models
    device: str = ""  # empty: cuda when available, else cpu
    n_resamples: int = profile_default("ScoringConfig", "n_resamples", 1000)
    bootstrap_seed: int = 0

    def settings(self) -> ScoringSettings:
        return ScoringSettings(self.batch_size, self.structured_output, self.device or None)

    def bootstrap(self) -> BootstrapSettings:
        return BootstrapSettings(self.n_resamples, self.bootstrap_seed)

    def recorded(self) -> dict:
        """The settings that change scores (not batch size or device), hashed into each metric row."""
        return {"scoring": self.model_dump(exclude={"batch_size", "device"})}


def _average_table(metrics: pl.DataFrame) -> pl.DataFrame:
    return metrics.filter(pl.col("dataset") == AVERAGE).select("model", "value", "ci_low", "ci_high", "n", "invalid_rate")


def _chat_runners(llm: LLMResource, store: Warehouse, context: dg.AssetExecutionContext, *records: dict):
    """Runners of the LLM layer, one per API model, only when a model is served by an API."""
    if not any(record.get("trainer") == "openai" for record in records):
        return None
    return lambda model: chat_runner(llm, model, store, context.log.info)


@dg.asset(
    group_name=GROUP,
    kinds={"python", "parquet", "duckdb"},
    partitions_def=CULTURES,
    pool=WRITER_POOL,
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
    pool=WRITER_POOL,
    ins={"culture_model": dg.AssetIn(), "culturellm_one": dg.AssetIn(), "eval_dataset": dg.AssetIn()},
    description="Macro-F1 with paired bootstrap 95% CIs of base, base + culture prompt, culture model and CultureLLM-One per dataset.",
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
) -> dg.Output:
    culture = load_registry().get(context.partition_key)
    models = models_under_test(culture.key, culture_model, culturellm_one, culture.system_prompt.english)
    manifests = {m.id: m for m in eval_data.manifests(culture.key)}
    store = warehouse.get()
    chat = _chat_runners(llm, store, context, culture_model, culturellm_one)
    metrics, predictions = score_culture(
        culture.key, models, manifests, eval_dataset, EvalCache(store), chat, config.settings(), config.bootstrap(),
        run_config=config.recorded(), log=context.log.info,
    )
    write_metrics(store, metrics, context.run.run_id, culture.key, ["macro_f1"], [m.label for m in models])
    average = _average_table(metrics)
    tiny = any(m.tiny for m in models)
    return dg.Output(
        predictions,
        metadata={
            "culture": culture.display_name,
            "datasets_scored": metrics.filter(pl.col("dataset") != AVERAGE)["dataset"].n_unique(),
            "average_macro_f1": dg.MetadataValue.md(markdown_table(average)),
            "per_dataset": dg.MetadataValue.md(markdown_table(metrics.filter(pl.col("dataset") != AVERAGE).select(
                "dataset", "model", "value", "ci_low", "ci_high", "n", "invalid_rate"))),
            "tiny_demo_model": tiny,
            **({"warning": "tiny random demo model: these scores test the wiring and mean nothing"} if tiny else {}),
        },
    )


@dg.asset(
    group_name=GROUP,
    kinds={"pytorch", "openai", "duckdb", "parquet"},
    partitions_def=CULTURES,
    pool=WRITER_POOL,
    ins={"culture_model": dg.AssetIn(), "culturellm_one": dg.AssetIn(), "seed_survey": dg.AssetIn()},
    description="Held-out WVS questions: Jensen-Shannon and Wasserstein distance to the survey and modal accuracy, for the four models.",
)
def wvs_alignment(
    context: dg.AssetExecutionContext,
    config: ScoringConfig,
    culture_model: dict,
    culturellm_one: dict,
    seed_survey: pl.DataFrame,
    survey_source: SurveySourceResource,
    llm: LLMResource,
    warehouse: WarehouseResource,
) -> dg.Output:
    culture = load_registry().get(context.partition_key)
    models = models_under_test(culture.key, culture_model, culturellm_one, culture.system_prompt.english)
    heldout = list(culture_model.get("heldout_question_ids") or [])
    targets = survey_targets(seed_survey, heldout)
    skipped = sorted(set(heldout) - set(targets))
    if skipped:
        context.log.warning(f"held-out questions not in the survey or never asked in {culture.display_name}, left out: {skipped}")
    store = warehouse.get()
    chat = _chat_runners(llm, store, context, culture_model, culturellm_one)
    metrics, per_question = align_culture(
        culture.key, models, survey_source.questions(), targets, EvalCache(store), chat, config.settings(), config.bootstrap(),
        run_config=config.recorded(), log=context.log.info,
    )
    write_metrics(store, metrics, context.run.run_id, culture.key, list(ALIGNMENT_METRICS), [m.label for m in models])
    return dg.Output(
        per_question,
        metadata={
            "culture": culture.display_name,
            "heldout_questions": dg.MetadataValue.json(sorted(targets)),
            "never_asked_heldout": dg.MetadataValue.json(skipped),
            "alignment": dg.MetadataValue.md(markdown_table(metrics.select("model", "metric", "value", "ci_low", "ci_high", "n", "invalid_rate"))),
            "tiny_demo_model": any(m.tiny for m in models),
        },
    )


@dg.asset(
    group_name=GROUP,
    kinds={"pytorch", "openai", "duckdb", "parquet"},
    partitions_def=ABLATION_PARTITIONS,
    pool=WRITER_POOL,
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
    model = trained_model(ablation_model, Role.CULTURE_MODEL, "ablation_model record")
    store = warehouse.get()
    metrics, predictions = score_culture(
        culture, [model], {m.id: m for m in eval_data.manifests(culture)}, eval_dataset, EvalCache(store),
        _chat_runners(llm, store, context, ablation_model), config.settings(), config.bootstrap(),
        run_config=config.recorded(), log=context.log.info,
    )
    write_metrics(store, metrics, context.run.run_id, culture, ["macro_f1"], [model.label])
    average = _average_table(metrics)
    return dg.Output(
        predictions,
        metadata={"variant": model.variant, "n_train": model.n_train, "average_macro_f1": dg.MetadataValue.md(markdown_table(average))},
    )
