"""Run one model over choice tasks (a dataset's rows, or WVS questions), through the cache.

Local models are scored by label log-likelihood (loglik.py), their outputs cached per row in
`eval_cache` after every batch; API models by a constrained chat answer (chat.py) through the
LLM layer's runner, whose llm_cache stores each response as it arrives. Either way a crash
loses at most one batch, and a re-run scores nothing twice.
"""

from __future__ import annotations

import gc
import time
from dataclasses import dataclass, field
from typing import Callable, Sequence

import numpy as np

from culture_assets.evaluation.cache import CachedOutput, EvalCache, Messages, cache_key
from culture_assets.evaluation.chat import parse_answer, request_params, verbalizer_logprobs
from culture_assets.evaluation.loglik import LocalModel, choice_logliks, load_local_model
from culture_assets.evaluation.manifest import DatasetManifest
from culture_assets.evaluation.models import ModelUnderTest
from culture_assets.llm import ChatRequest, ChatRunner


# model id -> the LLM layer's runner for that model (API models only)
ChatRunnerFactory = Callable[[str], ChatRunner]


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
    # API requests the LLM layer's budget stopped: invalid for this run, sent on a re-run
    n_not_sent: int = 0


@dataclass
class ScoringSettings:
    batch_size: int = 16
    structured_output: bool = False
    device: str | None = None
    # ask API models for log-probabilities and decide from them when the endpoint returns them
    chat_logprobs: bool = True


@dataclass
class ModelScorer:
    """One model, loaded once (local weights stay in memory until close())."""

    spec: ModelUnderTest
    cache: EvalCache
    chat: ChatRunnerFactory | None = None
    settings: ScoringSettings = field(default_factory=ScoringSettings)
    log: Callable[[str], None] = lambda message: None
    _local: LocalModel | None = None
    _runner: ChatRunner | None = None

    @property
    def scorer_name(self) -> str:
        # "_eot": labels scored as complete answers (loglik.answer_ids); older cached scores lacked the end token
        if self.spec.trainer == "local":
            return "loglik_eot"
        return "chat_structured" if self.settings.structured_output else ("chat_logprobs" if self.settings.chat_logprobs else "chat")

    def run(self, task: ChoiceTask) -> TaskOutputs:
        if self.spec.trainer == "local":
            return self._run_local(task)
        return self._run_chat(task)

    def _run_local(self, task: ChoiceTask) -> TaskOutputs:
        keys = [cache_key(self.spec.fingerprint, self.scorer_name, m, task.verbalizers) for m in task.prompts]
        cached = self.cache.get_many(keys)
        missing = [i for i, key in enumerate(keys) if key not in cached]
        fresh: dict[int, CachedOutput] = {}
        if missing:
            self.log(f"{self.spec.label} on {task.dataset}: {len(missing)} to score, {len(keys) - len(missing)} cached")
            started = time.perf_counter()
            fresh = self._score_local(task, missing, keys)
            seconds = time.perf_counter() - started
            self.log(f"{self.spec.label} on {task.dataset}: scored {len(missing)} in {seconds:.1f}s ({len(missing) / max(seconds, 1e-9):.1f} examples/s)")
        outputs = [fresh.get(i) or cached[keys[i]] for i in range(len(keys))]
        return TaskOutputs([o.prediction for o in outputs], [o.scores for o in outputs], n_cached=len(keys) - len(missing))

    def _run_chat(self, task: ChoiceTask) -> TaskOutputs:
        if self.chat is None:
            raise RuntimeError(f"{self.spec.label} is an API model ({self.spec.api_model}) but no chat runner is configured")
        if self._runner is None:
            self._runner = self.chat(str(self.spec.api_model))
        params = request_params(task.verbalizers, self.settings.structured_output, logprobs=self.settings.chat_logprobs)
        outcomes = self._runner.run([ChatRequest.of(m, params, tag=row) for m, row in zip(task.prompts, task.row_ids)])
        scores = [verbalizer_logprobs(o.top_logprobs, task.verbalizers) if o.top_logprobs else None for o in outcomes]
        predictions = [
            task.labels[int(np.argmax(s))] if s is not None else parse_answer(o.content, task.labels, task.verbalizers, self.settings.structured_output)
            for o, s in zip(outcomes, scores)
        ]
        return TaskOutputs(
            predictions,
            scores,
            n_cached=sum(o.status == "cached" for o in outcomes),
            n_not_sent=sum(o.status == "budget_exhausted" for o in outcomes),
        )

    def _row(self, task: ChoiceTask, index: int, key: str, output: CachedOutput) -> dict:
        return {
            "cache_key": key, "model": self.spec.label, "scorer": self.scorer_name, "dataset": task.dataset,
            "row_id": task.row_ids[index], "prediction": output.prediction, "scores": output.scores,
        }

    def _score_local(self, task: ChoiceTask, missing: list[int], keys: list[str]) -> dict[int, CachedOutput]:
        if self._local is None:
            self._local = load_local_model(self.spec.base_model, self.spec.adapter_path, self.settings.device)
        fresh: dict[int, CachedOutput] = {}

        def on_batch(positions: list[int], scores: list[list[float]]) -> None:
            rows = []
            for position, row_scores in zip(positions, scores):
                index = missing[position]
                output = CachedOutput(task.labels[int(np.argmax(row_scores))], row_scores)
                fresh[index] = output
                rows.append(self._row(task, index, keys[index], output))
            self.cache.put_many(rows)

        choice_logliks(self._local, [task.prompts[i] for i in missing], task.verbalizers, self.settings.batch_size, on_batch=on_batch)
        return fresh

    def close(self) -> None:
        self._local = None
        self._runner = None
        gc.collect()
