"""Submit runs to the project's code location the way the UI does, from the command line.

`culture-assets run` starts `dagster dev -w workspace.yaml` on a free 127.0.0.1 port (webserver,
daemon and one code server, its whole output in a log file) and submits each run through
Dagster's public GraphQL client. The runs therefore belong to the code location: they show under
their job in the UI, the run queue (`concurrency.runs` in dagster.yaml) bounds them, and
"Re-execute" works on them, as on a run launched from the launchpad.
"""

from __future__ import annotations

import ctypes
import json
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Mapping, Sequence

from culture_assets.pipeline import Stage

LOCATION_STATUS = "{ workspaceOrError { ... on Workspace { locationEntries { name loadStatus locationOrLoadError { __typename ... on PythonError { message } } } } } }"
PR_SET_PDEATHSIG = 1


class LauncherError(RuntimeError):
    """`dagster dev` did not start, or the code location did not load; the log file says why."""


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def _stop_with_parent() -> None:
    """In the child: get SIGTERM when the `culture-assets` process dies, even by SIGKILL (Linux)."""
    try:
        ctypes.CDLL("libc.so.6", use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGTERM)
    except OSError:
        pass  # not Linux: an orphaned `dagster dev` is then stopped by hand


class WorkspaceLauncher:
    """`dagster dev` started for the duration of a `with` block; runs submitted over GraphQL."""

    def __init__(self, root: Path, log_path: Path, startup_timeout_s: float = 300):
        self.root, self.log_path, self.startup_timeout_s = root, log_path, startup_timeout_s
        self.port = free_port()
        self.process: subprocess.Popen | None = None
        self.client = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def __enter__(self) -> "WorkspaceLauncher":
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        dagster = shutil.which("dagster") or str(Path(sys.executable).with_name("dagster"))
        with self.log_path.open("ab") as log:
            self.process = subprocess.Popen(
                [dagster, "dev", "-w", "workspace.yaml", "-h", "127.0.0.1", "-p", str(self.port)],
                cwd=self.root, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT, preexec_fn=_stop_with_parent,
            )
        try:
            self._wait_until_loaded()
        except BaseException:
            self.close()
            raise
        from dagster_graphql import DagsterGraphQLClient

        self.client = DagsterGraphQLClient("127.0.0.1", port_number=self.port, timeout=120)
        return self

    def __exit__(self, *exc_info) -> None:
        self.close()

    def _graphql(self, query: str) -> dict:
        body = json.dumps({"query": query}).encode()
        request = urllib.request.Request(f"http://127.0.0.1:{self.port}/graphql", data=body, headers={"Content-Type": "application/json"})
        with urllib.request.urlopen(request, timeout=10) as response:
            return json.loads(response.read())["data"]

    def _wait_until_loaded(self) -> None:
        deadline = time.monotonic() + self.startup_timeout_s
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise LauncherError(f"dagster dev exited with {self.process.returncode}; see {self.log_path}")
            try:
                entries = self._graphql(LOCATION_STATUS)["workspaceOrError"]["locationEntries"]
            except (urllib.error.URLError, ConnectionError, TimeoutError, KeyError, TypeError, ValueError):
                entries = []
            if entries and all(entry["loadStatus"] == "LOADED" for entry in entries):
                errors = [entry["locationOrLoadError"] for entry in entries if entry["locationOrLoadError"]["__typename"] == "PythonError"]
                if errors:
                    raise LauncherError(f"the code location failed to load: {errors[0].get('message', '').strip()[:600]} (see {self.log_path})")
                return
            time.sleep(1)
        raise LauncherError(f"dagster dev did not load the code location within {self.startup_timeout_s:.0f}s; see {self.log_path}")

    def submit(self, stage: Stage, partition: str | None, tags: Mapping[str, str]) -> str:
        return self.client.submit_job_execution(
            stage.job_name, run_config={}, tags=dict(tags), asset_selection=None if stage.whole_job else list(stage.keys)
        )

    def terminate(self, run_ids: Sequence[str]) -> None:
        if run_ids and self.client is not None:
            try:
                self.client.terminate_runs(list(run_ids))
            except Exception as exc:  # stopping anyway: say so, the dead-run check cleans up next time
                print(f"culture-assets: could not terminate runs {list(run_ids)}: {exc}", file=sys.stderr)

    def close(self, grace_s: float = 20) -> None:
        """Stop `dagster dev` (it stops its webserver, daemon and code server), then kill what is left."""
        if self.process is None or self.process.poll() is not None:
            return
        self.process.send_signal(signal.SIGTERM)
        try:
            self.process.wait(timeout=grace_s)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait(timeout=10)
