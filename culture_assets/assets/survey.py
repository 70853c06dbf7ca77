"""Survey stage: seed questions, the survey wave in use, and each culture's answers."""


import dagster as dg
import polars as pl

from culture_assets.cultures import load_registry
from culture_assets.errors import naming
from culture_assets.markdown import markdown_table
from culture_assets.partitions import CULTURE_BACKFILL_POLICY, CULTURES
from culture_assets.resources import SurveySourceResource, WarehouseResource
from culture_assets.store.warehouse import WRITER_POOL
from culture_assets.survey.answers import OUT_OF_SCALE_ERROR_SHARE, answers_fingerprint, out_of_scale_codes, read_answer_counts, read_survey
from culture_assets.survey.questions import questions_table
from culture_assets.survey.distribution import Pooling, SeedSurveySettings, mode_stability_table, seed_survey_table, unflagged_unanswered

GROUP = "survey"
# Metadata key of seed_survey's per-culture answers version (wvs_wave's data version of that culture).
FINGERPRINT_METADATA = "survey_fingerprint"
# The event tag Dagster reads a data version from (what an observe function's DataVersion becomes).
DATA_VERSION_TAG = "dagster/data_version"


class SeedSurveyConfig(dg.Config):
    """The library's SeedSurveySettings (culture_assets.survey.distribution) as asset config."""

    pooling: Pooling = SeedSurveySettings.model_fields["pooling"]


@dg.observable_source_asset(
    group_name=GROUP,
    tags={"dagster/kind/csv": ""},
    partitions_def=CULTURES,
    description="The WVS survey file(s) in use; a culture's data version is its answers' fingerprint, so a new wave or a "
    "corrected release is a new version for exactly the cultures whose answers changed.",
)
def wvs_wave(survey_source: SurveySourceResource) -> dg.DataVersionsByPartition:
    files = survey_source.files()
    counts = read_answer_counts(files, [q.id for q in survey_source.questions()])
    return dg.DataVersionsByPartition(
        {culture.key: answers_fingerprint(counts, culture.country_alphas) for culture in load_registry().cultures}
    )


@dg.asset(group_name=GROUP, kinds={"python", "parquet"}, description="The 50 WVS Wave 7 seed questions with their parsed answer scales.")
def wvs_questions(context: dg.AssetExecutionContext, survey_source: SurveySourceResource) -> pl.DataFrame:
    questions = survey_source.questions()
    table = questions_table(questions)
    topics = table.group_by("topic").len().sort("topic")
    context.add_output_metadata(
        {"questions": len(questions), "topics": topics.height, "by_topic": dg.MetadataValue.md(markdown_table(topics))}
    )
    return table


@dg.asset(
    group_name=GROUP,
    kinds={"python", "duckdb", "parquet"},
    partitions_def=CULTURES,
    backfill_policy=CULTURE_BACKFILL_POLICY,
    deps=[wvs_questions, wvs_wave],
    pool=WRITER_POOL,
    description="A culture's answer to each seed question: weighted distribution over valid codes, mode, n valid, never-asked flag.",
    check_specs=[
        dg.AssetCheckSpec(
            "every_question_answered_or_flagged",
            asset="seed_survey",
            blocking=True,
            description="Each question has a modal answer or is flagged never asked; none is silently dropped.",
        ),
        dg.AssetCheckSpec(
            "answer_codes_within_scale",
            asset="seed_survey",
            blocking=True,
            description=f"No answer code outside its question's scale (e.g. 99 on a 1-4 question; such codes are left out "
            f"of the distribution). A few are a warning; above {OUT_OF_SCALE_ERROR_SHARE:.0%} of a question's answers an error.",
        ),
    ],
)
def seed_survey(
    context: dg.AssetExecutionContext,
    config: SeedSurveyConfig,
    survey_source: SurveySourceResource,
    warehouse: WarehouseResource,
):
    culture = load_registry().get(context.partition_key)
    questions = survey_source.questions()
    with naming(f"culture {culture.key!r}"):
        files = survey_source.files()
        version = survey_source.version()
        survey = read_survey(files, [q.id for q in questions])
        counts = survey.counts
        table = seed_survey_table(counts, questions, culture, config.pooling, source=str(survey_source.source()))
    fingerprint = answers_fingerprint(counts, culture.country_alphas)

    long = (
        table.filter(~pl.col("never_asked"))
        .select("culture", "question_id", "codes", "distribution", "modal_answer", "n_valid", "never_asked", "pooling")
        .explode("codes", "distribution")
        .rename({"codes": "code", "distribution": "share"})
        .with_columns(pl.lit(version).alias("survey_version"), pl.lit(context.run.run_id).alias("run_id"))
    )
    warehouse.get().replace_rows("survey_distribution", long, {"culture": culture.key})

    never_asked = table.filter(pl.col("never_asked"))["question_id"].to_list()
    differs = table.filter(~pl.col("never_asked") & (pl.col("modal_answer") != pl.col("reference_label")))
    context.log.info(
        f"{culture.display_name}: {table.height - len(never_asked)} questions answered, "
        f"{len(never_asked)} never asked {never_asked}, mode differs from the reference label on {differs.height}"
    )
    stability = mode_stability_table(table)
    summary = table.select(
        "question_id", "topic", "modal_answer", "mode_tied", "n_valid", "n_missing", "never_asked", "reference_label",
        pl.col("distribution").list.eval(pl.element().round(3)).alias("distribution"),
    ).join(stability.with_columns(pl.col("mode_margin", "mode_flip_probability").round(3)), on="question_id", how="left")
    unstable = stability.filter(pl.col("mode_flip_probability") > 0.05)["question_id"].to_list()
    # The answers this partition was built from, as wvs_wave's data version: an observation of the same answers
    # later is then no change, and Dagster ignores this record for seed_survey itself (same run).
    context.log_event(dg.AssetObservation(asset_key=wvs_wave.key, partition=culture.key, tags={DATA_VERSION_TAG: fingerprint}))
    yield dg.Output(
        table,
        metadata={
            FINGERPRINT_METADATA: fingerprint,
            "culture": culture.display_name,
            "countries": ", ".join(culture.country_alphas),
            "pooling": config.pooling.value,
            "weighted": bool(table["weighted"].any()),
            "survey_version": version[:12],
            "questions_answered": table.height - len(never_asked),
            "never_asked": dg.MetadataValue.json(never_asked),
            "mode_differs_from_reference_label": differs.height,
            # how often sampling noise alone would change the training target (multinomial resample of the respondents)
            "modes_flipping_over_5pct": dg.MetadataValue.json(unstable),
            "mode_flip_probability_max": float(stability["mode_flip_probability"].max() or 0.0) if stability.height else 0.0,
            "answers": dg.MetadataValue.md(markdown_table(summary)),
            "summary_rows_dropped": dg.MetadataValue.json(survey.summary_rows_dropped),
        },
    )
    missing = unflagged_unanswered(table)
    yield dg.AssetCheckResult(
        check_name="every_question_answered_or_flagged",
        passed=not missing,
        metadata={"unlabelled_questions": dg.MetadataValue.json(missing), "never_asked": dg.MetadataValue.json(never_asked)},
        description=None if not missing else f"{culture.display_name}: questions {missing} have no answer and no never-asked flag",
    )
    yield scale_check(out_of_scale_codes(counts, {q.id: q.valid_codes for q in questions}, culture.country_alphas), culture.display_name)


def scale_check(outside: pl.DataFrame, culture: str) -> dg.AssetCheckResult:
    """Pass when no code is outside its scale; WARN for a few; ERROR (blocking) above OUT_OF_SCALE_ERROR_SHARE."""
    too_many = outside.filter(pl.col("share") > OUT_OF_SCALE_ERROR_SHARE)
    by_question = dict(zip(outside["question_id"].to_list(), outside["respondents"].to_list()))
    return dg.AssetCheckResult(
        check_name="answer_codes_within_scale",
        passed=outside.height == 0,
        severity=dg.AssetCheckSeverity.ERROR if too_many.height else dg.AssetCheckSeverity.WARN,
        metadata={
            "out_of_scale_by_question": dg.MetadataValue.json(by_question),
            "error_share": OUT_OF_SCALE_ERROR_SHARE,
            "codes": dg.MetadataValue.md(markdown_table(outside.with_columns(pl.col("share").round(4)))),
        },
        description=None if outside.height == 0 else (
            f"{culture}: answer codes outside the question's scale, left out of the distribution: {by_question}"
            + (f"; above {OUT_OF_SCALE_ERROR_SHARE:.0%} on {too_many['question_id'].to_list()}" if too_many.height else "")
        ),
    )
