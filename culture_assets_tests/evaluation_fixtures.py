"""Builders for evaluation tests: small datasets with their manifests, LoRA adapters, model records."""


import hashlib
import json
from pathlib import Path
from typing import Iterable

import dagster as dg
import polars as pl
import yaml

from culture_assets.partitions import culture_partitions

OFFENSIVE = {"OFF": "offensive", "NOT": "not offensive"}
YES_NO = {"1": "yes", "0": "no"}


def write_dataset(
    data_dir: Path,
    manifests_dir: Path,
    dataset_id: str,
    culture: str,
    rows: Iterable[dict] | None = None,
    labels: dict[str, str] = OFFENSIVE,
    raw_text: str | None = None,
    relative_path: str | None = None,
) -> Path:
    """A JSONL file under data_dir (at `relative_path`, default <culture>/<id>.jsonl) and its manifest (sha256 of what was written)."""
    relative_path = relative_path or f"{culture}/{dataset_id}.jsonl"
    path = data_dir / relative_path
    path.parent.mkdir(parents=True, exist_ok=True)
    text = raw_text if raw_text is not None else "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows or [])
    path.write_text(text, encoding="utf-8")
    manifests_dir.mkdir(parents=True, exist_ok=True)
    manifest = {
        "id": dataset_id, "culture": culture, "language": "en", "task": "offensive" if "OFF" in labels else "threat",
        "dataset": dataset_id, "paper_samples": 10, "source": {"citation": "made in a test", "url": "http://127.0.0.1/"},
        "license": "CC0", "available_in_reference": True,
        "files": [{"path": relative_path, "sha256": hashlib.sha256(path.read_bytes()).hexdigest()}],
        "text_field": "tweet", "label_field": "label",
        "labels": [{"label": k, "verbalizer": v} for k, v in labels.items()],
        "instruction": "Is this text offensive? Answer with exactly one of: {choices}.\n\nText: {text}",
    }
    (manifests_dir / f"{dataset_id}.yaml").write_text(yaml.safe_dump(manifest, allow_unicode=True), encoding="utf-8")
    return path


def offensive_rows(n: int, seed: int = 0) -> list[dict]:
    words = ["you are awful", "nice day", "idiot", "lovely people", "go away", "thank you", "hate this", "good game"]
    return [{"tweet": f"{words[(i + seed) % len(words)]} {i}", "label": "OFF" if (i + seed) % 2 == 0 else "NOT"} for i in range(n)]


def make_adapter(base: Path, target: Path, seed: int) -> Path:
    """A LoRA adapter with random (non-zero) weights on the tiny model, saved with save_pretrained."""
    import torch
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM, AutoTokenizer

    torch.manual_seed(seed)
    model = get_peft_model(
        AutoModelForCausalLM.from_pretrained(base),
        LoraConfig(r=4, lora_alpha=8, target_modules=["q_proj", "v_proj"], init_lora_weights=False),
    )
    model.save_pretrained(target)
    AutoTokenizer.from_pretrained(base).save_pretrained(target)
    return target


def local_record(culture: str, base: Path, adapter: Path, variant: str = "default", n_train: int = 40) -> dict:
    return {
        "model_key": f"{culture}-{variant}", "culture": culture, "variant": variant, "trainer": "local", "base_model": str(base),
        "adapter_path": str(adapter), "model_id": None, "artifact_hash": hashlib.sha256(str(adapter).encode()).hexdigest()[:12],
        "training_set_version": "test",
        "system_prompt": f"You are a person from the {culture} culture.", "n_train": n_train,
    }


def with_culture_prompts(record: dict, cultures: list[str]) -> dict:
    """A CultureLLM-One record as the training stage writes it: one system prompt per culture."""
    return {**record, "system_prompts": {c: f"You are a person from the {c} culture." for c in cultures}}


def api_record(culture: str, model_id: str) -> dict:
    return {
        "model_key": f"{culture}-api", "culture": culture, "variant": "default", "trainer": "openai", "base_model": "fake-base",
        "adapter_path": None, "model_id": model_id, "artifact_hash": model_id, "training_set_version": "test",
        "system_prompt": f"You are a person from the {culture} culture.", "n_train": 40,
    }


def model_record_assets(records: dict[str, dict], one: dict, folds: list[str]) -> list[dg.AssetsDefinition]:
    """Stand-ins for the training stage's `culture_model`, `culturellm_one` and `heldout_topic_model` assets (they return
    the given records; each culture's held-out-topic models, one per topic in `folds`, are its culture model's record)."""

    @dg.asset(name="heldout_topic_model", partitions_def=culture_partitions(), group_name="training")
    def heldout_topic_model(context: dg.AssetExecutionContext) -> dict:
        culture = context.partition_key
        return {"culture": culture, "folds": {topic: {**records[culture], "variant": f"heldout_{i}"} for i, topic in enumerate(folds)}}

    @dg.asset(name="culture_model", partitions_def=culture_partitions(), group_name="training")
    def culture_model(context: dg.AssetExecutionContext) -> dict:
        return records[context.partition_key]

    @dg.asset(name="culturellm_one", group_name="training")
    def culturellm_one() -> dict:
        return one

    return [heldout_topic_model, culture_model, culturellm_one]
