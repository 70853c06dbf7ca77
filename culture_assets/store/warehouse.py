"""One DuckDB file under the data home, opened briefly for each read or write.

DuckDB lets one process write a file at a time; a second writer fails at open with a lock
error. Connections are short (open, one transaction, close), so `connect()` waits for the lock
with backoff and, past its timeout, raises WarehouseLockedError naming the file and what to do,
rather than corrupting anything. Steps whose work is writing the warehouse also sit in the
`duckdb_writer` Dagster pool (limit 1); steps that mostly compute (training, scoring) do not.
Writes run in one transaction: a failure rolls back and leaves the previous rows intact.
"""

from __future__ import annotations

import random
import time
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator, Sequence

import duckdb
import polars as pl
from pydantic import BaseModel, ConfigDict, Field

from culture_assets.settings import data_home
from culture_assets.store.migrations import MIGRATIONS

WRITER_POOL = "duckdb_writer"
_LOCK_MARKERS = ("Could not set lock", "Conflicting lock", "lock on file")


class WarehouseLockedError(RuntimeError):
    """Another process held the warehouse file for longer than the configured wait."""


def _is_lock_error(exc: BaseException) -> bool:
    return any(marker in str(exc) for marker in _LOCK_MARKERS)


@dataclass(frozen=True)
class Warehouse:
    path: Path
    lock_timeout_s: float = 120.0

    @contextmanager
    def connect(self, read_only: bool = False) -> Iterator[duckdb.DuckDBPyConnection]:
        """A short-lived connection; waits (with jittered backoff) while another process holds the file."""
        self.path.parent.mkdir(parents=True, exist_ok=True)
        deadline = time.monotonic() + self.lock_timeout_s
        delay = 0.05
        while True:
            try:
                con = duckdb.connect(str(self.path), read_only=read_only and self.path.exists())
                break
            except duckdb.Error as exc:
                if not _is_lock_error(exc):
                    raise
                if time.monotonic() >= deadline:
                    raise WarehouseLockedError(
                        f"{self.path}: another process has held the DuckDB warehouse for over "
                        f"{self.lock_timeout_s:.0f}s ({exc}). Wait for it to finish, or stop it: this project's steps write in "
                        f"short transactions (those that mostly write take turns in the '{WRITER_POOL}' pool)."
                    ) from exc
                time.sleep(delay * (1 + random.random()))
                delay = min(delay * 2, 2.0)
        try:
            yield con
        finally:
            con.close()

    @contextmanager
    def transaction(self) -> Iterator[duckdb.DuckDBPyConnection]:
        """A write transaction on a migrated schema; rolled back on any exception."""
        with self.connect() as con:
            self._migrate(con)
            con.execute("BEGIN TRANSACTION")
            try:
                yield con
            except BaseException:
                con.execute("ROLLBACK")
                raise
            con.execute("COMMIT")

    def migrate(self) -> int:
        with self.connect() as con:
            return self._migrate(con)

    @staticmethod
    def _migrate(con: duckdb.DuckDBPyConnection) -> int:
        con.execute("CREATE TABLE IF NOT EXISTS schema_version (version INTEGER PRIMARY KEY, applied_at TIMESTAMP DEFAULT current_timestamp)")
        applied = {row[0] for row in con.execute("SELECT version FROM schema_version").fetchall()}
        for version in sorted(set(MIGRATIONS) - applied):
            con.execute("BEGIN TRANSACTION")
            try:
                con.execute(MIGRATIONS[version])
                con.execute("INSERT INTO schema_version (version) VALUES (?)", [version])
                con.execute("COMMIT")
            except BaseException:
                con.execute("ROLLBACK")
                raise
        return max(MIGRATIONS)

    def schema_version(self) -> int:
        with self.connect(read_only=True) as con:
            return int(con.execute("SELECT max(version) FROM schema_version").fetchone()[0])

    def replace_rows(self, table: str, rows: pl.DataFrame, where: dict[str, object]) -> int:
        """Atomically replace the rows matching `where` (e.g. one culture's partition) with `rows`.

        A list value matches any of its items (`column IN (...)`).
        """
        clauses, params = [], []
        for column, value in where.items():
            values = list(value) if isinstance(value, (list, tuple)) else [value]
            clauses.append(f"{column} IN ({', '.join('?' for _ in values)})" if values else "FALSE")
            params += values
        with self.transaction() as con:
            con.execute(f"DELETE FROM {table} WHERE {' AND '.join(clauses) or 'TRUE'}", params)
            if rows.height:
                con.register("incoming", rows.to_arrow())
                columns = ", ".join(rows.columns)
                con.execute(f"INSERT INTO {table} ({columns}) SELECT {columns} FROM incoming")
                con.unregister("incoming")
        return rows.height

    def upsert_rows(self, table: str, rows: pl.DataFrame) -> int:
        """Insert rows, replacing those with the same primary key."""
        if rows.height == 0:
            return 0
        with self.transaction() as con:
            con.register("incoming", rows.to_arrow())
            columns = ", ".join(rows.columns)
            con.execute(f"INSERT OR REPLACE INTO {table} ({columns}) SELECT {columns} FROM incoming")
            con.unregister("incoming")
        return rows.height

    def query(self, sql: str, params: Sequence[object] = ()) -> pl.DataFrame:
        if not self.path.exists():
            self.migrate()
        with self.connect(read_only=True) as con:
            return con.execute(sql, list(params)).pl()


class WarehouseSettings(BaseModel):
    """Where the warehouse is and how long a write waits for another process's (the `warehouse` Dagster resource derives its fields from these)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    data_home: str = Field(default="", description="Data home holding warehouse.duckdb; empty: the default data home.")
    lock_timeout_s: float = Field(default=120.0, gt=0, description="Seconds a write waits for another process's write to finish.")

    def warehouse(self) -> Warehouse:
        return Warehouse(data_home(self.data_home or None) / "warehouse.duckdb", lock_timeout_s=self.lock_timeout_s)
