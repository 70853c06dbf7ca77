"""Report stage: the paper's tables and figures regenerated from the warehouse."""


from pathlib import Path

import dagster as dg

from culture_assets.evaluation.report import report_tables, write_report
from culture_assets.resources.evaluation import EvalDataResource
from culture_assets.resources import WarehouseResource

GROUP = "report"


class CultureReportConfig(dg.Config):
    output_dir: str = ""  # empty: reports/culture_report beside the warehouse, under the data home


@dg.asset(
    group_name=GROUP,
    kinds={"duckdb", "html", "matplotlib"},
    deps=["culture_scores", "wvs_alignment"],
    description="The paper's tables and figures from the metrics table: HTML with PNG plots, shown here as markdown.",
)
def culture_report(context: dg.AssetExecutionContext, config: CultureReportConfig, warehouse: WarehouseResource, eval_data: EvalDataResource) -> dg.Output:
    store = warehouse.get()
    store.migrate()
    metrics = store.query("SELECT * FROM metrics")
    status = store.query("SELECT * FROM eval_dataset_status")
    tables = report_tables(metrics, status, eval_data.manifests())
    directory = Path(config.output_dir).expanduser().resolve() if config.output_dir else store.path.parent / "reports" / "culture_report"
    report = write_report(tables, directory)
    if tables.tiny_demo:
        context.log.warning("the report's scores come from a tiny demo model and mean nothing")
    return dg.Output(
        {"html": str(report.html_path), "plots": [str(p) for p in report.plots], "tiny_demo": tables.tiny_demo},
        metadata={
            "html": dg.MetadataValue.path(str(report.html_path)),
            "plots": dg.MetadataValue.json([str(p) for p in report.plots]),
            "tiny_demo": tables.tiny_demo,
            "report": dg.MetadataValue.md(report.markdown),
        },
    )
