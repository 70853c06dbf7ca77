"""The offline demo: a tiny model built here and a small synthetic evaluation set per culture.

Everything it produces is a wiring demo: the model is random, the evaluation texts are
invented, and every score computed from them means nothing. Reports say so.
"""

from __future__ import annotations

import fcntl
import hashlib
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable, Sequence

import yaml

from culture_assets.evaluation.manifest import DatasetManifest
from culture_assets.settings import atomic_write_text
from culture_assets.survey.questions import load_questions
from culture_assets.tiny_model import build_tiny_chat_model, is_tiny_model

DEMO_PHRASES = (
    "you are awful", "what a nice day", "get lost, idiot", "lovely people here", "go away", "thank you so much",
    "I hate all of you", "good game everyone", "shut up", "see you tomorrow", "nobody wants you here", "great work",
)
OFFENSIVE_LABELS = {"OFF": "offensive", "NOT": "not offensive"}


@dataclass(frozen=True)
class DemoAssets:
    model_dir: Path
    eval_data_dir: Path
    manifests_dir: Path


def write_jsonl_dataset(data_dir: Path, manifests_dir: Path, manifest: dict, rows: Iterable[dict]) -> DatasetManifest:
    """Write rows as JSONL at the manifest's first file path, fill in its sha256 and row count, save the manifest YAML."""
    relative = manifest["files"][0]["path"]
    path = data_dir / relative
    path.parent.mkdir(parents=True, exist_ok=True)
    lines = [json.dumps(row, ensure_ascii=False) for row in rows]
    atomic_write_text(path, "".join(line + "\n" for line in lines))
    manifest = {**manifest, "files": [{"path": relative, "sha256": hashlib.sha256(path.read_bytes()).hexdigest(), "rows": len(lines)}]}
    validated = DatasetManifest.model_validate(manifest)
    manifests_dir.mkdir(parents=True, exist_ok=True)
    atomic_write_text(manifests_dir / f"{validated.id}.yaml", yaml.safe_dump(manifest, allow_unicode=True, sort_keys=False))
    return validated


def demo_rows(n: int) -> list[dict]:
    # phrases alternate offensive / not, so both classes are present
    return [{"tweet": f"{DEMO_PHRASES[i % len(DEMO_PHRASES)]} ({i})", "label": "OFF" if i % 2 == 0 else "NOT"} for i in range(n)]


def demo_manifest(culture: str) -> dict:
    return {
        "id": f"demo_{culture}_offensive", "culture": culture, "language": "en", "task": "offensive",
        "dataset": "demo (synthetic)", "paper_samples": 1, "license": "CC0 (invented by culture-assets)",
        "source": {"citation": "synthetic wiring-demo rows written by culture_assets.demo; not a real dataset", "url": "none"},
        "available_in_reference": False, "files": [{"path": f"{culture}/demo_offensive.jsonl"}],
        "text_field": "tweet", "label_field": "label",
        "labels": [{"label": label, "verbalizer": verbalizer} for label, verbalizer in OFFENSIVE_LABELS.items()],
        "instruction": "Is the following text offensive? Answer with exactly one of: {choices}.\n\nText: {text}",
    }


def demo_assets(root: Path) -> DemoAssets:
    """Where the demo's model and datasets live under `root` (nothing is built)."""
    return DemoAssets(root / "tiny-chat-model", root / "eval_data", root / "manifests")


def prepare_demo(root: Path, cultures: Sequence[str], rows_per_dataset: int = 24) -> DemoAssets:
    """Build (once) the tiny model and one synthetic evaluation dataset per culture under `root`.

    Steps running in parallel processes may call it at once: a file lock lets one build while the others wait.
    """
    assets = demo_assets(root)
    root.mkdir(parents=True, exist_ok=True)
    with (root / ".prepare.lock").open("w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if not is_tiny_model(assets.model_dir):
            corpus = [f"{q.text} {q.option_text()}" for q in load_questions()] + list(DEMO_PHRASES)
            corpus += ["Answer with one option number.", "offensive not offensive"]
            build_tiny_chat_model(assets.model_dir, corpus * 4)
        for culture in cultures:
            write_jsonl_dataset(assets.eval_data_dir, assets.manifests_dir, demo_manifest(culture), demo_rows(rows_per_dataset))
    return assets
