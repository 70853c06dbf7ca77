import subprocess
import sys
from pathlib import Path

import dagster as dg

from culture_assets.cultures import load_registry
from culture_assets.definitions import defs

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


def test_dagster_cli_validates_definitions(data_home):
    result = subprocess.run(
        [str(Path(sys.executable).with_name("dagster")), "definitions", "validate", "-w", "workspace.yaml"],
        cwd=ROOT, capture_output=True, text=True, timeout=300,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "Validation successful" in result.stdout + result.stderr
