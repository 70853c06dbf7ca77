"""Local LoRA fine-tuning with transformers + peft (the Trainer runs on accelerate).

- Samples are rendered with the base model's own chat template; the loss covers only the
  assistant turn as the template renders it (the answer and its end-of-turn marker), the
  prompt is masked with -100.
- `target_loss="mode"` is cross-entropy on the answer (the paper's single answer).
  `target_loss="survey_distribution"` replaces the term at the option token (the first token
  where the options' renderings differ) by KL(survey distribution || the model's distribution
  there), computed from the same forward pass; the other answer tokens (the end-of-turn marker,
  a second digit) keep cross-entropy on the row's answer. Options that share their first token
  (`1` and `10` with a digit-by-digit tokenizer such as Qwen's) form one group whose target is
  their summed share: the KL is then over the groups, and the second digit follows the row's answer.
- A run is identified by a fingerprint of (base model, training rows, hyper-parameters, LoRA
  config, template). Its checkpoints live in `<models dir>/<model key>/.work-<fp>/checkpoints`,
  so a killed run started again with the same inputs resumes from its last checkpoint.
- The finished adapter is saved to a staging directory with its manifest (seed, hyper-parameters,
  LoraConfig, losses, versions) and renamed to `<models dir>/<model key>/<fp>` only when complete:
  a killed or disk-full run never replaces or corrupts an earlier adapter, and a finished
  fingerprint is reused instead of trained twice.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Literal, Mapping, Sequence

from pydantic import BaseModel, ConfigDict, Field

from culture_assets.errors import InputError
from culture_assets.model_loading import ADAPTER_MANIFEST, ModelSource, default_device, default_dtype, load_adapter_model, load_causal_lm, resolve_model
from culture_assets.model_loading import load_tokenizer as load_model_tokenizer

log = logging.getLogger(__name__)

MANIFEST = ADAPTER_MANIFEST
IGNORE_INDEX = -100
OPTION_FIELDS = ("option_offset", "option_token_ids", "option_targets")


class LoraHyperParameters(BaseModel):
    """Everything that changes the trained adapter; saved beside it."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    seed: int = 0
    epochs: float = Field(default=3.0, gt=0)
    max_steps: int = Field(default=-1, description="if > 0, overrides epochs")
    learning_rate: float = Field(default=2e-4, gt=0)
    batch_size: int = Field(default=8, ge=1)
    gradient_accumulation_steps: int = Field(default=1, ge=1)
    max_length: int = Field(default=512, ge=8)
    lora_r: int = Field(default=8, ge=1)
    lora_alpha: int = Field(default=16, ge=1)
    lora_dropout: float = Field(default=0.05, ge=0.0, lt=1.0)
    target_modules: tuple[str, ...] | str = "all-linear"
    warmup_steps: float = Field(default=0.0, ge=0.0)
    save_steps: int = Field(default=50, ge=1, description="checkpoint every N optimizer steps")
    target_loss: Literal["mode", "survey_distribution"] = Field(
        default="mode",
        description="mode: cross-entropy on the row's answer; survey_distribution: KL to the culture's answer distribution at the option token",
    )


@dataclass(frozen=True)
class TrainedAdapter:
    path: Path
    artifact_hash: str
    manifest: dict[str, Any]
    reused: bool


def _sha256_json(value: object) -> str:
    return hashlib.sha256(json.dumps(value, sort_keys=True, default=str).encode()).hexdigest()


def directory_hash(path: Path) -> str:
    """sha256 over every file's relative path and bytes: the adapter's artifact hash."""
    digest = hashlib.sha256()
    for file in sorted(p for p in path.rglob("*") if p.is_file()):
        digest.update(str(file.relative_to(path)).encode() + b"\0")
        with file.open("rb") as handle:
            for block in iter(lambda: handle.read(1 << 20), b""):
                digest.update(block)
    return digest.hexdigest()


def load_tokenizer(base_model: str | Path, chat_template: str = ""):
    """The base model's tokenizer, which must have a chat template; `chat_template` (a Jinja string) is the documented fallback."""
    return load_model_tokenizer(str(base_model), field="base_model", chat_template=chat_template, require_chat_template=True)


def _prompt_and_answer(tokenizer, messages: Sequence[dict[str, str]]) -> tuple[str, str]:
    """The rendered prompt (with the generation prompt) and the text the template adds for the answer turn."""
    if not messages or messages[-1]["role"] != "assistant":
        raise InputError("training sample", f"the last message must be the assistant's answer, got {messages[-1:]!r}", field="messages")
    prompt = tokenizer.apply_chat_template(list(messages[:-1]), tokenize=False, add_generation_prompt=True)
    full = tokenizer.apply_chat_template(list(messages), tokenize=False)
    if not full.startswith(prompt):
        raise InputError(
            "chat template",
            "rendering the conversation does not start with the rendered prompt, so the answer cannot be located; "
            "set the trainer's `chat_template` to a template whose assistant turn extends the generation prompt",
            field="chat_template",
        )
    return prompt, full[len(prompt):]


def encode_chat(tokenizer, messages: Sequence[dict[str, str]], max_length: int) -> dict[str, list[int]]:
    """input_ids and labels for one sample; labels are -100 everywhere but the final assistant turn."""
    prompt, answer = _prompt_and_answer(tokenizer, messages)
    # tokenized separately so the boundary is exact and matches inference (prompt, then generated answer)
    prompt_ids = tokenizer(prompt, add_special_tokens=False)["input_ids"]
    answer_ids = tokenizer(answer, add_special_tokens=False)["input_ids"]
    if len(prompt_ids) + len(answer_ids) > max_length:
        raise InputError(
            "training sample",
            f"{len(prompt_ids) + len(answer_ids)} tokens exceed max_length={max_length}; raise max_length",
            field="max_length",
        )
    input_ids = prompt_ids + answer_ids
    return {"input_ids": input_ids, "attention_mask": [1] * len(input_ids), "labels": [IGNORE_INDEX] * len(prompt_ids) + answer_ids}


def encode_with_distribution(
    tokenizer, messages: Sequence[dict[str, str]], distribution: Mapping[str, float], max_length: int
) -> dict[str, Any]:
    """`encode_chat` plus the soft target at the option token: its offset within the answer tokens, the
    options' tokens there and their shares of the survey distribution (options sharing a token summed)."""
    encoded = encode_chat(tokenizer, messages, max_length)
    answer = messages[-1]["content"]
    total = float(sum(distribution.values()))
    if answer not in distribution or total <= 0 or any(share < 0 for share in distribution.values()):
        raise InputError(
            "training sample",
            f"the survey distribution {dict(distribution)!r} must give non-negative shares over the options, the answer {answer!r} among them",
            field="survey_distribution",
        )
    renderings = {
        option: tokenizer(_prompt_and_answer(tokenizer, [*messages[:-1], {"role": "assistant", "content": option}])[1], add_special_tokens=False)["input_ids"]
        for option in distribution
    }
    # the option token is the first one where the options' answer turns differ (a template may open the turn with fixed tokens)
    offset = 0
    while all(len(ids) > offset for ids in renderings.values()) and len({ids[offset] for ids in renderings.values()}) == 1:
        offset += 1
    if any(len(ids) <= offset for ids in renderings.values()):
        raise InputError("training sample", f"the options {sorted(distribution)} render to the same tokens; they cannot be told apart", field="survey_distribution")
    shares: dict[int, float] = {}
    for option, ids in renderings.items():
        shares[ids[offset]] = shares.get(ids[offset], 0.0) + distribution[option] / total
    return {**encoded, "option_offset": offset, "option_token_ids": list(shares), "option_targets": list(shares.values())}


def survey_distribution_loss(logits, labels, option_offset, option_token_ids, option_targets, num_items=None):
    """Mean loss over the answer tokens, the option token's cross-entropy replaced by KL(target || model).

    logits [B, T, V]; labels [B, T] (-100 outside the answer); option_offset [B] (the option token's index
    within the answer tokens); option_token_ids / option_targets [B, K] (padding: target 0). With a one-hot
    target on the row's answer this is exactly the cross-entropy on the answer tokens.
    """
    import torch
    import torch.nn.functional as F

    next_logits, next_labels = logits[:, :-1], labels[:, 1:]  # logits at t predict the token at t + 1
    answer = next_labels != IGNORE_INDEX
    rows, cols = answer.nonzero(as_tuple=True)
    option_col = answer.int().argmax(dim=1) + option_offset  # first answer position, then the offset
    token_losses = F.cross_entropy(next_logits[rows, cols].float(), next_labels[rows, cols], reduction="none")
    option_log_probs = next_logits[torch.arange(logits.shape[0], device=logits.device), option_col].float().log_softmax(dim=-1)
    targets = option_targets.float()
    kl = (torch.xlogy(targets, targets) - targets * option_log_probs.gather(1, option_token_ids)).sum()
    count = answer.sum() if num_items is None else num_items
    return (token_losses[cols != option_col[rows]].sum() + kl) / count


class _OptionTargetCollator:
    """Pads like `base` and adds the option fields as tensors (option lists padded with target 0)."""

    def __init__(self, base):
        self.base = base

    def __call__(self, features: Sequence[dict[str, Any]]):
        import torch

        batch = self.base([{k: v for k, v in f.items() if k not in OPTION_FIELDS} for f in features])
        width = max(len(f["option_token_ids"]) for f in features)
        batch["option_offset"] = torch.tensor([f["option_offset"] for f in features])
        batch["option_token_ids"] = torch.tensor([f["option_token_ids"] + [0] * (width - len(f["option_token_ids"])) for f in features])
        batch["option_targets"] = torch.tensor([f["option_targets"] + [0.0] * (width - len(f["option_targets"])) for f in features])
        return batch


def _survey_distribution_trainer():
    from transformers import Trainer

    class SurveyDistributionTrainer(Trainer):
        # normalised over the accumulated batch's answer tokens (num_items_in_batch), as the Trainer's own causal-LM loss
        loss_is_scaled_for_ga = True

        def compute_loss(self, model, inputs, return_outputs=False, num_items_in_batch=None):
            inputs = dict(inputs)
            labels = inputs.pop("labels")
            option = {name: inputs.pop(name) for name in OPTION_FIELDS}
            outputs = model(**inputs)
            if num_items_in_batch is None:
                steps = self.current_gradient_accumulation_steps if model.training else 1
                num_items_in_batch = (labels[:, 1:] != IGNORE_INDEX).sum() * steps
            elif self.args.average_tokens_across_devices:
                num_items_in_batch = num_items_in_batch / self.accelerator.num_processes  # the count is global, DDP averages
            loss = survey_distribution_loss(outputs.logits, labels, num_items=num_items_in_batch, **option)
            return (loss, outputs) if return_outputs else loss

    return SurveyDistributionTrainer


def run_fingerprint(
    base_model: ModelSource, train_rows: Sequence[Sequence[dict]], validation_rows: Sequence[Sequence[dict]], params: LoraHyperParameters,
    chat_template: str, distributions: object = None,
) -> str:
    return _sha256_json(
        {"base": base_model.identity(), "train": train_rows, "validation": validation_rows,
         "params": params.model_dump(mode="json"), "template": chat_template, "distributions": distributions}
    )


def last_complete_checkpoint(checkpoints: Path) -> Path | None:
    """The newest checkpoint the Trainer finished writing (trainer_state.json is its last file).

    A run killed while saving leaves a partial checkpoint-N; it is removed rather than resumed from.
    """
    found = sorted(checkpoints.glob("checkpoint-*"), key=lambda p: int(p.name.split("-")[-1]) if p.name.split("-")[-1].isdigit() else -1)
    for candidate in reversed(found):
        if (candidate / "trainer_state.json").is_file():
            return candidate
        shutil.rmtree(candidate, ignore_errors=True)
    return None


def _training_arguments(params: LoraHyperParameters, checkpoints: Path, device: str, use_bf16: bool, has_validation: bool):
    from transformers import TrainingArguments

    return TrainingArguments(
        output_dir=str(checkpoints),
        num_train_epochs=params.epochs,
        max_steps=params.max_steps,
        learning_rate=params.learning_rate,
        per_device_train_batch_size=params.batch_size,
        per_device_eval_batch_size=params.batch_size,
        gradient_accumulation_steps=params.gradient_accumulation_steps,
        warmup_steps=params.warmup_steps,
        seed=params.seed,
        data_seed=params.seed,
        save_strategy="steps",
        save_steps=params.save_steps,
        save_total_limit=2,
        eval_strategy="epoch" if has_validation else "no",
        logging_steps=10,
        logging_first_step=True,
        report_to=[],
        use_cpu=device == "cpu",
        bf16=use_bf16,
        dataloader_pin_memory=device == "cuda",
        disable_tqdm=True,
        remove_unused_columns=False,  # the option fields reach compute_loss; the collators take only what they know
    )


def train_lora(
    base_model: str,
    train_rows: Sequence[Sequence[dict[str, str]]],
    output_root: Path,
    model_key: str,
    params: LoraHyperParameters = LoraHyperParameters(),
    validation_rows: Sequence[Sequence[dict[str, str]]] = (),
    chat_template: str = "",
    callbacks: Sequence[Any] = (),
    progress: Callable[[str], None] = log.info,
    train_distributions: Sequence[Mapping[str, float]] | None = None,
    validation_distributions: Sequence[Mapping[str, float]] | None = None,
) -> TrainedAdapter:
    """Train (or resume, or reuse) a LoRA adapter on chat samples; returns the finished adapter directory.

    `*_distributions` (one {answer: share} per row, the culture's survey distribution over the options)
    are the targets of `target_loss="survey_distribution"`, and unused with "mode".
    """
    if not train_rows:
        raise InputError("training_set", f"{model_key}: the training split has zero rows; nothing to train on", field="split")
    soft = params.target_loss == "survey_distribution"
    if soft:
        for split, rows, distributions in (("train", train_rows, train_distributions), ("validation", validation_rows, validation_distributions)):
            if rows and (distributions is None or len(distributions) != len(rows)):
                raise InputError(
                    "training_set",
                    f"{model_key}: target_loss='survey_distribution' needs the survey distribution of every {split} row "
                    f"(got {'none' if distributions is None else len(distributions)} for {len(rows)} rows); re-materialize the training set",
                    field="survey_distribution",
                )
    base = resolve_model(base_model, field="base_model")
    targets = {"train": train_distributions, "validation": validation_distributions} if soft else None
    fingerprint = run_fingerprint(base, train_rows, validation_rows, params, chat_template, targets)[:16]
    final = output_root / model_key / fingerprint
    if (final / MANIFEST).is_file():
        manifest = json.loads((final / MANIFEST).read_text(encoding="utf-8"))
        progress(f"{model_key}: adapter {final} already trained with these inputs; reusing it")
        return TrainedAdapter(final, directory_hash(final), manifest, reused=True)

    import torch
    import transformers
    import peft
    from peft import LoraConfig, get_peft_model
    from transformers import DataCollatorForSeq2Seq, PrinterCallback, Trainer, TrainerCallback

    tokenizer = load_tokenizer(base.name, chat_template)
    if soft:
        train_data = [encode_with_distribution(tokenizer, m, d, params.max_length) for m, d in zip(train_rows, train_distributions)]
        validation_data = [encode_with_distribution(tokenizer, m, d, params.max_length) for m, d in zip(validation_rows, validation_distributions or ())]
    else:
        train_data = [encode_chat(tokenizer, m, params.max_length) for m in train_rows]
        validation_data = [encode_chat(tokenizer, m, params.max_length) for m in validation_rows]

    transformers.set_seed(params.seed)
    device = default_device()
    dtype = default_dtype(device)
    use_bf16 = dtype == torch.bfloat16
    # frozen base weights in bf16 on a GPU that has it; peft keeps the adapter weights in float32
    model = load_causal_lm(base.name, field="base_model", device=device, dtype=dtype)
    lora_config = LoraConfig(
        task_type="CAUSAL_LM",
        r=params.lora_r,
        lora_alpha=params.lora_alpha,
        lora_dropout=params.lora_dropout,
        target_modules=list(params.target_modules) if isinstance(params.target_modules, tuple) else params.target_modules,
    )
    model = get_peft_model(model, lora_config)

    work = output_root / model_key / f".work-{fingerprint}"
    checkpoints = work / "checkpoints"
    checkpoints.mkdir(parents=True, exist_ok=True)
    args = _training_arguments(params, checkpoints, device, use_bf16, has_validation=bool(validation_data))
    collator = DataCollatorForSeq2Seq(tokenizer, label_pad_token_id=IGNORE_INDEX, padding=True)
    trainer = (_survey_distribution_trainer() if soft else Trainer)(
        model=model,
        args=args,
        train_dataset=train_data,
        eval_dataset=validation_data or None,
        data_collator=_OptionTargetCollator(collator) if soft else collator,
        callbacks=list(callbacks),
    )

    class _Progress(TrainerCallback):
        def on_log(self, args, state, control, logs=None, **kwargs):
            progress(f"{model_key}: step {state.global_step}/{state.max_steps} {logs}")

    trainer.remove_callback(PrinterCallback)
    trainer.add_callback(_Progress())
    resume_from = last_complete_checkpoint(checkpoints)
    if resume_from:
        progress(f"{model_key}: resuming from {resume_from}")
    metrics = trainer.train(resume_from_checkpoint=str(resume_from) if resume_from else None).metrics

    losses = [entry["loss"] for entry in trainer.state.log_history if "loss" in entry]
    eval_losses = [entry["eval_loss"] for entry in trainer.state.log_history if "eval_loss" in entry]
    manifest = {
        "model_key": model_key,
        "fingerprint": fingerprint,
        "base_model": base.name,
        "base_model_revision": base.revision,
        "hyperparameters": params.model_dump(mode="json"),
        "lora_config": json.loads(json.dumps(lora_config.to_dict(), default=sorted)),  # a set (target_modules) in a stable order
        "seed": params.seed,
        "n_train": len(train_data),
        "n_validation": len(validation_data),
        "global_step": trainer.state.global_step,
        "resumed_from": resume_from.name if resume_from else None,
        "train_loss_first": losses[0] if losses else None,
        "train_loss_last": losses[-1] if losses else None,
        "eval_loss_last": eval_losses[-1] if eval_losses else None,
        "device": device,
        "train_runtime_s": metrics.get("train_runtime"),
        "train_samples_per_second": metrics.get("train_samples_per_second"),
        "versions": {"torch": torch.__version__, "transformers": transformers.__version__, "peft": peft.__version__},
    }
    staging = work / "staging"
    shutil.rmtree(staging, ignore_errors=True)
    trainer.model.save_pretrained(staging)
    tokenizer.save_pretrained(staging)
    (staging / MANIFEST).write_text(json.dumps(manifest, indent=2, sort_keys=True), encoding="utf-8")
    artifact_hash = directory_hash(staging)
    os.rename(staging, final)  # atomic: the adapter appears complete or not at all
    shutil.rmtree(work, ignore_errors=True)
    return TrainedAdapter(final, artifact_hash, manifest, reused=False)
