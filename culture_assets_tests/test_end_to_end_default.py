"""The DEFAULT profile end to end, offline (issue 11, acceptance 1).

The hub is a Hugging Face cache holding the tiny model under `Qwen/Qwen2.5-0.5B-Instruct` and an NLI
stand-in under the meaning check's model name (HF_HUB_OFFLINE=1); the evaluation data is downloaded
from a 127.0.0.1 server; two cultures; `culture-assets run --limit 10`. Generation goes (A) to the local
fake OpenAI server, (B) to the local generator. Then Dagster's GraphQL API shows every run under its
named stage job, re-executable, and a re-execution succeeds. In (B) the random model's paraphrases mean nothing,
so the augmentation's coverage check warns and the culture models train on their seed questions.
"""

import functools
import json
import os
import subprocess
import sys
import time
import urllib.request
from pathlib import Path
from typing import Callable, Iterator

import pytest

from culture_assets.augment.equivalence import DEFAULT_NLI_MODEL
from culture_assets.launcher import WorkspaceLauncher
from culture_assets.store import Warehouse
from culture_assets_tests.eval_archive import EvalArchiveServer
from culture_assets_tests.fake_augmentation_llm import augmentation_chat_reply
from culture_assets_tests.fake_openai import FakeOpenAI
from culture_assets_tests.hub_cache import fill_hub_cache
from culture_assets_tests.meaning_fixture import build_entailing_nli
from culture_assets_tests.test_end_to_end import CULTURES, two_culture_registry

ROOT = Path(__file__).resolve().parents[1]
CLI = str(Path(sys.executable).with_name("culture-assets"))
STAGE_JOBS = {"augmentation_job", "evaluation_data_job", "seed_survey_job", "culture_models_job", "culturellm_one_job", "culture_scores_job", "culture_report_job"}
FOUR_MODELS = 4  # base, base + culture prompt, culture model, CultureLLM-One

RUNS = """{ runsOrError(filter: {tags: [{key: "culture_assets/profile", value: "default"}]}) { ... on Runs { results {
  runId jobName status hasReExecutePermission tags { key value } repositoryOrigin { repositoryLocationName repositoryName } } } } }"""
REEXECUTE = """mutation($parent: String!) { launchPipelineReexecution(reexecutionParams: {parentRunId: $parent, strategy: ALL_STEPS}) {
  __typename ... on LaunchRunSuccess { run { runId } } ... on PythonError { message } } }"""
RUN_STATUS = """query($id: ID!) { runOrError(runId: $id) { ... on Run { status } } }"""
COVERAGE_CHECK = """{ assetNodes(assetKeys: [{path: ["augmented_questions"]}]) { assetChecksOrError { ... on AssetChecks {
  checks { name executionForLatestMaterialization { status evaluation { severity success } } } } } } }"""


@pytest.fixture
def evaluation_data(eval_archive_server: EvalArchiveServer) -> Iterator[dict[str, str]]:
    """The evaluation datasets downloaded by the `evaluation_data` asset from a 127.0.0.1 server holding an archive
    in the reference repository's layout (the reference files when present, else synthetic ones) and its manifests."""
    assert set(eval_archive_server.cultures) == set(CULTURES)
    yield eval_archive_server.environment()


@pytest.fixture
def nli_hub(offline_hub: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The default profile's NLI model name in the hub stand-in, served by a cross-encoder that entails every pair."""
    fill_hub_cache(offline_hub, DEFAULT_NLI_MODEL, build_entailing_nli(tmp_path_factory.mktemp("models") / "entailing-nli"))
    return offline_hub


@pytest.fixture
def default_env(tmp_path: Path, nli_hub: Path, evaluation_data: dict[str, str], monkeypatch: pytest.MonkeyPatch) -> dict[str, str]:
    """The default profile in a fresh data home, also set in this process (the GraphQL server reads it)."""
    settings = {
        "CULTURE_ASSETS_HOME": str(tmp_path / "home"), "DAGSTER_HOME": str(tmp_path / "home" / "dagster_home"),
        "CULTURE_ASSETS_REGISTRY": str(two_culture_registry(tmp_path / "cultures.yaml")), **evaluation_data,
    }
    for name in [k for k in os.environ if k.startswith(("OPENAI_", "CULTURE_ASSETS_"))]:
        monkeypatch.delenv(name)
    for name, value in settings.items():
        monkeypatch.setenv(name, value)
    return os.environ.copy()


def graphql(url: str, query: str, variables: dict | None = None) -> dict:
    body = json.dumps({"query": query, "variables": variables or {}}).encode()
    request = urllib.request.Request(f"{url}/graphql", data=body, headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(request, timeout=60) as response:
        payload = json.loads(response.read())
    assert not payload.get("errors"), payload["errors"]
    return payload["data"]


def run_and_check(env: dict[str, str], home: Path, check_in_ui: Callable[[str], None] | None = None) -> None:
    """The run and what every case checks; `check_in_ui(url)` adds a case's own GraphQL checks on the same server."""
    started = time.monotonic()
    result = subprocess.run([CLI, "run", "--limit", "10"], cwd=ROOT, env=env, capture_output=True, text=True, timeout=1800)
    print(f"culture-assets run --limit 10: {time.monotonic() - started:.0f}s")
    assert result.returncode == 0, result.stderr[-5000:]
    assert "BetaWarning" not in result.stderr and "PreviewWarning" not in result.stderr
    log = next(line for line in result.stderr.splitlines() if "full event log" in line).split()[-1]
    assert Path(log).is_file() and "STEP_SUCCESS" in Path(log).read_text()

    scores = Warehouse(home / "warehouse.duckdb").query(
        "SELECT culture, count(DISTINCT model) AS models FROM metrics WHERE metric = 'macro_f1' AND dataset = 'average' "
        "AND coalesce(variant, 'default') = 'default' GROUP BY culture ORDER BY culture"
    )
    assert dict(scores.rows()) == {culture: FOUR_MODELS for culture in sorted(CULTURES)}
    assert "macro" in (home / "reports" / "culture_report" / "index.html").read_text().lower()

    with WorkspaceLauncher(ROOT, home / "logs" / "graphql.log") as server:
        runs = graphql(server.url, RUNS)["runsOrError"]["results"]
        assert {run["jobName"] for run in runs} == STAGE_JOBS
        assert all(run["status"] == "SUCCESS" and run["hasReExecutePermission"] and run["repositoryOrigin"] for run in runs)
        scored = [run for run in runs if run["jobName"] == "culture_scores_job"]
        assert sorted({tag["value"] for run in scored for tag in run["tags"] if tag["key"] == "dagster/partition"}) == sorted(CULTURES)

        parent = next(run["runId"] for run in runs if run["jobName"] == "seed_survey_job")
        launched = graphql(server.url, REEXECUTE, {"parent": parent})["launchPipelineReexecution"]
        assert launched["__typename"] == "LaunchRunSuccess", launched
        child, deadline, status = launched["run"]["runId"], time.monotonic() + 300, "QUEUED"
        while status not in ("SUCCESS", "FAILURE", "CANCELED") and time.monotonic() < deadline:
            time.sleep(2)
            status = graphql(server.url, RUN_STATUS, {"id": child})["runOrError"]["status"]
        assert status == "SUCCESS"
        if check_in_ui is not None:
            check_in_ui(server.url)


@pytest.mark.slow
def test_default_profile_end_to_end_with_an_openai_compatible_generator(default_env):
    with FakeOpenAI() as server:
        server.chat_reply = functools.partial(augmentation_chat_reply, judge_faults=False)
        env = {**default_env, "OPENAI_API_KEY": "sk-test-e2e", "OPENAI_BASE_URL": server.base_url}
        run_and_check(env, Path(default_env["CULTURE_ASSETS_HOME"]))
        assert server.count(r"/chat/completions") > 0


@pytest.mark.slow
def test_default_profile_end_to_end_with_the_local_generator(default_env):
    """The tiny random model under the default generator's name answers every request in schema (constrained decoding);
    its paraphrases mean nothing, so the coverage check warns and the culture models train on the seeds."""
    def coverage_check_warned(url: str) -> None:
        [node] = graphql(url, COVERAGE_CHECK)["assetNodes"]
        check = next(c for c in node["assetChecksOrError"]["checks"] if c["name"] == "every_question_covered")["executionForLatestMaterialization"]
        assert check["evaluation"]["severity"] == "WARN" and check["evaluation"]["success"] is False

    home = Path(default_env["CULTURE_ASSETS_HOME"])
    run_and_check(default_env, home, coverage_check_warned)
    lineage = Warehouse(home / "warehouse.duckdb").query("SELECT count(*) AS candidates, count(DISTINCT step) AS steps FROM sample_lineage WHERE step <> 'seed'")
    assert lineage["candidates"][0] > 0 and lineage["steps"][0] >= 2  # the local generator's replies reached the filter
