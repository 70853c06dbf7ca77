"""Report stage: the paper's tables and figures regenerated from the warehouse."""


import os

import dagster as dg
import polars as pl

from culture_assets.evaluation.comparisons import ALL_CULTURES, CULTURE_AVERAGE
from culture_assets.evaluation.provenance import provenance
from culture_assets.evaluation.report import ReportSettings, all_culture_comparisons, current_config, report_tables, write_report
from culture_assets.resources.evaluation import EvalDataResource
from culture_assets.evaluation.suite import AVERAGE
from culture_assets.profiles import PROFILE_ENV, Profile
from culture_assets.resources import WarehouseResource, library_settings
from culture_assets.store import Warehouse

GROUP = "report"


class CultureReportConfig(dg.Config):
    """The library's ReportSettings (culture_assets.evaluation.report) as asset config."""

    output_dir: str = ReportSettings.model_fields["output_dir"]


def _all_culture_rows(store: Warehouse, config: str | None) -> pl.DataFrame:
    """Holm across cultures for the culture averages and the all-culture rows, written back to `comparisons`."""
    comparisons = store.query("SELECT * EXCLUDE (run_id, written_at) FROM comparisons WHERE config_hash = ?", [config])
    replicates = store.query("SELECT culture, model, baseline, diffs FROM comparison_replicates WHERE config_hash = ?", [config])
    updated = all_culture_comparisons(comparisons, replicates)
    if updated.height:
        store.replace_rows("comparisons", updated, {"scope": [CULTURE_AVERAGE, ALL_CULTURES], "config_hash": config})
    return store.query("SELECT * EXCLUDE (run_id, written_at) FROM comparisons WHERE config_hash = ?", [config])


def _survey_weighted(instance: dg.DagsterInstance) -> str:
    """Whether the newest seed_survey used the survey's weights (from its materialization metadata)."""
    event = instance.get_latest_materialization_event(dg.AssetKey("seed_survey"))
    entry = event.asset_materialization.metadata.get("weighted") if event is not None and event.asset_materialization else None
    return "not recorded" if entry is None else str(entry.value)


@dg.asset(
    group_name=GROUP,
    kinds={"duckdb", "html", "matplotlib"},
    deps=["culture_scores", "wvs_alignment", "cross_culture_alignment"],
    description="The paper's tables and figures from the warehouse, for the newest evaluation configuration: "
    "HTML with PNG plots, and the same figures and tables here.",
)
def culture_report(context: dg.AssetExecutionContext, config: CultureReportConfig, warehouse: WarehouseResource, eval_data: EvalDataResource) -> dg.Output:
    store = warehouse.get()
    store.migrate()
    metrics = store.query("SELECT * FROM metrics")
    eval_config = current_config(metrics)
    comparisons = _all_culture_rows(store, eval_config) if eval_config else None
    label_counts = store.query("SELECT * EXCLUDE (run_id, written_at) FROM label_counts WHERE eval_config = ?", [eval_config]) if eval_config else None
    sample = (metrics.filter((pl.col("eval_config") == eval_config) & (pl.col("model") == "base") & (pl.col("metric") == "macro_f1")
                             & (pl.col("dataset") != AVERAGE) & ~pl.col("dataset").str.starts_with("average"))
              .group_by("culture").agg(pl.len().alias("datasets"), pl.col("n").sum().alias("rows")).sort("culture")) if eval_config else pl.DataFrame()
    generator = store.query("SELECT DISTINCT model FROM sample_lineage WHERE model IS NOT NULL")["model"].to_list()
    facts = provenance(store, os.environ.get(PROFILE_ENV, Profile.DEFAULT.value), ", ".join(sorted(generator)) or "none recorded",
                       _survey_weighted(context.instance), eval_config,
                       sample if sample.height else pl.DataFrame(schema={"culture": pl.String, "datasets": pl.UInt32, "rows": pl.Int64}))
    matrix = store.query("SELECT * EXCLUDE (run_id, written_at) FROM alignment_matrix")
    tables = report_tables(metrics, store.query("SELECT * FROM eval_dataset_status"), eval_data.manifests(), comparisons, label_counts, facts, matrix)
    directory = library_settings(config, ReportSettings).directory(store.path.parent)
    report = write_report(tables, directory)
    if tables.tiny_demo:
        context.log.warning("the report's scores come from a tiny demo model and mean nothing")
    return dg.Output(
        {"html": str(report.html_path), "plots": [str(p) for p in report.plots], "tiny_demo": tables.tiny_demo, "eval_config": eval_config},
        metadata={
            "html": dg.MetadataValue.path(str(report.html_path)),
            "plots": dg.MetadataValue.json([str(p) for p in report.plots]),
            "tiny_demo": tables.tiny_demo,
            "eval_config": eval_config or "",
            "report": dg.MetadataValue.md(report.markdown),
        },
    )
