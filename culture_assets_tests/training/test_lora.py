from __future__ import annotations

import errno
import json
from pathlib import Path

import pytest
import torch
from transformers import AutoModelForCausalLM, TrainerCallback

from culture_assets.errors import InputError
from culture_assets.survey.questions import load_questions
from culture_assets.training.lora import (
    IGNORE_INDEX,
    MANIFEST,
    LoraHyperParameters,
    directory_hash,
    encode_chat,
    load_adapter_model,
    load_tokenizer,
    train_lora,
)
from culture_assets.training.training_set import chat_messages

QUESTIONS = load_questions()


def samples(n: int = 16) -> list[list[dict[str, str]]]:
    return [chat_messages("You are a German chatbot.", q.text, q, str(q.valid_codes[i % 2])) for i, q in enumerate(QUESTIONS[:n])]


def fast(**overrides) -> LoraHyperParameters:
    return LoraHyperParameters(**{"max_steps": 8, "learning_rate": 1e-2, "batch_size": 4, "save_steps": 4, "lora_dropout": 0.0, **overrides})


def answer_loss(model, tokenizer, rows) -> float:
    """Mean loss over the answer tokens of `rows`, one sample at a time."""
    losses = []
    model.eval()
    with torch.no_grad():
        for messages in rows:
            encoded = encode_chat(tokenizer, messages, 512)
            out = model(input_ids=torch.tensor([encoded["input_ids"]]), labels=torch.tensor([encoded["labels"]]))
            losses.append(out.loss.item())
    return sum(losses) / len(losses)


def test_only_answer_tokens_carry_loss(tiny_model_dir):
    tokenizer = load_tokenizer(tiny_model_dir)
    messages = samples(1)[0]
    encoded = encode_chat(tokenizer, messages, 512)
    answer_ids = [i for i, label in zip(encoded["input_ids"], encoded["labels"]) if label != IGNORE_INDEX]
    assert tokenizer.decode(answer_ids).strip() == messages[-1]["content"] + "<|im_end|>"
    masked = [i for i, label in zip(encoded["input_ids"], encoded["labels"]) if label == IGNORE_INDEX]
    assert tokenizer.decode(masked) == tokenizer.apply_chat_template(messages[:-1], tokenize=False, add_generation_prompt=True)
    assert len(answer_ids) < 5 < len(masked)


class CaptureLogits(TrainerCallback):
    """Keeps the final in-memory model's logits on a probe input, to compare with the reloaded adapter."""

    def __init__(self, probe: list[int]):
        self.probe = torch.tensor([probe])
        self.logits: torch.Tensor | None = None

    def on_train_end(self, args, state, control, model=None, **kwargs):
        model.eval()
        with torch.no_grad():
            self.logits = model(input_ids=self.probe).logits.cpu()


def test_loss_goes_down_and_the_saved_adapter_reloads_with_identical_outputs(tiny_model_dir, tmp_path):
    rows = samples()
    tokenizer = load_tokenizer(tiny_model_dir)
    before = answer_loss(AutoModelForCausalLM.from_pretrained(tiny_model_dir), tokenizer, rows)
    probe = encode_chat(tokenizer, rows[0], 512)["input_ids"]
    capture = CaptureLogits(probe)
    adapter = train_lora(str(tiny_model_dir), rows, tmp_path, "german-default", fast(max_steps=16), callbacks=[capture])

    model, reloaded_tokenizer = load_adapter_model(adapter.path)
    after = answer_loss(model, reloaded_tokenizer, rows)
    assert after < before * 0.9, (before, after)
    with torch.no_grad():
        reloaded = model(input_ids=torch.tensor([probe])).logits
    torch.testing.assert_close(reloaded, capture.logits, rtol=0, atol=1e-6)
    with torch.no_grad():
        base = AutoModelForCausalLM.from_pretrained(tiny_model_dir)(input_ids=torch.tensor([probe])).logits
    assert not torch.allclose(base, reloaded, atol=1e-3)

    manifest = json.loads((adapter.path / MANIFEST).read_text())
    assert manifest["global_step"] == 16 and manifest["seed"] == 0 and manifest["lora_config"]["r"] == 8
    assert manifest["hyperparameters"]["learning_rate"] == 1e-2 and manifest["n_train"] == 16
    assert (adapter.path / "adapter_config.json").is_file() and adapter.artifact_hash == directory_hash(adapter.path)
    assert not list(tmp_path.glob("german-default/.work-*")), "the work dir (checkpoints) is removed once the adapter is in place"

    again = train_lora(str(tiny_model_dir), rows, tmp_path, "german-default", fast(max_steps=16))
    assert again.reused and again.path == adapter.path and again.artifact_hash == adapter.artifact_hash


class KillAt(TrainerCallback):
    def __init__(self, step: int):
        self.step = step

    def on_step_end(self, args, state, control, **kwargs):
        if state.global_step == self.step:
            raise KeyboardInterrupt(f"killed at step {self.step}")


def test_killed_run_resumes_from_its_checkpoint_and_ends_at_the_same_step(tiny_model_dir, tmp_path):
    rows = samples()
    straight = train_lora(str(tiny_model_dir), rows, tmp_path / "straight", "german-default", fast())

    root = tmp_path / "killed"
    with pytest.raises(KeyboardInterrupt):
        train_lora(str(tiny_model_dir), rows, root, "german-default", fast(), callbacks=[KillAt(6)])
    (work,) = (root / "german-default").glob(".work-*")
    assert sorted(p.name for p in (work / "checkpoints").glob("checkpoint-*")) == ["checkpoint-4"]
    assert not [p for p in (root / "german-default").iterdir() if not p.name.startswith(".work-")], "no adapter from a killed run"

    # a kill while saving checkpoint-6 would leave it without trainer_state.json: it must not be resumed from
    partial = work / "checkpoints" / "checkpoint-6"
    partial.mkdir()
    (partial / "adapter_model.safetensors").write_bytes(b"half")

    resumed = train_lora(str(tiny_model_dir), rows, root, "german-default", fast())
    assert resumed.manifest["resumed_from"] == "checkpoint-4"
    assert resumed.manifest["global_step"] == straight.manifest["global_step"] == 8
    from safetensors.torch import load_file

    a = load_file(straight.path / "adapter_model.safetensors")
    b = load_file(resumed.path / "adapter_model.safetensors")
    for name in a:
        torch.testing.assert_close(a[name], b[name], rtol=1e-5, atol=1e-6)


def test_disk_full_while_saving_leaves_the_previous_adapter_untouched(tiny_model_dir, tmp_path, monkeypatch):
    rows = samples()
    previous = train_lora(str(tiny_model_dir), rows, tmp_path, "german-default", fast(max_steps=2))
    before = directory_hash(previous.path)

    def full_disk(self, target, *args, **kwargs):
        Path(target).mkdir(parents=True, exist_ok=True)
        (Path(target) / "adapter_model.safetensors").write_bytes(b"half")
        raise OSError(errno.ENOSPC, "No space left on device")

    from peft import PeftModel

    monkeypatch.setattr(PeftModel, "save_pretrained", full_disk)
    with pytest.raises(OSError, match="No space left"):
        train_lora(str(tiny_model_dir), rows, tmp_path, "german-default", fast(max_steps=3))
    finished = [p for p in (tmp_path / "german-default").iterdir() if not p.name.startswith(".")]
    assert finished == [previous.path] and directory_hash(previous.path) == before


def test_bad_inputs_give_clear_errors(tiny_model_dir, tmp_path):
    with pytest.raises(InputError, match="field 'base_model': directory does not exist"):
        train_lora(str(tmp_path / "nope"), samples(), tmp_path, "k", fast())
    with pytest.raises(InputError, match="zero rows"):
        train_lora(str(tiny_model_dir), [], tmp_path, "k", fast())

    no_template = tmp_path / "no-template"
    no_template.mkdir()
    for file in tiny_model_dir.iterdir():
        (no_template / file.name).write_bytes(file.read_bytes())
    config = json.loads((no_template / "tokenizer_config.json").read_text())
    config.pop("chat_template", None)
    (no_template / "tokenizer_config.json").write_text(json.dumps(config))
    (no_template / "chat_template.jinja").unlink(missing_ok=True)
    with pytest.raises(InputError, match="no chat template"):
        train_lora(str(no_template), samples(), tmp_path, "k", fast())
    # the documented fallback: a template given in the trainer's configuration
    from culture_assets.tiny_model import CHAT_TEMPLATE

    assert load_tokenizer(no_template, chat_template=CHAT_TEMPLATE).chat_template == CHAT_TEMPLATE
