"""Materialize a selection of the graph in dependency order, one culture partition at a time.

Unpartitioned assets run once; culture-partitioned assets run for each culture. Consecutive
assets of the same kind form one stage, so each Dagster run is as large as it can be.
"""

from __future__ import annotations

import logging
from typing import Sequence

import dagster as dg

log = logging.getLogger(__name__)


def plan_stages(
    defs: dg.Definitions, select: str | None, partitioned_only: bool = False
) -> list[tuple[bool, list[dg.AssetKey]]]:
    """[(partitioned, asset keys)] in topological order for the selected materializable assets.

    `partitioned_only` leaves out the unpartitioned (all-culture) assets: a one-culture backfill.
    """
    graph = defs.resolve_asset_graph()
    selection = dg.AssetSelection.from_string(select) if select else dg.AssetSelection.all()
    chosen = selection.resolve(graph)
    stages: list[tuple[bool, list[dg.AssetKey]]] = []
    for level in graph.toposorted_asset_keys_by_level:
        for key in sorted(level, key=lambda k: k.to_user_string()):
            if key not in chosen or not graph.get(key).is_materializable:
                continue
            partitioned = graph.get(key).partitions_def is not None
            if partitioned_only and not partitioned:
                continue
            if stages and stages[-1][0] == partitioned:
                stages[-1][1].append(key)
            else:
                stages.append((partitioned, [key]))
    return stages


def materialize_in_stages(
    defs: dg.Definitions,
    instance: dg.DagsterInstance,
    select: str | None = None,
    partitions: Sequence[str] | None = None,
    partitioned_only: bool = False,
) -> list[dg.ExecuteInProcessResult]:
    graph = defs.resolve_asset_graph()
    assets = list(defs.assets or [])
    resources = dict(defs.resources or {})
    results = []
    for partitioned, keys in plan_stages(defs, select, partitioned_only):
        keys_for_run = [dg.AssetSelection.assets(*keys)]
        if not partitioned:
            log.info("materializing %s", [k.to_user_string() for k in keys])
            results.append(dg.materialize(assets, selection=keys_for_run[0], instance=instance, resources=resources))
            continue
        partition_keys = partitions or graph.get(keys[0]).partitions_def.get_partition_keys()
        for partition in partition_keys:
            log.info("materializing %s for %s", [k.to_user_string() for k in keys], partition)
            results.append(
                dg.materialize(assets, selection=keys_for_run[0], partition_key=partition, instance=instance, resources=resources)
            )
    return results
