"""The LLM response cache: the DuckDB `llm_cache` table, keyed by a hash of (model, messages, params).

A cached response is reused forever for the same key, so a re-run or a resumed run sends
nothing twice. Rows are written one by one as calls complete, each in its own short transaction, so a
run killed half way keeps every response it paid for and no connection is held while calls are in flight. The API key is never part of a key or a row.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from typing import Any, Mapping, Sequence

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
    """Reads and writes `llm_cache` in short transactions: each lookup and each response opens the warehouse,
    does its work and closes it, so steps in other processes can write the warehouse between two calls."""

    def __init__(self, warehouse: Warehouse):
        self.warehouse = warehouse
        self.warehouse.migrate()

    def lookup(self, keys: Sequence[str]) -> dict[str, CachedResponse]:
        if not keys:
            return {}
        rows = self.warehouse.query(
            "SELECT cache_key, response_json, prompt_tokens, completion_tokens FROM llm_cache WHERE list_contains(?, cache_key)",
            [sorted(set(keys))],
        )
        return {
            key: CachedResponse(parsed["content"], int(prompt or 0), int(completion or 0), parsed.get("top_logprobs"))
            for key, parsed, prompt, completion in ((k, json.loads(r), p, c) for k, r, p, c in rows.iter_rows())
        }

    def put(self, key: str, model: str, request_json: str, response: CachedResponse) -> None:
        stored = {"content": response.content, **({"top_logprobs": response.top_logprobs} if response.top_logprobs else {})}
        with self.warehouse.transaction() as con:
            con.execute(
                "INSERT OR REPLACE INTO llm_cache (cache_key, model, request_json, response_json, prompt_tokens, completion_tokens) "
                "VALUES (?, ?, ?, ?, ?, ?)",
                [key, model, request_json, json.dumps(stored, ensure_ascii=False), response.prompt_tokens, response.completion_tokens],
            )
