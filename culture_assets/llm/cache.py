"""The LLM response cache: the DuckDB `llm_cache` table, keyed by a hash of (model, messages, params).

A cached response is reused forever for the same key, so a re-run or a resumed run sends
nothing twice. Rows are written one by one as calls complete (autocommit), so a run killed
half way keeps every response it paid for. The API key is never part of a key or a row.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from typing import Any, Mapping, Sequence

import duckdb

from culture_assets.store import Warehouse


def canonical_request(model: str, messages: Sequence[Mapping[str, Any]], params: Mapping[str, Any]) -> str:
    """The request as stable JSON: the cache key is its sha256."""
    return json.dumps(
        {"model": model, "messages": [dict(m) for m in messages], "params": dict(params)},
        sort_keys=True,
        ensure_ascii=False,
        separators=(",", ":"),
    )


def cache_key(model: str, messages: Sequence[Mapping[str, Any]], params: Mapping[str, Any]) -> str:
    return hashlib.sha256(canonical_request(model, messages, params).encode("utf-8")).hexdigest()


@dataclass(frozen=True)
class CachedResponse:
    content: str
    prompt_tokens: int
    completion_tokens: int
    top_logprobs: dict[str, float] | None = None


class ResponseCache:
    """Reads and writes `llm_cache` over one connection held for the duration of a batch."""

    def __init__(self, warehouse: Warehouse):
        self.warehouse = warehouse
        self._con: duckdb.DuckDBPyConnection | None = None
        self._opened = None

    def __enter__(self) -> "ResponseCache":
        self.warehouse.migrate()
        self._opened = self.warehouse.connect()
        self._con = self._opened.__enter__()
        return self

    def __exit__(self, *exc: Any) -> None:
        assert self._opened is not None
        self._opened.__exit__(*exc)
        self._con = self._opened = None

    @property
    def con(self) -> duckdb.DuckDBPyConnection:
        if self._con is None:
            raise RuntimeError("use the ResponseCache as a context manager (with cache: ...)")
        return self._con

    def lookup(self, keys: Sequence[str]) -> dict[str, CachedResponse]:
        if not keys:
            return {}
        self.con.execute("CREATE TEMP TABLE IF NOT EXISTS wanted_keys (cache_key VARCHAR)")
        self.con.execute("DELETE FROM wanted_keys")
        self.con.executemany("INSERT INTO wanted_keys VALUES (?)", [[k] for k in set(keys)])
        rows = self.con.execute(
            "SELECT c.cache_key, c.response_json, c.prompt_tokens, c.completion_tokens "
            "FROM llm_cache c JOIN wanted_keys w USING (cache_key)"
        ).fetchall()
        return {
            key: CachedResponse(parsed["content"], int(prompt or 0), int(completion or 0), parsed.get("top_logprobs"))
            for key, parsed, prompt, completion in ((k, json.loads(r), p, c) for k, r, p, c in rows)
        }

    def put(self, key: str, model: str, request_json: str, response: CachedResponse) -> None:
        self.con.execute(
            "INSERT OR REPLACE INTO llm_cache (cache_key, model, request_json, response_json, prompt_tokens, completion_tokens) "
            "VALUES (?, ?, ?, ?, ?, ?)",
            [key, model, request_json, json.dumps({"content": response.content, **({"top_logprobs": response.top_logprobs} if response.top_logprobs else {})}, ensure_ascii=False),
             response.prompt_tokens, response.completion_tokens],
        )
