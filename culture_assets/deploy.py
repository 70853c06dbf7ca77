"""The executor for the scale-out profile (deploy/dagster.yaml): every step in its own Kubernetes pod.

CULTURE_ASSETS_EXECUTOR unset: Dagster's default (steps in subprocesses of the run). `k8s`: dagster-k8s's
`k8s_job_executor` (install the `scale` extra), with GPU requests for the steps that train or run models.
"""

from __future__ import annotations

import os

import dagster as dg

EXECUTOR_ENV = "CULTURE_ASSETS_EXECUTOR"
# Steps (asset names) that train a model or run one over many prompts; they get a GPU pod.
GPU_STEPS = ("culture_model", "culturellm_one", "culture_scores", "wvs_alignment")
GPU_POD = {
    "container_config": {"resources": {"requests": {"nvidia.com/gpu": "1"}, "limits": {"nvidia.com/gpu": "1"}}},
    "pod_spec_config": {"tolerations": [{"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"}]},
}


def executor_from_env() -> dg.ExecutorDefinition | None:
    choice = os.environ.get(EXECUTOR_ENV, "").strip()
    if not choice:
        return None
    if choice != "k8s":
        raise ValueError(f"${EXECUTOR_ENV}={choice!r}: expected 'k8s' (steps as Kubernetes pods) or unset (local processes)")
    try:
        from dagster_k8s import k8s_job_executor
    except ImportError as exc:
        raise ImportError(f"${EXECUTOR_ENV}=k8s needs dagster-k8s: pip install -e '.[scale]'") from exc
    return k8s_job_executor.configured(
        {"per_step_k8s_config": {step: GPU_POD for step in GPU_STEPS}}, name="k8s_job_executor_with_gpus"
    )
