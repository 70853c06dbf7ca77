"""The Dagster UI in a real headless Chromium: find the culture partitions, materialize one from the UI, see it succeed.

Needs Debian's headless Chromium (`apt-get install chromium-headless-shell`, as .ci/run does) or any Chromium named
by $CULTURE_ASSETS_CHROMIUM; skips with the reason otherwise. Screenshots go to the test's tmp dir and, when
$CULTURE_ASSETS_SCREENSHOT_DIR is set, there too.
"""

import os
import shutil
import time
from pathlib import Path

import pytest

from culture_assets.store.warehouse import Warehouse

CHROMIUM_ENV = "CULTURE_ASSETS_CHROMIUM"
SCREENSHOT_ENV = "CULTURE_ASSETS_SCREENSHOT_DIR"
CHROMIUM_ARGS = [
    "--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
    "--disable-sync", "--no-first-run",
]
PARTITION = "german"
RUNS_FOR_PARTITION = """
query Runs($tags: [ExecutionTag!]) {
  runsOrError(filter: {tags: $tags}) { ... on Runs { results { runId status } } }
}
"""


def chromium_executable() -> str | None:
    candidates = [os.environ.get(CHROMIUM_ENV, ""), "chromium-headless-shell", "chromium", "/usr/lib/chromium/chromium"]
    for candidate in filter(None, candidates):
        found = shutil.which(candidate)
        if found:
            return found
    return None


@pytest.fixture
def browser_page():
    sync_api = pytest.importorskip("playwright.sync_api", reason="playwright is not installed (pip install '.[test]')")
    executable = chromium_executable()
    if executable is None:
        pytest.skip(f"no Chromium found: apt-get install chromium-headless-shell (or set {CHROMIUM_ENV} to a Chromium binary)")
    with sync_api.sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=executable, args=CHROMIUM_ARGS)
        try:
            yield browser.new_page(viewport={"width": 1400, "height": 900})
        finally:
            browser.close()


def save_screenshot(page, tmp_path: Path, name: str) -> Path:
    target = tmp_path / name
    page.screenshot(path=str(target), full_page=True)
    if os.environ.get(SCREENSHOT_ENV):
        extra = Path(os.environ[SCREENSHOT_ENV])
        extra.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(target, extra / name)
    return target


def wait_for_partition_run(dagster_dev, timeout_s: float = 75) -> dict:
    """Poll GraphQL until the partition's run finishes; return it."""
    tags = [{"key": "dagster/partition", "value": PARTITION}]
    deadline = time.monotonic() + timeout_s
    runs: list[dict] = []
    while time.monotonic() < deadline:
        runs = dagster_dev.graphql(RUNS_FOR_PARTITION, {"tags": tags})["runsOrError"]["results"]
        if runs and runs[0]["status"] in ("SUCCESS", "FAILURE", "CANCELED"):
            return runs[0]
        time.sleep(1)
    raise AssertionError(f"no finished run for partition {PARTITION} after {timeout_s:.0f}s: {runs}\n{dagster_dev.log_tail()}")


@pytest.mark.browser
def test_materialize_one_culture_partition_from_the_ui(dagster_dev, browser_page, tmp_path: Path) -> None:
    page = browser_page
    page.set_default_timeout(20_000)

    dagster_dev.graphql("mutation { setNuxSeen }")  # no first-visit community prompt over the page

    # The survey group's asset graph, with seed_survey's nine culture partitions (the global graph collapses groups).
    page.goto(f"{dagster_dev.url}/locations/culture_assets.definitions/asset-groups/survey", wait_until="networkidle")
    page.get_by_text("9 partitions").wait_for()

    # Materialize one partition from the asset's page.
    page.goto(f"{dagster_dev.url}/assets/seed_survey", wait_until="networkidle")
    page.get_by_role("button", name="Materialize").first.click()
    confirm = page.get_by_role("button", name="Confirm")  # "upstream never materialized" warning: seed_survey only needs the files
    confirm.wait_for()
    confirm.click()
    page.get_by_text("Launch runs to materialize seed_survey").wait_for()
    page.get_by_text("Backfills in multiple runs, with a maximum of 1 partitions per run.").wait_for()
    page.get_by_text("Select a partition or create one").click()
    page.locator(".bp5-portal").get_by_text(PARTITION, exact=True).first.click()
    page.keyboard.press("Escape")
    page.get_by_text("1 partition", exact=True).wait_for()
    page.get_by_role("button", name="Launch 1 run").click()

    run = wait_for_partition_run(dagster_dev)
    assert run["status"] == "SUCCESS", dagster_dev.log_tail()
    cultures = Warehouse(dagster_dev.data_home / "warehouse.duckdb").query("SELECT DISTINCT culture FROM survey_distribution")
    assert cultures["culture"].to_list() == [PARTITION]

    # The UI shows the run's success and the partition materialized.
    page.goto(f"{dagster_dev.url}/runs/{run['runId']}", wait_until="networkidle")
    page.get_by_text("Success").first.wait_for()
    save_screenshot(page, tmp_path, "seed_survey_run_success.png")
    page.goto(f"{dagster_dev.url}/assets/seed_survey?view=partitions", wait_until="networkidle")
    page.get_by_text("Materialized (1)").wait_for()
    page.get_by_text("Missing (8)").wait_for()
    shot = save_screenshot(page, tmp_path, "seed_survey_partitions.png")
    assert shot.stat().st_size > 10_000
