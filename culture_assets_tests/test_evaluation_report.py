"""The report from warehouse rows: figures present when their rows are, the tiny-model warning, the ablation curve."""

import polars as pl

from culture_assets.evaluation.manifest import load_manifests
from culture_assets.evaluation.report import TINY_WARNING, report_tables, write_report
from culture_assets.evaluation.suite import METRIC_COLUMNS
from culture_assets.store import Warehouse


def _row(culture, dataset, model, value, variant="default", n_train=None, tiny=False, metric="macro_f1"):
    return {"culture": culture, "dataset": dataset, "model": model, "metric": metric, "value": value, "ci_low": value - 0.05,
            "ci_high": value + 0.05, "n": 100, "invalid_rate": 0.0, "config_hash": "h", "variant": variant, "n_train": n_train, "tiny_model": tiny}


def test_report_with_ablation_rows_and_real_models(tmp_path):
    rows = [_row("german", d, m, v) for d in ("german_iwg1_hate", "average") for m, v in (("base", 0.5), ("culture_model", 0.6))]
    rows += [_row("german", "average", f"culture_model[size_{n}]", 0.5 + n / 10_000, variant=f"size_{n}", n_train=n) for n in (50, 150, 500)]
    rows += [_row("german", "average", f"culture_model[{v}]", 0.55, variant=v, n_train=45) for v in ("seed_only", "prompt_native")]
    warehouse = Warehouse(tmp_path / "w.duckdb")
    warehouse.replace_rows("metrics", pl.DataFrame(rows, schema=METRIC_COLUMNS), {"culture": "german"})
    tables = report_tables(warehouse.query("SELECT * FROM metrics"), warehouse.query("SELECT * FROM eval_dataset_status"), load_manifests())
    assert tables.ablation["n_train"].to_list() == [50, 150, 500]  # step and prompt variants are not sizes
    assert tables.variants["variant"].to_list() == ["default", "prompt_native", "seed_only"]
    assert tables.by_task.filter(pl.col("model") == "culture_model")["task"].to_list() == ["hate"]
    report = write_report(tables, tmp_path / "report")
    page = report.html_path.read_text(encoding="utf-8")
    assert {p.name for p in report.plots} == {"f1_by_culture.png", "f1_by_task.png", "ablation.png"}
    assert TINY_WARNING not in page and "Sample-size ablation" in page and "Ablations: augmentation steps" in page and "Wiring demo" not in report.markdown


def test_empty_warehouse_gives_an_empty_report(tmp_path):
    warehouse = Warehouse(tmp_path / "w.duckdb")
    tables = report_tables(warehouse.query("SELECT * FROM metrics"), warehouse.query("SELECT * FROM eval_dataset_status"), load_manifests())
    report = write_report(tables, tmp_path / "report")
    assert report.plots == [] and "No evaluation results" in report.html_path.read_text(encoding="utf-8")
