"""Reading WVS respondent data into answer counts.

Accepted sources, all CSV:
- the official WVS Wave 7 release (one row per respondent; `B_COUNTRY_ALPHA`, `Q27`..., optional `W_WEIGHT`),
- per-country CSVs with the same columns (a directory of them is fine),
- the compact answer-counts file this module writes (`country_alpha, question_id, code, respondents,
  weighted, weight_source`), which the package ships so nobody needs the survey to start.

Every source becomes the same long table of answer counts; nothing downstream sees respondents.
"""

from __future__ import annotations

import argparse
import codecs
import hashlib
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable, Mapping, Sequence

import polars as pl

from culture_assets.errors import InputError
from culture_assets.settings import atomic_path

COUNTRY_COLUMN = "B_COUNTRY_ALPHA"
WEIGHT_COLUMN = "W_WEIGHT"
COUNT_COLUMNS = ("country_alpha", "question_id", "code", "respondents", "weighted", "weight_source")
COUNTS_SCHEMA = {
    "country_alpha": pl.String,
    "question_id": pl.String,
    "code": pl.Int64,
    "respondents": pl.Int64,
    "weighted": pl.Float64,
    "weight_source": pl.String,
}
PACKAGED_COUNTS = "wvs_answer_counts.csv"
# The CultureLLM reference copy appends per-column mean rows ("Avg", "Avg_First", "Avg_Last") to each country CSV;
# they are computed means, never respondents, so they are always left out (and counted).
SUMMARY_ROW_LABELS = ("Avg", "Avg_First", "Avg_Last")
EXPECTED_ENCODING = "UTF-8"
# Codes outside a question's scale (e.g. 99 on a 1-4 question) above this share of a question's non-missing
# answers in a culture mean the file is not coded as the codebook says: an error, not a stray entry.
OUT_OF_SCALE_ERROR_SHARE = 0.01


def check_utf8(path: Path) -> None:
    """Raise InputError naming the file, the line and the expected encoding unless `path` is UTF-8 text."""
    with path.open("rb") as handle:
        head = handle.read(4)
        if head.startswith((codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)) or b"\x00" in head:
            raise InputError(
                str(path), f"the file is UTF-16 encoded; expected {EXPECTED_ENCODING} (save it as 'CSV UTF-8')", field="encoding"
            )
        handle.seek(0)
        decoder = codecs.getincrementaldecoder("utf-8")()
        line = 1
        for block in iter(lambda: handle.read(1 << 20), b""):
            try:
                decoder.decode(block)
            except UnicodeDecodeError as exc:
                line += block[: exc.start].count(b"\n")
                raise InputError(
                    str(path), f"byte {block[exc.start]:#04x} is not {EXPECTED_ENCODING} text; expected a {EXPECTED_ENCODING} CSV",
                    row=line, field="encoding",
                ) from None
            line += block.count(b"\n")


def _header(path: Path) -> list[str]:
    with path.open("rb") as handle:
        raw = handle.readline()
    try:
        first = raw.decode("utf-8-sig")
    except UnicodeDecodeError:
        check_utf8(path)
        raise
    if not first.strip():
        raise InputError(str(path), "the file is empty; expected a CSV header and rows")
    return [column.strip().strip('"') for column in first.rstrip("\r\n").split(",")]


def is_counts_file(path: Path) -> bool:
    return set(COUNT_COLUMNS) <= set(_header(path))


def _check_parsed(raw: pl.DataFrame, parsed: pl.DataFrame, column: str, path: Path, expected: str) -> None:
    """Raise on the first value that did not parse, naming its file line (header = line 1)."""
    bad = parsed[column].is_null()
    if not bad.any():
        return
    index = int(bad.arg_true()[0])
    value = raw[column][index]
    problem = f"expected {expected}, got {value!r}" if value not in (None, "") else f"empty value; expected {expected}"
    raise InputError(str(path), problem, row=index + 2, field=column)


def read_respondent_csv(path: Path, question_ids: Sequence[str]) -> tuple[pl.DataFrame, int]:
    """One respondent-level CSV -> (long answer counts, mean rows left out). Raises InputError naming file, line
    and column. The mean rows are those the CultureLLM reference copy appends (B_COUNTRY = "Avg" ...)."""
    header = _header(path)
    missing = [column for column in (COUNTRY_COLUMN, *question_ids) if column not in header]
    if missing:
        raise InputError(str(path), f"missing column(s) {missing}; a WVS survey CSV needs {COUNTRY_COLUMN} and one column per seed question")
    has_weight = WEIGHT_COLUMN in header
    columns = [COUNTRY_COLUMN, *question_ids] + ([WEIGHT_COLUMN] if has_weight else [])
    frame = pl.read_csv(path, infer_schema=False)
    summary_rows = 0
    if "B_COUNTRY" in frame.columns:
        is_summary = pl.col("B_COUNTRY").is_in(SUMMARY_ROW_LABELS)
        summary_rows = frame.filter(is_summary).height
        frame = frame.filter(~is_summary)
    frame = frame.select(columns)
    if frame.height == 0:
        raise InputError(str(path), "has a header but no respondent rows")
    numeric = frame.select(
        pl.col(COUNTRY_COLUMN).str.strip_chars(),
        *[pl.col(q).str.strip_chars().cast(pl.Int64, strict=False) for q in question_ids],
        *([pl.col(WEIGHT_COLUMN).str.strip_chars().cast(pl.Float64, strict=False)] if has_weight else []),
    )
    for column in question_ids:
        _check_parsed(frame, numeric, column, path, "an integer answer code (WVS missing codes are negative)")
    if has_weight:
        _check_parsed(frame, numeric, WEIGHT_COLUMN, path, "a numeric weight")
    _check_parsed(frame, numeric.with_columns(pl.col(COUNTRY_COLUMN).replace("", None)), COUNTRY_COLUMN, path, "a country code")
    weight = pl.col(WEIGHT_COLUMN) if has_weight else pl.lit(1.0)
    long = numeric.with_columns(weight.alias("_w")).unpivot(
        index=[COUNTRY_COLUMN, "_w"], on=list(question_ids), variable_name="question_id", value_name="code"
    )
    counts = (
        long.group_by(COUNTRY_COLUMN, "question_id", "code")
        .agg(pl.len().cast(pl.Int64).alias("respondents"), pl.col("_w").sum().alias("weighted"))
        .rename({COUNTRY_COLUMN: "country_alpha"})
        .with_columns(pl.lit(WEIGHT_COLUMN if has_weight else "none").alias("weight_source"))
        .select(COUNT_COLUMNS)
        .cast(COUNTS_SCHEMA)
    )
    return counts, summary_rows


def read_counts_csv(path: Path) -> pl.DataFrame:
    frame = pl.read_csv(path, schema_overrides=COUNTS_SCHEMA)
    if frame.height == 0:
        raise InputError(str(path), "the answer-counts file has no rows")
    nulls = [column for column in COUNT_COLUMNS if frame[column].null_count()]
    if nulls:
        raise InputError(str(path), f"empty values in column(s) {nulls}")
    return frame.select(COUNT_COLUMNS)


def survey_files(source: Path) -> list[Path]:
    """The CSV files a source path stands for: the file itself, or a directory's survey CSVs."""
    if source.is_file():
        return [source]
    if source.is_dir():
        files = sorted(p for p in source.rglob("*.csv") if COUNTRY_COLUMN in _header(p) or is_counts_file(p))
        if not files:
            raise InputError(str(source), f"no survey CSV (with a {COUNTRY_COLUMN} column) in this directory")
        return files
    raise InputError(str(source), "survey source not found: expected a CSV file or a directory of CSV files")


@dataclass(frozen=True)
class SurveyAnswers:
    counts: pl.DataFrame
    summary_rows_dropped: dict[str, int]  # file -> mean rows (Avg, Avg_First, Avg_Last) left out, files with any


def read_survey(files: Iterable[Path], question_ids: Sequence[str]) -> SurveyAnswers:
    """All files -> one counts table; a country found in two files is an error (it would double-count)."""
    frames: list[pl.DataFrame] = []
    seen: dict[str, Path] = {}
    dropped: dict[str, int] = {}
    for path in files:
        check_utf8(path)
        if is_counts_file(path):
            frame = read_counts_csv(path)
        else:
            frame, summary_rows = read_respondent_csv(path, question_ids)
            if summary_rows:
                dropped[str(path)] = summary_rows
        for country in frame["country_alpha"].unique().to_list():
            if country in seen:
                raise InputError(str(path), f"country {country} also appears in {seen[country]}; each country must come from one file")
            seen[country] = path
        frames.append(frame)
    counts = pl.concat(frames).filter(pl.col("question_id").is_in(list(question_ids))).sort("country_alpha", "question_id", "code")
    return SurveyAnswers(counts, dropped)


def read_answer_counts(files: Iterable[Path], question_ids: Sequence[str]) -> pl.DataFrame:
    return read_survey(files, question_ids).counts


def out_of_scale_codes(counts: pl.DataFrame, valid_codes: Mapping[str, Sequence[int]], country_alphas: Sequence[str]) -> pl.DataFrame:
    """Per question: the answer codes outside its scale (not a WVS missing code, not one of its options), their
    respondents, and their share of the question's non-missing answers in these countries. Empty when none."""
    answered = counts.filter(pl.col("country_alpha").is_in(list(country_alphas)) & (pl.col("code") >= 0))
    scales = pl.DataFrame(
        {"question_id": list(valid_codes), "valid": [list(codes) for codes in valid_codes.values()]},
        schema={"question_id": pl.String, "valid": pl.List(pl.Int64)},
    )
    flagged = answered.join(scales, on="question_id").with_columns(
        (~pl.col("valid").list.contains(pl.col("code"))).alias("outside")
    )
    return (
        flagged.group_by("question_id")
        .agg(
            pl.col("code").filter(pl.col("outside")).unique().sort().alias("codes"),
            pl.col("respondents").filter(pl.col("outside")).sum().alias("respondents"),
            (pl.col("respondents").filter(pl.col("outside")).sum() / pl.col("respondents").sum()).alias("share"),
        )
        .filter(pl.col("respondents") > 0)
        .sort("question_id")
    )


def content_hash(files: Iterable[Path]) -> str:
    """A version for the survey in use: sha256 over the files' names and bytes."""
    digest = hashlib.sha256()
    for path in sorted(files):
        digest.update(path.name.encode())
        with path.open("rb") as handle:
            for block in iter(lambda: handle.read(1 << 20), b""):
                digest.update(block)
    return digest.hexdigest()


def answers_fingerprint(counts: pl.DataFrame, country_alphas: Sequence[str]) -> str:
    """A version of one culture's answers: sha256 of its countries' count rows in a canonical order.

    It changes when a new wave or a corrected release changes these countries' answers, and only then,
    so cultures whose countries are untouched need no re-run.
    """
    rows = counts.filter(pl.col("country_alpha").is_in(list(country_alphas))).select(COUNT_COLUMNS)
    canonical = rows.sort("country_alpha", "question_id", "code").write_csv()
    return hashlib.sha256(canonical.encode()).hexdigest()


def write_counts_csv(counts: pl.DataFrame, target: Path) -> None:
    with atomic_path(target) as tmp:
        counts.select(COUNT_COLUMNS).sort("country_alpha", "question_id", "code").write_csv(tmp)


def main(argv: Sequence[str] | None = None) -> None:
    """Build the compact answer-counts file from survey CSVs (how the packaged file was made)."""
    from culture_assets.survey.questions import load_questions

    parser = argparse.ArgumentParser(description=main.__doc__)
    parser.add_argument("sources", nargs="+", type=Path, help="survey CSV files or directories of them")
    parser.add_argument("--out", type=Path, required=True, help="where to write the counts CSV")
    args = parser.parse_args(argv)
    question_ids = [q.id for q in load_questions()]
    files = [f for source in args.sources for f in survey_files(source)]
    survey = read_survey(files, question_ids)
    for path, rows in survey.summary_rows_dropped.items():
        print(f"{path}: left out {rows} mean rows ({', '.join(SUMMARY_ROW_LABELS)})")
    counts = survey.counts
    write_counts_csv(counts, args.out)
    print(f"wrote {counts.height} rows for {counts['country_alpha'].n_unique()} countries to {args.out}")


if __name__ == "__main__":
    main()
