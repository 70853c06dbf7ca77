"""The main job end to end: the whole graph on the demo profile's tiny model, with the augmentation
LLM served by the local fake OpenAI server; then the report is opened and checked against DuckDB."""

import os
import subprocess
import sys
import time
from html.parser import HTMLParser
from pathlib import Path

import pytest
import yaml

from culture_assets.store import Warehouse
from culture_assets_tests.fake_augmentation_llm import augmentation_chat_reply
from culture_assets_tests.fake_openai import FakeOpenAI

ROOT = Path(__file__).resolve().parents[1]
CULTURES = ("english", "german")
CLI = str(Path(sys.executable).with_name("culture-assets"))


class TableReader(HTMLParser):
    """The report's tables, each as (heading before it, rows of cell text), and its images."""

    def __init__(self) -> None:
        super().__init__()
        self.tables: list[tuple[str, list[list[str]]]] = []
        self.images: list[str] = []
        self._heading, self._in, self._cell = "", None, None

    def handle_starttag(self, tag, attrs):
        if tag in ("h2", "td", "th"):
            self._in, self._cell = tag, ""
        elif tag == "table":
            self.tables.append((self._heading, []))
        elif tag == "tr":
            self.tables[-1][1].append([])
        elif tag == "img":
            self.images.append(dict(attrs)["src"])

    def handle_data(self, data):
        if self._in:
            self._cell += data

    def handle_endtag(self, tag):
        if tag == "h2":
            self._heading = self._cell
        elif tag in ("td", "th"):
            self.tables[-1][1][-1].append(self._cell)
        if tag == self._in:
            self._in = None


def two_culture_registry(path: Path) -> Path:
    packaged = yaml.safe_load((ROOT / "culture_assets" / "data" / "cultures.yaml").read_text())
    packaged["cultures"] = [c for c in packaged["cultures"] if c["key"] in CULTURES]
    path.write_text(yaml.safe_dump(packaged, allow_unicode=True))
    return path


def run_main_job(home: Path, env: dict[str, str], *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([CLI, "run", *args], cwd=ROOT, env=env, capture_output=True, text=True, timeout=900)


def base_env(home: Path, tmp_path: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("OPENAI_", "CULTURE_ASSETS_", "DAGSTER_HOME"))}
    return {**env, "CULTURE_ASSETS_HOME": str(home), "HF_HUB_OFFLINE": "1",
            "CULTURE_ASSETS_REGISTRY": str(two_culture_registry(tmp_path / "cultures.yaml"))}


def test_whole_graph_end_to_end_and_the_report_matches_duckdb(tmp_path):
    home = tmp_path / "home"
    with FakeOpenAI() as server:
        server.chat_reply = augmentation_chat_reply
        env = {**base_env(home, tmp_path), "OPENAI_API_KEY": "sk-test-e2e", "OPENAI_BASE_URL": server.base_url}
        result = run_main_job(home, env, "--profile", "demo")
        assert result.returncode == 0, result.stderr[-4000:]
        requests = server.count(r"/chat/completions")
        # the ablations as real runs for one culture; sizes above what was generated fail by name, the rest go on
        ablations = run_main_job(home, env, "--profile", "demo", "--select", "key:ablation_*", "--partition", "german")
    assert requests > 0

    warehouse = Warehouse(home / "warehouse.duckdb")
    accepted = warehouse.query("SELECT count(*) AS n FROM sample_lineage WHERE accepted AND step IN ('paraphrase', 'synonym')")["n"][0]
    assert accepted > 0, "the fake server's rewordings should pass the semantic filter"
    models = warehouse.query("SELECT culture FROM model_registry WHERE coalesce(variant, 'default') = 'default' ORDER BY culture")["culture"].to_list()
    assert set(CULTURES) <= set(models) and len(models) == len(CULTURES) + 1  # + CultureLLM-One

    assert ablations.returncode != 0 and "german|size_1000" in ablations.stderr and "asked for 1000 samples" in ablations.stderr
    variants = warehouse.query(
        "SELECT variant, n_train FROM metrics WHERE culture = 'german' AND dataset = 'average' AND model LIKE 'culture_model[%' ORDER BY variant"
    )
    assert {"seed_only", "plus_paraphrase", "plus_synonym", "prompt_english", "prompt_native"} <= set(variants["variant"])
    sizes = dict(variants.rows())
    assert sizes["seed_only"] < sizes["plus_paraphrase"] <= sizes["plus_synonym"]

    report_dir = home / "reports" / "culture_report"
    page = (report_dir / "index.html").read_text()
    assert "Wiring demo" in page
    reader = TableReader()
    reader.feed(page)
    assert reader.images and all((report_dir / src).stat().st_size > 1000 for src in reader.images)

    # what produced the report, then the paired differences, which exist for every culture
    assert [t[0] for t in reader.tables[:2]] == ["What produced this report", "Paired differences between models"]
    compared = warehouse.query("SELECT DISTINCT culture FROM comparisons WHERE scope = 'culture_average'")["culture"].to_list()
    assert sorted(compared) == sorted(CULTURES)

    (heading, rows), *_ = [t for t in reader.tables if t[0].startswith("Average macro-F1 by culture")]
    header, body = rows[0], rows[1:]
    shown = {(r[header.index("culture")], r[header.index("model")]): float(r[header.index("value")])
             for r in body if r[header.index("scope")] == "average" and r[header.index("model")] not in ("majority_class", "stratified_random")}
    stored = warehouse.query(
        "SELECT culture, model, value FROM metrics WHERE metric = 'macro_f1' AND dataset = 'average' AND coalesce(variant, 'default') = 'default'"
    )
    assert len(shown) == stored.height == len(CULTURES) * 4
    for culture, model, value in stored.iter_rows():
        assert shown[(culture, model)] == pytest.approx(value, abs=5e-4)


def test_offline_without_a_model_fails_in_seconds_naming_the_settings(tmp_path):
    started = time.monotonic()
    result = run_main_job(tmp_path / "home", base_env(tmp_path / "home", tmp_path))
    assert result.returncode != 0
    assert time.monotonic() - started < 60
    for setting in ("CULTURE_ASSETS_BASE_MODEL", "OPENAI_API_KEY", "CULTURE_ASSETS_EVAL_DATA", "--profile demo"):
        assert setting in result.stderr
    assert not (tmp_path / "home" / "warehouse.duckdb").exists()
