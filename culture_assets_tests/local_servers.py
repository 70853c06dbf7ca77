"""Throwaway servers on 127.0.0.1 for the scale-out tests: PostgreSQL (instance storage) and Redis (Celery broker).

Each starts from Debian's binaries in a temporary directory on a free port and is stopped by the test that
started it; a test skips with the reason when the binaries are absent. Registered as fixtures in conftest.py.
"""

from __future__ import annotations

import glob
import os
import pwd
import shutil
import signal
import subprocess
import tempfile
import time
from pathlib import Path
from typing import Iterator

import pytest

from culture_assets_tests.dagster_dev import free_port


def postgres_bin() -> Path | None:
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"))
    if found:
        return Path(found[-1]).parent
    initdb = shutil.which("initdb")
    return Path(initdb).parent if initdb else None


def run_checked(args: list, **kwargs) -> None:
    done = subprocess.run(args, capture_output=True, text=True, **kwargs)
    if done.returncode:
        raise RuntimeError(f"{args[0].name} failed ({done.returncode}): {done.stdout}{done.stderr}")


@pytest.fixture
def postgres_server() -> Iterator[dict]:
    """A PostgreSQL server (initdb/pg_ctl), as the unprivileged `postgres` user when the tests run as root.

    Yields the `postgres_db` section of a dagster-postgres storage config.
    """
    pytest.importorskip("dagster_postgres", reason="dagster-postgres is not installed (pip install -e '.[scale]')")
    bin_dir = postgres_bin()
    if bin_dir is None:
        pytest.skip("no PostgreSQL server binaries (apt-get install postgresql)")
    user = None
    if os.geteuid() == 0:  # initdb refuses to run as root
        try:
            user = pwd.getpwnam("postgres")
        except KeyError:
            pytest.skip("running as root and there is no 'postgres' user to run the server as")
    # Not under pytest's tmp dir: that is private to root, and the server user must reach its data directory.
    data = Path(tempfile.mkdtemp(prefix="culture-assets-pg-"))
    if user:
        os.chown(data, user.pw_uid, user.pw_gid)
    port = free_port()
    as_user = {"user": user.pw_uid, "group": user.pw_gid} if user else {}
    try:
        run_checked([bin_dir / "initdb", "-D", data / "db", "-U", "dagster", "--auth=trust", "-E", "UTF8"], **as_user)
        options = f"-h 127.0.0.1 -p {port} -k {data}"
        run_checked([bin_dir / "pg_ctl", "-D", data / "db", "-o", options, "-l", data / "server.log", "-w", "start"], **as_user)
        try:
            yield {"hostname": "127.0.0.1", "port": port, "username": "dagster", "password": "", "db_name": "postgres",
                   "scheme": "postgresql+psycopg2"}
        finally:
            run_checked([bin_dir / "pg_ctl", "-D", data / "db", "-m", "fast", "-w", "stop"], **as_user)
    finally:
        shutil.rmtree(data, ignore_errors=True)


def wait_for_redis(url: str, server: subprocess.Popen, timeout_s: float = 20.0) -> None:
    import redis

    deadline = time.monotonic() + timeout_s
    while True:
        if server.poll() is not None:
            raise RuntimeError(f"redis-server exited with {server.returncode} before answering on {url}")
        try:
            if redis.Redis.from_url(url, socket_timeout=1).ping():
                return
        except redis.ConnectionError:
            if time.monotonic() > deadline:
                raise RuntimeError(f"redis-server did not answer on {url} within {timeout_s:.0f}s") from None
            time.sleep(0.1)


@pytest.fixture
def redis_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A Redis server (Debian's `redis-server`) without persistence; yields its redis:// URL."""
    pytest.importorskip("redis", reason="the redis client is not installed (pip install -e '.[test]')")
    binary = shutil.which("redis-server")
    if binary is None:
        pytest.skip("no redis-server binary (apt-get install redis-server)")
    port = free_port()
    workdir = tmp_path_factory.mktemp("redis")
    server = subprocess.Popen(
        [binary, "--bind", "127.0.0.1", "--port", str(port), "--save", "", "--appendonly", "no", "--dir", str(workdir)],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )
    url = f"redis://127.0.0.1:{port}/0"
    try:
        wait_for_redis(url, server)
        yield url
    finally:
        server.send_signal(signal.SIGTERM)
        try:
            server.wait(timeout=10)
        except subprocess.TimeoutExpired:
            server.kill()
            server.wait()
