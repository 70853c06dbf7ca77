from __future__ import annotations

import openai
import pytest

from culture_assets.errors import InputError
from culture_assets.store.warehouse import Warehouse
from culture_assets.survey.questions import load_questions
from culture_assets.training.openai_jobs import (
    FineTuningFailed,
    FineTuningJobs,
    OpenAIFineTuningSettings,
    chat_jsonl,
    estimate_cost,
    pending_jobs,
    validate_chat_jsonl,
)
from culture_assets.training.training_set import chat_messages
from culture_assets_tests.fake_openai import install_fine_tuning_routes

ROWS = [chat_messages("You are a Turkish chatbot.", q.text, q, str(q.valid_codes[0])) for q in load_questions()[:12]]
SETTINGS = OpenAIFineTuningSettings(base_model="gpt-4o-mini-2024-07-18", n_epochs=2, suffix="turkish")


@pytest.fixture
def api(fake_openai):
    fine_tuning = install_fine_tuning_routes(fake_openai)
    client = openai.OpenAI(api_key="test", base_url=fake_openai.base_url, max_retries=0)
    return fake_openai, fine_tuning, client


def posts(server, path: str) -> int:
    return sum(1 for r in server.requests if r.method == "POST" and r.path == path)


def jobs_for(client, tmp_path) -> FineTuningJobs:
    return FineTuningJobs(client, Warehouse(tmp_path / "warehouse.duckdb"))


def test_jsonl_validation_names_line_and_field():
    data = chat_jsonl(ROWS)
    assert len(validate_chat_jsonl(data, "train.jsonl")) == 12
    bad = data.replace(b'"role": "assistant"', b'"role": "bot"', 1)
    with pytest.raises(InputError, match=r"train.jsonl, row 1, field 'messages\[2\].role'"):
        validate_chat_jsonl(bad, "train.jsonl")
    with pytest.raises(InputError, match="row 2.*not valid JSON"):
        validate_chat_jsonl(data.split(b"\n")[0] + b"\n{oops\n", "train.jsonl")
    with pytest.raises(InputError, match="at least 10"):
        validate_chat_jsonl(chat_jsonl(ROWS[:3]), "train.jsonl")
    estimate = estimate_cost(ROWS, SETTINGS)
    assert estimate.billed_tokens == 2 * estimate.tokens_per_epoch > 12 * 20
    assert estimate.cost_usd == pytest.approx(estimate.billed_tokens * 3.0 / 1e6)  # gpt-4o-mini's list price
    gpt35 = estimate_cost(ROWS, SETTINGS.model_copy(update={"base_model": "gpt-3.5-turbo-0125"}))
    assert gpt35.cost_usd == pytest.approx(estimate.billed_tokens * 8.0 / 1e6)  # the paper's base model
    assert estimate_cost(ROWS, SETTINGS.model_copy(update={"price_per_million_tokens": 1.0})).cost_usd == pytest.approx(estimate.billed_tokens / 1e6)
    with pytest.raises(InputError, match="no known fine-tuning price for base model 'my-model'.*price_per_million_tokens"):
        estimate_cost(ROWS, SETTINGS.model_copy(update={"base_model": "my-model"}))


def test_job_is_created_once_polled_step_by_step_and_found_again_on_rerun(api, tmp_path):
    server, fine_tuning, client = api
    manager = jobs_for(client, tmp_path)
    first = manager.advance("turkish-default", ROWS, SETTINGS, ROWS[:2], asset_key="culture_model", partition_key="turkish")
    assert first.created and first.pending and first.status == "queued"
    assert first.events == ("[info] Created fine-tuning job",) and server.count(rf"^/v1/fine_tuning/jobs/{first.job_id}/events$") == 1
    assert posts(server, "/v1/files") == 2 and posts(server, "/v1/fine_tuning/jobs") == 1
    uploaded = fine_tuning.contents[fine_tuning.jobs[first.job_id]["training_file"]]
    assert uploaded == chat_jsonl(ROWS)
    assert fine_tuning.jobs[first.job_id]["method"]["supervised"]["hyperparameters"] == {"n_epochs": 2}
    assert pending_jobs(manager.warehouse)["job_id"].to_list() == [first.job_id]

    second = manager.advance("turkish-default", ROWS, SETTINGS, ROWS[:2])
    assert not second.created and second.job_id == first.job_id and second.pending

    model = fine_tuning.succeed(first.job_id)
    done = manager.advance("turkish-default", ROWS, SETTINGS, ROWS[:2])
    assert done.status == "succeeded" and done.fine_tuned_model == model
    assert done.events[0] == "[info] The job has successfully completed"
    assert pending_jobs(manager.warehouse).height == 0
    assert posts(server, "/v1/fine_tuning/jobs") == 1 and posts(server, "/v1/files") == 2

    # warehouse lost: the job is found on the server by its fingerprint metadata, files by name
    fresh = FineTuningJobs(client, Warehouse(tmp_path / "other.duckdb"))
    found = fresh.advance("turkish-default", ROWS, SETTINGS, ROWS[:2])
    assert found.job_id == first.job_id and found.fine_tuned_model == model and not found.created
    assert posts(server, "/v1/fine_tuning/jobs") == 1


def test_failed_job_raises_the_server_message_and_is_not_paid_again(api, tmp_path):
    server, fine_tuning, client = api
    manager = jobs_for(client, tmp_path)
    job = manager.advance("turkish-default", ROWS, SETTINGS)
    fine_tuning.fail(job.job_id, "Training file has 3 examples with missing assistant messages")
    with pytest.raises(FineTuningFailed, match=f"{job.job_id} failed: Training file has 3 examples"):
        manager.advance("turkish-default", ROWS, SETTINGS)
    with pytest.raises(FineTuningFailed, match="set resubmit_failed"):
        manager.advance("turkish-default", ROWS, SETTINGS)
    assert posts(server, "/v1/fine_tuning/jobs") == 1
    recorded = manager.warehouse.query("SELECT status, error_message FROM openai_fine_tuning_jobs")
    assert recorded.row(0) == ("failed", "Training file has 3 examples with missing assistant messages")

    retry = manager.advance("turkish-default", ROWS, SETTINGS.model_copy(update={"resubmit_failed": True}))
    assert retry.created and retry.job_id != job.job_id
    assert posts(server, "/v1/fine_tuning/jobs") == 2 and posts(server, "/v1/files") == 1  # the file is reused


def test_cost_cap_refuses_before_uploading_anything(api, tmp_path):
    server, _, client = api
    with pytest.raises(InputError, match="over the cap"):
        jobs_for(client, tmp_path).advance("turkish-default", ROWS, SETTINGS.model_copy(update={"max_cost_usd": 0.0}))
    assert posts(server, "/v1/files") == 0 and posts(server, "/v1/fine_tuning/jobs") == 0
