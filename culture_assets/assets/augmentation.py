"""Augmentation stage: paraphrases and templates (step 1), synonym variants (step 2), the semantic
filter producing `augmented_questions`, and the quality analyses. Done once for all cultures."""

import base64
import io
from collections import Counter
from typing import Literal, Optional

import dagster as dg
import polars as pl
from pydantic import Field

from culture_assets.augment.candidates import candidates_frame, candidates_from_frame, seeds_from_frame
from culture_assets.augment.checks import exact_duplicates, option_scale_problems, questions_below_minimum, rows_below_threshold
from culture_assets.augment.embedder import Embedder
from culture_assets.augment.equivalence import DEFAULT_NLI_MODEL, JudgeEquivalence, MeaningCheck, NliEquivalence, all_of
from culture_assets.augment.generation import Step1Settings, Step2Settings, StepResult, paraphrase_step, synonym_step
from culture_assets.augment.lineage import write_lineage
from culture_assets.augment.quality import diversity_gain, judge_equivalence, perplexity, sample_pairs
from culture_assets.resources.augment import EmbedderResource
from culture_assets.augment.semantic_filter import PACKAGED_ENCODER, FilterSettings, Threshold, mean_pairwise_cosine, semantic_filter, threshold_for
from culture_assets.llm import DryRunStop, LLMError
from culture_assets.resources.llm import LLMResource
from culture_assets.markdown import markdown_table
from culture_assets.profiles import profile_default
from culture_assets.resources import WarehouseResource
from culture_assets.training.ablations import per_question_cap
from culture_assets.settings import atomic_path, data_home
from culture_assets.store.warehouse import WRITER_POOL

GROUP = "augmentation"
AUGMENTED_COLUMNS = ["sample_id", "question_id", "text", "step", "parent_id", "similarity", "model", "prompt_hash"]


class ParaphraseConfig(dg.Config):
    n_paraphrases: int = Field(default=8, ge=1, description="Paraphrases asked for per request.")
    n_templates: int = Field(default=3, ge=0, description="Step-1 sentences (the seed, then the accepted paraphrases) made into [x:word] templates per question.")
    target_accepted: int = Field(default=5, ge=1, description="Ask again until this many paraphrases pass the threshold.")
    max_attempts: int = Field(default=profile_default("ParaphraseConfig", "max_attempts", 3), ge=1, description="Requests per seed question at most.")
    similarity_threshold: Optional[float] = Field(default=None, ge=-1, le=1, description="Cosine to the seed; empty: calibrated for the embedder.")
    temperature: float = 0.9
    max_tokens: int = profile_default("ParaphraseConfig", "max_tokens", 1024)


class SynonymConfig(dg.Config):
    fillings_per_template: int = Field(default=4, ge=1)
    max_attempts: int = Field(default=profile_default("SynonymConfig", "max_attempts", 2), ge=1, description="Requests per seed question at most (retries after a malformed reply).")
    similarity_threshold: Optional[float] = Field(default=None, ge=-1, le=1, description="Cosine to the seed; empty: calibrated for the embedder.")
    temperature: float = 0.9
    max_tokens: int = profile_default("SynonymConfig", "max_tokens", 1024)


class SemanticFilterConfig(dg.Config):
    similarity_threshold: Optional[float] = Field(default=None, ge=-1, le=1, description="Cosine to the seed; empty: the threshold calibrated for the embedder (data/filter_thresholds.yaml; the paper's 0.8 for bert-base-uncased).")
    max_per_question: Optional[int] = Field(default=None, ge=1, description="Variants kept per seed question (the seed comes on top); empty: enough for the largest ablation size (1000 / questions).")
    mmr_lambda: float = Field(default=0.6, ge=0, le=1, description="1: most similar first; lower: more diverse.")
    near_duplicate: float = Field(default=0.98, gt=0, le=1, description="Cosine above which a variant repeats a kept one.")
    min_variants_per_question: int = Field(default=profile_default("SemanticFilterConfig", "min_variants_per_question", 3), ge=0, description="The coverage check's minimum.")
    cross_question_guard: bool = Field(default=True, description="Reject a variant nearer to another seed question than to its own.")
    nli_model: str = Field(default=profile_default("SemanticFilterConfig", "nli_model", DEFAULT_NLI_MODEL), description="NLI cross-encoder (hub name or directory) for the two-way entailment check; empty: off.")
    nli_entailment_min: float = Field(default=0.5, ge=0, le=1, description="P(entailment) needed in each direction.")
    llm_judge: Literal["auto", "on", "off"] = Field(default="auto", description="Two-way LLM judge (paper's rubric); auto: on when the llm resource has an API key or a local model.")
    judge_pass_score: int = Field(default=4, ge=1, le=5, description="Rubric score needed in each direction (paper: 4).")


class AugmentationQualityConfig(dg.Config):
    perplexity_model: str = Field(default="", description="Causal LM name or path; empty: the llm resource's local_model, else skipped.")
    perplexity_batch_size: int = Field(default=16, ge=1)
    judge_sample: int = Field(default=0, ge=0, description="(seed, variant) pairs rated by the llm with the paper's rubric; 0: off.")
    judge_pass_score: int = Field(default=4, ge=1, le=5)
    sample_seed: int = 0


def resolved_threshold(configured: float | None, embedder: EmbedderResource) -> Threshold:
    """The configured cosine threshold, else the one calibrated for the embedder's model."""
    if configured is not None:
        return Threshold(configured, embedder.model or PACKAGED_ENCODER, "configured")
    return threshold_for(embedder.model)


def run_llm_step(step):
    """Runs one LLM step, turning a dry run or an LLM failure into a clear Dagster failure."""
    try:
        return step()
    except DryRunStop as stop:
        e = stop.estimate
        raise dg.Failure(
            description=f"{stop} (set the llm resource's dry_run=false to spend)",
            metadata={"requests": e.requests, "cached": e.cached, "to_send": e.to_send, "prompt_tokens_estimate": e.prompt_tokens, "max_completion_tokens": e.max_completion_tokens},
        ) from None
    except LLMError as error:
        raise dg.Failure(description=f"{type(error).__name__}: {error} Responses already received are cached; re-run to resume.") from None


def _step_metadata(frame: pl.DataFrame, result: StepResult, stats: dict) -> dict:
    reasons = Counter(r.split(":")[0].split(" (")[0] for r in frame.filter(~pl.col("accepted"))["reason"].to_list() if r)
    return {
        "candidates": frame.height,
        "accepted": int(frame["accepted"].sum()) if frame.height else 0,
        "requests": result.requests,
        "budget_exhausted": result.budget_exhausted,
        "rejected_by_reason": dg.MetadataValue.json(dict(reasons)),
        **stats,
        "sample": dg.MetadataValue.md(markdown_table(frame.select("question_id", "text", "similarity", "accepted", "reason").head(15))),
    }


@dg.multi_asset(
    group_name=GROUP,
    outs={
        "paraphrases": dg.AssetOut(kinds={"openai", "parquet"}, description="Step 1: paraphrases of each seed question with their cosine to the seed."),
        "question_templates": dg.AssetOut(kinds={"openai", "parquet"}, description="Step-1 sentences (seed and accepted paraphrases) with replaceable words as [x:word] slots."),
    },
    description="Step 1 of the augmentation: paraphrases (one structured LLM call per seed question), then [x:word] templates of the step-1 sentences for step 2.",
)
def paraphrases_and_templates(
    context: dg.AssetExecutionContext,
    config: ParaphraseConfig,
    wvs_questions: pl.DataFrame,
    llm: LLMResource,
    embedder: EmbedderResource,
    warehouse: WarehouseResource,
):
    seeds = seeds_from_frame(wvs_questions)
    runner = llm.runner(warehouse.get(), log=context.log.info)
    threshold = resolved_threshold(config.similarity_threshold, embedder)
    settings = Step1Settings(config.n_paraphrases, config.n_templates, config.target_accepted, config.max_attempts, threshold.value, config.temperature, config.max_tokens)
    paraphrase_result, template_result = run_llm_step(lambda: paraphrase_step(seeds, runner, embedder.get(), settings))
    paraphrases = candidates_frame(paraphrase_result.candidates)
    templates = candidates_frame(template_result.candidates)
    stats = runner.stats.as_metadata()
    context.log.info(f"step 1: {paraphrases.height} paraphrase candidates, {templates.height} templates for {len(seeds)} seed questions; {stats}")
    if paraphrase_result.budget_exhausted:
        context.log.warning("the LLM budget ran out during step 1: some seed questions got fewer requests; re-run with a larger budget to resume")
    yield dg.Output(paraphrases, output_name="paraphrases", metadata=_step_metadata(paraphrases, paraphrase_result, stats))
    yield dg.Output(templates, output_name="question_templates", metadata={"templates": templates.height, "usable": int(templates["accepted"].sum()) if templates.height else 0})


@dg.asset(
    group_name=GROUP,
    kinds={"openai", "parquet"},
    description="Step 2: template slots filled with context-aware synonyms from the LLM, as full sentences with cosine to the seed.",
)
def synonym_variants(
    context: dg.AssetExecutionContext,
    config: SynonymConfig,
    wvs_questions: pl.DataFrame,
    question_templates: pl.DataFrame,
    llm: LLMResource,
    embedder: EmbedderResource,
    warehouse: WarehouseResource,
) -> pl.DataFrame:
    seeds = seeds_from_frame(wvs_questions)
    runner = llm.runner(warehouse.get(), log=context.log.info)
    settings = Step2Settings(config.fillings_per_template, config.max_attempts, resolved_threshold(config.similarity_threshold, embedder).value, config.temperature, config.max_tokens)
    result = run_llm_step(lambda: synonym_step(seeds, candidates_from_frame(question_templates), runner, embedder.get(), settings))
    frame = candidates_frame(result.candidates)
    if result.budget_exhausted:
        context.log.warning("the LLM budget ran out during step 2; re-run with a larger budget to resume")
    context.add_output_metadata(_step_metadata(frame, result, runner.stats.as_metadata()))
    return frame


def meaning_check(context: dg.AssetExecutionContext, config: SemanticFilterConfig, llm: LLMResource, warehouse: WarehouseResource, device: str) -> tuple[MeaningCheck | None, list[str]]:
    """The configured equivalence checks (NLI first: it is free; then the judge) and their names."""
    checks: list[MeaningCheck] = []
    names: list[str] = []
    if config.nli_model:
        checks.append(NliEquivalence(config.nli_model, config.nli_entailment_min, device))
        names.append(f"nli:{config.nli_model}")
    judge_available = llm.uses_api or bool(llm.local_model)
    if config.llm_judge == "on" or (config.llm_judge == "auto" and judge_available):
        checks.append(JudgeEquivalence(llm.runner(warehouse.get(), log=context.log.info), config.judge_pass_score))
        names.append(f"judge:{llm.model_name}")
    return (all_of(checks) if checks else None), names


def _run_meaning_check(step, nli_model: str):
    """The filter with its meaning check; an NLI model that does not load fails naming the setting."""
    try:
        return run_llm_step(step)
    except OSError as error:
        raise dg.Failure(
            description=(
                f"NLI model {nli_model!r} could not be loaded ({error}). Set augmented_questions' `nli_model` to a "
                "cross-encoder hub name or directory, or to '' to leave the check to the LLM judge."
            )
        ) from None


@dg.asset(
    group_name=GROUP,
    kinds={"python", "duckdb", "parquet"},
    pool=WRITER_POOL,
    description="The accepted question variants (seeds included) after the cosine threshold, the cross-question guard, the two-way meaning check, de-duplication and diverse (MMR) selection.",
    check_specs=[
        dg.AssetCheckSpec("every_question_covered", asset="augmented_questions", description="Every seed question has at least the configured number of accepted variants. A warning, not a stop: a thin question trains on its seed and the variants it has, and training_set records how many."),
        dg.AssetCheckSpec("similarity_above_threshold", asset="augmented_questions", blocking=True, description="No accepted variant has a cosine to its seed below the threshold."),
        dg.AssetCheckSpec("no_exact_duplicates", asset="augmented_questions", blocking=True, description="No sentence repeats within a question (case, spaces, end punctuation ignored)."),
        dg.AssetCheckSpec("option_scale_unchanged", asset="augmented_questions", blocking=True, description="Every variant belongs to a seed question and lists no answer scale other than the seed's."),
    ],
)
def augmented_questions(
    context: dg.AssetExecutionContext,
    config: SemanticFilterConfig,
    wvs_questions: pl.DataFrame,
    paraphrases: pl.DataFrame,
    question_templates: pl.DataFrame,
    synonym_variants: pl.DataFrame,
    embedder: EmbedderResource,
    llm: LLMResource,
    warehouse: WarehouseResource,
):
    seeds = seeds_from_frame(wvs_questions)
    candidates = candidates_from_frame(pl.concat([paraphrases, question_templates, synonym_variants]))
    cap = config.max_per_question or per_question_cap(len(seeds))
    threshold = resolved_threshold(config.similarity_threshold, embedder)
    settings = FilterSettings(threshold.value, cap, config.mmr_lambda, config.near_duplicate, config.cross_question_guard)
    check, check_names = meaning_check(context, config, llm, warehouse, embedder.device)
    if not check_names:
        context.log.warning("no meaning check configured (nli_model empty, llm_judge off): inverted variants can pass the cosine threshold")
    encoder = embedder.get()  # one memo for the filter and the diversity figure
    decided = _run_meaning_check(lambda: semantic_filter(seeds, candidates, encoder, settings, check), config.nli_model)
    lineage_rows = write_lineage(warehouse.get(), decided, context.run.run_id)
    everything = candidates_frame(decided)
    augmented = everything.filter(pl.col("accepted") & pl.col("step").is_in(["seed", "paraphrase", "synonym"])).select(AUGMENTED_COLUMNS)

    per_step = augmented.group_by("step").len().sort("step")
    per_question = augmented.filter(pl.col("step") != "seed").group_by("question_id").len()
    reasons = Counter(r.split(":")[0].split(" (")[0] for r in everything.filter(~pl.col("accepted"))["reason"].to_list() if r)
    context.log.info(f"kept {augmented.height} rows ({dict(per_step.iter_rows())}); {lineage_rows} lineage rows written")
    yield dg.Output(
        augmented,
        metadata={
            "rows": augmented.height,
            "by_step": dg.MetadataValue.md(markdown_table(per_step)),
            "variants_per_question_min": int(per_question["len"].min() or 0) if per_question.height else 0,
            "variants_per_question_mean": float(per_question["len"].mean() or 0) if per_question.height else 0.0,
            "mean_similarity": float(augmented.filter(pl.col("step") != "seed")["similarity"].mean() or 0.0),
            "mean_pairwise_cosine_within_question": _selection_diversity(augmented, encoder),
            "lineage_rows": lineage_rows,
            "rejected_by_reason": dg.MetadataValue.json(dict(reasons)),
            "threshold": threshold.value,
            "threshold_encoder": threshold.encoder,
            "threshold_source": threshold.source,
            "max_per_question": cap,
            "meaning_checks": ", ".join(check_names) or "none",
            "cross_question_guard": config.cross_question_guard,
            "sample": dg.MetadataValue.md(markdown_table(augmented.select("question_id", "step", "similarity", "text").head(20))),
        },
    )

    thin = questions_below_minimum(augmented, [s.question_id for s in seeds], config.min_variants_per_question)
    yield dg.AssetCheckResult(
        check_name="every_question_covered",
        passed=not thin,
        severity=dg.AssetCheckSeverity.WARN,
        metadata={"below_minimum": dg.MetadataValue.json(thin), "minimum": config.min_variants_per_question},
        description=None if not thin else f"{len(thin)} seed questions have fewer than {config.min_variants_per_question} variants: {thin}",
    )
    low = rows_below_threshold(augmented.filter(pl.col("step") != "seed"), threshold.value)
    yield dg.AssetCheckResult(
        check_name="similarity_above_threshold",
        passed=low.height == 0,
        metadata={"rows_below": low.height, "lowest": float(augmented["similarity"].min() or 0.0)},
    )
    duplicates = exact_duplicates(augmented)
    yield dg.AssetCheckResult(
        check_name="no_exact_duplicates",
        passed=duplicates.height == 0,
        metadata={"duplicates": dg.MetadataValue.md(markdown_table(duplicates)) if duplicates.height else "none"},
    )
    problems = option_scale_problems(augmented, wvs_questions)
    yield dg.AssetCheckResult(check_name="option_scale_unchanged", passed=not problems, metadata={"problems": dg.MetadataValue.json(problems[:50])})


def _selection_diversity(augmented: pl.DataFrame, encoder: Embedder) -> float:
    """Mean cosine between kept variants of the same question (the MMR selection's diversity; lower is more diverse)."""
    variants = augmented.filter(pl.col("step") != "seed")
    if variants.height < 2:
        return float("nan")
    return mean_pairwise_cosine(encoder.encode(variants["text"].to_list()), variants["question_id"].to_list())


def _plot(augmented: pl.DataFrame, figures: dict, judge_scores: list[int]) -> bytes:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 3, figsize=(15, 4))
    for step in ("paraphrase", "synonym"):
        values = augmented.filter(pl.col("step") == step)["similarity"].to_list()
        if values:
            axes[0].hist(values, bins=20, alpha=0.6, label=f"{step} (n={len(values)})")
    axes[0].set(title="Cosine to the seed question", xlabel="cosine", ylabel="variants")
    axes[0].legend()
    if "perplexity_seed" in figures:
        axes[1].bar(["seed", "augmented"], [figures["perplexity_seed"], figures["perplexity_augmented"]], color=["grey", "tab:blue"])
        axes[1].set(title=f"Perplexity under {figures['perplexity_model_name']}", ylabel="perplexity (token-level)")
    else:
        axes[1].text(0.5, 0.5, "perplexity not computed\n(no perplexity_model)", ha="center", va="center")
        axes[1].set_axis_off()
    if judge_scores:
        axes[2].hist(judge_scores, bins=[0.5, 1.5, 2.5, 3.5, 4.5, 5.5], rwidth=0.8)
        axes[2].set(title=f"LLM judge, 1-5 rubric (mean {figures['judge_mean']:.2f})", xlabel="score", ylabel="pairs")
    else:
        counts = augmented.filter(pl.col("step") != "seed").group_by("question_id").len()["len"].to_list()
        axes[2].hist(counts, bins=range(0, max(counts, default=0) + 2))
        axes[2].set(title=f"Variants per seed question (diversity gain {figures['diversity_gain']:.3f})", xlabel="variants", ylabel="questions")
    fig.tight_layout()
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=90)
    plt.close(fig)
    return buffer.getvalue()


@dg.asset(
    group_name=GROUP,
    kinds={"python", "matplotlib"},
    description="Perplexity, diversity gain and LLM-judged semantic equivalence of the augmented questions vs the seeds, with a plot.",
)
def augmentation_quality(
    context: dg.AssetExecutionContext,
    config: AugmentationQualityConfig,
    augmented_questions: pl.DataFrame,
    embedder: EmbedderResource,
    llm: LLMResource,
    warehouse: WarehouseResource,
) -> dict:
    seeds = augmented_questions.filter(pl.col("step") == "seed")
    variants = augmented_questions.filter(pl.col("step") != "seed")
    if variants.height == 0:
        # e.g. a generator that wrote no usable variant (the offline demo's tiny model): report it, do not block the graph
        context.log.warning("augmented_questions has no accepted variants: nothing to analyse")
        context.add_output_metadata({"seed_questions": seeds.height, "variants": 0})
        return {"seed_questions": seeds.height, "variants": 0}
    seed_text = dict(seeds.select("question_id", "text").iter_rows())
    model = embedder.get()
    figures: dict = {
        "seed_questions": seeds.height,
        "variants": variants.height,
        "diversity_gain": diversity_gain(seeds["text"].to_list(), variants["text"].to_list(), model),
        "embedding_encodings": model.encoded,
        "mean_similarity": float(variants["similarity"].mean()),
    }
    perplexity_model = config.perplexity_model or llm.local_model
    if perplexity_model:
        seed_ppl = perplexity(seeds["text"].to_list(), perplexity_model, config.perplexity_batch_size)
        variant_ppl = perplexity(variants["text"].to_list(), perplexity_model, config.perplexity_batch_size)
        figures |= {
            "perplexity_model_name": perplexity_model,
            "perplexity_seed": seed_ppl.corpus,
            "perplexity_augmented": variant_ppl.corpus,
            "perplexity_seed_mean_sentence": seed_ppl.mean_sentence,
            "perplexity_augmented_mean_sentence": variant_ppl.mean_sentence,
        }
    else:
        context.log.warning("perplexity skipped: set perplexity_model (a causal LM name or path) or the llm resource's local_model")
    judge_scores: list[int] = []
    if config.judge_sample:
        pairs = [(seed_text[q], t) for q, t in variants.select("question_id", "text").iter_rows() if q in seed_text]
        runner = llm.runner(warehouse.get(), log=context.log.info)
        summary = run_llm_step(lambda: judge_equivalence(sample_pairs(pairs, config.judge_sample, config.sample_seed), runner, config.judge_pass_score))
        judge_scores = summary.scores
        figures |= {
            "judge_model": llm.model_name,
            "judge_pairs": len(summary.scores) + summary.invalid,
            "judge_invalid": summary.invalid,
            "judge_mean": summary.mean,
            "judge_std": summary.std,
            "judge_pass_rate": summary.pass_rate,
            "judge_pass_score": summary.pass_score,
        }
    png = _plot(augmented_questions, figures, judge_scores)
    target = data_home(warehouse.data_home or None) / "plots" / "augmentation_quality.png"
    with atomic_path(target) as tmp:
        tmp.write_bytes(png)
    figures["plot_path"] = str(target)
    numbers = {k: v for k, v in figures.items() if isinstance(v, (int, float)) and not isinstance(v, bool)}
    context.add_output_metadata(
        {
            **numbers,
            "figures": dg.MetadataValue.md(markdown_table(pl.DataFrame({"figure": list(numbers), "value": [float(v) for v in numbers.values()]}))),
            "plot": dg.MetadataValue.md(f"![augmentation quality](data:image/png;base64,{base64.b64encode(png).decode()})"),
            "plot_path": dg.MetadataValue.path(str(target)),
        }
    )
    return figures
