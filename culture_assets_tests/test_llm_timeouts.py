"""An endpoint that accepts connections and never answers: the run fails within the bound and says which setting to change."""

import socket
import threading
import time
from typing import Iterator

import pytest

from culture_assets.llm import LLMTimeoutError
from culture_assets.resources.llm import LLMResource
from culture_assets.llm.runner import ChatRequest

SILENT_BOUND_S = 120  # issue 11: the default configuration gives up within 2 minutes


@pytest.fixture
def silent_server() -> Iterator[str]:
    """A 127.0.0.1 server that accepts every connection, reads, and never replies; closed after the test."""
    listener = socket.create_server(("127.0.0.1", 0))
    held: list[socket.socket] = []
    stop = threading.Event()

    def accept() -> None:
        listener.settimeout(0.2)
        while not stop.is_set():
            try:
                held.append(listener.accept()[0])
            except TimeoutError:
                continue
            except OSError:
                return

    thread = threading.Thread(target=accept, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{listener.getsockname()[1]}/v1"
    finally:
        stop.set()
        thread.join(timeout=5)
        for connection in held:
            connection.close()
        listener.close()


def ask_silent_server(llm: LLMResource) -> tuple[float, str]:
    runner = llm.runner(warehouse=None)
    started = time.monotonic()
    with pytest.raises(LLMTimeoutError) as failure:
        runner.run([ChatRequest.of([{"role": "user", "content": "Say hi."}])])
    return time.monotonic() - started, str(failure.value)


def assert_names_the_setting(message: str) -> None:
    assert "request_timeout_s" in message
    assert "CULTURE_ASSETS_LLM_TIMEOUT_S" in message  # the command line's way
    assert "resources: llm: config: request_timeout_s" in message  # the launchpad's way


def test_a_silent_endpoint_fails_after_two_timeouts_naming_the_setting(silent_server):
    elapsed, message = ask_silent_server(LLMResource(api_key="sk-test-silent", base_url=silent_server, request_timeout_s=1.0))
    assert elapsed < 6, f"two 1 s timeouts and one short backoff took {elapsed:.1f}s"
    assert "2 attempts" in message
    assert_names_the_setting(message)


@pytest.mark.slow
def test_the_default_configuration_gives_up_within_two_minutes(silent_server):
    elapsed, message = ask_silent_server(LLMResource(api_key="sk-test-silent", base_url=silent_server))
    assert elapsed < SILENT_BOUND_S, f"default config waited {elapsed:.0f}s on a silent server"
    assert_names_the_setting(message)
