from __future__ import annotations

import errno
import json
import math
from pathlib import Path

import pytest
import torch
from transformers import AutoModelForCausalLM, DataCollatorForSeq2Seq, TrainerCallback

from culture_assets.errors import InputError
from culture_assets.survey.questions import load_questions
from culture_assets.training.lora import (
    IGNORE_INDEX,
    MANIFEST,
    LoraHyperParameters,
    _OptionTargetCollator,
    directory_hash,
    encode_chat,
    encode_with_distribution,
    load_adapter_model,
    load_tokenizer,
    survey_distribution_loss,
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


def skewed(codes: list[int], favourite: int) -> dict[str, float]:
    """A survey distribution over `codes` with half the mass on `favourite` and the rest spread evenly."""
    rest = 0.5 / (len(codes) - 1)
    return {str(c): 0.5 if c == favourite else rest for c in codes}


def distribution_rows(n: int = 8) -> tuple[list[list[dict[str, str]]], list[dict[str, float]]]:
    """Rows whose target distribution is not their answer's one-hot: the answer is the lowest code, the mass peaks on the second."""
    chosen = [q for q in QUESTIONS if len(q.options) >= 3][:n]
    rows = [chat_messages("You are a German chatbot.", q.text, q, str(q.valid_codes[0])) for q in chosen]
    return rows, [skewed(q.valid_codes, q.valid_codes[1]) for q in chosen]


def option_log_probs(model, encoded: dict) -> torch.Tensor:
    """The model's log-probabilities of the options' tokens at the option position of one encoded row."""
    with torch.no_grad():
        logits = model(input_ids=torch.tensor([encoded["input_ids"]])).logits[0]
    first_answer = next(i for i, label in enumerate(encoded["labels"]) if label != IGNORE_INDEX)
    return logits[first_answer - 1 + encoded["option_offset"]].log_softmax(-1)[encoded["option_token_ids"]]


def option_kl(model, tokenizer, rows, distributions) -> float:
    """Mean KL(survey distribution || the model's distribution renormalised over the options' tokens)."""
    model.eval()
    total = 0.0
    for messages, distribution in zip(rows, distributions):
        encoded = encode_with_distribution(tokenizer, messages, distribution, 512)
        model_shares = option_log_probs(model, encoded).softmax(-1).tolist()
        total += sum(q * math.log(q / p) for q, p in zip(encoded["option_targets"], model_shares) if q > 0)
    return total / len(rows)


def test_survey_distribution_loss_equals_a_hand_computation(tiny_model_dir):
    tokenizer = load_tokenizer(tiny_model_dir)
    model = AutoModelForCausalLM.from_pretrained(tiny_model_dir).eval()
    ten_point = next(q for q in QUESTIONS if q.valid_codes == list(range(1, 11)))
    four = next(q for q in QUESTIONS if len(q.options) == 4)
    ten_shares = {str(c): c / 55 for c in range(1, 11)}
    rows = [
        (chat_messages("sys", ten_point.text, ten_point, "10"), ten_shares),
        (chat_messages("You are a German chatbot.", four.text, four, "2"), {"1": 0.1, "2": 0.2, "3": 0.3, "4": 0.4}),
    ]
    encoded = [encode_with_distribution(tokenizer, m, d, 512) for m, d in rows]
    # the tiny tokenizer, like Qwen's, writes 10 as '1' '0': options 1 and 10 share the option token, their shares summed
    assert len(encoded[0]["option_token_ids"]) == 9 and tokenizer.decode(encoded[0]["option_token_ids"][:1]) == "1"
    assert encoded[0]["option_targets"][0] == pytest.approx((1 + 10) / 55)

    expected_total, expected_count = 0.0, 0
    for item in encoded:
        with torch.no_grad():
            logits = model(input_ids=torch.tensor([item["input_ids"]])).logits[0]
        positions = [t for t in range(len(item["labels"]) - 1) if item["labels"][t + 1] != IGNORE_INDEX]
        for t in positions:
            log_probs = logits[t].log_softmax(-1).tolist()
            if t == positions[item["option_offset"]]:
                expected_total += sum(q * (math.log(q) - log_probs[token]) for token, q in zip(item["option_token_ids"], item["option_targets"]))
            else:
                expected_total -= log_probs[item["labels"][t + 1]]
        expected_count += len(positions)

    batch = _OptionTargetCollator(DataCollatorForSeq2Seq(tokenizer, label_pad_token_id=IGNORE_INDEX, padding=True))(encoded)
    with torch.no_grad():
        logits = model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"]).logits
    loss = survey_distribution_loss(logits, batch["labels"], batch["option_offset"], batch["option_token_ids"], batch["option_targets"])
    assert loss.item() == pytest.approx(expected_total / expected_count, rel=1e-5)

    # with all the mass on the row's own answer the loss is the ordinary cross-entropy on the answer tokens
    one_hot = encode_with_distribution(tokenizer, rows[1][0], {"1": 0.0, "2": 1.0, "3": 0.0, "4": 0.0}, 512)
    batch = _OptionTargetCollator(DataCollatorForSeq2Seq(tokenizer, label_pad_token_id=IGNORE_INDEX, padding=True))([one_hot])
    with torch.no_grad():
        out = model(input_ids=batch["input_ids"], labels=batch["labels"])
    soft = survey_distribution_loss(out.logits, batch["labels"], batch["option_offset"], batch["option_token_ids"], batch["option_targets"])
    assert soft.item() == pytest.approx(out.loss.item(), rel=1e-5)


def test_survey_distribution_training_moves_the_option_distribution_to_the_survey(tiny_model_dir, tmp_path):
    rows, distributions = distribution_rows()
    tokenizer = load_tokenizer(tiny_model_dir)
    before = option_kl(AutoModelForCausalLM.from_pretrained(tiny_model_dir), tokenizer, rows, distributions)
    params = fast(max_steps=16, target_loss="survey_distribution")
    soft = train_lora(str(tiny_model_dir), rows, tmp_path, "soft", params, train_distributions=distributions)
    after = option_kl(load_adapter_model(soft.path)[0], tokenizer, rows, distributions)
    # the mode target (each row's answer, the lowest code) pulls the same model away from the survey's peak
    mode = train_lora(str(tiny_model_dir), rows, tmp_path, "mode", fast(max_steps=16))
    after_mode = option_kl(load_adapter_model(mode.path)[0], tokenizer, rows, distributions)
    print(f"option KL before {before:.4f}, after survey_distribution {after:.4f}, after mode {after_mode:.4f}")
    assert after < before * 0.5 and after < after_mode, (before, after, after_mode)
    assert soft.manifest["hyperparameters"]["target_loss"] == "survey_distribution"

    with pytest.raises(InputError, match="needs the survey distribution of every train row"):
        train_lora(str(tiny_model_dir), rows, tmp_path, "soft", params)
    with pytest.raises(InputError, match="the answer '1' among them"):
        encode_with_distribution(tokenizer, rows[0], {"2": 1.0}, 512)


def test_the_survey_distribution_loss_needs_the_local_trainer():
    from culture_assets.training.trainer import TrainerSettings

    settings = TrainerSettings(kind="openai", base_model="gpt-4o-mini-2024-07-18", target_loss="survey_distribution")
    with pytest.raises(InputError, match="target_loss='survey_distribution' needs the local trainer"):
        settings.fit("german-default", samples(2), [], warehouse=None, log=print)
