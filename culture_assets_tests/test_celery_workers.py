"""Steps on two Celery workers (Redis broker, Postgres instance) give the same outputs and warehouse rows as one process.

seed_survey -> training_set -> culture_model -> culture_scores for three cultures with the demo profile's tiny model:
once with every step in one process (data home A, SQLite instance), once submitted to Celery (data home B, a
Postgres instance, two `dagster-celery worker start` processes), the three Celery runs submitted at once. Both homes
start from the same upstream values. Checked: every step reports the worker that ran it and both workers ran some;
no two `duckdb_writer` steps overlapped; adapter weights, stored values and warehouse rows are equal (timestamps,
run ids and path-derived hashes aside). Marked slow (about 4.5 minutes on 2 busy cores). Skips with the reason when
redis-server, the PostgreSQL binaries or dagster-celery are absent.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any, Iterator

import duckdb
import polars as pl
import pytest
import yaml

from culture_assets.cli import project_root
from culture_assets_tests.celery_run import CHAIN

ROOT = project_root(Path(__file__).parent)
CULTURES = ["arabic", "german", "korean"]
WORKERS = ("worker-a", "worker-b")
# values that differ between two runs of the same inputs by nature, not by outcome
VOLATILE_KEYS = ("run_id", "written_at", "created_at", "updated_at", "train_runtime_s", "train_samples_per_second", "elapsed_s")
# per table, columns that legitimately differ: the cache key and the metrics' config hash derive from a model's
# fingerprint, which includes its base model's path (a different data home here); a cache entry shared by cultures
# (the base model on the same text) records the dataset and row of whichever culture scored it first
UNCOMPARED_COLUMNS = {"eval_cache": ("cache_key", "dataset", "row_id"), "metrics": ("config_hash",)}


def three_culture_registry(target: Path) -> Path:
    packaged = yaml.safe_load((ROOT / "culture_assets" / "data" / "cultures.yaml").read_text(encoding="utf-8"))
    packaged["cultures"] = [c for c in packaged["cultures"] if c["key"] in CULTURES]
    target.write_text(yaml.safe_dump(packaged, allow_unicode=True), encoding="utf-8")
    return target


def environment(home: Path, **extra: str) -> dict[str, str]:
    env = {key: value for key, value in os.environ.items() if not key.startswith(("CULTURE_ASSETS_", "DAGSTER_"))}
    # dagster-celery starts `celery` from PATH
    env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}"
    env.update(PYTHONPATH=str(ROOT), CULTURE_ASSETS_HOME=str(home), DAGSTER_HOME=str(home / "dagster_home"),
               CULTURE_ASSETS_PROFILE="demo", OMP_NUM_THREADS="1", **extra)
    return env


def drive(mode: str, env: dict[str, str], timeout_s: int = 600) -> list[dict]:
    done = subprocess.run([sys.executable, "-m", "culture_assets_tests.celery_run", mode, *CULTURES], env=env, cwd=ROOT,
                          capture_output=True, text=True, timeout=timeout_s)
    assert done.returncode == 0, f"{mode} failed ({done.returncode}):\n{done.stderr[-4000:]}"
    return json.loads(done.stdout.strip().splitlines()[-1])


@pytest.fixture
def celery_workers(redis_server: str, postgres_server: dict, tmp_path: Path) -> Iterator[dict[str, Any]]:
    """Data home B on a Postgres instance, and two Celery workers serving its steps; stopped by process group."""
    pytest.importorskip("dagster_celery", reason="dagster-celery is not installed (pip install -e '.[scale]')")
    home = tmp_path / "celery_home"
    (home / "dagster_home").mkdir(parents=True)
    instance = {"telemetry": {"enabled": False}, "storage": {"postgres": {"postgres_db": postgres_server}},
                "concurrency": {"pools": {"default_limit": 1}}}
    (home / "dagster_home" / "dagster.yaml").write_text(yaml.safe_dump(instance))
    worker_config = tmp_path / "celery.yaml"
    worker_config.write_text(yaml.safe_dump({"execution": {"config": {"broker": redis_server, "backend": redis_server}}}))
    env = environment(home, CULTURE_ASSETS_REGISTRY=str(three_culture_registry(tmp_path / "cultures.yaml")),
                      CULTURE_ASSETS_EXECUTOR="celery", CULTURE_ASSETS_CELERY_BROKER=redis_server)
    # The instance's tables and the writer pool's row, created before workers and concurrent runs race to create
    # them (as `dagster dev` or a deployment would have); docs/scale-out.md says to do the same.
    subprocess.run(["dagster", "instance", "concurrency", "set", "duckdb_writer", "1"], env=env, check=True, capture_output=True)
    logs = [tmp_path / f"{name}.log" for name in WORKERS]
    workers = []
    try:
        for name, log in zip(WORKERS, logs):
            # solo pool: one step at a time in the worker process itself, so a worker is one slot
            workers.append(subprocess.Popen(
                ["dagster-celery", "worker", "start", "-A", "dagster_celery.app", "-y", worker_config, "-n", name, "--", "--pool=solo"],
                env=env, cwd=ROOT, stdout=log.open("w"), stderr=subprocess.STDOUT, start_new_session=True,
            ))
        for worker, log in zip(workers, logs):
            wait_until_ready(worker, log)
        yield {"home": home, "env": env, "logs": logs}
    finally:
        for worker in workers:
            stop_process_group(worker)


def stop_process_group(leader: subprocess.Popen, grace_s: float = 20.0) -> None:
    """SIGTERM to the group `leader` started (the CLI and the celery worker it runs), SIGKILL if still there after `grace_s`."""
    os.killpg(leader.pid, signal.SIGTERM)
    leader.wait()
    deadline = time.monotonic() + grace_s
    try:
        while time.monotonic() < deadline:
            os.killpg(leader.pid, 0)
            time.sleep(0.2)
        os.killpg(leader.pid, signal.SIGKILL)
    except ProcessLookupError:
        pass


def wait_until_ready(worker: subprocess.Popen, log: Path, timeout_s: float = 120.0) -> None:
    deadline = time.monotonic() + timeout_s
    while " ready." not in log.read_text(errors="replace"):
        if worker.poll() is not None or time.monotonic() > deadline:
            pytest.fail(f"Celery worker not ready (exit code {worker.poll()}):\n{log.read_text(errors='replace')[-3000:]}")
        time.sleep(0.5)


def normalized(value: Any, aliases: dict[str, str]) -> Any:
    """`value` without volatile fields, with each string in `aliases` (data homes, adapter names) replaced."""
    if isinstance(value, dict):
        return {k: normalized(v, aliases) for k, v in value.items() if k not in VOLATILE_KEYS}
    if isinstance(value, list):
        return [normalized(v, aliases) for v in value]
    if isinstance(value, str):
        for original in sorted(aliases, key=len, reverse=True):
            value = value.replace(original, aliases[original])
    return value


def equal_adapters(homes: tuple[Path, Path]) -> dict[str, str]:
    """Asserts each culture's adapter weights are equal in both homes; returns aliases for their names.

    An adapter's directory name and hash derive from its base model's path, which differs between the homes.
    """
    from safetensors.torch import load_file

    aliases = {str(home): "<home>" for home in homes}
    for culture in CULTURES:
        records = [stored_value(home, "culture_model", culture) for home in homes]
        single, celery = (load_file(Path(r["adapter_path"]) / "adapter_model.safetensors") for r in records)
        assert single.keys() == celery.keys() and all(single[k].equal(celery[k]) for k in single), f"{culture}: adapter weights differ"
        for record in records:
            aliases[Path(record["adapter_path"]).name] = f"<{culture} adapter>"
            aliases[record["artifact_hash"]] = f"<{culture} adapter hash>"
    return aliases


def stored_value(home: Path, asset: str, culture: str) -> Any:
    base = home / "assets" / asset
    if (base / f"{culture}.parquet").exists():
        return pl.read_parquet(base / f"{culture}.parquet").to_dicts()
    return json.loads((base / f"{culture}.json").read_text(encoding="utf-8"))


def warehouse_rows(home: Path) -> dict[str, list[list[str]]]:
    with duckdb.connect(str(home / "warehouse.duckdb"), read_only=True) as con:
        columns = con.execute(
            "SELECT table_name, column_name, data_type FROM information_schema.columns WHERE table_schema = 'main' ORDER BY table_name, ordinal_position"
        ).fetchall()
        kept: dict[str, list[str]] = {}
        for table, column, data_type in columns:
            if column not in VOLATILE_KEYS + UNCOMPARED_COLUMNS.get(table, ()) and not data_type.startswith("TIMESTAMP"):
                kept.setdefault(table, []).append(f'"{column}"')
        return {table: [list(map(str, row)) for row in con.execute(f"SELECT {', '.join(cols)} FROM {table}").fetchall()] for table, cols in kept.items()}


@pytest.mark.slow  # about 4.5 minutes on 2 busy cores: three tiny-model chains twice, two workers, Postgres, Redis
def test_chain_on_two_celery_workers_equals_one_process(celery_workers: dict, tmp_path: Path) -> None:
    single_home = tmp_path / "single_home"
    (single_home / "dagster_home").mkdir(parents=True)
    shutil.copyfile(ROOT / "dagster.yaml", single_home / "dagster_home" / "dagster.yaml")
    single_env = environment(single_home, CULTURE_ASSETS_REGISTRY=celery_workers["env"]["CULTURE_ASSETS_REGISTRY"])
    drive("upstream", single_env)
    celery_home: Path = celery_workers["home"]
    shutil.copytree(single_home, celery_home, ignore=shutil.ignore_patterns("dagster_home"), dirs_exist_ok=True)

    started = time.monotonic()
    single = drive("single", single_env)
    print(f"single-process chain: {time.monotonic() - started:.0f}s")
    started = time.monotonic()
    on_celery = drive("celery", celery_workers["env"])
    print(f"Celery chain: {time.monotonic() - started:.0f}s")

    assert [run["success"] for run in single] == [True] * len(CULTURES), single
    failed = [f"{run['culture']} ({run['run_id']}):\n" + "\n".join(run["errors"]) for run in on_celery if not run["success"]]
    if failed:
        pytest.fail("Celery runs failed:\n" + "\n\n".join(failed))
    workers_seen = {step["worker"].split("@")[0] for run in on_celery for step in run["steps"]}
    assert workers_seen == set(WORKERS), f"steps ran on {workers_seen}; worker logs: {celery_workers['logs']}"
    assert all(len(run["steps"]) == len(CHAIN) for run in on_celery), on_celery

    # one duckdb_writer slot instance-wide: no two writer steps of the three concurrent runs overlapped
    writer_steps = sorted((s["start"], s["end"], s["step"]) for run in on_celery for s in run["steps"] if s["pool"] == "duckdb_writer")
    for (_, end, step), (start, _, next_step) in zip(writer_steps, writer_steps[1:]):
        assert start >= end, f"{next_step} started before {step} released the duckdb_writer slot"

    aliases = equal_adapters((single_home, celery_home))
    for asset in CHAIN:
        for culture in CULTURES:
            assert normalized(stored_value(celery_home, asset, culture), aliases) == normalized(stored_value(single_home, asset, culture), aliases), (asset, culture)
    single_rows, celery_rows = warehouse_rows(single_home), warehouse_rows(celery_home)
    assert sum(map(len, celery_rows.values())) > 0
    for table, rows in single_rows.items():
        assert sorted(map(repr, normalized(celery_rows[table], aliases))) == sorted(map(repr, normalized(rows, aliases))), table
