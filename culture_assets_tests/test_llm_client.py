"""The LLM layer against the local fake OpenAI server: cache, retries, budget, dry run, failures."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from culture_assets.llm import (
    ChatRequest,
    DryRunStop,
    LLMAuthError,
    LLMModelError,
    LLMUnreachableError,
    RetryPolicy,
    redact,
)
from culture_assets.resources.llm import LLMResource
from culture_assets.store import Warehouse
from culture_assets_tests.fake_openai import FakeOpenAI

FAST = {"max_retries": 3, "backoff_base_s": 0.01, "max_backoff_s": 1.0}


def _requests(n: int) -> list[ChatRequest]:
    return [ChatRequest.of([{"role": "user", "content": f"say {i}"}], {"temperature": 0, "max_tokens": 8}, tag=i) for i in range(n)]


def _llm(server: FakeOpenAI, **overrides) -> LLMResource:
    settings = {"model": "fake-model", "api_key": "sk-test-key", "base_url": server.base_url, "concurrency": 4, **FAST}
    settings.update(overrides)
    return LLMResource(**settings)


def _echo(body: dict) -> str:
    return "echo: " + body["messages"][-1]["content"]


def test_cache_makes_the_second_run_free(fake_openai: FakeOpenAI, tmp_path: Path) -> None:
    fake_openai.chat_reply = _echo
    warehouse = Warehouse(tmp_path / "w.duckdb")
    first = _llm(fake_openai).runner(warehouse).run(_requests(6))
    assert [o.content for o in first] == [f"echo: say {i}" for i in range(6)]
    assert [o.request.tag for o in first] == list(range(6))
    assert {o.status for o in first} == {"ok"}
    sent = fake_openai.count(r"/chat/completions")
    assert sent == 6

    runner = _llm(fake_openai).runner(warehouse)
    second = runner.run(_requests(6))
    assert fake_openai.count(r"/chat/completions") == sent
    assert {o.status for o in second} == {"cached"}
    assert [o.content for o in second] == [o.content for o in first]
    assert runner.stats.cache_hits == 6 and runner.stats.sent == 0
    rows = warehouse.query("SELECT model, request_json FROM llm_cache")
    assert rows.height == 6 and set(rows["model"]) == {"fake-model"}
    assert json.loads(rows["request_json"][0])["params"] == {"max_tokens": 8, "temperature": 0}


def test_identical_requests_in_one_batch_are_sent_once(fake_openai: FakeOpenAI, tmp_path: Path) -> None:
    fake_openai.chat_reply = _echo
    outcomes = _llm(fake_openai).runner(Warehouse(tmp_path / "w.duckdb")).run(_requests(3) + _requests(3))
    assert fake_openai.count(r"/chat/completions") == 3
    assert [o.content for o in outcomes[3:]] == [o.content for o in outcomes[:3]]


def test_retries_honour_retry_after_then_succeed(fake_openai: FakeOpenAI, tmp_path: Path) -> None:
    fake_openai.chat_reply = _echo
    fake_openai.fail_next(429, retry_after=0.05)
    fake_openai.fail_next(503, retry_after=0.07)
    fake_openai.fail_next(500)
    runner = _llm(fake_openai, concurrency=1).runner(Warehouse(tmp_path / "w.duckdb"))
    outcomes = runner.run(_requests(2))
    assert [o.content for o in outcomes] == ["echo: say 0", "echo: say 1"]
    assert fake_openai.count(r"/chat/completions") == 5
    assert runner.stats.retries == 3
    assert runner.stats.waits_s[:2] == [0.05, 0.07]  # exactly what the server asked for
    assert 0.005 <= runner.stats.waits_s[2] <= 0.04  # backoff attempt 2 without Retry-After: 0.02..0.04


def test_backoff_grows_exponentially_with_jitter_and_is_capped() -> None:
    policy = RetryPolicy(max_retries=8, backoff_base_s=1.0, max_backoff_s=10.0)
    for attempt in range(4):
        waits = {policy.backoff(attempt, None) for _ in range(50)}
        assert all(2**attempt / 2 <= w <= 2**attempt for w in waits)
        assert len(waits) > 1  # jittered
    assert policy.backoff(10, None) == 10.0
    assert policy.backoff(0, 300.0) == 10.0


def test_persistent_rate_limit_fails_clearly_after_the_retries(fake_openai: FakeOpenAI, tmp_path: Path) -> None:
    fake_openai.fail_next(429, retry_after=0.01, times=10)
    with pytest.raises(Exception, match=r"still failing after 4 attempts.*concurrency"):
        _llm(fake_openai, concurrency=1).runner(Warehouse(tmp_path / "w.duckdb")).run(_requests(1))
    assert fake_openai.count(r"/chat/completions") == 4


def test_budget_stops_cleanly_and_a_larger_budget_resumes(fake_openai: FakeOpenAI, tmp_path: Path) -> None:
    fake_openai.chat_reply = _echo
    warehouse = Warehouse(tmp_path / "w.duckdb")
    runner = _llm(fake_openai, max_requests=3).runner(warehouse)
    outcomes = runner.run(_requests(10))
    assert fake_openai.count(r"/chat/completions") == 3
    assert sum(o.status == "ok" for o in outcomes) == 3
    assert sum(o.status == "budget_exhausted" and o.content is None for o in outcomes) == 7
    assert runner.stats.budget_exhausted

    resumed = _llm(fake_openai).runner(warehouse)
    assert {o.status for o in resumed.run(_requests(10))} == {"ok", "cached"}
    assert fake_openai.count(r"/chat/completions") == 10
    assert resumed.stats.sent == 7


def test_token_budget_stops_new_calls(fake_openai: FakeOpenAI, tmp_path: Path) -> None:
    fake_openai.chat_reply = lambda body: "word " * 20
    runner = _llm(fake_openai, concurrency=1, max_tokens=50).runner(Warehouse(tmp_path / "w.duckdb"))
    outcomes = runner.run(_requests(10))
    assert runner.stats.sent == 3  # 22 tokens per call: the third call crosses 50
    assert sum(o.status == "budget_exhausted" for o in outcomes) == 7


def test_dry_run_reports_calls_and_tokens_and_sends_nothing(fake_openai: FakeOpenAI, tmp_path: Path) -> None:
    fake_openai.chat_reply = _echo
    warehouse = Warehouse(tmp_path / "w.duckdb")
    _llm(fake_openai).runner(warehouse).run(_requests(2))
    logged: list[str] = []
    with pytest.raises(DryRunStop) as stopped:
        _llm(fake_openai, dry_run=True).runner(warehouse, log=logged.append).run(_requests(5))
    estimate = stopped.value.estimate
    assert (estimate.requests, estimate.cached, estimate.to_send) == (5, 2, 3)
    assert estimate.max_completion_tokens == 24 and estimate.prompt_tokens > 0
    assert "3 to send" in logged[0]
    assert fake_openai.count(r"/chat/completions") == 2


def test_invalid_api_key_names_the_setting_and_hides_the_key(tmp_path: Path) -> None:
    with FakeOpenAI(api_key="sk-the-right-one") as server:
        with pytest.raises(LLMAuthError) as failed:
            _llm(server, api_key="sk-wrong-CANARY-0123456789").runner(Warehouse(tmp_path / "w.duckdb")).run(_requests(2))
    message = str(failed.value)
    assert "OPENAI_API_KEY" in message and "401" in message
    assert "CANARY" not in message


def test_rejected_model_names_the_model(fake_openai: FakeOpenAI, tmp_path: Path) -> None:
    @fake_openai.route("POST", r"/v1/chat/completions")
    def only_known_models(body: dict, match) -> tuple[int, dict]:
        return 404, {"error": {"message": f"The model `{body['model']}` does not exist", "type": "invalid_request_error", "code": "model_not_found"}}

    with pytest.raises(LLMModelError, match=r"rejected model 'no-such-model'.*`model`"):
        _llm(fake_openai, model="no-such-model").runner(Warehouse(tmp_path / "w.duckdb")).run(_requests(1))


def test_unreachable_endpoint_names_the_url(tmp_path: Path) -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    url = f"http://127.0.0.1:{port}/v1"
    resource = LLMResource(model="m", api_key="sk-x", base_url=url, max_retries=1, backoff_base_s=0.01)
    with pytest.raises(LLMUnreachableError, match=rf"{port}.*OPENAI_BASE_URL"):
        resource.runner(Warehouse(tmp_path / "w.duckdb")).run(_requests(1))


def test_redact_removes_the_key_and_key_shaped_strings() -> None:
    assert redact("bad key sk-abc123XYZ and Bearer secret-token", None) == "bad key *** and ***"
    assert "hunter22" not in redact("key hunter22 rejected", "hunter22")


def test_a_killed_run_resumes_from_the_cache(tmp_path: Path) -> None:
    db = tmp_path / "w.duckdb"
    script = textwrap.dedent(
        f"""
        from culture_assets.llm import ChatRequest
        from culture_assets.resources.llm import LLMResource
        from culture_assets.store import Warehouse
        requests = [ChatRequest.of([{{"role": "user", "content": f"say {{i}}"}}], {{"max_tokens": 8}}) for i in range(20)]
        LLMResource(model="fake-model", api_key="sk-x", base_url=BASE_URL, concurrency=1).runner(Warehouse(__import__("pathlib").Path({str(db)!r}))).run(requests)
        """
    )
    with FakeOpenAI(latency_s=0.1) as server:
        server.chat_reply = _echo
        env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[1])}
        child = subprocess.Popen([sys.executable, "-c", script.replace("BASE_URL", repr(server.base_url))], env=env)
        try:
            while server.count(r"/chat/completions") < 6 and child.poll() is None:
                time.sleep(0.05)
        finally:
            child.send_signal(signal.SIGKILL)
            child.wait()
        killed_after = server.count(r"/chat/completions")
        assert killed_after < 20, "the child finished before it could be killed"
        warehouse = Warehouse(db)
        cached = warehouse.query("SELECT count(*) AS n FROM llm_cache")["n"][0]
        assert cached >= 5
        requests = [ChatRequest.of([{"role": "user", "content": f"say {i}"}], {"max_tokens": 8}) for i in range(20)]
        outcomes = LLMResource(model="fake-model", api_key="sk-x", base_url=server.base_url).runner(warehouse).run(requests)
        assert [o.content for o in outcomes] == [f"echo: say {i}" for i in range(20)]
        assert server.count(r"/chat/completions") - killed_after == 20 - cached


def test_local_model_serves_through_the_same_interface(tiny_model_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    resource = LLMResource(local_model=str(tiny_model_dir))
    assert not resource.uses_api and resource.model_name == str(tiny_model_dir)
    warehouse = Warehouse(tmp_path / "w.duckdb")
    outcomes = resource.runner(warehouse).run(_requests(2))
    assert all(o.status == "ok" and isinstance(o.content, str) and o.completion_tokens > 0 for o in outcomes)
    again = resource.runner(warehouse).run(_requests(2))
    assert [o.status for o in again] == ["cached", "cached"]
