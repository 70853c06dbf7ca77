"""Dagster partitions of the culture-partitioned assets; the cultures come from the registry (culture_assets.cultures)."""

from __future__ import annotations

import dagster as dg

from culture_assets.cultures import CultureRegistry, load_registry
from culture_assets.training.ablations import ABLATIONS

# How a backfill over several cultures runs a culture-partitioned asset: one run per culture, so cultures
# run in parallel (one pod each on Kubernetes) and fail, retry and resume independently. See docs/operations.md.
CULTURE_BACKFILL_POLICY = dg.BackfillPolicy.multi_run(max_partitions_per_run=1)


def culture_partitions(registry: CultureRegistry | None = None) -> dg.StaticPartitionsDefinition:
    return dg.StaticPartitionsDefinition((registry or load_registry()).keys)


def ablation_partitions(registry: CultureRegistry | None = None) -> dg.MultiPartitionsDefinition:
    """One partition per (culture, ablation variant) of the paper's ablations."""
    return dg.MultiPartitionsDefinition(
        {"culture": culture_partitions(registry), "variant": dg.StaticPartitionsDefinition(list(ABLATIONS))}
    )


# The partitions of the registry in force when the definitions load; every asset module uses these.
CULTURES = culture_partitions()
ABLATION_PARTITIONS = ablation_partitions()
