"""Shared fixtures: an isolated data home, the reference data (optional), a tiny model, a fake OpenAI server."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Iterator

import pytest

from culture_assets_tests.dagster_dev import DagsterDev, free_port
from culture_assets_tests.eval_archive import EvalArchive, EvalArchiveServer, build_eval_archive
from culture_assets_tests.fake_openai import FakeOpenAI
from culture_assets_tests.hub_cache import DEFAULT_HUB_NAME, fill_hub_cache
from culture_assets_tests.local_servers import postgres_server, redis_server  # noqa: F401  (fixtures)

REFERENCE_ENV = "CULTURELLM_REFERENCE_DATA"
DEFAULT_REFERENCE = Path(__file__).resolve().parents[1] / ".." / "shared" / "data" / "culturellm"


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption("--run-slow", action="store_true", help="also run tests marked slow")


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    if config.getoption("--run-slow") or "slow" in (config.getoption("-m") or ""):
        return
    skip = pytest.mark.skip(reason="slow: run with --run-slow")
    for item in items:
        if "slow" in item.keywords:
            item.add_marker(skip)


@pytest.fixture
def data_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A fresh CULTURE_ASSETS_HOME (and DAGSTER_HOME inside it) for one test."""
    home = tmp_path / "home"
    home.mkdir()
    monkeypatch.setenv("CULTURE_ASSETS_HOME", str(home))
    monkeypatch.setenv("DAGSTER_HOME", str(home / "dagster_home"))
    (home / "dagster_home").mkdir()
    return home


def reference_data_path() -> Path:
    """Where the CultureLLM reference copy is looked for; it may be absent (the project never needs it at run time)."""
    return Path(os.environ.get(REFERENCE_ENV, DEFAULT_REFERENCE)).resolve()


def is_reference_copy(path: Path) -> bool:
    return (path / "WVQ.jsonl").exists()


@pytest.fixture(scope="session")
def reference_data() -> Path:
    """The CultureLLM reference copy, or skip."""
    path = reference_data_path()
    if not is_reference_copy(path):
        pytest.skip(f"reference data not found at {path} (set {REFERENCE_ENV})")
    return path


@pytest.fixture(scope="session")
def eval_archive(tmp_path_factory: pytest.TempPathFactory) -> EvalArchive:
    """The reference repository's archive layout for two cultures: the reference files when present, else synthetic (built once)."""
    reference = reference_data_path()
    return build_eval_archive(tmp_path_factory.mktemp("eval_archive"), reference=reference if is_reference_copy(reference) else None)


@pytest.fixture
def eval_archive_server(eval_archive: EvalArchive) -> Iterator[EvalArchiveServer]:
    """`eval_archive` served on 127.0.0.1 (see culture_assets_tests/eval_archive.py): `.url`, `.manifests_dir`,
    `.cultures`, `.environment()` for a run, fault settings; stopped after the test."""
    with EvalArchiveServer(eval_archive) as server:
        yield server


@pytest.fixture(scope="session")
def tiny_model_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A tiny random Llama-style chat model with a byte-level tokenizer trained here (built once)."""
    from culture_assets.survey.questions import load_questions
    from culture_assets.tiny_model import build_tiny_chat_model

    corpus = [q.text + " " + q.option_text() for q in load_questions()]
    corpus += ["Answer with one option number.", "offensive not offensive hate speech spam normal OFF NOT yes no"]
    return build_tiny_chat_model(tmp_path_factory.mktemp("models") / "tiny-chat", corpus * 4)


@pytest.fixture(scope="session")
def no_chat_template_model_dir(tiny_model_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The tiny model with its chat template removed: a base model, not an instruct one."""
    import json
    import shutil

    target = tmp_path_factory.mktemp("models") / "no-chat-template"
    shutil.copytree(tiny_model_dir, target)
    config = json.loads((target / "tokenizer_config.json").read_text())
    config.pop("chat_template", None)
    (target / "tokenizer_config.json").write_text(json.dumps(config))
    (target / "chat_template.jinja").unlink(missing_ok=True)
    return target


@pytest.fixture(scope="session")
def hub_cache_dir(tiny_model_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A Hugging Face cache holding the tiny model under the default hub name (built once)."""
    cache = tmp_path_factory.mktemp("hf_cache")
    fill_hub_cache(cache, DEFAULT_HUB_NAME, tiny_model_dir)
    return cache


@pytest.fixture
def offline_hub(hub_cache_dir: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """The hub stand-in in force: HF_HUB_CACHE points at the filled cache and HF_HUB_OFFLINE=1.

    Set in the environment (for subprocesses) and in huggingface_hub's constants, which it reads
    from the environment once, at import.
    """
    from huggingface_hub import constants

    monkeypatch.setenv("HF_HUB_CACHE", str(hub_cache_dir))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(hub_cache_dir))
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", True)
    return hub_cache_dir


@pytest.fixture
def fake_openai() -> Iterator[FakeOpenAI]:
    """A fake OpenAI-compatible server on 127.0.0.1, stopped after the test."""
    server = FakeOpenAI().start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture(scope="session")
def dagster_dev(tmp_path_factory: pytest.TempPathFactory) -> Iterator[DagsterDev]:
    """A running `dagster dev -w workspace.yaml` on a free 127.0.0.1 port with fresh homes; stopped by process group."""
    server = DagsterDev(root=Path(__file__).resolve().parents[1], workdir=tmp_path_factory.mktemp("dagster_dev"), port=free_port())
    server.start()
    try:
        yield server
    finally:
        leftovers = server.stop()
        assert not leftovers, f"dagster dev left processes running: {leftovers}"
