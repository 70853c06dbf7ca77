"""Materialize a selection of the graph in dependency order, one culture partition at a time.

Unpartitioned assets run once; partitioned assets run for each of their partitions. Consecutive
assets with the same partitioning form one stage, so each Dagster run is as large as it can be.
"""

from __future__ import annotations

import logging
from typing import Any, Sequence

import dagster as dg

log = logging.getLogger(__name__)

# The main job leaves out the ablation models (9 cultures x 9 variants); select them explicitly.
DEFAULT_SELECTION = "not key:ablation_*"

Stage = tuple[dg.PartitionsDefinition | None, list[dg.AssetKey]]


def plan_stages(defs: dg.Definitions, select: str | None, partitioned_only: bool = False) -> list[Stage]:
    """[(partitions definition or None, asset keys)] in topological order for the selected materializable assets.

    `partitioned_only` leaves out the unpartitioned (all-culture) assets: a one-culture backfill.
    """
    graph = defs.resolve_asset_graph()
    chosen = dg.AssetSelection.from_string(select or DEFAULT_SELECTION).resolve(graph)
    stages: list[Stage] = []
    for level in graph.toposorted_asset_keys_by_level:
        for key in sorted(level, key=lambda k: k.to_user_string()):
            node = graph.get(key)
            if key not in chosen or not node.is_materializable:
                continue
            if partitioned_only and node.partitions_def is None:
                continue
            if stages and stages[-1][0] == node.partitions_def:
                stages[-1][1].append(key)
            else:
                stages.append((node.partitions_def, [key]))
    return stages


def stage_partitions(partitions_def: dg.PartitionsDefinition, cultures: Sequence[str] | None) -> list[str]:
    """The stage's partition keys, restricted to `cultures` (a culture x variant key matches on its culture)."""
    keys = partitions_def.get_partition_keys()
    if not cultures:
        return keys
    if isinstance(partitions_def, dg.MultiPartitionsDefinition):
        return [k for k in keys if any(part in cultures for part in k.split("|"))]
    return [k for k in keys if k in cultures]


def _op_names(defs: dg.Definitions, keys: Sequence[dg.AssetKey]) -> set[str]:
    wanted = set(keys)
    return {a.op.name for a in defs.assets or [] if isinstance(a, dg.AssetsDefinition) and a.is_executable and wanted & set(a.keys)}


class StagesFailed(RuntimeError):
    """Some runs failed; the others (and everything not downstream of a failure) completed."""


def _root_message(error) -> str:
    while error.cause is not None:  # Dagster wraps the asset's own exception; show that one
        error = error.cause
    return error.message.strip()[:400]


def _failure_summary(result: dg.ExecuteInProcessResult) -> str:
    failed = [event for event in result.all_events if event.is_step_failure]
    return "; ".join(f"{event.step_key}: {_root_message(event.step_failure_data.error)}" for event in failed) or "run failed"


def materialize_in_stages(
    defs: dg.Definitions,
    instance: dg.DagsterInstance,
    select: str | None = None,
    partitions: Sequence[str] | None = None,
    partitioned_only: bool = False,
    op_config: dict[str, dict[str, Any]] | None = None,
) -> list[dg.ExecuteInProcessResult]:
    """Run each stage; `op_config` (op name -> config) is applied to the ops a stage contains.

    A failed partition does not stop the others; StagesFailed at the end names every failure.
    """
    assets = list(defs.assets or [])
    resources = dict(defs.resources or {})
    results = []
    failures: list[str] = []
    for partitions_def, keys in plan_stages(defs, select, partitioned_only):
        selection = dg.AssetSelection.assets(*keys)
        ops = _op_names(defs, keys)
        run_config = {"ops": {op: {"config": config} for op, config in (op_config or {}).items() if op in ops}}
        names = [k.to_user_string() for k in keys]
        for partition in stage_partitions(partitions_def, partitions) if partitions_def else [None]:
            log.info("materializing %s%s", names, f" for {partition}" if partition else "")
            result = dg.materialize(
                assets, selection=selection, partition_key=partition, instance=instance, resources=resources,
                run_config=run_config, raise_on_error=False,
            )
            results.append(result)
            if not result.success:
                failures.append(f"{names}{f' [{partition}]' if partition else ''}: {_failure_summary(result)}")
                log.error("failed: %s", failures[-1])
    if failures:
        raise StagesFailed(f"{len(failures)} of {len(results)} runs failed:\n" + "\n".join(f"  - {f}" for f in failures))
    return results
