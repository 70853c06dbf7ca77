"""The paper's tables and figures, regenerated from the warehouse: an HTML page with PNG plots,
and the same content as markdown (plots embedded as base64 images) for the Dagster UI.

Order: what produced the report (provenance); the paired differences between models (the
paper's claim, with its headline numbers in a reference column); average macro-F1 by culture
beside the trivial baselines, with and without the degenerate / rare-class sets; by task; per
dataset (with calibrated decisions, AUROC and class-balance flags); predicted-label
distributions; ablations; WVS alignment on held-out topics; the cross-culture alignment matrix; datasets not scored.

Only rows of one evaluation configuration are shown (the newest, `eval_config`): rows of runs
with another sample size or other scoring settings stay in DuckDB and are left out.
"""

from __future__ import annotations

import base64
import html
from dataclasses import dataclass, field
from functools import lru_cache
from importlib.resources import files
from pathlib import Path

import polars as pl
import yaml
from pydantic import BaseModel, ConfigDict, Field

from culture_assets.evaluation.comparisons import ALL_CULTURES, COMPARISONS, CULTURE_AVERAGE, holm, paired_difference
from culture_assets.evaluation.manifest import DatasetManifest
from culture_assets.evaluation.metrics import class_balance_flag
from culture_assets.evaluation.suite import AVERAGE, AVERAGE_UNFLAGGED, COMPARISON_COLUMNS, GOLD, MAJORITY, STRATIFIED
from culture_assets.markdown import markdown_table
from culture_assets.settings import atomic_path, atomic_write_text

MODEL_ORDER = ["base", "base_culture_prompt", "culture_model", "culturellm_one"]
BASELINE_ORDER = [MAJORITY, STRATIFIED]
ALL = "all"
# a table longer than this is summarised in the UI's markdown (the HTML report has it whole)
UI_ROWS = 40
TINY_WARNING = (
    "These scores come from a tiny random-initialised demo model: they show that the pipeline runs end to end "
    "and mean nothing about culture or about CultureLLM."
)


@lru_cache(maxsize=1)
def paper_reference() -> dict:
    """The paper's headline numbers, packaged as data (culture_assets/data/paper_reference.yaml)."""
    return yaml.safe_load(files("culture_assets").joinpath("data/paper_reference.yaml").read_text(encoding="utf-8"))


def current_config(metrics: pl.DataFrame) -> str | None:
    """The evaluation configuration of the newest main-model macro-F1 row (None: rows carry none)."""
    if "eval_config" not in metrics.columns:
        return None
    recorded = metrics.filter(pl.col("eval_config").is_not_null() & (pl.col("metric") == "macro_f1"))
    if recorded.is_empty():
        return None
    order = "written_at" if "written_at" in recorded.columns else "eval_config"
    return recorded.sort(order)["eval_config"][-1]


def all_culture_comparisons(comparisons: pl.DataFrame, replicates: pl.DataFrame, level: float = 0.95) -> pl.DataFrame:
    """The culture-average rows with Holm across cultures, and one all-culture row per comparison
    (the mean of the culture averages; cultures share no texts, so their replicates are independent
    draws and the all-culture replicate is the mean of theirs)."""
    averages = comparisons.filter(pl.col("scope") == CULTURE_AVERAGE)
    rows = []
    for model, baseline in COMPARISONS:
        family = averages.filter((pl.col("model") == model) & (pl.col("baseline") == baseline)).sort("culture")
        if family.is_empty():
            continue
        adjusted = holm(family["p_value"].to_list())
        rows += [{**r, "p_holm": p} for r, p in zip(family.iter_rows(named=True), adjusted)]
        draws = replicates.filter((pl.col("model") == model) & (pl.col("baseline") == baseline) & pl.col("culture").is_in(family["culture"].implode()))
        if draws.height == family.height:
            import numpy as np

            mean_draws = np.mean(np.array(draws.sort("culture")["diffs"].to_list()), axis=0)
            difference = paired_difference(float(family["diff"].mean()), mean_draws, level)
            rows.append({"culture": ALL, "scope": ALL_CULTURES, "model": model, "baseline": baseline, "diff": difference.diff,
                         "ci_low": difference.ci_low, "ci_high": difference.ci_high, "p_value": difference.p_value,
                         "p_holm": difference.p_value, "n_clusters": int(family["n_clusters"].sum()), "config_hash": family["config_hash"][0]})
    return pl.DataFrame(rows, schema=COMPARISON_COLUMNS)


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
    comparisons: pl.DataFrame = field(default_factory=lambda: pl.DataFrame(schema=COMPARISON_COLUMNS))
    dataset_comparisons: pl.DataFrame = field(default_factory=lambda: pl.DataFrame(schema=COMPARISON_COLUMNS))
    label_distribution: pl.DataFrame = field(default_factory=pl.DataFrame)
    provenance: dict[str, object] = field(default_factory=dict)
    eval_config: str | None = None
    alignment_matrix: pl.DataFrame = field(default_factory=pl.DataFrame)


@dataclass
class Report:
    html_path: Path
    plots: list[Path] = field(default_factory=list)
    markdown: str = ""


def _flags(label_counts: pl.DataFrame) -> pl.DataFrame:
    gold = label_counts.filter(pl.col("model") == GOLD) if label_counts.height else label_counts
    rows = [{"culture": c, "dataset": d, "flag": class_balance_flag(dict(zip(part["label"].to_list(), part["n"].to_list())))}
            for (c, d), part in gold.group_by("culture", "dataset")] if gold.height else []
    return pl.DataFrame(rows, schema={"culture": pl.String, "dataset": pl.String, "flag": pl.String})


def _with_reference(comparisons: pl.DataFrame) -> pl.DataFrame:
    reference = pl.DataFrame([r for r in paper_reference()["comparisons"] if r["scope"] == ALL_CULTURES],
                             schema={"model": pl.String, "baseline": pl.String, "scope": pl.String, "value": pl.Float64, "note": pl.String})
    return comparisons.join(reference.rename({"value": "paper_value", "note": "paper"}), on=["model", "baseline", "scope"], how="left")


def report_tables(
    metrics: pl.DataFrame,
    status: pl.DataFrame,
    manifests: list[DatasetManifest],
    comparisons: pl.DataFrame | None = None,
    label_counts: pl.DataFrame | None = None,
    provenance: dict[str, object] | None = None,
    alignment_matrix: pl.DataFrame | None = None,
) -> ReportTables:
    config = current_config(metrics)
    if config is not None:
        # rows of other configurations stay in DuckDB; alignment rows are scored on the survey, not the sample
        metrics = metrics.filter((pl.col("eval_config") == config) | (pl.col("eval_config").is_null() & pl.col("dataset").str.starts_with("wvs_")))
    comparisons = comparisons if comparisons is not None else pl.DataFrame(schema=COMPARISON_COLUMNS)
    label_counts = label_counts if label_counts is not None and label_counts.height else pl.DataFrame(
        schema={"culture": pl.String, "dataset": pl.String, "model": pl.String, "label": pl.String, "n": pl.Int64, "share": pl.Float64, "eval_config": pl.String})
    if config is not None:
        comparisons = comparisons.filter(pl.col("config_hash") == config)
        label_counts = label_counts.filter(pl.col("eval_config") == config)
    flags = _flags(label_counts)

    f1 = metrics.filter(pl.col("metric") == "macro_f1")
    defaults = f1.filter(pl.col("variant").fill_null("default").is_in(["default", "trivial_baseline"]))
    tasks = pl.DataFrame({"dataset": [m.id for m in manifests], "task": [m.task for m in manifests]}, schema={"dataset": pl.String, "task": pl.String})
    scored = defaults.filter(~pl.col("dataset").is_in([AVERAGE, AVERAGE_UNFLAGGED]) & ~pl.col("dataset").str.starts_with("wvs_"))
    per_dataset = scored.join(tasks, on="dataset", how="left")
    by_task = per_dataset.group_by("task", "model").agg(pl.col("value").mean().alias("mean_macro_f1"), pl.len().alias("datasets")).sort("task", "model")
    extra = metrics.filter(pl.col("metric").is_in(["macro_f1_calibrated", "auroc", "macro_f1_valid"]) & (pl.col("variant").fill_null("default") == "default"))
    extra_wide = extra.pivot(on="metric", index=["culture", "dataset", "model"], values="value", aggregate_function="first") if extra.height else None
    per_dataset = per_dataset.select("culture", "task", "dataset", "model", "value", "ci_low", "ci_high", "n", "invalid_rate")
    if extra_wide is not None:
        per_dataset = per_dataset.join(extra_wide, on=["culture", "dataset", "model"], how="left")
    per_dataset = per_dataset.join(flags, on=["culture", "dataset"], how="left").sort("culture", "dataset", "model")

    averages = defaults.filter(pl.col("dataset").is_in([AVERAGE, AVERAGE_UNFLAGGED])).select(
        "culture", pl.col("dataset").alias("scope"), "model", "value", "ci_low", "ci_high", "n", "invalid_rate").sort("culture", "scope", "model")

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
    headline = comparisons.filter(pl.col("scope").is_in([CULTURE_AVERAGE, ALL_CULTURES]))
    return ReportTables(
        averages=averages,
        per_dataset=per_dataset,
        by_task=by_task,
        ablation=ablation,
        variants=variants,
        # any WVS table (held-out alignment today; the alignment helper may add more under wvs_*)
        alignment=metrics.filter(pl.col("dataset").str.starts_with("wvs_")).select(
            "culture", "dataset", "model", "metric", "value", "ci_low", "ci_high", "n", "invalid_rate").sort("dataset", "culture", "metric", "model"),
        dataset_status=status.filter(pl.col("status") != "loaded").select("culture", "dataset", "status", "detail") if status.height else status,
        tiny_demo=bool(metrics["tiny_model"].fill_null(False).any()) if metrics.height else False,
        comparisons=_with_reference(headline.sort(pl.col("scope") == CULTURE_AVERAGE, "model", "baseline", "culture")),
        dataset_comparisons=comparisons.filter(~pl.col("scope").is_in([CULTURE_AVERAGE, ALL_CULTURES])).sort("culture", "scope", "model", "baseline"),
        label_distribution=label_counts.drop("eval_config").sort("culture", "dataset", "model", "label") if label_counts.height else label_counts,
        provenance=provenance or {},
        eval_config=config,
        alignment_matrix=alignment_matrix.sort("metric", "survey_culture", "model_culture") if alignment_matrix is not None else pl.DataFrame(),
    )


def _models(frame: pl.DataFrame) -> list[str]:
    present = frame["model"].unique().to_list()
    known = MODEL_ORDER + BASELINE_ORDER
    return [m for m in known if m in present] + sorted(m for m in present if m not in known)


def _pyplot():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _grouped_bars(frame: pl.DataFrame, group: str, value: str, title: str, ylabel: str, target: Path, with_ci: bool) -> Path:
    import numpy as np

    plt = _pyplot()
    groups = sorted(frame[group].unique().to_list())
    models = _models(frame)
    width = 0.8 / max(len(models), 1)
    fig, ax = plt.subplots(figsize=(max(7, 1.1 * len(groups) + 4), 4.2))
    for i, model in enumerate(models):
        part = {r[group]: r for r in frame.filter(pl.col("model") == model).iter_rows(named=True)}
        xs = np.arange(len(groups)) + i * width
        ys = [part[g][value] if g in part else np.nan for g in groups]
        errors = None
        if with_ci:
            errors = np.array([[part[g][value] - part[g]["ci_low"], part[g]["ci_high"] - part[g][value]]
                               if g in part and part[g]["ci_low"] == part[g]["ci_low"] else [0, 0] for g in groups]).T
        hatch = "//" if model in BASELINE_ORDER else None
        ax.bar(xs, ys, width, yerr=errors, capsize=2, label=model, hatch=hatch, edgecolor="white" if hatch else None)
    ax.set_xticks(np.arange(len(groups)) + width * (len(models) - 1) / 2, groups, rotation=30, ha="right")
    ax.set_ylabel(ylabel)
    ax.set_title(title)
    ax.legend(fontsize="small", loc="upper left", bbox_to_anchor=(1.01, 1.0), frameon=False)  # outside: never over bars
    return _save_png(fig, target)


def _difference_plot(comparisons: pl.DataFrame, target: Path) -> Path:
    """Forest plot: each comparison's difference with its 95% CI, per culture and over all cultures."""
    plt = _pyplot()
    frame = comparisons.sort("model", "baseline", pl.col("culture") == ALL, "culture", descending=[False, False, False, True])
    labels = [f"{r['culture']}: {r['model']} − {r['baseline']}" for r in frame.iter_rows(named=True)]
    fig, ax = plt.subplots(figsize=(8, max(2.5, 0.28 * len(labels) + 1)))
    ys = list(range(len(labels)))
    diffs = frame["diff"].to_list()
    ax.errorbar(diffs, ys, xerr=[(frame["diff"] - frame["ci_low"]).to_list(), (frame["ci_high"] - frame["diff"]).to_list()],
                fmt="o", capsize=3, color="black")
    ax.axvline(0, color="grey", linewidth=1)
    ax.set_yticks(ys, labels, fontsize="small")
    ax.set_xlabel("difference in macro-F1 (paired cluster bootstrap 95% CI)")
    ax.set_title("Model − baseline")
    return _save_png(fig, target)


def _save_png(fig, target: Path) -> Path:
    plt = _pyplot()
    fig.tight_layout()
    with atomic_path(target) as tmp:
        fig.savefig(tmp, format="png", dpi=110, bbox_inches="tight")
    plt.close(fig)
    return target


def _ablation_plot(frame: pl.DataFrame, target: Path) -> Path:
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(7, 4))
    for culture in sorted(frame["culture"].unique().to_list()):
        part = frame.filter(pl.col("culture") == culture).sort("n_train")
        ax.errorbar(part["n_train"].to_list(), part["value"].to_list(),
                    yerr=[(part["value"] - part["ci_low"]).to_list(), (part["ci_high"] - part["value"]).to_list()], marker="o", capsize=3, label=culture)
    ax.set_xscale("log")
    ax.set_xlabel("training samples")
    ax.set_ylabel("average macro-F1")
    ax.set_title("Sample-size ablation (culture models)")
    ax.legend(fontsize="small", loc="upper left", bbox_to_anchor=(1.01, 1.0), frameon=False)
    return _save_png(fig, target)


def _matrix_heatmap(matrix: pl.DataFrame, target: Path) -> Path:
    """Model culture (rows) x survey culture (columns), Jensen-Shannon distance; the own culture's cell outlined."""
    plt = _pyplot()
    cultures = sorted(set(matrix["model_culture"]) | set(matrix["survey_culture"]))
    models = [c for c in cultures if c in set(matrix["model_culture"])]
    surveys = [c for c in cultures if c in set(matrix["survey_culture"])]
    cells = {(r["model_culture"], r["survey_culture"]): r["value"] for r in matrix.iter_rows(named=True)}
    grid = [[cells.get((m, s), float("nan")) for s in surveys] for m in models]
    fig, ax = plt.subplots(figsize=(1.0 * len(surveys) + 3, 0.8 * len(models) + 2))
    image = ax.imshow(grid, cmap="viridis_r")
    for i, model in enumerate(models):
        for j, survey in enumerate(surveys):
            ax.text(j, i, f"{grid[i][j]:.2f}", ha="center", va="center", fontsize="small", color="white")
            if model == survey:
                ax.add_patch(plt.Rectangle((j - 0.5, i - 0.5), 1, 1, fill=False, edgecolor="red", linewidth=2))
    ax.set_xticks(range(len(surveys)), surveys, rotation=30, ha="right")
    ax.set_yticks(range(len(models)), models)
    ax.set_xlabel("survey of culture")
    ax.set_ylabel("held-out-topic models of culture")
    ax.set_title("Cross-culture alignment: JS distance (lower is closer)")
    fig.colorbar(image, ax=ax)
    return _save_png(fig, target)


def _html_table(frame: pl.DataFrame) -> str:
    def cell(v: object) -> str:
        return f"{v:.3f}" if isinstance(v, float) else html.escape("" if v is None else str(v))

    head = "".join(f"<th>{html.escape(c)}</th>" for c in frame.columns)
    body = "".join("<tr>" + "".join(f"<td>{cell(v)}</td>" for v in row) + "</tr>" for row in frame.iter_rows())
    return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


@dataclass
class Section:
    title: str
    note: str
    frame: pl.DataFrame
    plot: Path | None = None
    # what the UI's markdown shows when the table is longer than UI_ROWS (the HTML has it whole)
    summary: pl.DataFrame | None = None


def _summary_by_culture(frame: pl.DataFrame, value: str) -> pl.DataFrame:
    return frame.group_by("culture", "model").agg(pl.col(value).mean().alias(f"mean_{value}"), pl.len().alias("rows")).sort("culture", "model")


def _provenance_table(provenance: dict[str, object]) -> pl.DataFrame:
    return pl.DataFrame({"item": list(provenance), "value": [str(v) for v in provenance.values()]}, schema={"item": pl.String, "value": pl.String})


def _sections(tables: ReportTables, directory: Path) -> list[Section]:
    sections: list[Section] = []
    if tables.provenance:
        sections.append(Section("What produced this report", "Date, code, packages, models, data versions and sample sizes.", _provenance_table(tables.provenance)))
    if tables.comparisons.height:
        sections.append(Section(
            "Paired differences between models",
            "Difference in average macro-F1 (model − baseline) with a paired bootstrap 95% CI and p-value; rows that share a text "
            "(across a culture's datasets, and permuted copies) are resampled together. p_holm: Holm across cultures for the "
            "culture averages. paper_value: the paper's headline figure as printed (its baseline was GPT-3.5).",
            tables.comparisons, _difference_plot(tables.comparisons, directory / "differences.png")))
    if tables.averages.height:
        main = tables.averages.filter(pl.col("scope") == AVERAGE)
        plot = _grouped_bars(main, "culture", "value", "Average macro-F1 by culture (95% cluster-bootstrap CI)", "macro-F1", directory / "f1_by_culture.png", True)
        sections.append(Section(
            "Average macro-F1 by culture and model",
            f"scope '{AVERAGE}': mean over the culture's scored datasets; '{AVERAGE_UNFLAGGED}': without the degenerate and rare-class sets "
            f"(see the per-dataset flags). {MAJORITY} and {STRATIFIED} are trivial classifiers scored on the same rows.",
            tables.averages, plot))
    if tables.by_task.height:
        plot = _grouped_bars(tables.by_task, "task", "mean_macro_f1", "Average macro-F1 by task", "macro-F1", directory / "f1_by_task.png", False)
        sections.append(Section("Average macro-F1 by task", "Mean over the datasets of each task type.", tables.by_task, plot))
    if tables.dataset_comparisons.height:
        sections.append(Section(
            "Paired differences per dataset", "p_holm: Holm across the culture's datasets within each comparison.",
            tables.dataset_comparisons, summary=tables.dataset_comparisons.group_by("culture", "model", "baseline").agg(
                pl.len().alias("datasets"), (pl.col("ci_low") > 0).sum().alias("ci_above_0"), (pl.col("ci_high") < 0).sum().alias("ci_below_0")).sort("culture", "model", "baseline")))
    if tables.per_dataset.height:
        sections.append(Section(
            "Per-dataset breakdown",
            "Macro-F1 over each dataset's label set (invalid answers count as wrong); macro_f1_valid on validly answered rows only; "
            "macro_f1_calibrated with contextual calibration; auroc from the label scores (binary sets); flag: degenerate or rare-class set.",
            tables.per_dataset, summary=_summary_by_culture(tables.per_dataset, "value")))
    if tables.label_distribution.height:
        sections.append(Section("Predicted-label distribution", f"Share of each label among the gold labels ('{GOLD}') and each model's answers.",
                                tables.label_distribution, summary=tables.label_distribution.filter(pl.col("model") == GOLD)
                                .group_by("culture").agg(pl.col("dataset").n_unique().alias("datasets"), pl.col("n").sum().alias("rows"))
                                .sort("culture")))
    if tables.ablation.height:
        sections.append(Section("Sample-size ablation", "Culture models trained on different numbers of samples.", tables.ablation,
                                _ablation_plot(tables.ablation, directory / "ablation.png")))
    if tables.variants.height:
        sections.append(Section("Ablations: augmentation steps and prompt language", "Culture models trained on the seed questions only, with step 1, "
                                "with steps 1 and 2, and with English or native-language system prompts.", tables.variants))
    # alignment: every wvs_* table the alignment stage writes gets its section here
    for dataset in sorted(tables.alignment["dataset"].unique().to_list()) if tables.alignment.height else []:
        part = tables.alignment.filter(pl.col("dataset") == dataset)
        jsd = part.filter(pl.col("metric") == "js_distance")
        plot = _grouped_bars(jsd, "culture", "value", f"WVS alignment ({dataset}): Jensen-Shannon distance (lower is closer)", "JS distance",
                             directory / ("wvs_alignment.png" if dataset == "wvs_heldout" else f"{dataset}.png"), True) if jsd.height else None
        sections.append(Section(f"WVS alignment: {dataset}", "Each culture's held-out-topic models on the topics they never saw, the base model with and without the culture prompt, "
                                "and two baselines (nearest_trained_question, pooled_cultures): distance to the survey distribution and modal accuracy, "
                                "bootstrap 95% CI over questions.", part.drop("dataset"), plot,
                                summary=part.group_by("model", "metric").agg(pl.col("value").mean().alias("mean_over_cultures")).sort("metric", "model")))
    if tables.alignment_matrix.height:
        jsd = tables.alignment_matrix.filter(pl.col("metric") == "js_distance")
        sections.append(Section(
            "Cross-culture alignment matrix",
            "Each culture's held-out-topic models against each culture's survey on the held-out questions (a column: the questions that "
            "survey asked, the same for every row; bootstrap 95% CI over questions). The diagonal (outlined) should be the closest in its column.",
            tables.alignment_matrix, _matrix_heatmap(jsd, directory / "alignment_matrix.png") if jsd.height else None,
            summary=jsd.pivot(on="survey_culture", index="model_culture", values="value").sort("model_culture")))
    if tables.dataset_status.height:
        sections.append(Section("Datasets not scored", "Declared in the manifests but missing, not available, mismatching their sha256 or malformed.",
                                tables.dataset_status))
    return sections


def _markdown(section: Section) -> str:
    parts = [f"### {section.title}", section.note]
    if section.plot is not None:
        encoded = base64.b64encode(section.plot.read_bytes()).decode()
        parts.append(f"![{section.title}](data:image/png;base64,{encoded})")
    if section.frame.height > UI_ROWS and section.summary is not None:
        parts += [f"Summary of {section.frame.height} rows (the full table is in the HTML report):", markdown_table(section.summary, max_rows=UI_ROWS * 5)]
    else:
        parts.append(markdown_table(section.frame, max_rows=UI_ROWS * 5))
    return "\n\n".join(parts)


class ReportSettings(BaseModel):
    """Where the report is written (the culture_report asset's config derives its fields from these)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    output_dir: str = Field(default="", description="Directory of the HTML report and its plots; empty: reports/culture_report beside the warehouse, under the data home.")

    def directory(self, warehouse_dir: Path) -> Path:
        return Path(self.output_dir).expanduser().resolve() if self.output_dir else warehouse_dir / "reports" / "culture_report"


def write_report(tables: ReportTables, directory: Path) -> Report:
    directory.mkdir(parents=True, exist_ok=True)
    report = Report(html_path=directory / "index.html")
    sections = _sections(tables, directory)
    report.plots = [s.plot for s in sections if s.plot is not None]
    scored = any(s.title not in ("What produced this report",) for s in sections)
    warning = f'<p class="warning"><strong>Wiring demo.</strong> {html.escape(TINY_WARNING)}</p>' if tables.tiny_demo else ""
    body = "".join(
        f"<h2>{html.escape(s.title)}</h2><p>{html.escape(s.note)}</p>" + (f'<img src="{s.plot.name}" alt="{html.escape(s.title)}">' if s.plot else "")
        + _html_table(s.frame)
        for s in sections
    )
    if not scored:
        body += "<p>No evaluation results in the warehouse yet.</p>"
    page = (
        "<!doctype html><html><head><meta charset='utf-8'><title>CultureLLM evaluation report</title><style>"
        "body{font-family:sans-serif;max-width:1200px;margin:2em auto}table{border-collapse:collapse;font-size:13px}"
        "td,th{border:1px solid #ccc;padding:2px 6px}.warning{background:#fee;border:1px solid #c00;padding:.6em}img{max-width:100%}"
        f"</style></head><body><h1>CultureLLM evaluation report</h1>{warning}{body}</body></html>"
    )
    atomic_write_text(report.html_path, page)
    md = [f"**Wiring demo:** {TINY_WARNING}"] if tables.tiny_demo else []
    md += [_markdown(s) for s in sections]
    report.markdown = "\n\n".join(md) if scored else "No evaluation results yet."
    return report
