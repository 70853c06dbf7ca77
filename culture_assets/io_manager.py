"""Asset values as files in the artifact storage: Parquet for tables, JSON for records (a pydantic record is
stored as its JSON object; the reading asset validates it again). Never pickles.

Paths: <storage>/<asset key>/<partition or "all">.<parquet|json>, where <storage> is `storage` (any fsspec URL:
a shared mount, s3://, gs://, memory://), else $CULTURE_ASSETS_STORAGE, else <data home>/assets. A file is
never half-written (culture_assets/storage.py), so a failed run leaves the previous value readable.
"""

from __future__ import annotations

import io
import json
from typing import Any

import dagster as dg
import polars as pl
from pydantic import BaseModel
from upath import UPath

from culture_assets.resources import library_settings
from culture_assets.storage import ArtifactStorageSettings, write_bytes_atomic

UNPARTITIONED = "all"


_FIELDS = ArtifactStorageSettings.model_fields


class ArtifactIOManager(dg.ConfigurableIOManager):
    """The library's ArtifactStorageSettings (culture_assets.storage) as an IO manager."""

    data_home: str = _FIELDS["data_home"]
    storage: str = _FIELDS["storage"]

    def _root(self) -> UPath:
        return library_settings(self, ArtifactStorageSettings).root()

    def _base(self, key: dg.AssetKey) -> UPath:
        return self._root().joinpath(*key.path)

    def _file(self, key: dg.AssetKey, partition: str) -> UPath:
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
            buffer = io.BytesIO()
            obj.write_parquet(buffer)
            write_bytes_atomic(target, buffer.getvalue())
            context.add_output_metadata({"path": dg.MetadataValue.path(str(target)), "rows": obj.height})
        else:
            target = base / f"{partition}.json"
            value = obj.model_dump(mode="json") if isinstance(obj, BaseModel) else obj
            write_bytes_atomic(target, json.dumps(value, indent=2, sort_keys=True, default=str).encode("utf-8"))
            context.add_output_metadata({"path": dg.MetadataValue.path(str(target))})
        other = base / f"{partition}{'.json' if target.suffix == '.parquet' else '.parquet'}"
        if other.exists():
            other.unlink()

    def _read(self, key: dg.AssetKey, partition: str) -> Any:
        path = self._file(key, partition)
        if path.suffix == ".parquet":
            return pl.read_parquet(io.BytesIO(path.read_bytes()))
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
