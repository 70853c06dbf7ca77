"""The scale-out profile: deploy/dagster.yaml is a valid instance config; its classes accept their sections."""

from pathlib import Path

import dagster as dg
import pytest
import yaml
from dagster._config import process_config
from dagster._core.instance.config import dagster_instance_config
from dagster._serdes.config_class import class_from_code_pointer

from culture_assets.deploy import EXECUTOR_ENV, GPU_NODE_SELECTOR_ENV, GPU_STEPS, executor_from_env, gpu_pod_config

DEPLOY = Path(__file__).resolve().parents[1] / "deploy"
ENV = {
    "DAGSTER_PG_HOST": "postgres.example", "DAGSTER_PG_DB": "dagster", "DAGSTER_PG_USER": "dagster",
    "DAGSTER_PG_PASSWORD": "secret", "DAGSTER_K8S_NAMESPACE": "culture", "CULTURE_ASSETS_IMAGE": "registry/culture-assets:1",
}


@pytest.fixture
def deploy_env(monkeypatch: pytest.MonkeyPatch) -> dict:
    for key, value in ENV.items():
        monkeypatch.setenv(key, value)
    return yaml.safe_load((DEPLOY / "dagster.yaml").read_text())


def test_deploy_profile_is_a_valid_instance_config(deploy_env: dict) -> None:
    config, custom_class = dagster_instance_config(str(DEPLOY))
    assert custom_class is None
    assert set(config["storage"]) == {"postgres"}
    assert config["run_launcher"]["class"] == "K8sRunLauncher"
    assert config["concurrency"]["pools"]["default_limit"] == 1
    assert config["concurrency"]["runs"]["tag_concurrency_limits"][0]["key"] == "dagster/partition"


def test_k8s_run_launcher_accepts_its_config(deploy_env: dict) -> None:
    pytest.importorskip("dagster_k8s", reason="the `scale` extra is not installed")
    section = deploy_env["run_launcher"]
    cls = class_from_code_pointer(section["module"], section["class"])
    result = process_config(cls.config_type(), section["config"])
    assert result.success, result.errors
    assert result.value["job_namespace"] == "culture" and result.value["job_image"] == "registry/culture-assets:1"


def test_postgres_storage_accepts_its_config(deploy_env: dict) -> None:
    storage = pytest.importorskip("dagster_postgres.storage", reason="the `scale` extra is not installed")
    result = process_config(storage.DagsterPostgresStorage.config_type(), deploy_env["storage"]["postgres"])
    assert result.success, result.errors
    assert result.value["postgres_db"]["hostname"] == "postgres.example"


def test_executor_choice(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(EXECUTOR_ENV, raising=False)
    assert executor_from_env() is None
    monkeypatch.setenv(EXECUTOR_ENV, "spark")
    with pytest.raises(ValueError, match=EXECUTOR_ENV):
        executor_from_env()
    pytest.importorskip("dagster_k8s", reason="the `scale` extra is not installed")
    monkeypatch.setenv(EXECUTOR_ENV, "k8s")
    executor = executor_from_env()
    assert isinstance(executor, dg.ExecutorDefinition) and executor.name == "k8s_job_executor_with_gpus"


def test_gpu_pod_config_is_valid_k8s_step_config() -> None:
    executors = pytest.importorskip("dagster_k8s", reason="the `scale` extra is not installed")
    config = {"per_step_k8s_config": {step: gpu_pod_config() for step in GPU_STEPS}}
    result = process_config(executors.k8s_job_executor.config_schema.config_type, config)
    assert result.success, result.errors
    limits = result.value["per_step_k8s_config"]["culture_model"]["container_config"]["resources"]["limits"]
    assert limits == {"nvidia.com/gpu": "1"}


def test_gpu_node_selector_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(GPU_NODE_SELECTOR_ENV, raising=False)
    assert gpu_pod_config()["pod_spec_config"]["node_selector"] == {"nvidia.com/gpu.present": "true"}
    monkeypatch.setenv(GPU_NODE_SELECTOR_ENV, "cloud.google.com/gke-accelerator=nvidia-l4, pool=gpu")
    assert gpu_pod_config()["pod_spec_config"]["node_selector"] == {"cloud.google.com/gke-accelerator": "nvidia-l4", "pool": "gpu"}
    monkeypatch.setenv(GPU_NODE_SELECTOR_ENV, "gpu")
    with pytest.raises(ValueError, match=GPU_NODE_SELECTOR_ENV):
        gpu_pod_config()


def test_celery_executor_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    pytest.importorskip("dagster_celery", reason="the `scale` extra is not installed")
    from culture_assets.deploy import CELERY_BROKER_ENV, celery_settings

    monkeypatch.setenv(EXECUTOR_ENV, "celery")
    monkeypatch.setenv(CELERY_BROKER_ENV, "redis://broker.example:6379/0")
    assert celery_settings() == {"broker": "redis://broker.example:6379/0", "backend": "redis://broker.example:6379/0"}
    executor = executor_from_env()
    assert isinstance(executor, dg.ExecutorDefinition) and executor.name == "celery_executor_from_env"
