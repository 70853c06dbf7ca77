"""One loader for hub names and directories: what it resolves, and the one-line errors for bad input."""

from __future__ import annotations

import socket
import time

import pytest
import torch

from culture_assets.errors import InputError
from culture_assets.model_loading import load_causal_lm, load_tokenizer, model_problem, resolve_model
from culture_assets.profiles import Profile, preflight
from culture_assets_tests.hub_cache import DEFAULT_HUB_NAME


def _closed_port() -> int:
    """A 127.0.0.1 port with nothing listening (bound, then released)."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@pytest.fixture
def unreachable_hub(tmp_path, monkeypatch) -> str:
    """HF_ENDPOINT at a closed 127.0.0.1 port, an empty cache, online mode."""
    from huggingface_hub import constants

    endpoint = f"http://127.0.0.1:{_closed_port()}"
    for name, value in {"HF_ENDPOINT": endpoint, "HF_HUB_CACHE": str(tmp_path / "empty-cache")}.items():
        monkeypatch.setenv(name, value)
    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    monkeypatch.setattr(constants, "ENDPOINT", endpoint)
    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(tmp_path / "empty-cache"))
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", False)
    return endpoint


def test_a_hub_name_and_a_directory_load_the_same_model(offline_hub, tiny_model_dir):
    by_name = resolve_model(DEFAULT_HUB_NAME)
    assert by_name.from_hub and by_name.name == DEFAULT_HUB_NAME and (by_name.path / "config.json").is_file()
    by_path = resolve_model(str(tiny_model_dir))
    assert not by_path.from_hub and by_path.path == tiny_model_dir.resolve()
    assert model_problem(DEFAULT_HUB_NAME) is None and model_problem(str(tiny_model_dir)) is None

    hub_model, local_model = load_causal_lm(DEFAULT_HUB_NAME, device="cpu"), load_causal_lm(str(tiny_model_dir), device="cpu")
    assert not hub_model.training
    assert all(torch.equal(a, b) for a, b in zip(hub_model.state_dict().values(), local_model.state_dict().values()))
    tokenizer = load_tokenizer(DEFAULT_HUB_NAME, require_chat_template=True, padding_side="left")
    assert tokenizer.chat_template and tokenizer.padding_side == "left" and tokenizer.pad_token_id is not None


def test_a_hub_name_missing_from_the_cache_offline_names_the_setting(offline_hub):
    with pytest.raises(InputError) as raised:
        load_causal_lm("Qwen/No-Such-Model", field="base_model")
    message = str(raised.value)
    assert message.startswith("Qwen/No-Such-Model, field 'base_model': not in the Hugging Face cache") and "HF_HUB_OFFLINE is set" in message
    assert "\n" not in message and "no model hub" not in message


def test_an_unreachable_hub_fails_fast_naming_the_endpoint_setting(unreachable_hub):
    started = time.monotonic()
    with pytest.raises(InputError) as raised:
        load_tokenizer("Qwen/Qwen2.5-0.5B-Instruct", field="local_model")
    elapsed = time.monotonic() - started
    message = str(raised.value)
    assert elapsed < 5, f"took {elapsed:.1f}s"
    assert "Qwen/Qwen2.5-0.5B-Instruct, field 'local_model'" in message and unreachable_hub in message and "HF_ENDPOINT" in message
    # the preflight gives the same verdict, before a run starts
    problems = preflight(Profile.DEFAULT, {"culture_model"})
    assert any(unreachable_hub in problem and "CULTURE_ASSETS_BASE_MODEL" in problem for problem in problems), problems


def test_a_directory_that_is_not_a_model(tmp_path):
    (tmp_path / "notes.txt").write_text("not a model")
    with pytest.raises(InputError, match=r"field 'base_model': directory is not a transformers model: config.json is missing"):
        resolve_model(str(tmp_path), field="base_model")
    with pytest.raises(InputError, match=r"directory does not exist .*or a Hugging Face hub name"):
        resolve_model(str(tmp_path / "missing"), field="base_model")
    assert (tmp_path / "notes.txt").read_text() == "not a model"


def test_a_model_without_chat_template_is_refused_where_one_is_needed(no_chat_template_model_dir):
    plain = str(no_chat_template_model_dir)
    assert load_tokenizer(plain).chat_template is None  # perplexity and scoring need none
    with pytest.raises(InputError, match=r"no-chat-template, field 'chat_template': the tokenizer has no chat template.*expected an instruct/chat model"):
        load_tokenizer(plain, require_chat_template=True)


def test_preflight_accepts_what_the_loaders_load(offline_hub, tiny_model_dir, monkeypatch):
    monkeypatch.delenv("CULTURE_ASSETS_BASE_MODEL", raising=False)
    assert preflight(Profile.DEFAULT, {"culture_model"}) == []  # the default hub name, from the cache
    monkeypatch.setenv("CULTURE_ASSETS_BASE_MODEL", "Qwen/Not-Cached")
    [problem] = preflight(Profile.DEFAULT, {"culture_model"})
    assert problem.startswith(model_problem("Qwen/Not-Cached")) and "CULTURE_ASSETS_BASE_MODEL" in problem


def test_a_bad_base_model_stops_the_trainer_before_it_writes_anything(offline_hub, tmp_path):
    from culture_assets.training.lora import LoraHyperParameters, train_lora

    earlier = tmp_path / "models" / "german" / "finished-adapter"
    earlier.mkdir(parents=True)
    (earlier / "adapter_model.safetensors").write_bytes(b"weights")
    rows = [[{"role": "user", "content": "Q?"}, {"role": "assistant", "content": "1"}]]
    with pytest.raises(InputError, match=r"Qwen/Missing, field 'base_model': not in the Hugging Face cache"):
        train_lora("Qwen/Missing", rows, tmp_path / "models", "german", LoraHyperParameters(max_steps=1))
    assert [p.name for p in (tmp_path / "models" / "german").iterdir()] == ["finished-adapter"]
    assert (earlier / "adapter_model.safetensors").read_bytes() == b"weights"
