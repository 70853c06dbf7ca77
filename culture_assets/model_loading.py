"""One loader for every local model: a Hugging Face hub name or a local directory, the same way.

`resolve_model` decides where a model comes from before anything heavy is loaded, and fails in
seconds with one line naming the model, the setting and what was expected:
- a directory (it exists) must hold a `config.json` written by `save_pretrained`;
- a hub name (`org/name`) is taken from the Hugging Face cache when it is there, else fetched
  from the hub (HF_ENDPOINT) by `from_pretrained`, which downloads and caches it. With
  HF_HUB_OFFLINE set, a name missing from the cache is an error; an unreachable hub is reported
  after one connection attempt, not after minutes of retries.
The preflight asks the same function (`model_problem`), so "at hand" means the same thing to
the check and to the loaders. Adapters are directories whose manifest records their base
model by the name it was given, so an adapter trained on a hub model loads wherever that name does.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from culture_assets.errors import InputError

ADAPTER_MANIFEST = "training_manifest.json"
OFFLINE_ENV = "HF_HUB_OFFLINE"
ENDPOINT_ENV = "HF_ENDPOINT"
# seconds to wait for the hub to answer the first request before calling it unreachable
HUB_TIMEOUT_S = 10.0


@dataclass(frozen=True)
class ModelSource:
    """Where a model's files are: `name` as the user gave it, `path` a local directory holding them."""

    name: str
    path: Path
    revision: str | None  # the hub commit of a cached model; None for a local directory

    @property
    def from_hub(self) -> bool:
        return self.revision is not None

    @property
    def load_from(self) -> str:
        """What to hand `from_pretrained`: the hub name (it fetches or finds the rest of the files) or the directory."""
        return self.name if self.from_hub else str(self.path)

    def identity(self) -> list[Any]:
        """What identifies these weights, for run fingerprints: a hub model's name and revision, or a
        directory's path and weight file sizes; the config text either way."""
        config = (self.path / "config.json").read_text(encoding="utf-8")
        if self.from_hub:
            return [self.name, self.revision, config]
        return [str(self.path), config, sorted((p.name, p.stat().st_size) for p in self.path.glob("*.safetensors"))]


def _hub_constants():
    from huggingface_hub import constants

    return constants


def _looks_like_path(name: str) -> bool:
    """A hub name is `name` or `org/name`; anything else (absolute, ~, ./, deeper) can only be a directory."""
    from huggingface_hub.utils import HFValidationError, validate_repo_id

    if name.startswith((os.sep, ".", "~")) or name.count("/") > 1:
        return True
    try:
        validate_repo_id(name)
    except HFValidationError:
        return True
    return False


def _local_directory(name: str, field: str) -> ModelSource:
    path = Path(name).expanduser()
    if not path.is_dir():
        raise InputError(name, "directory does not exist (expected a model directory written by save_pretrained, or a Hugging Face hub name such as Qwen/Qwen2.5-0.5B-Instruct)", field=field)
    if not (path / "config.json").is_file():
        raise InputError(str(path), "directory is not a transformers model: config.json is missing (expected a directory written by save_pretrained, with config.json, weights and tokenizer files)", field=field)
    return ModelSource(str(path.resolve()), path.resolve(), None)


def _cached_snapshot(name: str) -> Path | None:
    from huggingface_hub import try_to_load_from_cache

    found = try_to_load_from_cache(name, "config.json", cache_dir=_hub_constants().HF_HUB_CACHE)
    return Path(found).parent if isinstance(found, str) else None


def _download_config(name: str, field: str) -> Path:
    """config.json of a hub model, fetched from the hub; the hub's answer decides the error.

    One metadata request probes the hub first: `hf_hub_download` retries a refused connection
    with backoff for half a minute, which is the wrong answer to a wrong HF_ENDPOINT.
    """
    from huggingface_hub import hf_hub_download, model_info
    from huggingface_hub.errors import GatedRepoError, RepositoryNotFoundError

    endpoint = _hub_constants().ENDPOINT
    try:
        model_info(name, timeout=HUB_TIMEOUT_S)
        return Path(hf_hub_download(name, "config.json", etag_timeout=HUB_TIMEOUT_S)).parent
    except GatedRepoError:
        raise InputError(name, f"the model is gated on the Hugging Face hub ({endpoint}): accept its terms on the model page and log in (`hf auth login` or HF_TOKEN)", field=field) from None
    except RepositoryNotFoundError:
        raise InputError(name, f"no such model on the Hugging Face hub ({endpoint}); expected an existing hub name (org/name) or a local model directory", field=field) from None
    except Exception as exc:  # the hub client raises its HTTP library's own connection and timeout errors
        raise InputError(
            name,
            f"the Hugging Face hub at {endpoint} ({ENDPOINT_ENV}) cannot be reached ({type(exc).__name__}: {exc}) and the model is not in the cache "
            f"({_hub_constants().HF_HUB_CACHE}); check the network or {ENDPOINT_ENV}, set {OFFLINE_ENV}=1 to use the cache only, or give a local model directory",
            field=field,
        ) from None


def resolve_model(name: str, field: str = "model") -> ModelSource:
    """Where `name` (a local directory or a hub name) is, fetching a hub model's config when it is not cached yet."""
    if not name or not name.strip():
        raise InputError("model", "no model given (expected a Hugging Face hub name or a local model directory)", field=field)
    if Path(name).expanduser().exists() or _looks_like_path(name):
        return _local_directory(name, field)
    snapshot = _cached_snapshot(name)
    if snapshot is None:
        if _hub_constants().HF_HUB_OFFLINE:
            raise InputError(
                name,
                f"not in the Hugging Face cache ({_hub_constants().HF_HUB_CACHE}) and {OFFLINE_ENV} is set; download it once with "
                f"network access (`hf download {name}`), unset {OFFLINE_ENV}, or give a local model directory",
                field=field,
            )
        snapshot = _download_config(name, field)
    return ModelSource(name, snapshot, snapshot.name)


def model_problem(name: str, field: str = "model") -> str | None:
    """Why `name` cannot be loaded here (one line), or None when it is at hand or downloadable."""
    try:
        resolve_model(name, field)
    except InputError as exc:
        return str(exc)
    return None


def default_device() -> str:
    import torch

    return "cuda" if torch.cuda.is_available() else "cpu"


def default_dtype(device: str):
    """bf16 on a GPU that has it (half the memory, same quality for inference and frozen LoRA bases), else float32."""
    import torch

    if device.startswith("cuda") and torch.cuda.is_bf16_supported():
        return torch.bfloat16
    return torch.float32


def load_tokenizer(name: str, *, field: str = "model", chat_template: str = "", require_chat_template: bool = False, padding_side: str | None = None):
    """The model's tokenizer, with a pad token. `chat_template` (Jinja) replaces the model's; with
    `require_chat_template`, a tokenizer that ends up with none is an error (chat generation and
    training render prompts with it)."""
    from transformers import AutoTokenizer

    # a LoRA adapter directory (peft's save_pretrained) carries the tokenizer it was trained with
    adapter = Path(name).expanduser()
    source = ModelSource(str(adapter), adapter, None) if (adapter / "adapter_config.json").is_file() else resolve_model(name, field)
    tokenizer = AutoTokenizer.from_pretrained(source.load_from)
    if chat_template:
        tokenizer.chat_template = chat_template
    if require_chat_template and not tokenizer.chat_template:
        raise InputError(
            source.name,
            "the tokenizer has no chat template, so prompts cannot be rendered the way the model expects; "
            "expected an instruct/chat model, or a Jinja template in the `chat_template` setting",
            field="chat_template",
        )
    if tokenizer.pad_token_id is None:
        tokenizer.pad_token = tokenizer.eos_token
    if padding_side:
        tokenizer.padding_side = padding_side
    return tokenizer


def load_causal_lm(name: str, *, field: str = "model", device: str | None = None, dtype: Any = None, **kwargs: Any):
    """A causal LM on `device` (default: the GPU if any), in `dtype` (default: `default_dtype`), eval mode."""
    from transformers import AutoModelForCausalLM

    source = resolve_model(name, field)
    device = device or default_device()
    model = AutoModelForCausalLM.from_pretrained(source.load_from, dtype=dtype or default_dtype(device), **kwargs)
    return model.to(device).eval()


def adapter_manifest(adapter_path: str | Path) -> dict[str, Any]:
    path = Path(adapter_path)
    if not (path / ADAPTER_MANIFEST).is_file():
        raise InputError(str(path), f"not a finished adapter directory ({ADAPTER_MANIFEST} is missing)", field="adapter_path")
    return json.loads((path / ADAPTER_MANIFEST).read_text(encoding="utf-8"))


def load_adapter_model(adapter_path: str | Path, *, device: str | None = None, dtype: Any = None):
    """(model, tokenizer) of a trained LoRA adapter on the base model its manifest records, eval mode."""
    from peft import PeftModel

    base_name = adapter_manifest(adapter_path)["base_model"]
    base = load_causal_lm(base_name, field="base_model", device=device, dtype=dtype)
    model = PeftModel.from_pretrained(base, Path(adapter_path)).to(base.device).eval()
    return model, load_tokenizer(str(adapter_path), field="adapter_path")
