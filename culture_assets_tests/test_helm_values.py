"""The Kubernetes route, checked without a cluster: deploy/helm-values.yaml and deploy/Dockerfile agree with the chart
keys they use, with each other and with the code.

No Helm binary is packaged by Debian, so the chart is not rendered here: the schema below covers the keys of Dagster's
official chart (`dagster/dagster`) that the values file sets, and rejects any other key at those levels, so a typo or a
key the chart does not know fails here instead of being ignored by Helm.
"""

from __future__ import annotations

import importlib.util
import re
from pathlib import Path

import jsonschema
import pytest
import yaml

from culture_assets.deploy import EXECUTOR_ENV, GPU_STEPS, gpu_pod_config

DEPLOY = Path(__file__).resolve().parents[1] / "deploy"


def strict(properties: dict, required: tuple[str, ...] = ()) -> dict:
    return {"type": "object", "properties": properties, "required": list(required), "additionalProperties": False}


NAME_REFS = {"type": "array", "items": strict({"name": {"type": "string"}}, ("name",))}
ENV_LIST = {"type": "array", "items": strict({"name": {"type": "string"}, "value": {"type": "string"}}, ("name", "value"))}
VOLUMES = {"type": "array", "items": {"type": "object", "required": ["name"]}}
MOUNTS = {"type": "array", "items": strict({"name": {"type": "string"}, "mountPath": {"type": "string"}}, ("name", "mountPath"))}
RESOURCES = strict({"requests": {"type": "object"}, "limits": {"type": "object"}})
IMAGE = strict({"repository": {"type": "string"}, "tag": {"type": "string"}, "pullPolicy": {"enum": ["Always", "IfNotPresent", "Never"]}},
               ("repository", "tag"))
CHART_SCHEMA = strict({
    "global": strict({"serviceAccountName": {"type": "string"}, "postgresqlSecretName": {"type": "string"}}),
    "generatePostgresqlPasswordSecret": {"type": "boolean"},
    "postgresql": strict({
        "enabled": {"type": "boolean"}, "postgresqlHost": {"type": "string"}, "postgresqlUsername": {"type": "string"},
        "postgresqlPassword": {"type": "string"}, "postgresqlDatabase": {"type": "string"},
        "service": strict({"port": {"type": "integer"}}, ("port",)),
    }, ("enabled", "postgresqlHost", "postgresqlUsername", "postgresqlDatabase")),
    "dagsterWebserver": strict({"replicaCount": {"type": "integer"}, "service": strict({"type": {"type": "string"}, "port": {"type": "integer"}})}),
    "dagsterDaemon": strict({
        "enabled": {"type": "boolean"},
        "runCoordinator": strict({
            "enabled": {"type": "boolean"}, "type": {"enum": ["QueuedRunCoordinator", "CustomRunCoordinator"]},
            "config": strict({"queuedRunCoordinator": strict({
                "maxConcurrentRuns": {"type": "integer"},
                "tagConcurrencyLimits": {"type": "array", "items": strict(
                    {"key": {"type": "string"}, "value": {}, "limit": {"type": "integer"}}, ("key", "limit"))},
            })}),
        }),
    }),
    "dagster-user-deployments": strict({
        "enabled": {"type": "boolean"},
        "deployments": {"type": "array", "minItems": 1, "items": strict({
            "name": {"type": "string"}, "image": IMAGE, "dagsterApiGrpcArgs": {"type": "array", "items": {"type": "string"}},
            "port": {"type": "integer"}, "env": ENV_LIST, "envConfigMaps": NAME_REFS, "envSecrets": NAME_REFS,
            "volumes": VOLUMES, "volumeMounts": MOUNTS, "resources": RESOURCES, "nodeSelector": {"type": "object"},
        }, ("name", "image", "dagsterApiGrpcArgs", "port"))},
    }, ("enabled", "deployments")),
    "runLauncher": strict({
        "type": {"enum": ["K8sRunLauncher", "CeleryK8sRunLauncher", "CustomRunLauncher"]},
        "config": strict({"k8sRunLauncher": strict({
            "envConfigMaps": NAME_REFS, "envSecrets": NAME_REFS, "volumes": VOLUMES, "volumeMounts": MOUNTS,
            "jobNamespace": {"type": ["string", "null"]},
            "runK8sConfig": strict({"containerConfig": {"type": "object"}, "podSpecConfig": {"type": "object"}}),
        })}),
    }, ("type", "config")),
}, ("postgresql", "dagster-user-deployments", "runLauncher"))


@pytest.fixture(scope="module")
def values() -> dict:
    return yaml.safe_load((DEPLOY / "helm-values.yaml").read_text(encoding="utf-8"))


@pytest.fixture(scope="module")
def deployment(values: dict) -> dict:
    return values["dagster-user-deployments"]["deployments"][0]


def test_values_match_the_chart_keys(values: dict) -> None:
    jsonschema.validate(values, CHART_SCHEMA)


def test_schema_rejects_an_unknown_key(values: dict) -> None:
    typo = {**values, "runLauncher": {**values["runLauncher"], "confg": {}}}
    with pytest.raises(jsonschema.ValidationError, match="confg"):
        jsonschema.validate(typo, CHART_SCHEMA)


def test_code_location_serves_the_definitions_module(deployment: dict) -> None:
    args = deployment["dagsterApiGrpcArgs"]
    module = args[args.index("-m") + 1]
    assert importlib.util.find_spec(module) is not None, f"{module} is not importable"
    dockerfile = (DEPLOY / "Dockerfile").read_text(encoding="utf-8")
    cmd = re.search(r"^CMD (\[.*\])$", dockerfile, re.M)
    assert cmd, "the Dockerfile has no exec-form CMD"
    command = yaml.safe_load(cmd.group(1))
    assert command[:3] == ["dagster", "code-server", "start"]
    assert command[command.index("-m") + 1] == module
    assert int(command[command.index("-p") + 1]) == deployment["port"]


def test_dockerfile_copies_what_exists_and_installs_the_scale_extra() -> None:
    root = DEPLOY.parent
    dockerfile = (DEPLOY / "Dockerfile").read_text(encoding="utf-8")
    for line in re.findall(r"^COPY (.+)$", dockerfile, re.M):
        for source in line.split()[:-1]:
            assert (root / source).exists(), f"Dockerfile copies {source}, which is not in the repository"
    assert '".[scale]"' in dockerfile
    pyproject = (root / "pyproject.toml").read_text(encoding="utf-8")
    assert re.search(r"^scale = \[", pyproject, re.M)


def test_steps_as_pods_with_gpus_on_gpu_nodes(deployment: dict, monkeypatch: pytest.MonkeyPatch) -> None:
    env = {item["name"]: item["value"] for item in deployment["env"]}
    assert env[EXECUTOR_ENV] == "k8s"
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    pod = gpu_pod_config()
    assert pod["pod_spec_config"]["node_selector"] == {"nvidia.com/gpu.present": "true"}
    assert pod["container_config"]["resources"]["limits"] == {"nvidia.com/gpu": "1"}
    assert {"culture_model", "culturellm_one", "culture_scores"} <= set(GPU_STEPS)


def test_run_pods_and_code_server_share_configuration_and_data(values: dict, deployment: dict) -> None:
    launcher = values["runLauncher"]["config"]["k8sRunLauncher"]
    assert launcher["envConfigMaps"] == deployment["envConfigMaps"]
    assert launcher["envSecrets"] == deployment["envSecrets"]
    assert launcher["volumes"] == deployment["volumes"]
    for mounts in (launcher["volumeMounts"], deployment["volumeMounts"]):
        assert {m["name"] for m in mounts} <= {v["name"] for v in launcher["volumes"]}
        assert [m["mountPath"] for m in mounts] == ["/data"]
    dockerfile = (DEPLOY / "Dockerfile").read_text(encoding="utf-8")
    assert "CULTURE_ASSETS_HOME=/data" in dockerfile
    # the instance storage is the external Postgres; its password comes from the named secret
    assert values["postgresql"]["enabled"] is False and values["generatePostgresqlPasswordSecret"] is False
    assert values["global"]["postgresqlSecretName"]
