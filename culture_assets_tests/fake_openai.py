"""A local OpenAI-compatible HTTP server for tests and benchmarks (127.0.0.1 only).

Routes are plain functions registered per test: `server.route("POST", r"/v1/chat/completions")`.
The default chat route answers with `server.chat_reply(request_body) -> str` (set it in a test).
Faults are scripted with `server.fail_next(status, retry_after=..., times=...)`; every request
is recorded in `server.requests` so tests count what was really sent.
"""

from __future__ import annotations

import json
import re
import threading
import time
from collections import deque
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler
from typing import Any, Callable

from culture_assets_tests.local_http import LocalHTTPServer

Handler = Callable[[dict[str, Any], re.Match[str]], tuple[int, dict[str, Any]]]


@dataclass
class RecordedRequest:
    method: str
    path: str
    headers: dict[str, str]
    body: dict[str, Any]


@dataclass
class Fault:
    status: int
    retry_after: float | None = None
    body: dict[str, Any] = field(default_factory=lambda: {"error": {"message": "injected fault", "type": "server_error"}})


class FakeOpenAI:
    def __init__(self, latency_s: float = 0.0, api_key: str | None = None):
        self.latency_s = latency_s
        self.api_key = api_key
        self.requests: list[RecordedRequest] = []
        self.faults: deque[Fault] = deque()
        self.routes: list[tuple[str, re.Pattern[str], Handler]] = []
        self.chat_reply: Callable[[dict[str, Any]], str] = lambda body: "1"
        # when set and the request asks for logprobs: the first answer token's alternatives (token -> log-probability)
        self.chat_top_logprobs: Callable[[dict[str, Any]], dict[str, float]] | None = None
        self._lock = threading.Lock()
        self._http: LocalHTTPServer | None = None
        self.route("POST", r"/v1/chat/completions")(self._chat_completion)

    # --- configuration -------------------------------------------------------------------
    def route(self, method: str, pattern: str) -> Callable[[Handler], Handler]:
        def register(handler: Handler) -> Handler:
            self.routes.insert(0, (method, re.compile(f"^{pattern}$"), handler))
            return handler

        return register

    def fail_next(self, status: int, retry_after: float | None = None, times: int = 1, message: str = "injected fault") -> None:
        for _ in range(times):
            self.faults.append(Fault(status, retry_after, {"error": {"message": message, "type": "server_error", "code": str(status)}}))

    def count(self, path_pattern: str = r".*") -> int:
        return sum(1 for r in self.requests if re.search(path_pattern, r.path))

    @property
    def base_url(self) -> str:
        assert self._http is not None, "start() the server first"
        return f"http://127.0.0.1:{self._http.port}/v1"

    # --- lifecycle -----------------------------------------------------------------------
    def start(self) -> "FakeOpenAI":
        server = self

        class _Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args: Any) -> None:  # keep test output quiet
                pass

            def _serve(self, method: str) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                raw = self.rfile.read(length) if length else b""
                try:
                    body = json.loads(raw) if raw and raw.strip().startswith(b"{") else {"_raw": raw.decode("latin-1")}
                except json.JSONDecodeError:
                    body = {"_raw": raw.decode("latin-1")}
                status, payload, headers = server._dispatch(method, self.path.split("?")[0], dict(self.headers), body)
                data = json.dumps(payload).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                for key, value in headers.items():
                    self.send_header(key, value)
                self.end_headers()
                self.wfile.write(data)

            def do_POST(self) -> None:
                self._serve("POST")

            def do_GET(self) -> None:
                self._serve("GET")

            def do_DELETE(self) -> None:
                self._serve("DELETE")

        self._http = LocalHTTPServer(_Handler, "fake-openai")
        return self

    def stop(self) -> None:
        if self._http is not None:
            self._http.close()
            self._http = None

    def __enter__(self) -> "FakeOpenAI":
        return self.start()

    def __exit__(self, *exc: Any) -> None:
        self.stop()

    # --- request handling ----------------------------------------------------------------
    def _dispatch(self, method: str, path: str, headers: dict[str, str], body: dict[str, Any]) -> tuple[int, dict[str, Any], dict[str, str]]:
        with self._lock:
            self.requests.append(RecordedRequest(method, path, headers, body))
            fault = self.faults.popleft() if self.faults else None
        if self.latency_s:
            time.sleep(self.latency_s)
        # HTTP header names are case-insensitive; httpx sends them in lower case.
        authorization = next((value for name, value in headers.items() if name.lower() == "authorization"), None)
        if self.api_key is not None and authorization != f"Bearer {self.api_key}":
            return 401, {"error": {"message": "Incorrect API key provided.", "type": "invalid_request_error", "code": "invalid_api_key"}}, {}
        if fault is not None:
            extra = {"Retry-After": f"{fault.retry_after:g}"} if fault.retry_after is not None else {}
            return fault.status, fault.body, extra
        for route_method, pattern, handler in self.routes:
            match = pattern.match(path)
            if route_method == method and match:
                status, payload = handler(body, match)
                return status, payload, {}
        return 404, {"error": {"message": f"no route {method} {path}", "type": "invalid_request_error"}}, {}

    def _chat_completion(self, body: dict[str, Any], match: re.Match[str]) -> tuple[int, dict[str, Any]]:
        content = self.chat_reply(body)
        prompt_tokens = sum(len(str(m.get("content", "")).split()) for m in body.get("messages", []))
        completion_tokens = len(content.split())
        return 200, {
            "id": f"chatcmpl-{len(self.requests)}",
            "object": "chat.completion",
            "created": int(time.time()),
            "model": body.get("model", "fake-model"),
            "choices": [{"index": 0, "message": {"role": "assistant", "content": content}, "finish_reason": "stop",
                         "logprobs": self._logprobs(body)}],
            "usage": {"prompt_tokens": prompt_tokens, "completion_tokens": completion_tokens, "total_tokens": prompt_tokens + completion_tokens},
        }


    def _logprobs(self, body: dict[str, Any]) -> dict[str, Any] | None:
        """OpenAI's logprobs object for the first answer token, when asked for and configured."""
        if not body.get("logprobs") or self.chat_top_logprobs is None:
            return None
        offered = self.chat_top_logprobs(body)
        if not offered:  # this request gets none, as from an endpoint that does not return them
            return None
        alternatives = sorted(offered.items(), key=lambda item: -item[1])[: int(body.get("top_logprobs") or 1)]
        top = [{"token": t, "logprob": lp, "bytes": list(t.encode())} for t, lp in alternatives]
        return {"content": [{**top[0], "top_logprobs": top}], "refusal": None}


# --- fine-tuning API (files, fine_tuning.jobs, events): added for the training stage -----------------
def _multipart_file(raw: str) -> tuple[str, bytes, str]:
    """(filename, content, purpose) from a multipart/form-data body the openai client sent."""
    boundary = raw.split("\r\n", 1)[0]
    filename, content, purpose = "upload", b"", ""
    for part in raw.split(boundary):
        if "\r\n\r\n" not in part:
            continue
        head, value = part.split("\r\n\r\n", 1)
        value = value.removesuffix("\r\n")
        name = re.search(r'name="([^"]+)"', head)
        if name and name.group(1) == "file":
            found = re.search(r'filename="([^"]*)"', head)
            filename, content = (found.group(1) if found else filename), value.encode("latin-1")
        elif name and name.group(1) == "purpose":
            purpose = value
    return filename, content, purpose


class FakeFineTuning:
    """State of the fake fine-tuning API. Jobs stay `queued` until a test calls `succeed()` or `fail()`."""

    def __init__(self, server: FakeOpenAI):
        self.server = server
        self.files: dict[str, dict[str, Any]] = {}
        self.contents: dict[str, bytes] = {}
        self.jobs: dict[str, dict[str, Any]] = {}
        self.events: dict[str, list[dict[str, Any]]] = {}
        server.route("POST", r"/v1/files")(self._create_file)
        server.route("GET", r"/v1/files")(self._list_files)
        server.route("GET", r"/v1/files/(?P<id>[^/]+)")(self._get_file)
        server.route("POST", r"/v1/fine_tuning/jobs")(self._create_job)
        server.route("GET", r"/v1/fine_tuning/jobs")(self._list_jobs)
        server.route("GET", r"/v1/fine_tuning/jobs/(?P<id>[^/]+)")(self._get_job)
        server.route("GET", r"/v1/fine_tuning/jobs/(?P<id>[^/]+)/events")(self._list_events)
        server.route("POST", r"/v1/fine_tuning/jobs/(?P<id>[^/]+)/cancel")(self._cancel_job)

    # --- test controls -------------------------------------------------------------------------
    def succeed(self, job_id: str, model: str | None = None) -> str:
        job = self.jobs[job_id]
        job.update(status="succeeded", fine_tuned_model=model or f"ft:{job['model']}:culture-assets::{job_id[-6:]}", finished_at=int(time.time()))
        self._event(job_id, "info", "The job has successfully completed")
        return job["fine_tuned_model"]

    def fail(self, job_id: str, message: str) -> None:
        self.jobs[job_id].update(status="failed", error={"code": "invalid_training_file", "message": message, "param": "training_file"})
        self._event(job_id, "error", message)

    # --- routes --------------------------------------------------------------------------------
    def _event(self, job_id: str, level: str, message: str) -> None:
        self.events.setdefault(job_id, []).insert(
            0, {"id": f"ftevent-{len(self.events.get(job_id, []))}", "object": "fine_tuning.job.event", "created_at": int(time.time()),
                "level": level, "message": message, "type": "message"}
        )

    def _create_file(self, body: dict[str, Any], match: re.Match[str]) -> tuple[int, dict[str, Any]]:
        filename, content, purpose = _multipart_file(body.get("_raw", ""))
        file_id = f"file-{len(self.files) + 1:04d}"
        self.files[file_id] = {"id": file_id, "object": "file", "bytes": len(content), "created_at": int(time.time()),
                               "filename": filename, "purpose": purpose, "status": "processed"}
        self.contents[file_id] = content
        return 200, self.files[file_id]

    def _list_files(self, body: dict[str, Any], match: re.Match[str]) -> tuple[int, dict[str, Any]]:
        return 200, {"object": "list", "data": list(self.files.values()), "has_more": False}

    def _get_file(self, body: dict[str, Any], match: re.Match[str]) -> tuple[int, dict[str, Any]]:
        found = self.files.get(match.group("id"))
        return (200, found) if found else (404, {"error": {"message": "No such File object", "type": "invalid_request_error"}})

    def _create_job(self, body: dict[str, Any], match: re.Match[str]) -> tuple[int, dict[str, Any]]:
        for field_name in ("training_file", "validation_file"):
            if body.get(field_name) and body[field_name] not in self.files:
                return 400, {"error": {"message": f"invalid {field_name}: {body[field_name]}", "type": "invalid_request_error"}}
        job_id = f"ftjob-{len(self.jobs) + 1:06d}"
        self.jobs[job_id] = {
            "id": job_id, "object": "fine_tuning.job", "created_at": int(time.time()) + len(self.jobs), "error": None,
            "fine_tuned_model": None, "finished_at": None, "hyperparameters": {"n_epochs": "auto", "batch_size": "auto", "learning_rate_multiplier": "auto"},
            "model": body["model"], "organization_id": "org-fake", "result_files": [], "seed": body.get("seed", 0),
            "status": "queued", "trained_tokens": None, "training_file": body["training_file"],
            "validation_file": body.get("validation_file"), "metadata": body.get("metadata"), "method": body.get("method"),
        }
        self._event(job_id, "info", "Created fine-tuning job")
        return 200, self.jobs[job_id]

    def _list_jobs(self, body: dict[str, Any], match: re.Match[str]) -> tuple[int, dict[str, Any]]:
        # the client sends metadata filters as query parameters, which this server does not parse: return all
        return 200, {"object": "list", "data": sorted(self.jobs.values(), key=lambda j: -j["created_at"]), "has_more": False}

    def _get_job(self, body: dict[str, Any], match: re.Match[str]) -> tuple[int, dict[str, Any]]:
        found = self.jobs.get(match.group("id"))
        return (200, found) if found else (404, {"error": {"message": "No such fine-tuning job", "type": "invalid_request_error"}})

    def _list_events(self, body: dict[str, Any], match: re.Match[str]) -> tuple[int, dict[str, Any]]:
        return 200, {"object": "list", "data": self.events.get(match.group("id"), []), "has_more": False}

    def _cancel_job(self, body: dict[str, Any], match: re.Match[str]) -> tuple[int, dict[str, Any]]:
        job = self.jobs[match.group("id")]
        job["status"] = "cancelled"
        self._event(job["id"], "info", "Job cancelled by user")
        return 200, job


def install_fine_tuning_routes(server: FakeOpenAI) -> FakeFineTuning:
    """Add the files and fine-tuning endpoints to a started or unstarted fake server."""
    return FakeFineTuning(server)
