"""The DuckDB warehouse: lineage, metrics, survey distributions and the LLM response cache."""

from culture_assets.store.warehouse import Warehouse, WarehouseLockedError

__all__ = ["Warehouse", "WarehouseLockedError"]
