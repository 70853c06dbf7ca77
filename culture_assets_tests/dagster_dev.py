"""`dagster dev -w workspace.yaml` as a test fixture: started on a free 127.0.0.1 port, stopped by process group.

DAGSTER_HOME and the data home are fresh temporary directories; DAGSTER_HOME gets the project's dagster.yaml.
Stopping sends SIGTERM to the process group (webserver, daemon, code servers and run workers all live in it),
then SIGKILL to whatever is left, and reports any process that outlived both.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path

import psutil

ASSET_NODES = "{ assetNodes { assetKey { path } isPartitioned partitionKeys } }"


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@dataclass
class DagsterDev:
    root: Path
    workdir: Path
    port: int
    process: subprocess.Popen | None = None
    seen_pids: set[int] = field(default_factory=set)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def data_home(self) -> Path:
        return self.workdir / "home"

    @property
    def log_path(self) -> Path:
        return self.workdir / "dagster_dev.log"

    def graphql(self, query: str, variables: dict | None = None, timeout: float = 30) -> dict:
        body = json.dumps({"query": query, "variables": variables or {}}).encode()
        request = urllib.request.Request(f"{self.url}/graphql", data=body, headers={"Content-Type": "application/json"})
        with urllib.request.urlopen(request, timeout=timeout) as response:
            payload = json.loads(response.read())
        if payload.get("errors"):
            raise AssertionError(f"GraphQL errors: {payload['errors']}")
        return payload["data"]

    def start(self, timeout_s: float = 150) -> "DagsterDev":
        dagster_home = self.data_home / "dagster_home"
        dagster_home.mkdir(parents=True)
        shutil.copyfile(self.root / "dagster.yaml", dagster_home / "dagster.yaml")
        env = {**os.environ, "DAGSTER_HOME": str(dagster_home), "CULTURE_ASSETS_HOME": str(self.data_home)}
        env.pop("CULTURE_ASSETS_SURVEY", None)
        with self.log_path.open("wb") as log:
            self.process = subprocess.Popen(
                [sys.executable, "-m", "dagster", "dev", "-w", "workspace.yaml", "-h", "127.0.0.1", "-p", str(self.port)],
                cwd=self.root, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
            )
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            self._remember_children()
            if self.process.poll() is not None:
                raise RuntimeError(f"dagster dev exited with {self.process.returncode}:\n{self.log_tail()}")
            try:
                nodes = self.graphql(ASSET_NODES, timeout=5)["assetNodes"]
                if any(node["assetKey"]["path"] == ["seed_survey"] for node in nodes):
                    return self
            except (urllib.error.URLError, ConnectionError, TimeoutError, AssertionError, KeyError):
                pass
            time.sleep(1)
        self.stop()
        raise RuntimeError(f"dagster dev did not list the assets within {timeout_s:.0f}s:\n{self.log_tail()}")

    def _remember_children(self) -> None:
        if self.process is None:
            return
        try:
            parent = psutil.Process(self.process.pid)
            self.seen_pids |= {self.process.pid, *(child.pid for child in parent.children(recursive=True))}
        except psutil.NoSuchProcess:
            pass

    def log_tail(self, chars: int = 4000) -> str:
        return self.log_path.read_text(errors="replace")[-chars:] if self.log_path.exists() else ""

    def stop(self, grace_s: float = 30) -> list[int]:
        """Stop dagster dev and everything it started; return the pids still alive afterwards (should be none)."""
        if self.process is None:
            return []
        self._remember_children()
        group = os.getpgid(self.process.pid) if self.process.poll() is None else self.process.pid
        for sig in (signal.SIGTERM, signal.SIGKILL):
            try:
                os.killpg(group, sig)
            except ProcessLookupError:
                break
            deadline = time.monotonic() + grace_s
            while self._alive() and time.monotonic() < deadline:
                self.process.poll()  # reap our own child so it does not linger as a zombie
                time.sleep(0.2)
            if not self._alive():
                break
        self.process.wait(timeout=10)
        return self._alive()

    def _alive(self) -> list[int]:
        alive = []
        for pid in sorted(self.seen_pids):
            try:
                if psutil.Process(pid).status() != psutil.STATUS_ZOMBIE:
                    alive.append(pid)
            except psutil.NoSuchProcess:
                pass
        return alive
