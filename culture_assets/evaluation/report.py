"""The paper's tables and figures, regenerated from the warehouse: an HTML page with PNG plots.

Figures: per-culture average macro-F1 by model (95% CI bars); average F1 by task type; a
per-dataset table; the sample-size ablation curve when culture models of several training set
sizes were scored; WVS alignment by model; the datasets that could not be scored and why.
"""

from __future__ import annotations

import html
from dataclasses import dataclass, field
from pathlib import Path

import polars as pl

from culture_assets.evaluation.alignment import DATASET as WVS_DATASET
from culture_assets.evaluation.manifest import DatasetManifest
from culture_assets.evaluation.suite import AVERAGE
from culture_assets.markdown import markdown_table
from culture_assets.settings import atomic_path, atomic_write_text

MODEL_ORDER = ["base", "base_culture_prompt", "culture_model", "culturellm_one"]
TINY_WARNING = (
    "These scores come from a tiny random-initialised demo model: they show that the pipeline runs end to end "
    "and mean nothing about culture or about CultureLLM."
)


@dataclass
class ReportTables:
    averages: pl.DataFrame
    per_dataset: pl.DataFrame
    by_task: pl.DataFrame
    ablation: pl.DataFrame
    variants: pl.DataFrame
    alignment: pl.DataFrame
    dataset_status: pl.DataFrame
    tiny_demo: bool


@dataclass
class Report:
    html_path: Path
    plots: list[Path] = field(default_factory=list)
    markdown: str = ""


def report_tables(metrics: pl.DataFrame, status: pl.DataFrame, manifests: list[DatasetManifest]) -> ReportTables:
    f1 = metrics.filter(pl.col("metric") == "macro_f1")
    defaults = f1.filter(pl.col("variant").fill_null("default") == "default")
    tasks = pl.DataFrame({"dataset": [m.id for m in manifests], "task": [m.task for m in manifests]}, schema={"dataset": pl.String, "task": pl.String})
    per_dataset = defaults.filter(pl.col("dataset") != AVERAGE).join(tasks, on="dataset", how="left")
    by_task = (
        per_dataset.group_by("task", "model").agg(pl.col("value").mean().alias("mean_macro_f1"), pl.len().alias("datasets")).sort("task", "model")
    )
    culture_models = f1.filter((pl.col("dataset") == AVERAGE) & pl.col("model").str.starts_with("culture_model")).select(
        "culture", "model", pl.col("variant").fill_null("default"), "n_train", "value", "ci_low", "ci_high"
    )
    # the size curve: the main model and the size_* variants (other variants change what is trained, not how much)
    ablation = culture_models.filter(
        pl.col("n_train").is_not_null() & ((pl.col("variant") == "default") | pl.col("variant").str.starts_with("size_"))
    ).sort("culture", "n_train")
    variants = culture_models.filter(~pl.col("variant").str.starts_with("size_")).sort("culture", "variant")
    if variants["variant"].n_unique() < 2:
        variants = variants.clear()
    sizes = ablation.group_by("culture").agg(pl.col("n_train").n_unique().alias("sizes"))["sizes"].max() if ablation.height else 0
    if not sizes or sizes < 2:
        ablation = ablation.clear()
    return ReportTables(
        averages=defaults.filter(pl.col("dataset") == AVERAGE).select("culture", "model", "value", "ci_low", "ci_high", "n", "invalid_rate").sort("culture", "model"),
        per_dataset=per_dataset.select("culture", "task", "dataset", "model", "value", "ci_low", "ci_high", "n", "invalid_rate").sort("culture", "dataset", "model"),
        by_task=by_task,
        ablation=ablation,
        variants=variants,
        alignment=metrics.filter(pl.col("dataset") == WVS_DATASET).select("culture", "model", "metric", "value", "ci_low", "ci_high", "n", "invalid_rate").sort("culture", "metric", "model"),
        dataset_status=status.filter(pl.col("status") != "loaded").select("culture", "dataset", "status", "detail") if status.height else status,
        tiny_demo=bool(metrics["tiny_model"].fill_null(False).any()) if metrics.height else False,
    )


def _models(frame: pl.DataFrame) -> list[str]:
    present = frame["model"].unique().to_list()
    return [m for m in MODEL_ORDER if m in present] + sorted(m for m in present if m not in MODEL_ORDER)


def _grouped_bars(frame: pl.DataFrame, group: str, value: str, title: str, ylabel: str, target: Path, with_ci: bool) -> Path:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np

    groups = sorted(frame[group].unique().to_list())
    models = _models(frame)
    width = 0.8 / max(len(models), 1)
    fig, ax = plt.subplots(figsize=(max(6, 1.2 * len(groups) + 2), 4))
    for i, model in enumerate(models):
        part = {r[group]: r for r in frame.filter(pl.col("model") == model).iter_rows(named=True)}
        xs = np.arange(len(groups)) + i * width
        ys = [part[g][value] if g in part else np.nan for g in groups]
        errors = None
        if with_ci:
            errors = np.array([[part[g][value] - part[g]["ci_low"], part[g]["ci_high"] - part[g][value]] if g in part else [0, 0] for g in groups]).T
        ax.bar(xs, ys, width, yerr=errors, capsize=3, label=model)
    ax.set_xticks(np.arange(len(groups)) + width * (len(models) - 1) / 2, groups, rotation=30, ha="right")
    ax.set_ylabel(ylabel)
    ax.set_title(title)
    ax.legend(fontsize="small")
    return _save_png(fig, target)


def _save_png(fig, target: Path) -> Path:
    import matplotlib.pyplot as plt

    fig.tight_layout()
    with atomic_path(target) as tmp:
        fig.savefig(tmp, format="png", dpi=110)
    plt.close(fig)
    return target


def _ablation_plot(frame: pl.DataFrame, target: Path) -> Path:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 4))
    for culture in sorted(frame["culture"].unique().to_list()):
        part = frame.filter(pl.col("culture") == culture).sort("n_train")
        ax.errorbar(part["n_train"].to_list(), part["value"].to_list(),
                    yerr=[(part["value"] - part["ci_low"]).to_list(), (part["ci_high"] - part["value"]).to_list()], marker="o", capsize=3, label=culture)
    ax.set_xscale("log")
    ax.set_xlabel("training samples")
    ax.set_ylabel("average macro-F1")
    ax.set_title("Sample-size ablation (culture models)")
    ax.legend(fontsize="small")
    return _save_png(fig, target)


def _html_table(frame: pl.DataFrame) -> str:
    def cell(v: object) -> str:
        return f"{v:.3f}" if isinstance(v, float) else html.escape("" if v is None else str(v))

    head = "".join(f"<th>{html.escape(c)}</th>" for c in frame.columns)
    body = "".join("<tr>" + "".join(f"<td>{cell(v)}</td>" for v in row) + "</tr>" for row in frame.iter_rows())
    return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


def write_report(tables: ReportTables, directory: Path) -> Report:
    directory.mkdir(parents=True, exist_ok=True)
    report = Report(html_path=directory / "index.html")
    sections: list[tuple[str, str, Path | None, pl.DataFrame]] = []
    if tables.averages.height:
        plot = _grouped_bars(tables.averages, "culture", "value", "Average macro-F1 by culture (95% bootstrap CI)", "macro-F1", directory / "f1_by_culture.png", True)
        sections.append(("Average macro-F1 by culture and model", "Mean over the culture's scored datasets; CI from paired bootstrap.", plot, tables.averages))
    if tables.by_task.height:
        plot = _grouped_bars(tables.by_task, "task", "mean_macro_f1", "Average macro-F1 by task", "macro-F1", directory / "f1_by_task.png", False)
        sections.append(("Average macro-F1 by task", "Mean over the datasets of each task type.", plot, tables.by_task))
    if tables.per_dataset.height:
        sections.append(("Per-dataset breakdown", "Macro-F1 over each dataset's label set; invalid answers count as wrong.", None, tables.per_dataset))
    if tables.ablation.height:
        sections.append(("Sample-size ablation", "Culture models trained on different numbers of samples.", _ablation_plot(tables.ablation, directory / "ablation.png"), tables.ablation))
    if tables.variants.height:
        sections.append(("Ablations: augmentation steps and prompt language", "Culture models trained on the seed questions only, with step 1, with steps 1 and 2, and with English or native-language system prompts.", None, tables.variants))
    if tables.alignment.height:
        jsd = tables.alignment.filter(pl.col("metric") == "js_distance")
        plot = _grouped_bars(jsd, "culture", "value", "WVS alignment: Jensen-Shannon distance to the survey (lower is closer)", "JS distance", directory / "wvs_alignment.png", True)
        sections.append(("WVS alignment on held-out questions", "Jensen-Shannon and normalised Wasserstein distance to the survey distribution, and modal accuracy.", plot, tables.alignment))
    if tables.dataset_status.height:
        sections.append(("Datasets not scored", "Declared in the manifests but missing, not available, mismatching their sha256 or malformed.", None, tables.dataset_status))
    report.plots = [s[2] for s in sections if s[2] is not None]

    warning = f'<p class="warning"><strong>Wiring demo.</strong> {html.escape(TINY_WARNING)}</p>' if tables.tiny_demo else ""
    body = "".join(
        f"<h2>{html.escape(title)}</h2><p>{html.escape(note)}</p>" + (f'<img src="{plot.name}" alt="{html.escape(title)}">' if plot else "") + _html_table(frame)
        for title, note, plot, frame in sections
    ) or "<p>No evaluation results in the warehouse yet.</p>"
    page = (
        "<!doctype html><html><head><meta charset='utf-8'><title>CultureLLM evaluation report</title><style>"
        "body{font-family:sans-serif;max-width:1100px;margin:2em auto}table{border-collapse:collapse;font-size:13px}"
        "td,th{border:1px solid #ccc;padding:2px 6px}.warning{background:#fee;border:1px solid #c00;padding:.6em}img{max-width:100%}"
        f"</style></head><body><h1>CultureLLM evaluation report</h1>{warning}{body}</body></html>"
    )
    atomic_write_text(report.html_path, page)
    md = [f"**Wiring demo:** {TINY_WARNING}\n"] if tables.tiny_demo else []
    for title, _, _, frame in sections:
        md += [f"### {title}", markdown_table(frame, max_rows=40), ""]
    report.markdown = "\n".join(md) or "No evaluation results yet."
    return report
