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
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Callable

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
        self._lock = threading.Lock()
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None
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
        assert self._server is not None, "start() the server first"
        return f"http://127.0.0.1:{self._server.server_address[1]}/v1"

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

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None

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
            "choices": [{"index": 0, "message": {"role": "assistant", "content": content}, "finish_reason": "stop", "logprobs": None}],
            "usage": {"prompt_tokens": prompt_tokens, "completion_tokens": completion_tokens, "total_tokens": prompt_tokens + completion_tokens},
        }
