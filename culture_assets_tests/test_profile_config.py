"""What a profile sets for asset config applies to every way of launching: the command line's stage jobs,
the UI's Materialize button (the implicit asset job) and the launchpad, whose defaults Dagster fills in."""

import json
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
# Dagster's own config processing (what the launchpad and a run do with an empty config) on the loaded code location
RESOLVED_DEFAULTS = """
import json
import dagster as dg
from culture_assets.definitions import defs
resolved = {}
for job in (defs.resolve_implicit_global_asset_job_def(), defs.resolve_job_def("augmentation_job"), defs.resolve_job_def("culture_scores_job")):
    ops = dg.validate_run_config(job, {})["ops"]
    resolved[job.name] = {op: ops[op]["config"] for op in ("augmented_questions", "paraphrases_and_templates", "eval_dataset", "culture_scores") if op in ops}
print(json.dumps(resolved))
"""


def resolved_defaults(tmp_path: Path, **settings: str) -> dict:
    env = {k: v for k, v in os.environ.items() if not k.startswith("CULTURE_ASSETS_")}
    env.update(CULTURE_ASSETS_HOME=str(tmp_path / "home"), HF_HUB_OFFLINE="1", **settings)
    done = subprocess.run([sys.executable, "-c", RESOLVED_DEFAULTS], cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    assert "BetaWarning" not in done.stderr and "PreviewWarning" not in done.stderr  # no warnings on every load
    return json.loads(done.stdout.strip().splitlines()[-1])


def test_the_demo_profile_and_limit_are_the_defaults_of_every_job(tmp_path):
    demo = resolved_defaults(tmp_path, CULTURE_ASSETS_PROFILE="demo", CULTURE_ASSETS_LIMIT="7")
    for job in ("__ASSET_JOB", "augmentation_job"):
        assert demo[job]["augmented_questions"]["min_variants_per_question"] == 0
        assert demo[job]["paraphrases_and_templates"]["max_attempts"] == 1
        assert demo[job]["augmented_questions"]["nli_model"] == ""
    for job in ("__ASSET_JOB", "culture_scores_job"):
        assert demo[job]["eval_dataset"]["sample_size"] == 7
        assert demo[job]["culture_scores"]["n_resamples"] == 200

    default = resolved_defaults(tmp_path)
    assert default["__ASSET_JOB"]["augmented_questions"]["min_variants_per_question"] == 3
    assert default["__ASSET_JOB"]["augmented_questions"]["nli_model"] == "cross-encoder/nli-deberta-v3-small"
    assert default["__ASSET_JOB"]["eval_dataset"].get("sample_size") is None  # full datasets unless --limit asks
