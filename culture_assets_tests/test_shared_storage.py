"""Asset values and adapter directories through fsspec: a local directory and an in-memory object store alike."""

import uuid
from pathlib import Path
from typing import Iterator

import dagster as dg
import polars as pl
import pytest
from upath import UPath

from culture_assets.io_manager import ArtifactIOManager
from culture_assets.storage import STORAGE_ENV, fetch_directory, put_directory, storage_root

CULTURES = dg.StaticPartitionsDefinition(["german", "korean"])


@pytest.fixture(params=["local", "memory"])
def storage_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    if request.param == "local":
        yield str(tmp_path / "shared")
        return
    url = f"memory://culture-assets-{uuid.uuid4().hex}"
    yield url
    root = UPath(url)
    if root.exists():
        root.fs.rm(root.path, recursive=True)


@dg.asset(partitions_def=CULTURES)
def per_culture_table(context: dg.AssetExecutionContext) -> pl.DataFrame:
    return pl.DataFrame({"culture": [context.partition_key] * 2, "answer": [1, 2]})


@dg.asset(partitions_def=CULTURES)
def per_culture_record(context: dg.AssetExecutionContext, per_culture_table: pl.DataFrame) -> dict:
    return {"culture": context.partition_key, "rows": per_culture_table.height, "adapter_path": f"models/{context.partition_key}"}


@dg.asset(ins={"per_culture_record": dg.AssetIn(partition_mapping=dg.AllPartitionMapping())})
def all_cultures_summary(per_culture_record: dict) -> list:
    return sorted(record["culture"] for record in per_culture_record.values())


@dg.asset
def unpartitioned_table(all_cultures_summary: list) -> pl.DataFrame:
    return pl.DataFrame({"culture": all_cultures_summary})


def test_every_value_kind_round_trips_through_the_storage(storage_url: str, data_home: Path) -> None:
    io_manager = ArtifactIOManager(storage=storage_url)
    assets = [per_culture_table, per_culture_record, all_cultures_summary, unpartitioned_table]
    for culture in CULTURES.get_partition_keys():
        assert dg.materialize(assets[:2], partition_key=culture, resources={"io_manager": io_manager}).success
    result = dg.materialize(assets, selection=assets[2:], resources={"io_manager": io_manager})
    assert result.success

    root = UPath(storage_url)
    assert sorted(p.name for p in (root / "per_culture_table").iterdir()) == ["german.parquet", "korean.parquet"]
    assert pl.read_parquet((root / "per_culture_table" / "korean.parquet").read_bytes())["culture"].to_list() == ["korean", "korean"]
    assert result.output_for_node("all_cultures_summary") == ["german", "korean"]
    assert pl.read_parquet((root / "unpartitioned_table" / "all.parquet").read_bytes())["culture"].to_list() == ["german", "korean"]
    # nothing under the data home: the values live in the storage only
    assert not (data_home / "assets").exists()
    # no staging or temporary files left beside the values
    assert not [p for p in root.rglob("*") if p.name.startswith(".")]


def test_a_value_that_changes_kind_replaces_the_old_file(storage_url: str) -> None:
    io_manager = ArtifactIOManager(storage=storage_url)

    @dg.asset(name="changing")
    def as_json() -> dict:
        return {"kind": "json"}

    @dg.asset(name="changing")
    def as_parquet() -> pl.DataFrame:
        return pl.DataFrame({"kind": ["parquet"]})

    assert dg.materialize([as_json], resources={"io_manager": io_manager}).success
    assert dg.materialize([as_parquet], resources={"io_manager": io_manager}).success
    assert [p.name for p in (UPath(storage_url) / "changing").iterdir()] == ["all.parquet"]


def test_missing_value_names_the_storage_location(storage_url: str) -> None:
    @dg.asset
    def never_written() -> dict:
        return {}

    @dg.asset
    def reader(never_written: dict) -> dict:
        return never_written

    with pytest.raises(FileNotFoundError, match="never_written has no stored value"):
        dg.materialize([never_written, reader], selection=[reader], resources={"io_manager": ArtifactIOManager(storage=storage_url)})


def test_adapter_directory_published_and_fetched(storage_url: str, tiny_model_dir: Path, tmp_path: Path) -> None:
    from transformers import AutoModelForCausalLM, AutoTokenizer

    target = UPath(storage_url) / "models" / "german-default" / "0123abcd"
    put_directory(tiny_model_dir, target)
    put_directory(tiny_model_dir, target)  # publishing again replaces it whole
    local = fetch_directory(target, cache_root=tmp_path / "cache")

    expected = {p.relative_to(tiny_model_dir): p.read_bytes() for p in tiny_model_dir.rglob("*") if p.is_file()}
    assert {p.relative_to(local): p.read_bytes() for p in local.rglob("*") if p.is_file()} == expected
    assert AutoModelForCausalLM.from_pretrained(local).config.hidden_size == 64
    assert AutoTokenizer.from_pretrained(local).chat_template
    with pytest.raises(FileNotFoundError, match="no such directory"):
        fetch_directory(UPath(storage_url) / "models" / "missing", cache_root=tmp_path / "cache")


def test_storage_root_from_the_environment(monkeypatch: pytest.MonkeyPatch, data_home: Path) -> None:
    monkeypatch.delenv(STORAGE_ENV, raising=False)
    assert Path(storage_root().path) == data_home / "assets"
    monkeypatch.setenv(STORAGE_ENV, "memory://shared-artifacts")
    root = storage_root()
    assert root.protocol == "memory" and root.path.strip("/") == "shared-artifacts"
