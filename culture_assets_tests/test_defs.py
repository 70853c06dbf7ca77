import os
import subprocess
import sys
from pathlib import Path

import dagster as dg
import pytest

from culture_assets.cultures import load_registry
from culture_assets.definitions import defs
from culture_assets.profiles import Profile, resources_for
from culture_assets.resources.evaluation import EvalDataResource
from culture_assets.tiny_model import is_tiny_model

ROOT = Path(__file__).resolve().parents[1]
CULTURES = ["arabic", "bengali", "chinese", "english", "german", "korean", "portuguese", "spanish", "turkish"]


def test_definitions_load_with_nine_culture_partitions():
    graph = defs.resolve_asset_graph()
    seed_survey = graph.get(dg.AssetKey("seed_survey"))
    assert seed_survey.partitions_def.get_partition_keys() == CULTURES
    assert load_registry().keys == CULTURES


def test_every_asset_has_group_kinds_and_description():
    for spec in defs.resolve_all_asset_specs():
        assert spec.group_name and spec.group_name != "default", spec.key
        assert spec.description, spec.key
        assert spec.kinds, spec.key


def test_dg_check_defs_passes(data_home):
    result = subprocess.run(
        [str(Path(sys.executable).with_name("dg")), "check", "defs"], cwd=ROOT, capture_output=True, text=True, timeout=300
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "All definitions loaded successfully" in result.stdout + result.stderr


LOAD_DEFINITIONS = """
import time
started = time.perf_counter()
from culture_assets.definitions import defs
from culture_assets.profiles import Profile, resources_for
from culture_assets.resources.evaluation import EvalDataResource
from culture_assets.tiny_model import is_tiny_model
defs.resolve_asset_graph()
print(f"{time.perf_counter() - started:.2f}")
"""


@pytest.mark.parametrize("profile", ["default", "demo"])
def test_definitions_load_pure_and_timed(profile: str, data_home: Path, record_property) -> None:
    """Loading builds no model and writes no demo data (that happens when a step needs it); the load time is
    reported, not asserted (the issue's target: under 5 s on 2 cores)."""
    env = {**os.environ, "CULTURE_ASSETS_PROFILE": profile}
    result = subprocess.run([sys.executable, "-c", LOAD_DEFINITIONS], env=env, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]
    seconds = float(result.stdout.strip().splitlines()[-1])
    record_property("definitions_load_s", seconds)
    print(f"definitions ({profile} profile) loaded in {seconds:.2f} s")
    assert not (data_home / "demo").exists()


def test_a_bad_profile_is_a_clear_error_not_an_exit(data_home: Path) -> None:
    env = {**os.environ, "CULTURE_ASSETS_PROFILE": "laptop"}
    result = subprocess.run([sys.executable, "-c", LOAD_DEFINITIONS], env=env, capture_output=True, text=True, timeout=300)
    assert result.returncode != 0
    assert "InputError: $CULTURE_ASSETS_PROFILE: 'laptop': expected one of ['default', 'demo']" in result.stderr


def test_the_demo_files_are_built_when_a_step_first_uses_them(data_home: Path) -> None:
    eval_data = resources_for(Profile.DEMO)["eval_data"]
    assert not (data_home / "demo").exists()

    @dg.asset
    def demo_manifest_count(eval_data: EvalDataResource) -> int:
        return len(eval_data.manifests())

    result = dg.materialize([demo_manifest_count], resources={"eval_data": eval_data})
    assert result.output_for_node("demo_manifest_count") == len(CULTURES)
    assert is_tiny_model(data_home / "demo" / "tiny-chat-model")
