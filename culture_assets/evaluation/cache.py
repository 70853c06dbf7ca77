"""Local model outputs cached in the DuckDB warehouse (`eval_cache`), so a re-run or a resumed
run after a crash scores nothing twice. Keyed by a hash of the model fingerprint, the scorer,
the exact messages and the answer choices. (API responses are cached by the LLM layer.)"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from typing import Sequence

import polars as pl

from culture_assets.store import Warehouse

Messages = list[dict[str, str]]


def cache_key(fingerprint: str, scorer: str, messages: Messages, choices: Sequence[str]) -> str:
    payload = json.dumps([fingerprint, scorer, messages, list(choices)], sort_keys=True, ensure_ascii=False)
    return hashlib.sha256(payload.encode()).hexdigest()


@dataclass(frozen=True)
class CachedOutput:
    prediction: str
    scores: list[float]


@dataclass
class EvalCache:
    warehouse: Warehouse
    _migrated: bool = False

    def get_many(self, keys: Sequence[str]) -> dict[str, CachedOutput]:
        if not keys:
            return {}
        if not self._migrated:
            self.warehouse.migrate()
            self._migrated = True
        found = self.warehouse.query(
            "SELECT cache_key, prediction, scores_json FROM eval_cache WHERE list_contains(?, cache_key)", [list(set(keys))]
        )
        return {key: CachedOutput(pred, json.loads(scores)) for key, pred, scores in found.iter_rows()}

    def put_many(self, rows: Sequence[dict]) -> None:
        """rows: cache_key, model, scorer, dataset, row_id, prediction, scores (the log-likelihood of each label)."""
        if not rows:
            return
        frame = pl.DataFrame(
            [{**{k: v for k, v in row.items() if k != "scores"}, "scores_json": json.dumps(row["scores"])} for row in rows],
            schema={"cache_key": pl.String, "model": pl.String, "scorer": pl.String, "dataset": pl.String, "row_id": pl.String,
                    "prediction": pl.String, "scores_json": pl.String},
        )
        self.warehouse.upsert_rows("eval_cache", frame)
