"""OpenAI fine-tuning jobs that are paid for once and polled without blocking.

`FineTuningJobs.advance()` is one resumable step: it validates the JSONL, estimates tokens and
cost (refusing to spend over the cap), uploads each file once per content hash, creates the
job once per fingerprint (base model + files + hyper-parameters), records it in DuckDB, and then
checks its status exactly once. A caller sees "pending" and comes back later (a re-materialization
or the sensor); it never sleeps in a loop. A re-run finds the job in DuckDB or, if the warehouse
was lost, on the server (files by name, jobs by metadata), so nothing is paid twice.
"""

from __future__ import annotations

import hashlib
import json
import math
from dataclasses import dataclass
from typing import Any, Callable, Sequence

import polars as pl
from pydantic import BaseModel, ConfigDict, Field

from culture_assets.errors import InputError
from culture_assets.store.warehouse import Warehouse

PENDING = ("validating_files", "queued", "running")
FAILED = ("failed", "cancelled")
MIN_EXAMPLES = 10  # the API rejects smaller training files
FINGERPRINT_METADATA = "culture_assets_fingerprint"


class FineTuningFailed(RuntimeError):
    """The fine-tuning job ended failed or cancelled; the message is the server's."""


class OpenAIFineTuningSettings(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    base_model: str = Field(min_length=1)
    n_epochs: int = Field(default=3, ge=1)
    seed: int = 0
    suffix: str = ""
    price_per_million_tokens: float | None = Field(default=None, ge=0, description="training price in USD per 1M billed tokens; empty: the base model's list price")
    max_cost_usd: float = Field(default=20.0, ge=0, description="refuse to start a job estimated above this")
    resubmit_failed: bool = False


# OpenAI's fine-tuning training prices, USD per 1M billed tokens (openai.com/api/pricing): the spend
# cap must use the chosen base model's price (GPT-3.5, the paper's model, costs about 2.7x gpt-4o-mini)
TRAINING_PRICE_PER_MILLION = {"gpt-3.5-turbo": 8.0, "gpt-4o-mini": 3.0, "gpt-4o": 25.0}


def training_price(settings: OpenAIFineTuningSettings) -> float:
    """The configured price, else the list price of the base model (longest matching name first)."""
    if settings.price_per_million_tokens is not None:
        return settings.price_per_million_tokens
    for name in sorted(TRAINING_PRICE_PER_MILLION, key=len, reverse=True):
        if settings.base_model.startswith(name):
            return TRAINING_PRICE_PER_MILLION[name]
    raise InputError(
        "trainer resource",
        f"no known fine-tuning price for base model {settings.base_model!r} (known: {sorted(TRAINING_PRICE_PER_MILLION)}); "
        "set `price_per_million_tokens` so the spend cap can be checked",
        field="price_per_million_tokens",
    )


@dataclass(frozen=True)
class CostEstimate:
    examples: int
    tokens_per_epoch: int
    epochs: int
    billed_tokens: int
    cost_usd: float


@dataclass(frozen=True)
class JobOutcome:
    job_id: str
    status: str
    fine_tuned_model: str | None
    estimate: CostEstimate
    created: bool
    events: tuple[str, ...]

    @property
    def pending(self) -> bool:
        return self.status in PENDING


def chat_jsonl(rows: Sequence[Sequence[dict[str, str]]]) -> bytes:
    return "".join(json.dumps({"messages": list(m)}, ensure_ascii=False) + "\n" for m in rows).encode("utf-8")


def validate_chat_jsonl(data: bytes, source: str, min_examples: int = MIN_EXAMPLES) -> list[list[dict[str, str]]]:
    """The examples of a chat fine-tuning file; errors name the line and field the API would reject."""
    examples = []
    for number, line in enumerate(data.decode("utf-8").splitlines(), start=1):
        if not line.strip():
            raise InputError(source, "blank line; every line must be one JSON example", row=number)
        try:
            example = json.loads(line)
        except json.JSONDecodeError as exc:
            raise InputError(source, f"not valid JSON ({exc.msg})", row=number) from exc
        messages = example.get("messages") if isinstance(example, dict) else None
        if not isinstance(messages, list) or not messages:
            raise InputError(source, "expected an object with a non-empty 'messages' list", row=number, field="messages")
        for index, message in enumerate(messages):
            if not isinstance(message, dict) or message.get("role") not in ("system", "user", "assistant"):
                raise InputError(source, "role must be system, user or assistant", row=number, field=f"messages[{index}].role")
            if not isinstance(message.get("content"), str) or not message["content"].strip():
                raise InputError(source, "content must be a non-empty string", row=number, field=f"messages[{index}].content")
        if messages[-1]["role"] != "assistant":
            raise InputError(source, "the last message must be the assistant's answer", row=number, field="messages")
        if not any(m["role"] == "user" for m in messages):
            raise InputError(source, "an example needs a user message", row=number, field="messages")
        examples.append(messages)
    if len(examples) < min_examples:
        raise InputError(source, f"{len(examples)} examples; fine-tuning needs at least {min_examples}")
    return examples


def estimate_tokens(messages: Sequence[dict[str, str]]) -> int:
    """Tokens of one example, estimated as 4 characters a token plus the chat format's per-message overhead.

    An estimate (tiktoken is not a dependency); it is meant for the spend cap, which keeps a margin.
    """
    return 3 + sum(4 + math.ceil(len(m["content"]) / 4) for m in messages)


def estimate_cost(examples: Sequence[Sequence[dict[str, str]]], settings: OpenAIFineTuningSettings) -> CostEstimate:
    per_epoch = sum(estimate_tokens(m) for m in examples)
    billed = per_epoch * settings.n_epochs
    return CostEstimate(len(examples), per_epoch, settings.n_epochs, billed, billed / 1e6 * training_price(settings))


def _sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def _error_message(job: Any) -> str:
    error = getattr(job, "error", None)
    message = getattr(error, "message", None) if error is not None else None
    return message or f"job {job.id} ended {job.status} without an error message"


class FineTuningJobs:
    """The fine-tuning job manager: `client` is an `openai.OpenAI`, state lives in the warehouse."""

    def __init__(self, client: Any, warehouse: Warehouse, log: Callable[[str], None] = lambda message: None):
        self.client = client
        self.warehouse = warehouse
        self.log = log

    # --- files -----------------------------------------------------------------------------
    def upload(self, data: bytes, purpose: str = "fine-tune") -> str:
        """The file id for these bytes, uploading only if neither DuckDB nor the server has them."""
        file_hash = _sha256(data)
        known = self.warehouse.query("SELECT file_id FROM openai_files WHERE file_hash = ?", [file_hash])
        if known.height:
            return known["file_id"][0]
        filename = f"culture-assets-{file_hash[:16]}.jsonl"
        found = next((f for f in self.client.files.list(purpose=purpose) if f.filename == filename), None)
        uploaded = found or self.client.files.create(file=(filename, data), purpose=purpose)
        self.log(f"{'found' if found else 'uploaded'} {filename} as {uploaded.id} ({len(data)} bytes)")
        self.warehouse.upsert_rows(
            "openai_files",
            pl.DataFrame({"file_hash": [file_hash], "file_id": [uploaded.id], "filename": [filename], "purpose": [purpose],
                          "bytes": [len(data)], "base_url": [str(self.client.base_url)]}),
        )
        return uploaded.id

    # --- jobs ------------------------------------------------------------------------------
    def _known_job(self, fingerprint: str) -> str | None:
        rows = self.warehouse.query(
            "SELECT job_id FROM openai_fine_tuning_jobs WHERE fingerprint = ? ORDER BY created_at DESC LIMIT 1", [fingerprint]
        )
        if rows.height:
            return rows["job_id"][0]
        # filtered again here: an OpenAI-compatible server may ignore the metadata query
        listed = self.client.fine_tuning.jobs.list(metadata={FINGERPRINT_METADATA: fingerprint}, limit=20)
        on_server = [j for j in listed if (j.metadata or {}).get(FINGERPRINT_METADATA) == fingerprint]
        return max(on_server, key=lambda j: j.created_at).id if on_server else None

    def _record(self, job: Any, fingerprint: str, model_key: str, estimate: CostEstimate, settings: OpenAIFineTuningSettings,
                asset_key: str | None, partition_key: str | None) -> None:
        error = _error_message(job) if job.status in FAILED else None
        self.warehouse.upsert_rows(
            "openai_fine_tuning_jobs",
            pl.DataFrame(
                {
                    "job_id": [job.id], "fingerprint": [fingerprint], "model_key": [model_key], "asset_key": [asset_key],
                    "partition_key": [partition_key], "base_model": [settings.base_model], "training_file_id": [job.training_file],
                    "validation_file_id": [job.validation_file], "status": [job.status], "fine_tuned_model": [job.fine_tuned_model],
                    "error_message": [error], "estimated_tokens": [estimate.billed_tokens], "estimated_cost_usd": [estimate.cost_usd],
                    "hyperparameters_json": [settings.model_dump_json()],
                },
                schema_overrides={"asset_key": pl.String, "partition_key": pl.String, "validation_file_id": pl.String,
                                  "fine_tuned_model": pl.String, "error_message": pl.String},
            ),
        )

    def events(self, job_id: str, limit: int = 5) -> tuple[str, ...]:
        return tuple(f"[{e.level}] {e.message}" for e in self.client.fine_tuning.jobs.list_events(job_id, limit=limit).data)

    def advance(
        self,
        model_key: str,
        train_rows: Sequence[Sequence[dict[str, str]]],
        settings: OpenAIFineTuningSettings,
        validation_rows: Sequence[Sequence[dict[str, str]]] = (),
        asset_key: str | None = None,
        partition_key: str | None = None,
    ) -> JobOutcome:
        """One step: submit the job if it does not exist yet, then check its status once."""
        train_data = chat_jsonl(train_rows)
        examples = validate_chat_jsonl(train_data, f"{model_key} training file")
        validation_data = chat_jsonl(validation_rows) if validation_rows else b""
        if validation_data:
            validate_chat_jsonl(validation_data, f"{model_key} validation file", min_examples=1)
        estimate = estimate_cost(examples, settings)
        fingerprint = hashlib.sha256(
            json.dumps([settings.base_model, settings.n_epochs, settings.seed, settings.suffix,
                        _sha256(train_data), _sha256(validation_data)]).encode()
        ).hexdigest()

        job_id = self._known_job(fingerprint)
        job = self.client.fine_tuning.jobs.retrieve(job_id) if job_id else None
        created = False
        if job is not None and job.status in FAILED and settings.resubmit_failed:
            self.log(f"{model_key}: job {job.id} {job.status} ({_error_message(job)}); resubmitting as configured")
            job = None
        if job is None:
            if estimate.cost_usd > settings.max_cost_usd:
                raise InputError(
                    f"{model_key} training file",
                    f"estimated {estimate.billed_tokens:,} billed tokens = ${estimate.cost_usd:.2f}, over the cap "
                    f"max_cost_usd=${settings.max_cost_usd:.2f}; raise the cap or shrink the training set",
                    field="max_cost_usd",
                )
            self.log(f"{model_key}: {estimate.examples} examples, ~{estimate.billed_tokens:,} billed tokens, ~${estimate.cost_usd:.2f}")
            training_file = self.upload(train_data)
            validation_file = self.upload(validation_data) if validation_data else None
            job = self.client.fine_tuning.jobs.create(
                model=settings.base_model,
                training_file=training_file,
                validation_file=validation_file,
                method={"type": "supervised", "supervised": {"hyperparameters": {"n_epochs": settings.n_epochs}}},
                seed=settings.seed,
                suffix=settings.suffix or None,
                metadata={FINGERPRINT_METADATA: fingerprint, "model_key": model_key},
            )
            created = True
            self.log(f"{model_key}: created fine-tuning job {job.id}")
        self._record(job, fingerprint, model_key, estimate, settings, asset_key, partition_key)
        events = self.events(job.id)
        if job.status in FAILED:
            raise FineTuningFailed(
                f"{model_key}: fine-tuning job {job.id} {job.status}: {_error_message(job)}"
                + ("" if settings.resubmit_failed else "; set resubmit_failed to pay for a new job")
            )
        return JobOutcome(job.id, job.status, job.fine_tuned_model, estimate, created, events)


def pending_jobs(warehouse: Warehouse) -> pl.DataFrame:
    """Jobs last seen running: what the sensor checks."""
    return warehouse.query(
        "SELECT job_id, model_key, asset_key, partition_key, status FROM openai_fine_tuning_jobs WHERE status IN (?, ?, ?)",
        list(PENDING),
    )
