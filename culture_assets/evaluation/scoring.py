"""Run one model over choice tasks (a dataset's rows, or WVS questions), through the cache.

Local models are scored by label log-likelihood (loglik.py); API models by a constrained chat
answer (chat.py). Outputs are cached per row as they are produced: local ones after every batch,
API ones once the concurrent requests of a task return (failed requests are not cached, so a
re-run retries them).
"""

from __future__ import annotations

import asyncio
import gc
from dataclasses import dataclass, field
from typing import Callable, Sequence

import numpy as np

from culture_assets.evaluation.cache import CachedOutput, EvalCache, Messages, cache_key
from culture_assets.evaluation.chat import ChatComplete, ask_all, parse_answer, request_params
from culture_assets.evaluation.loglik import LocalModel, choice_logliks, load_local_model
from culture_assets.evaluation.manifest import DatasetManifest
from culture_assets.evaluation.metrics import INVALID
from culture_assets.evaluation.models import ModelUnderTest


@dataclass(frozen=True)
class ChoiceTask:
    """Rows to classify into `labels`, the model saying one of `verbalizers` (aligned with labels)."""

    dataset: str
    labels: list[str]
    verbalizers: list[str]
    row_ids: list[str]
    prompts: list[Messages]


def dataset_task(manifest: DatasetManifest, row_ids: Sequence[str], texts: Sequence[str], system_prompt: str | None) -> ChoiceTask:
    return ChoiceTask(
        dataset=manifest.id,
        labels=manifest.label_set,
        verbalizers=manifest.verbalizers,
        row_ids=list(row_ids),
        prompts=[manifest.messages(text, system_prompt) for text in texts],
    )


@dataclass
class TaskOutputs:
    predictions: list[str]
    # local models: the log-likelihood of each label; API models: None
    scores: list[list[float] | None]
    n_cached: int = 0
    n_failed_requests: int = 0


@dataclass
class ScoringSettings:
    batch_size: int = 16
    concurrency: int = 8
    structured_output: bool = False
    device: str | None = None


@dataclass
class ModelScorer:
    """One model, loaded once (local weights stay in memory until close())."""

    spec: ModelUnderTest
    cache: EvalCache
    chat: ChatComplete | None = None
    settings: ScoringSettings = field(default_factory=ScoringSettings)
    log: Callable[[str], None] = lambda message: None
    _local: LocalModel | None = None
    # one event loop for the scorer's life, so the API client's connections are reused across tasks
    _loop: asyncio.Runner | None = None

    @property
    def scorer_name(self) -> str:
        return "loglik" if self.spec.trainer == "local" else ("chat_structured" if self.settings.structured_output else "chat")

    def _params(self, task: ChoiceTask) -> dict:
        return {} if self.spec.trainer == "local" else request_params(task.verbalizers, self.settings.structured_output)

    def run(self, task: ChoiceTask) -> TaskOutputs:
        params = self._params(task)
        keys = [cache_key(self.spec.fingerprint, self.scorer_name, m, task.verbalizers, params) for m in task.prompts]
        cached = self.cache.get_many(keys)
        missing = [i for i, key in enumerate(keys) if key not in cached]
        fresh: dict[int, CachedOutput] = {}
        n_failed = 0
        if missing:
            self.log(f"{self.spec.label} on {task.dataset}: {len(missing)} to score, {len(keys) - len(missing)} cached")
            if self.spec.trainer == "local":
                fresh = self._score_local(task, missing, keys)
            else:
                fresh, n_failed = self._score_chat(task, missing, keys, params)
        outputs = [fresh.get(i) or cached.get(keys[i]) for i in range(len(keys))]
        return TaskOutputs(
            predictions=[o.prediction if o else INVALID for o in outputs],
            scores=[o.scores if o else None for o in outputs],
            n_cached=len(keys) - len(missing),
            n_failed_requests=n_failed,
        )

    def _row(self, task: ChoiceTask, index: int, key: str, output: CachedOutput) -> dict:
        return {
            "cache_key": key, "model": self.spec.label, "scorer": self.scorer_name, "dataset": task.dataset,
            "row_id": task.row_ids[index], "prediction": output.prediction, "scores": output.scores, "raw_output": output.raw_output,
        }

    def _score_local(self, task: ChoiceTask, missing: list[int], keys: list[str]) -> dict[int, CachedOutput]:
        if self._local is None:
            self._local = load_local_model(self.spec.base_model, self.spec.adapter_path, self.settings.device)
        fresh: dict[int, CachedOutput] = {}

        def on_batch(positions: list[int], scores: list[list[float]]) -> None:
            rows = []
            for position, row_scores in zip(positions, scores):
                index = missing[position]
                output = CachedOutput(task.labels[int(np.argmax(row_scores))], row_scores, None)
                fresh[index] = output
                rows.append(self._row(task, index, keys[index], output))
            self.cache.put_many(rows)

        choice_logliks(self._local, [task.prompts[i] for i in missing], task.verbalizers, self.settings.batch_size, on_batch=on_batch)
        return fresh

    def _score_chat(self, task: ChoiceTask, missing: list[int], keys: list[str], params: dict) -> tuple[dict[int, CachedOutput], int]:
        if self.chat is None:
            raise RuntimeError(f"{self.spec.label} is an API model ({self.spec.api_model}) but no chat client is configured")
        if self._loop is None:
            self._loop = asyncio.Runner()
        replies = self._loop.run(
            ask_all(self.chat, str(self.spec.api_model), [task.prompts[i] for i in missing], params, self.settings.concurrency)
        )
        fresh, rows, failed = {}, [], 0
        for index, reply in zip(missing, replies):
            output = CachedOutput(parse_answer(reply, task.labels, task.verbalizers, self.settings.structured_output), None, reply)
            fresh[index] = output
            if reply is None:
                failed += 1
            else:
                rows.append(self._row(task, index, keys[index], output))
        self.cache.put_many(rows)
        return fresh, failed

    def close(self) -> None:
        self._local = None
        if self._loop is not None:
            self._loop.close()
            self._loop = None
        gc.collect()
