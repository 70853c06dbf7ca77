"""LoRA training throughput and memory on Qwen2.5-0.5B's shape: this project's trainer vs TRL's SFTTrainer.

Builds a random-initialised model with Qwen2.5-0.5B-Instruct's architecture (hidden 896, 14 heads / 2 KV heads, MLP
4864, vocabulary 151,936, tied embeddings; no model hub, no weights) and trains LoRA on chat samples of the seed
questions with the loss on the answer only, once with `train_lora` and once with TRL's SFTTrainer given the same
LoraConfig, samples, batch size, steps, learning rate and precision (prompt-completion data, completion-only loss).
The runs alternate (ours, TRL, ours, TRL, ...) in child processes, so machine load falls on both and each peak RSS is
its own; the medians are compared. On a CPU the model keeps all of its width but only `--layers` of its 24 layers
(said in the output); on a GPU all 24, with model FLOPs utilisation.

    python bench/training.py [--layers 2] [--batch-size 4] [--steps 4] [--rounds 2]

Ends with one JSON line: {"bench": "training", "samples_per_s", "tokens_per_s", "peak_rss_mb", "device", "layers",
"trl_speedup", "mfu", ...}; `trl_speedup` = our samples/s / TRL's (target >= 1.0).
"""

from __future__ import annotations

import argparse
import json
import math
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import datetime, timezone
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from culture_assets.survey.questions import load_questions  # noqa: E402
from culture_assets.training.lora import LoraHyperParameters  # noqa: E402
from culture_assets.training.training_set import chat_messages  # noqa: E402

# bf16 dense peak (no sparsity) from the vendors' data sheets
PEAK_BF16_TFLOPS = {"H200": 989.0, "H100 PCIe": 756.0, "H100": 989.0, "A100": 312.0, "L4": 121.0, "A10": 125.0}
FRAMES = ("{}", "In your opinion: {}", "Tell me honestly. {}", "Frankly, in your view: {}")
LEARNING_RATE = 2e-4


def samples() -> list[list[dict[str, str]]]:
    return [chat_messages("You are a German chatbot that knows German culture very well.", frame.format(q.text), q, str(q.valid_codes[0]))
            for q in load_questions() for frame in FRAMES]


def hyperparameters(spec: dict) -> LoraHyperParameters:
    return LoraHyperParameters(max_steps=spec["steps"], batch_size=spec["batch_size"], save_steps=10_000, learning_rate=LEARNING_RATE)


def run_ours(spec: dict, rows: list) -> float:
    from culture_assets.training.lora import train_lora

    adapter = train_lora(spec["model"], rows, Path(spec["out"]), "bench", hyperparameters(spec), progress=lambda _: None)
    return adapter.manifest["train_samples_per_second"]


def run_trl(spec: dict, rows: list) -> float:
    """TRL's SFTTrainer with the LoraConfig, precision and optimiser settings train_lora uses."""
    import torch
    from datasets import Dataset
    from peft import LoraConfig
    from trl import SFTConfig, SFTTrainer

    from culture_assets.training.lora import load_tokenizer

    params = hyperparameters(spec)
    cuda = torch.cuda.is_available()
    bf16 = cuda and torch.cuda.is_bf16_supported()
    lora = LoraConfig(task_type="CAUSAL_LM", r=params.lora_r, lora_alpha=params.lora_alpha, lora_dropout=params.lora_dropout,
                      target_modules=params.target_modules)
    config = SFTConfig(
        output_dir=spec["out"], max_steps=params.max_steps, per_device_train_batch_size=params.batch_size,
        learning_rate=params.learning_rate, seed=params.seed, data_seed=params.seed, max_length=params.max_length,
        completion_only_loss=True, packing=False, save_strategy="no", report_to=[], logging_steps=10, disable_tqdm=True,
        use_cpu=not cuda, bf16=bf16, dataloader_pin_memory=cuda,
        model_init_kwargs={"dtype": torch.bfloat16 if bf16 else torch.float32},
    )
    # conversational prompt-completion rows: TRL renders them with the chat template and masks the prompt
    data = Dataset.from_list([{"prompt": m[:-1], "completion": m[-1:]} for m in rows])
    trainer = SFTTrainer(model=spec["model"], args=config, train_dataset=data, peft_config=lora,
                         processing_class=load_tokenizer(Path(spec["model"])))
    return trainer.train().metrics["train_samples_per_second"]


def child(spec: dict) -> dict:
    """One training run in this process: its samples/s and this process's peak RSS."""
    import torch

    from culture_assets.training.lora import encode_chat, load_tokenizer

    rows = samples()
    tokenizer = load_tokenizer(Path(spec["model"]))
    mean_tokens = statistics.fmean(len(encode_chat(tokenizer, m, 512)["input_ids"]) for m in rows)
    samples_per_s = (run_ours if spec["trainer"] == "ours" else run_trl)(spec, rows)
    cuda = torch.cuda.is_available()
    return {"samples_per_s": samples_per_s, "mean_tokens": mean_tokens,
            "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
            "device": "cuda" if cuda else "cpu", "gpu": torch.cuda.get_device_name(0) if cuda else None,
            "peak_gpu_mb": torch.cuda.max_memory_allocated() / 2**20 if cuda else None}


def run_child(spec: dict) -> dict:
    out = subprocess.run([sys.executable, __file__, "--child", json.dumps(spec)], capture_output=True, text=True, check=False)
    if out.returncode != 0:
        raise RuntimeError(f"bench child {spec['trainer']} failed:\n{out.stderr[-3000:]}")
    return json.loads(out.stdout.strip().splitlines()[-1])


def parameter_count(model_dir: Path) -> int:
    from safetensors import safe_open

    total = 0
    for file in model_dir.glob("*.safetensors"):
        with safe_open(file, "pt") as weights:
            total += sum(math.prod(weights.get_slice(name).get_shape()) for name in weights.keys())
    return total


def peak_tflops(gpu: str) -> float | None:
    return next((tflops for name, tflops in PEAK_BF16_TFLOPS.items() if name in gpu), None)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--layers", type=int, default=None, help="layers of the 24 to build (default: 24 on a GPU, 2 on a CPU)")
    parser.add_argument("--batch-size", type=int, default=None, help="default: 16 on a GPU, 4 on a CPU")
    parser.add_argument("--steps", type=int, default=None, help="optimizer steps per run (default: 30 on a GPU, 4 on a CPU)")
    parser.add_argument("--rounds", type=int, default=2, help="alternating (ours, TRL) pairs")
    parser.add_argument("--child")
    args = parser.parse_args()
    if args.child:
        print(json.dumps(child(json.loads(args.child))))
        return
    import torch

    from culture_assets.tiny_model import QWEN2_5_0_5B_SHAPE, build_qwen2_5_0_5b_shape

    cuda = torch.cuda.is_available()
    layers = args.layers or (QWEN2_5_0_5B_SHAPE["num_hidden_layers"] if cuda else 2)
    batch = args.batch_size or (16 if cuda else 4)
    steps = args.steps or (30 if cuda else 4)
    started = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="bench-training-") as tmp:
        work = Path(tmp)
        corpus = [q.text + " " + q.option_text() for q in load_questions()] * 4
        model = build_qwen2_5_0_5b_shape(work / "qwen2.5-0.5b-shape", corpus, layers=layers)
        params = parameter_count(model)
        runs: dict[str, list[dict]] = {"ours": [], "trl": []}
        for round_ in range(args.rounds):
            for trainer in ("ours", "trl"):
                spec = {"trainer": trainer, "model": str(model), "batch_size": batch, "steps": steps, "out": str(work / f"out-{trainer}-{round_}")}
                runs[trainer].append(run_child(spec))
                print(f"round {round_ + 1} {trainer:<5} {runs[trainer][-1]['samples_per_s']:8.2f} samples/s  peak RSS {runs[trainer][-1]['peak_rss_mb']:7.0f} MB", flush=True)
    first = runs["ours"][0]
    median = {name: statistics.median(r["samples_per_s"] for r in results) for name, results in runs.items()}
    peak_rss = {name: max(r["peak_rss_mb"] for r in results) for name, results in runs.items()}
    tokens_per_s = median["ours"] * first["mean_tokens"]
    device = first["device"]
    shape_note = f"{layers} of 24 layers" if layers != QWEN2_5_0_5B_SHAPE["num_hidden_layers"] else "all 24 layers"
    print(f"model: random Qwen2.5-0.5B shape, {shape_note}, {params:,} parameters; device {first['gpu'] or device}; "
          f"batch {batch}, {steps} steps, LoRA r=8 all-linear, {first['mean_tokens']:.0f} tokens per sample (bench tokenizer)")
    print(f"{'trainer':<10}{'samples/s (median)':>20}{'peak RSS MB':>14}")
    for name in runs:
        print(f"{name:<10}{median[name]:>20.2f}{peak_rss[name]:>14.0f}")
    print(f"ours / TRL SFTTrainer: samples/s x{median['ours'] / median['trl']:.2f}")
    mfu = None
    if cuda:
        # LoRA: forward 2N and backward through the frozen weights 2N FLOPs per token (no weight gradients for N);
        # attention's sequence-length term left out (short sequences)
        achieved = 4 * params * tokens_per_s / 1e12
        peak = peak_tflops(first["gpu"] or "")
        mfu = achieved / peak if peak else None
        print(f"model FLOPs {achieved:.1f} TFLOP/s (4N per token); MFU {f'{mfu:.1%} of {peak:.0f} bf16 TFLOP/s' if peak else 'unknown peak'}; "
              f"peak GPU memory {max(r['peak_gpu_mb'] for r in runs['ours']):.0f} MB")
    print(f"total bench time {time.perf_counter() - started:.0f}s, {datetime.now(timezone.utc):%Y-%m-%d %H:%M} UTC")
    print(json.dumps({"bench": "training", "model": "qwen2.5-0.5b-shape", "layers": layers, "parameters": params,
                      "batch_size": batch, "steps": steps, "samples_per_s": round(median["ours"], 3),
                      "tokens_per_s": round(tokens_per_s, 1), "mean_tokens": round(first["mean_tokens"], 1),
                      "peak_rss_mb": round(peak_rss["ours"], 1), "trl_samples_per_s": round(median["trl"], 3),
                      "trl_peak_rss_mb": round(peak_rss["trl"], 1), "device": device,
                      "trl_speedup": round(median["ours"] / median["trl"], 3), "mfu": round(mfu, 4) if mfu else None}))


if __name__ == "__main__":
    main()
