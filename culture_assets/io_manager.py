"""Asset values as files under the data home: Parquet for tables, JSON for records. Never pickles.

Paths: <data home>/assets/<asset key>/<partition or "all">.<parquet|json>. Files are written
to a temporary name and renamed, so a failed run leaves the previous value readable.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import dagster as dg
import polars as pl

from culture_assets.settings import atomic_path, data_home

UNPARTITIONED = "all"


class ArtifactIOManager(dg.ConfigurableIOManager):
    data_home: str = ""

    def _base(self, key: dg.AssetKey) -> Path:
        return data_home(self.data_home or None) / "assets" / Path(*key.path)

    def _file(self, key: dg.AssetKey, partition: str) -> Path:
        base = self._base(key)
        for suffix in (".parquet", ".json"):
            candidate = base / f"{partition}{suffix}"
            if candidate.exists():
                return candidate
        raise FileNotFoundError(f"{key.to_user_string()} has no stored value for partition {partition!r} under {base}; materialize it first")

    def handle_output(self, context: dg.OutputContext, obj: Any) -> None:
        if obj is None:
            return
        partition = context.asset_partition_key if context.has_asset_partitions else UNPARTITIONED
        base = self._base(context.asset_key)
        if isinstance(obj, pl.DataFrame):
            target = base / f"{partition}.parquet"
            with atomic_path(target) as tmp:
                obj.write_parquet(tmp)
            context.add_output_metadata({"path": dg.MetadataValue.path(str(target)), "rows": obj.height})
        else:
            target = base / f"{partition}.json"
            with atomic_path(target) as tmp:
                tmp.write_text(json.dumps(obj, indent=2, sort_keys=True, default=str), encoding="utf-8")
            context.add_output_metadata({"path": dg.MetadataValue.path(str(target))})
        (base / f"{partition}{'.json' if target.suffix == '.parquet' else '.parquet'}").unlink(missing_ok=True)

    def _read(self, key: dg.AssetKey, partition: str) -> Any:
        path = self._file(key, partition)
        if path.suffix == ".parquet":
            return pl.read_parquet(path)
        return json.loads(path.read_text(encoding="utf-8"))

    def load_input(self, context: dg.InputContext) -> Any:
        key = context.asset_key
        if not context.has_asset_partitions:
            return self._read(key, UNPARTITIONED)
        partitions = context.asset_partition_keys
        # a partitioned asset mapped to one upstream partition (same culture, or the culture of a
        # culture x variant key) gets the value itself; an all-culture asset gets {partition: value}
        if len(partitions) == 1 and context.has_partition_key:
            return self._read(key, partitions[0])
        return {partition: self._read(key, partition) for partition in partitions}
