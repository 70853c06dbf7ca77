import polars as pl
import pytest

from culture_assets.store import Warehouse
from culture_assets.store.migrations import MIGRATIONS


def test_schema_is_versioned_and_migrations_are_idempotent(tmp_path):
    warehouse = Warehouse(tmp_path / "w.duckdb")
    assert warehouse.migrate() == max(MIGRATIONS)
    assert warehouse.migrate() == max(MIGRATIONS)
    assert warehouse.schema_version() == max(MIGRATIONS)
    tables = set(warehouse.query("SELECT table_name FROM information_schema.tables")["table_name"])
    assert {"survey_distribution", "sample_lineage", "llm_cache", "metrics", "model_registry", "schema_version"} <= tables


def rows(culture: str, share: float) -> pl.DataFrame:
    return pl.DataFrame({
        "culture": [culture], "question_id": ["Q1"], "code": [1], "share": [share], "modal_answer": [1],
        "n_valid": [10], "never_asked": [False], "pooling": ["equal_country"], "survey_version": ["v1"],
    })


def test_replace_rows_swaps_one_partition_and_keeps_the_others(tmp_path):
    warehouse = Warehouse(tmp_path / "w.duckdb")
    warehouse.replace_rows("survey_distribution", rows("a", 0.5), {"culture": "a"})
    warehouse.replace_rows("survey_distribution", rows("b", 0.7), {"culture": "b"})
    warehouse.replace_rows("survey_distribution", rows("a", 0.9), {"culture": "a"})
    got = warehouse.query("SELECT culture, share FROM survey_distribution ORDER BY culture")
    assert got.rows() == [("a", 0.9), ("b", 0.7)]


def test_a_failed_write_leaves_the_previous_rows(tmp_path):
    warehouse = Warehouse(tmp_path / "w.duckdb")
    warehouse.replace_rows("survey_distribution", rows("a", 0.5), {"culture": "a"})
    broken = rows("a", 0.9).with_columns(pl.lit(None, dtype=pl.Float64).alias("share"))  # NOT NULL violation mid-transaction
    with pytest.raises(Exception, match="NOT NULL"):
        warehouse.replace_rows("survey_distribution", broken, {"culture": "a"})
    assert warehouse.query("SELECT share FROM survey_distribution")["share"].to_list() == [0.5]


def test_replace_rows_with_a_list_matches_any_of_its_values(tmp_path):
    warehouse = Warehouse(tmp_path / "w.duckdb")
    for culture in ("a", "b", "c"):
        warehouse.replace_rows("survey_distribution", rows(culture, 0.5), {"culture": culture})
    warehouse.replace_rows("survey_distribution", rows("a", 0.1), {"culture": ["a", "b"]})
    assert warehouse.query("SELECT culture, share FROM survey_distribution ORDER BY culture").rows() == [("a", 0.1), ("c", 0.5)]
