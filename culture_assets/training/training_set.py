"""A culture's training set: accepted question variants paired with that culture's survey answer.

Each row is one chat-format sample (system prompt, the question with its option scale and the
instruction to answer with one option number, the answer). Choices that matter for the paper's
figures, and why they are made this way:

- Questions the culture was never asked are dropped, never given an invented label.
- The main models train on every answered seed question (`heldout_count` 0, no validation split).
  Generalisation is measured by the held-out-topic models instead (`heldout_topic`, one fold of
  K-fold over the 7 WVS topics): no row of the held-out topic, seed or variant, is trained on, and
  the topic's seed questions are the `heldout` split, which is also those models' validation set.
  A single held-out item of a battery (`heldout_count`, kept as an option) is answered by its
  trained neighbours, so it measures little.
- A validation split, where one is asked for (`validation_fraction` > 0), is by question group:
  whole questions (seed and variants) chosen by a seeded hash of the question id, the same for
  every culture and arm, so its loss never measures a question the model trained on.
- A size counts generated samples, as the paper's 50/150/500/1000 do: every answered seed
  question is trained, and `size` variants come on top, round-robin over questions in a seeded
  order, so a 150-sample set covers every question about evenly. Asking for more variants than
  exist raises `UnfillableSize` naming what was achievable: an ablation labelled "1000" must have
  1000 generated samples. `size_matched_to` sizes a set by what another step set can fill, so
  ablation arms that differ in steps compare equal numbers of samples.
- Soft targets (`targets="distribution"`) draw each sample's answer from the culture's answer
  distribution (seeded per sample), so the expected training signal is the distribution itself.
  `targets="weighted_median"` trains the median code of the ordinal scale instead of the mode,
  which sampling noise flips less often (seed_survey reports each mode's flip probability).
"""

from __future__ import annotations

import hashlib
import json
import random
from enum import Enum
from typing import Mapping, Sequence

import polars as pl
from pydantic import BaseModel, ConfigDict, Field, field_validator

from culture_assets.cultures import Culture
from culture_assets.errors import InputError
from culture_assets.survey.questions import WVSQuestion

STEPS = ("seed", "paraphrase", "synonym")
ANSWER_INSTRUCTION = "Answer with the number of one option only."
OPTIONS_LABEL = "Options"

TRAINING_SET_SCHEMA = {
    "sample_id": pl.String,
    "question_id": pl.String,
    "step": pl.String,
    "split": pl.String,
    "messages_json": pl.String,
    "answer": pl.String,
    "culture": pl.String,
    "target": pl.String,
    "survey_distribution_json": pl.String,  # {answer: share} over the question's options: the soft-label loss's target
}


class PromptLanguage(str, Enum):
    ENGLISH = "english"
    NATIVE = "native"


class Targets(str, Enum):
    MODE = "mode"
    WEIGHTED_MEDIAN = "weighted_median"  # ordinal scales: the code where the cumulative distribution reaches 1/2
    DISTRIBUTION = "distribution"


class TrainingSetSpec(BaseModel):
    """What goes into a training set. `size=None` takes every eligible sample."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    size: int | None = Field(default=None, ge=0, description="generated samples on top of all answered seeds; None: every variant")
    size_matched_to: tuple[str, ...] | None = Field(default=None, description="size = the variants available with these steps")
    # a list default (validated into a tuple): Dagster config, which derives from this field, has no tuples
    steps: tuple[str, ...] = Field(default=list(STEPS), validate_default=True, description="augmentation steps whose samples are trained; must include seed")
    heldout_count: int = Field(default=0, ge=0, description="single seed questions held out (0: the main models train on every answered seed)")
    heldout_topic: str | None = Field(default=None, description="hold out every question of this topic (one fold of K-fold over topics) instead of heldout_count single items")
    validation_fraction: float = Field(default=0.0, ge=0.0, lt=1.0, description="share of the trained questions whose rows (seed and variants) form the validation split")
    targets: Targets = Targets.MODE
    prompt_language: PromptLanguage = PromptLanguage.ENGLISH
    question_language: PromptLanguage = Field(default=PromptLanguage.ENGLISH, description="native: questions translated into the culture's language")
    seed: int = 0

    @field_validator("steps")
    @classmethod
    def _known_steps(cls, steps: tuple[str, ...]) -> tuple[str, ...]:
        unknown = [s for s in steps if s not in STEPS]
        if unknown or "seed" not in steps:
            raise ValueError(f"steps must include 'seed' and be among {STEPS}, got {list(steps)}")
        return tuple(s for s in STEPS if s in steps)


class UnfillableSize(InputError):
    """A requested size needs more generated samples than the augmentation produced for a culture."""

    def __init__(self, culture: str, requested: int, available: int, seeds: int, steps: Sequence[str], heldout: int):
        self.requested, self.available = requested, available
        super().__init__(
            "training_set",
            f"{culture}: asked for {requested} samples (generated, on top of the {seeds} answered seeds) but only {available} "
            f"exist with steps {list(steps)} ({heldout} questions held out); generate more variants or lower the size",
            field="size",
        )


def stable_unit(*parts: object) -> float:
    """A number in [0, 1) fixed by its inputs: seeded choices that do not depend on row order."""
    digest = hashlib.sha256("\x1f".join(str(p) for p in parts).encode()).digest()
    return int.from_bytes(digest[:8], "big") / 2**64


def heldout_questions(question_ids: Sequence[str], count: int, seed: int) -> list[str]:
    """The `count` seed questions kept aside for the WVS alignment evaluation (same for every culture)."""
    return sorted(sorted(question_ids, key=lambda q: stable_unit("heldout", seed, q))[:count])


def validation_questions(question_ids: Sequence[str], fraction: float, seed: int) -> list[str]:
    """round(fraction x questions) whole questions for the validation split, chosen by a seeded hash of the id alone, so
    every culture and every ablation arm keeps the same questions out of training."""
    ordered = sorted(set(question_ids), key=lambda q: stable_unit("validation", seed, q))
    return sorted(ordered[: round(fraction * len(ordered))])


def heldout_ids(questions: Sequence[WVSQuestion], spec: TrainingSetSpec) -> set[str]:
    """The questions no sample is trained on: a whole topic when `heldout_topic` is set (a single
    held-out item of a battery would be answered by its trained neighbours), else `heldout_count`
    items chosen by a seeded hash."""
    if spec.heldout_topic is not None:
        chosen = {q.id for q in questions if q.topic == spec.heldout_topic}
        if not chosen:
            raise InputError("training_set", f"no question has topic {spec.heldout_topic!r}; topics: {topics(questions)}", field="heldout_topic")
        return chosen
    return set(heldout_questions([q.id for q in questions], spec.heldout_count, spec.seed))


def topics(questions: Sequence[WVSQuestion]) -> list[str]:
    """The topics in question order: the folds of the held-out-topic models."""
    return list(dict.fromkeys(q.topic for q in questions))


def fold_spec(base: TrainingSetSpec, topic: str) -> TrainingSetSpec:
    """The training set of one held-out-topic model: the base spec with `topic` held out. Its validation set is the
    held-out topic itself, so no other question is taken out of training."""
    main = {name: value for name, value in base.model_dump().items() if name in TrainingSetSpec.model_fields}
    return TrainingSetSpec.model_validate({**main, "heldout_topic": topic, "heldout_count": 0, "validation_fraction": 0.0})


def fold_slug(topic: str) -> str:
    """A topic as a model-key part ("Political Interest & Political Participation" -> political_interest_political_participation)."""
    return "_".join("".join(c if c.isalnum() else " " for c in topic.lower()).split())


class HeldoutTopicSpec(TrainingSetSpec):
    """The held-out-topic models' training sets: the main spec, and which topics are held out (one model each)."""

    folds: list[str] = Field(default=[], description="WVS topics held out, one model each (K-fold over the topics); empty: every topic")


def build_fold_training_sets(
    augmented: pl.DataFrame, seed_survey: pl.DataFrame, questions: Sequence[WVSQuestion], culture: Culture, base: TrainingSetSpec,
    folds: Sequence[str],
) -> pl.DataFrame:
    """One training set per held-out topic in `folds` (every topic when empty), stacked with a `fold` column."""
    known = topics(questions)
    unknown = [f for f in folds if f not in known]
    if unknown:
        raise InputError("heldout_topic_training_set", f"unknown topic(s) {unknown}; topics: {known}", field="folds")
    tables = [
        build_training_set(augmented, seed_survey, questions, culture, fold_spec(base, topic)).with_columns(pl.lit(topic).alias("fold"))
        for topic in (folds or known)
    ]
    return pl.concat(tables, how="vertical")


def system_prompt(culture: Culture, language: PromptLanguage) -> str:
    return culture.system_prompt.native if language is PromptLanguage.NATIVE else culture.system_prompt.english


def user_prompt(text: str, question: WVSQuestion, translations: Mapping[str, str] | None = None) -> str:
    """The question, its options and the answer instruction. With `translations` (English -> the culture's
    language; `prompt_texts` lists what it needs) the options' label, their labels and the instruction are
    translated too, the option numbers stay: the answer is the same number in both languages."""
    if translations is None:
        return f"{text}\n{OPTIONS_LABEL}: {question.option_text()}\n{ANSWER_INSTRUCTION}"
    options = " ".join(f"{code}. {translations[label]}" for code, label in sorted(question.options.items()))
    return f"{text}\n{translations[OPTIONS_LABEL]}: {options}\n{translations[ANSWER_INSTRUCTION]}"


def prompt_texts(question: WVSQuestion) -> list[str]:
    """The English texts of a question's prompt besides the question itself: what a native-language prompt translates."""
    return [OPTIONS_LABEL, *question.options.values(), ANSWER_INSTRUCTION]


def chat_messages(system: str, text: str, question: WVSQuestion, answer: str, translations: Mapping[str, str] | None = None) -> list[dict[str, str]]:
    return [
        {"role": "system", "content": system},
        {"role": "user", "content": user_prompt(text, question, translations)},
        {"role": "assistant", "content": answer},
    ]


def check_augmented(augmented: pl.DataFrame, questions: dict[str, WVSQuestion], source: str = "augmented_questions") -> None:
    missing = [c for c in ("sample_id", "question_id", "text", "step") if c not in augmented.columns]
    if missing:
        raise InputError(source, f"missing column(s) {missing}; expected the augmented_questions contract", field=missing[0])
    for index, (sample_id, question_id, step, text) in enumerate(
        augmented.select("sample_id", "question_id", "step", "text").iter_rows(), start=1
    ):
        if question_id not in questions:
            raise InputError(source, f"unknown question id {question_id!r}; expected one of the seed questions", row=index, field="question_id")
        if step not in STEPS:
            raise InputError(source, f"step {step!r} is not one of {STEPS}", row=index, field="step")
        if not text or not str(text).strip():
            raise InputError(source, f"sample {sample_id} has empty text", row=index, field="text")
    duplicates = augmented.filter(pl.col("sample_id").is_duplicated())["sample_id"].unique().to_list()
    if duplicates:
        raise InputError(source, f"sample ids repeat: {sorted(duplicates)[:5]}", field="sample_id")


def weighted_median(codes: Sequence[int], distribution: Sequence[float]) -> int:
    """The lowest code whose cumulative share reaches one half: a target for an ordinal scale that a
    few respondents cannot flip the way they flip a near-tied mode."""
    total, cumulative = float(sum(distribution)), 0.0
    for code, share in zip(codes, distribution):
        cumulative += share
        if cumulative >= total / 2:
            return int(code)
    return int(codes[-1])


def _answer(row: dict, spec: TrainingSetSpec) -> tuple[str, str]:
    if spec.targets is Targets.MODE:
        return str(row["modal_answer"]), "mode"
    if spec.targets is Targets.WEIGHTED_MEDIAN:
        return str(weighted_median(row["codes"], row["distribution"])), "weighted_median"
    rng = random.Random(stable_unit("target", spec.seed, row["sample_id"]))
    return str(rng.choices(row["codes"], weights=row["distribution"])[0]), "sampled"


def build_training_set(
    augmented: pl.DataFrame,
    seed_survey: pl.DataFrame,
    questions: Sequence[WVSQuestion],
    culture: Culture,
    spec: TrainingSetSpec,
    translations: Mapping[str, str] | None = None,
) -> pl.DataFrame:
    """Rows of the training_set contract for one culture (see the module docstring for the choices).

    With `question_language` native, each question text, its options and the answer instruction are replaced
    by their entries in `translations` (English text -> the culture's language, see `prompt_texts`); a row
    missing one is left out, so the caller reports it.
    """
    by_id = {q.id: q for q in questions}
    check_augmented(augmented, by_id)
    answers = seed_survey.filter(~pl.col("never_asked")).select("question_id", "modal_answer", "codes", "distribution")
    heldout = heldout_ids(questions, spec)
    pool = (
        augmented.filter(pl.col("step").is_in(list(spec.steps)))
        .join(answers, on="question_id", how="inner")
        .with_columns(
            pl.col("sample_id").map_elements(lambda s: stable_unit("order", spec.seed, s), return_dtype=pl.Float64).alias("_key")
        )
    )
    heldout_rows = pool.filter(pl.col("question_id").is_in(list(heldout)) & (pl.col("step") == "seed"))
    trainable = pool.filter(~pl.col("question_id").is_in(list(heldout)))
    # rank 0 is the seed row of each question, then its variants in seeded order: filling by rank is round-robin
    trainable = trainable.with_columns(
        pl.when(pl.col("step") == "seed").then(0.0).otherwise(pl.col("_key") + 1.0).alias("_within")
    ).with_columns(pl.col("_within").rank("ordinal").over("question_id").alias("_rank"))
    trainable = trainable.sort("_rank", "_key")
    seeds = trainable.filter(pl.col("step") == "seed")
    variants = trainable.filter(pl.col("step") != "seed")
    size = spec.size
    if spec.size_matched_to is not None:
        size = available_variants(augmented, answers, heldout, spec.size_matched_to)
    if size is not None:
        if size > variants.height:
            raise UnfillableSize(culture.key, size, variants.height, seeds.height, spec.steps, len(heldout))
        trainable = pl.concat([seeds, variants.head(size)], how="vertical")
    validation = validation_questions(trainable["question_id"].unique().to_list(), spec.validation_fraction, spec.seed)
    trainable = trainable.with_columns(
        pl.when(pl.col("question_id").is_in(validation)).then(pl.lit("validation")).otherwise(pl.lit("train")).alias("split")
    )
    heldout_rows = heldout_rows.with_columns(pl.lit("heldout").alias("split"))

    system = system_prompt(culture, spec.prompt_language)
    native = spec.question_language is PromptLanguage.NATIVE
    if native and translations is None:
        raise InputError("training_set", f"{culture.key}: native-language questions need translations", field="question_language")
    rows = []
    for row in pl.concat([trainable.drop("_within", "_rank"), heldout_rows], how="vertical").iter_rows(named=True):
        question = by_id[row["question_id"]]
        text = translations.get(row["text"]) if native else row["text"]
        if text is None or (native and any(t not in translations for t in prompt_texts(question))):
            continue
        answer, target = _answer(row, spec)
        messages = chat_messages(system, text, question, answer, translations if native else None)
        rows.append(
            {
                "sample_id": row["sample_id"],
                "question_id": row["question_id"],
                "step": row["step"],
                "split": row["split"],
                "messages_json": json.dumps(messages, ensure_ascii=False),
                "answer": answer,
                "culture": culture.key,
                "target": target,
                "survey_distribution_json": json.dumps(survey_distribution(row["codes"], row["distribution"])),
            }
        )
    return pl.DataFrame(rows, schema=TRAINING_SET_SCHEMA)


def survey_distribution(codes: Sequence[int], distribution: Sequence[float]) -> dict[str, float]:
    """The culture's answer shares keyed by the answer text a sample trains (the option code)."""
    return {str(code): float(share) for code, share in zip(codes, distribution)}


def split_distributions(table: pl.DataFrame, split: str) -> list[dict[str, float]] | None:
    """The survey distribution of each row of one split, in `split_rows` order; None for a table built before the column existed."""
    if "survey_distribution_json" not in table.columns:
        return None
    return [json.loads(d) for d in table.filter(pl.col("split") == split)["survey_distribution_json"].to_list()]


def available_variants(augmented: pl.DataFrame, answers: pl.DataFrame, heldout: set[str], steps: Sequence[str]) -> int:
    """Generated samples a culture could train on with these steps (answered, not held out)."""
    usable = augmented.filter(pl.col("step").is_in([s for s in steps if s != "seed"]) & ~pl.col("question_id").is_in(list(heldout)))
    return usable.join(answers.select("question_id"), on="question_id", how="semi").height


def training_set_version(table: pl.DataFrame) -> str:
    """Content hash of a training set: what a model was trained on, independent of row order."""
    digest = hashlib.sha256()
    for row in table.select("sample_id", "split", "messages_json").sort("sample_id", "split").iter_rows():
        digest.update("\x1f".join(row).encode())
        digest.update(b"\x1e")
    return digest.hexdigest()


def heldout_question_ids(table: pl.DataFrame) -> list[str]:
    """The seed questions a training set keeps out of training (the WVS alignment is measured on them)."""
    return sorted(table.filter(pl.col("split") == "heldout")["question_id"].unique().to_list())


def split_rows(table: pl.DataFrame, split: str) -> list[list[dict[str, str]]]:
    """The chat messages of one split."""
    return [json.loads(m) for m in table.filter(pl.col("split") == split)["messages_json"].to_list()]


def training_summary(table: pl.DataFrame) -> pl.DataFrame:
    """Rows per split and step, for metadata."""
    return table.group_by("split", "step").len().sort("split", "step")
