"""Local trainer throughput and memory: LoRA (the project's way) vs full fine-tuning (the naive way).

Builds a tiny and a small random Llama-style chat model here (no model hub), trains each for a few
steps on chat samples of the seed questions with answer-only loss, once with `train_lora` and once
as a full fine-tune with the same data, collator and batch size. Each run is a child process, so
its peak RSS is its own. With a GPU it also trains a 0.5B-class model (Qwen2-0.5B dimensions) with
LoRA and reports model FLOPs utilisation.

    python bench/training.py [--batch-size 8]

Ends with one JSON line: {"bench": "training", "samples_per_s", "peak_rss_mb", "device"} for the
LoRA run of the largest model on the best device present.
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from culture_assets.survey.questions import load_questions  # noqa: E402
from culture_assets.training.training_set import chat_messages  # noqa: E402

MODELS = {
    "tiny": {"hidden_size": 64, "layers": 2, "heads": 4, "steps": 30},
    "small": {"hidden_size": 512, "layers": 8, "heads": 8, "steps": 8},
}
# Qwen2-0.5B: 24 layers, hidden 896, 14 heads / 2 KV heads, MLP 4864, vocab 151936 (about 494M parameters)
QWEN05B = {"hidden_size": 896, "intermediate_size": 4864, "num_hidden_layers": 24, "num_attention_heads": 14,
           "num_key_value_heads": 2, "vocab_size": 151936}
PEAK_BF16_TFLOPS = {"H100 PCIe": 756.0, "H100": 989.0, "H200": 989.0, "A100": 312.0}
FRAMES = ("{}", "In your opinion: {}", "Tell me honestly. {}", "Frankly, in your view: {}")


def samples() -> list[list[dict[str, str]]]:
    return [chat_messages("You are a German chatbot that knows German culture very well.", frame.format(q.text), q, str(q.valid_codes[0]))
            for q in load_questions() for frame in FRAMES]


def build_models(target: Path, with_gpu_model: bool) -> dict[str, Path]:
    from culture_assets.tiny_model import build_tiny_chat_model

    corpus = [q.text + " " + q.option_text() for q in load_questions()] * 4
    built = {}
    for name, dims in MODELS.items():
        built[name] = build_tiny_chat_model(target / name, corpus, hidden_size=dims["hidden_size"], layers=dims["layers"], heads=dims["heads"])
    if with_gpu_model:
        import torch
        from transformers import AutoTokenizer, Qwen2Config, Qwen2ForCausalLM

        path = target / "qwen05b-class"
        tokenizer = AutoTokenizer.from_pretrained(built["tiny"])
        tokenizer.save_pretrained(path)
        torch.manual_seed(0)
        config = Qwen2Config(**QWEN05B, tie_word_embeddings=True, max_position_embeddings=2048,
                             bos_token_id=tokenizer.bos_token_id, eos_token_id=tokenizer.eos_token_id, pad_token_id=tokenizer.pad_token_id)
        Qwen2ForCausalLM(config).save_pretrained(path)
        built["qwen05b-class"] = path
    return built


def child(spec: dict) -> dict:
    """One training run in this process; returns its throughput and this process's peak RSS."""
    import torch
    from safetensors.torch import load_file
    from transformers import AutoModelForCausalLM, DataCollatorForSeq2Seq, Trainer, TrainingArguments

    from culture_assets.training.lora import IGNORE_INDEX, LoraHyperParameters, encode_chat, load_tokenizer, train_lora

    rows = samples()
    model_path = Path(spec["model"])
    batch, steps = spec["batch_size"], spec["steps"]
    tokenizer = load_tokenizer(model_path)
    mean_tokens = sum(len(encode_chat(tokenizer, m, 512)["input_ids"]) for m in rows) / len(rows)
    if spec["method"] == "lora":
        params = LoraHyperParameters(max_steps=steps, batch_size=batch, save_steps=10_000, learning_rate=1e-3)
        adapter = train_lora(str(model_path), rows, Path(spec["out"]), f"bench-{spec['name']}", params, progress=lambda _: None)
        samples_per_s = adapter.manifest["train_samples_per_second"]
        total = sum(p.numel() for p in AutoModelForCausalLM.from_pretrained(model_path).parameters())
        trainable = sum(t.numel() for t in load_file(adapter.path / "adapter_model.safetensors").values())
    else:
        model = AutoModelForCausalLM.from_pretrained(model_path, dtype=torch.float32)
        args = TrainingArguments(output_dir=spec["out"], max_steps=steps, per_device_train_batch_size=batch, learning_rate=1e-4,
                                 save_strategy="no", report_to=[], disable_tqdm=True, logging_steps=10_000,
                                 use_cpu=not torch.cuda.is_available())
        data = [encode_chat(tokenizer, m, 512) for m in rows]
        trainer = Trainer(model=model, args=args, train_dataset=data,
                          data_collator=DataCollatorForSeq2Seq(tokenizer, label_pad_token_id=IGNORE_INDEX, padding=True))
        samples_per_s = trainer.train().metrics["train_samples_per_second"]
        total = trainable = sum(p.numel() for p in model.parameters())
    return {"samples_per_s": samples_per_s, "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
            "total_params": total, "trainable_params": trainable, "mean_tokens": mean_tokens,
            "device": "cuda" if torch.cuda.is_available() else "cpu",
            "gpu": torch.cuda.get_device_name(0) if torch.cuda.is_available() else None,
            "peak_gpu_mb": torch.cuda.max_memory_allocated() / 2**20 if torch.cuda.is_available() else None}


def run_child(spec: dict) -> dict:
    out = subprocess.run([sys.executable, __file__, "--child", json.dumps(spec)], capture_output=True, text=True, check=False)
    if out.returncode != 0:
        raise RuntimeError(f"bench child {spec['name']}/{spec['method']} failed:\n{out.stderr[-3000:]}")
    return json.loads(out.stdout.strip().splitlines()[-1])


def peak_tflops(gpu: str) -> float | None:
    for name, tflops in PEAK_BF16_TFLOPS.items():
        if name in gpu:
            return tflops
    return None


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--child")
    args = parser.parse_args()
    if args.child:
        print(json.dumps(child(json.loads(args.child))))
        return
    import torch

    has_gpu = torch.cuda.is_available()
    with tempfile.TemporaryDirectory(prefix="bench-training-") as tmp:
        work = Path(tmp)
        started = time.perf_counter()
        models = build_models(work / "models", with_gpu_model=has_gpu)
        results = {}
        for name in MODELS:
            for method in ("lora", "full"):
                spec = {"name": name, "model": str(models[name]), "method": method, "batch_size": args.batch_size,
                        "steps": MODELS[name]["steps"], "out": str(work / f"out-{name}-{method}")}
                results[name, method] = run_child(spec)
        print(f"device: {results['tiny', 'lora']['device']}, batch size {args.batch_size}, "
              f"{results['tiny', 'lora']['mean_tokens']:.0f} tokens per sample on average")
        print(f"{'model':<8}{'params':>12}{'method':<6}{'trainable':>12}{'samples/s':>12}{'peak RSS MB':>13}")
        for (name, method), r in results.items():
            print(f"{name:<8}{r['total_params']:>12,} {method:<5}{r['trainable_params']:>12,}{r['samples_per_s']:>12.1f}{r['peak_rss_mb']:>13.0f}")
        for name in MODELS:
            lora, full = results[name, "lora"], results[name, "full"]
            print(f"{name}: LoRA / full fine-tune: samples/s x{lora['samples_per_s'] / full['samples_per_s']:.2f}, "
                  f"peak RSS x{lora['peak_rss_mb'] / full['peak_rss_mb']:.2f}, trainable params x{lora['trainable_params'] / full['trainable_params']:.4f}")
        headline = results["small", "lora"]
        if has_gpu:
            spec = {"name": "qwen05b-class", "model": str(models["qwen05b-class"]), "method": "lora", "batch_size": 32, "steps": 20,
                    "out": str(work / "out-gpu")}
            gpu = run_child(spec)
            tokens_per_s = gpu["samples_per_s"] * gpu["mean_tokens"]
            # LoRA: forward 2N + backward through frozen weights 2N FLOPs per token (no weight gradients for N)
            achieved = 4 * gpu["total_params"] * tokens_per_s / 1e12
            peak = peak_tflops(gpu["gpu"] or "")
            mfu = f"{achieved / peak:.1%} of {peak:.0f} bf16 TFLOP/s" if peak else "unknown peak for this GPU"
            print(f"GPU {gpu['gpu']}: 0.5B-class ({gpu['total_params']:,} params) LoRA, batch 32: {gpu['samples_per_s']:.1f} samples/s, "
                  f"{tokens_per_s:,.0f} tokens/s, {achieved:.1f} TFLOP/s model FLOPs (4N/token), MFU {mfu}, peak GPU memory {gpu['peak_gpu_mb']:.0f} MB")
            headline = gpu
        print(f"total bench time {time.perf_counter() - started:.0f}s")
    print(json.dumps({"bench": "training", "samples_per_s": round(headline["samples_per_s"], 2),
                      "peak_rss_mb": round(headline["peak_rss_mb"], 1), "device": headline["device"]}))


if __name__ == "__main__":
    main()
