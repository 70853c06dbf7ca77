"""`dagster dev` as the README starts it answers on 127.0.0.1 and lists the assets with their culture partitions."""

import time

import pytest

from culture_assets.cultures import load_registry


def test_dagster_dev_lists_assets_and_culture_partitions(dagster_dev) -> None:
    nodes = {
        "/".join(node["assetKey"]["path"]): node
        for node in dagster_dev.graphql("{ assetNodes { assetKey { path } isPartitioned partitionKeys } }")["assetNodes"]
    }
    assert {"wvs_questions", "wvs_wave", "seed_survey"} <= set(nodes)
    assert nodes["seed_survey"]["isPartitioned"]
    assert nodes["seed_survey"]["partitionKeys"] == load_registry().keys
    assert len(nodes["seed_survey"]["partitionKeys"]) == 9

    automation = dagster_dev.graphql(
        """{ repositoriesOrError { ... on RepositoryConnection { nodes {
             sensors { name sensorState { status } } schedules { name cronSchedule scheduleState { status } } } } } }"""
    )["repositoriesOrError"]["nodes"][0]
    assert {(s["name"], s["sensorState"]["status"]) for s in automation["sensors"]} >= {("survey_automation_sensor", "RUNNING")}
    assert {(s["name"], s["scheduleState"]["status"]) for s in automation["schedules"]} >= {("wvs_wave_observation_schedule", "RUNNING")}


@pytest.mark.slow
def test_the_observation_schedules_job_shows_each_cultures_data_version_in_the_ui(dagster_dev) -> None:
    """What wvs_wave_observation_schedule launches, launched through the webserver and run by the daemon."""
    repo = dagster_dev.graphql("{ repositoriesOrError { ... on RepositoryConnection { nodes { name location { name } } } } }")
    repo = repo["repositoriesOrError"]["nodes"][0]
    selector = {"repositoryLocationName": repo["location"]["name"], "repositoryName": repo["name"], "jobName": "wvs_wave_observation_job"}
    launched = dagster_dev.graphql(
        "mutation($p: ExecutionParams!) { launchRun(executionParams: $p) { __typename ... on LaunchRunSuccess { run { runId } } } }",
        {"p": {"selector": selector, "runConfigData": {}}},
    )["launchRun"]
    assert launched["__typename"] == "LaunchRunSuccess", launched
    status, deadline = "", time.monotonic() + 300
    while status not in ("SUCCESS", "FAILURE", "CANCELED") and time.monotonic() < deadline:
        time.sleep(2)
        status = dagster_dev.graphql(
            "query($id: ID!) { runOrError(runId: $id) { ... on Run { status } } }", {"id": launched["run"]["runId"]}
        )["runOrError"]["status"]
    assert status == "SUCCESS", dagster_dev.log_tail()
    versions = dagster_dev.graphql(
        '{ assetNodeOrError(assetKey: {path: ["wvs_wave"]}) { ... on AssetNode { dataVersionByPartition(partitions: ["german", "english"]) } } }'
    )["assetNodeOrError"]["dataVersionByPartition"]
    assert all(len(version) == 64 for version in versions) and versions[0] != versions[1]
