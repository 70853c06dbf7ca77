"""The executor of the scale-out profiles (docs/scale-out.md): steps on Celery workers or in Kubernetes pods.

CULTURE_ASSETS_EXECUTOR unset: Dagster's default (steps in subprocesses of the run). `celery`: dagster-celery's
executor, each step a task on the broker at CULTURE_ASSETS_CELERY_BROKER, run by whichever worker takes it
(`dagster-celery worker start`, on this host or others sharing the instance and the data home). `k8s`:
dagster-k8s's `k8s_job_executor`, with GPU requests for the steps that train or run models. Both need the
`scale` extra.
"""

from __future__ import annotations

import os

import dagster as dg

EXECUTOR_ENV = "CULTURE_ASSETS_EXECUTOR"
CELERY_BROKER_ENV = "CULTURE_ASSETS_CELERY_BROKER"
DEFAULT_CELERY_BROKER = "redis://localhost:6379/0"
# Steps (asset names) that train a model or run one over many prompts; they get a GPU pod.
GPU_STEPS = ("culture_model", "culturellm_one", "culture_scores", "wvs_alignment")
GPU_NODE_SELECTOR_ENV = "CULTURE_ASSETS_GPU_NODE_SELECTOR"
# the label NVIDIA's GPU feature discovery puts on GPU nodes
DEFAULT_GPU_NODE_SELECTOR = "nvidia.com/gpu.present=true"


def parse_node_selector(raw: str) -> dict[str, str]:
    """`key=value,key2=value2` -> {key: value}; an error names the setting and the malformed part."""
    selector = {}
    for part in filter(None, (p.strip() for p in raw.split(","))):
        key, sep, value = part.partition("=")
        if not sep or not key:
            raise ValueError(f"${GPU_NODE_SELECTOR_ENV}={raw!r}: expected key=value[,key=value], got {part!r}")
        selector[key.strip()] = value.strip()
    return selector


def gpu_pod_config() -> dict:
    """Per-step pod settings of GPU_STEPS: one GPU, the GPU taint tolerated, GPU nodes selected."""
    selector = parse_node_selector(os.environ.get(GPU_NODE_SELECTOR_ENV, DEFAULT_GPU_NODE_SELECTOR))
    return {
        "container_config": {"resources": {"requests": {"nvidia.com/gpu": "1"}, "limits": {"nvidia.com/gpu": "1"}}},
        "pod_spec_config": {
            "node_selector": selector,
            "tolerations": [{"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"}],
        },
    }


def executor_from_env() -> dg.ExecutorDefinition | None:
    choice = os.environ.get(EXECUTOR_ENV, "").strip()
    if not choice:
        return None
    if choice == "celery":
        return celery_executor_from_env()
    if choice != "k8s":
        raise ValueError(
            f"${EXECUTOR_ENV}={choice!r}: expected 'celery' (steps on Celery workers), 'k8s' (steps as Kubernetes pods) "
            "or unset (local processes)"
        )
    try:
        from dagster_k8s import k8s_job_executor
    except ImportError as exc:
        raise ImportError(f"${EXECUTOR_ENV}=k8s needs dagster-k8s: pip install -e '.[scale]'") from exc
    return k8s_job_executor.configured(
        {"per_step_k8s_config": {step: gpu_pod_config() for step in GPU_STEPS}}, name="k8s_job_executor_with_gpus"
    )


def celery_settings() -> dict[str, str]:
    """The Celery executor's config; the workers' `-y` YAML names the same broker under `execution.config`."""
    broker = os.environ.get(CELERY_BROKER_ENV, "").strip() or DEFAULT_CELERY_BROKER
    # Redis serves as the result backend too: Celery's default `rpc://` backend needs an AMQP broker.
    return {"broker": broker, "backend": broker}


def celery_executor_from_env() -> dg.ExecutorDefinition:
    try:
        from dagster_celery import celery_executor
    except ImportError as exc:
        raise ImportError(f"${EXECUTOR_ENV}=celery needs dagster-celery: pip install -e '.[scale]'") from exc
    return celery_executor.configured(celery_settings(), name="celery_executor_from_env")
