"""A stand-in for the Hugging Face hub: a cache that holds a local model under a hub name.

Users' machines reach the hub; tests do not. `fill_hub_cache` lays a model directory out the
way `huggingface_hub` stores a download (`models--org--name/refs/main` naming a snapshot whose
files are the model's), so `from_pretrained("org/name")` with `HF_HUB_OFFLINE=1` resolves it
through the real cache lookup, exactly as after a download.
"""

from __future__ import annotations

import hashlib
import shutil
from pathlib import Path

DEFAULT_HUB_NAME = "Qwen/Qwen2.5-0.5B-Instruct"


def fill_hub_cache(cache_dir: Path, repo_id: str, model_dir: Path) -> Path:
    """Copy `model_dir` into `cache_dir` as the cached snapshot of `repo_id`; return the snapshot directory."""
    files = sorted(p for p in model_dir.rglob("*") if p.is_file())
    digest = hashlib.sha1()
    for path in files:
        digest.update(path.relative_to(model_dir).as_posix().encode())
        digest.update(path.read_bytes())
    revision = digest.hexdigest()
    repo = cache_dir / f"models--{repo_id.replace('/', '--')}"
    snapshot = repo / "snapshots" / revision
    for path in files:
        target = snapshot / path.relative_to(model_dir)
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(path, target)
    (repo / "refs").mkdir(parents=True, exist_ok=True)
    (repo / "refs" / "main").write_text(revision, encoding="utf-8")
    return snapshot
