"""`dagster dev` as the README starts it answers on 127.0.0.1 and lists the assets with their culture partitions."""

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
