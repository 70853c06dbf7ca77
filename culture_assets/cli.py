"""`culture-assets`: run the pipeline or open the UI with DAGSTER_HOME under the data home.

    culture-assets run                  # materialize the whole graph (the main job)
    culture-assets run --select seed_survey --partition arabic
    culture-assets run --select 'seed_survey*' --partition german --cultures-only   # backfill one culture
    culture-assets run --profile demo   # offline wiring demo on a tiny model built here
    culture-assets run --limit 50       # laptop-sized: 50 evaluation rows per dataset, 50 training steps, 50 questions augmented
    culture-assets dev                  # Dagster UI on 127.0.0.1:3000
    culture-assets dev --profile demo   # the UI on the demo's models, data and asset config
"""

from __future__ import annotations

import argparse
from contextlib import contextmanager
import fcntl
import os
import shutil
import signal
import sys
import time
from pathlib import Path
from typing import Iterator, Sequence

from culture_assets.settings import atomic_write_text, dagster_home, data_home


def project_root(start: Path | None = None) -> Path:
    """The directory holding workspace.yaml and dagster.yaml (this checkout)."""
    here = (start or Path.cwd()).resolve()
    for candidate in (here, *here.parents):
        if (candidate / "workspace.yaml").exists() and (candidate / "dagster.yaml").exists():
            return candidate
    raise SystemExit(f"culture-assets: no workspace.yaml and dagster.yaml in {here} or above; run it from the project checkout")


def prepare_dagster_home(root: Path) -> Path:
    """Create the data home and DAGSTER_HOME, and put the project's dagster.yaml there."""
    home = dagster_home(data_home())
    # atomic: parallel invocations must never read a half-copied instance config
    atomic_write_text(home / "dagster.yaml", (root / "dagster.yaml").read_text(encoding="utf-8"))
    os.environ["DAGSTER_HOME"] = str(home)
    _create_instance_storage(home)
    return home


def _create_instance_storage(home: Path) -> None:
    """Create the SQLite run/event storage once, under a file lock.

    Two processes creating a fresh DAGSTER_HOME at the same moment race on CREATE TABLE
    ("table secondary_indexes already exists"); after creation SQLite handles concurrent runs.
    """
    import dagster as dg

    with (home / ".init.lock").open("w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        with dg.DagsterInstance.get() as instance:
            instance.get_runs(limit=1)
            instance.fetch_materializations(dg.AssetKey("seed_survey"), limit=1)


@contextmanager
def _one_run_at_a_time(home: Path) -> Iterator[None]:
    """Hold the data home for this command: one `dagster dev` (one daemon) per instance at a time."""
    with (home / ".run.lock").open("w") as lock:
        try:
            fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            print("culture-assets: another `culture-assets run` is using this data home; waiting for it to finish", file=sys.stderr)
            fcntl.flock(lock, fcntl.LOCK_EX)
        yield


def _stop_on_sigterm(signum, frame) -> None:
    raise KeyboardInterrupt(f"signal {signum}")


def run_pipeline(select: str | None, partitions: Sequence[str] | None, cultures_only: bool = False) -> None:
    import dagster as dg

    from culture_assets.cultures import load_registry
    from culture_assets.definitions import MAIN_JOB_STAGES, defs
    from culture_assets.launcher import LauncherError, WorkspaceLauncher
    from culture_assets.pipeline import PROFILE_TAG, Progress, SelectionError, StagesFailed, plan_stages, run_stages
    from culture_assets.profiles import current_limit, current_profile, preflight
    from culture_assets.recovery import recover_dead_runs

    profile, limit = current_profile(), current_limit()
    unknown = sorted(set(partitions or []) - set(load_registry().keys))
    if unknown:
        raise SystemExit(f"culture-assets: --partition {', '.join(unknown)}: no such culture in the registry (cultures: {', '.join(load_registry().keys)})")
    try:
        stages = plan_stages(defs, MAIN_JOB_STAGES, select, cultures_only)
    except SelectionError as bad:
        raise SystemExit(f"culture-assets: {bad}") from None
    problems = preflight(profile, {name for stage in stages for name in stage.asset_names})
    if problems:
        raise SystemExit(
            "culture-assets: cannot run on this machine as configured:\n"
            + "".join(f"  - {problem}\n" for problem in problems)
            + "Or run the offline wiring demo (a tiny model built here; its scores mean nothing):\n"
            + "  culture-assets run --profile demo"
        )
    log_path = data_home() / "logs" / time.strftime("run-%Y%m%d-%H%M%S.log")
    print(f"profile: {profile.value}" + (f", limit {limit}" if limit else "") + f"; Dagster's full event log: {log_path}", file=sys.stderr)
    signal.signal(signal.SIGTERM, _stop_on_sigterm)
    with _one_run_at_a_time(data_home()), dg.DagsterInstance.get() as instance:
        for line in recover_dead_runs(instance):
            print(f"culture-assets: {line}", file=sys.stderr)
        try:
            with WorkspaceLauncher(project_root(), log_path) as launcher:
                print(f"runs visible in the UI while this runs: {launcher.url}; afterwards: culture-assets dev", file=sys.stderr)
                run_stages(defs, stages, launcher, instance, partitions, tags={PROFILE_TAG: profile.value}, progress=Progress(len(stages)))
        except StagesFailed as failed:
            raise SystemExit(f"culture-assets: {failed}\nDagster's full event log: {log_path}") from None
        except KeyboardInterrupt:
            raise SystemExit(f"culture-assets: stopped; runs in flight were terminated. Log: {log_path}") from None
        except LauncherError as broken:
            raise SystemExit(f"culture-assets: {broken}") from None


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="culture-assets", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    commands = parser.add_subparsers(dest="command", required=True)
    run = commands.add_parser("run", help="materialize the asset graph (default: all of it)")
    run.add_argument("--select", help="Dagster asset selection, e.g. 'seed_survey' or 'training_set*'")
    run.add_argument("--partition", action="append", help="culture partition(s); default: every culture")
    run.add_argument(
        "--cultures-only",
        action="store_true",
        help="only the culture-partitioned assets of the selection; all-culture assets (CultureLLM-One, the report) stay stale",
    )
    dev = commands.add_parser("dev", help="start the Dagster UI (dagster dev -w workspace.yaml)")
    dev.add_argument("--port", default="3000")
    for command in (run, dev):
        command.add_argument("--profile", choices=["default", "demo"], help="default: hub/endpoint models; demo: offline tiny-model wiring demo")
        command.add_argument("--limit", type=int, help="laptop-sized run: at most N evaluation rows per dataset, N training steps, N seed questions augmented and two held-out-topic folds")
    args = parser.parse_args(argv)
    # the definitions read these when they load, in this process and in `dagster dev`
    if args.profile:
        os.environ["CULTURE_ASSETS_PROFILE"] = args.profile
    if args.limit:
        os.environ["CULTURE_ASSETS_LIMIT"] = str(args.limit)

    root = project_root()
    home = prepare_dagster_home(root)
    print(f"data home: {data_home()}  DAGSTER_HOME: {home}", file=sys.stderr)
    if args.command == "run":
        run_pipeline(args.select, args.partition, args.cultures_only)
    else:
        os.chdir(root)
        dagster = shutil.which("dagster") or str(Path(sys.executable).with_name("dagster"))
        os.execv(dagster, [dagster, "dev", "-w", "workspace.yaml", "-h", "127.0.0.1", "-p", args.port])


if __name__ == "__main__":
    main()
