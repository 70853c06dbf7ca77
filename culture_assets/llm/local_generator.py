"""A local transformers chat model as generator, used when no API key is configured.

Generation runs in a worker thread, one call at a time (one model in memory, CPU or one GPU);
the chat template comes from the tokenizer. `response_format` is accepted and ignored: the
prompt asks for JSON and the strict parser rejects anything else.
"""

from __future__ import annotations

import asyncio
import threading
from typing import Any, Mapping, Sequence

from culture_assets.llm.errors import LLMModelError
from culture_assets.llm.generator import Completion


class LocalChatGenerator:
    def __init__(self, model_name_or_path: str, default_max_new_tokens: int = 256):
        self.model = model_name_or_path
        self.default_max_new_tokens = default_max_new_tokens
        self._loaded: tuple[Any, Any] | None = None
        self._lock = threading.Lock()

    def describe(self) -> str:
        return f"local transformers model {self.model}"

    def _load(self) -> tuple[Any, Any]:
        if self._loaded is None:
            from transformers import AutoModelForCausalLM, AutoTokenizer

            try:
                tokenizer = AutoTokenizer.from_pretrained(self.model)
                model = AutoModelForCausalLM.from_pretrained(self.model)
            except OSError as exc:
                raise LLMModelError(
                    f"cannot load local chat model {self.model!r} ({exc}). Set the llm resource's `local_model` "
                    "to a local directory or a cached Hugging Face model name, or set OPENAI_API_KEY to use an endpoint."
                ) from None
            if tokenizer.chat_template is None:
                raise LLMModelError(f"local model {self.model!r} has no chat template; use an instruct/chat model")
            model.eval()
            self._loaded = (tokenizer, model)
        return self._loaded

    def _generate(self, messages: Sequence[Mapping[str, Any]], params: Mapping[str, Any]) -> Completion:
        import torch

        with self._lock:
            tokenizer, model = self._load()
            input_ids = tokenizer.apply_chat_template(
                [dict(m) for m in messages], add_generation_prompt=True, return_tensors="pt", return_dict=True
            )["input_ids"]
            temperature = float(params.get("temperature", 0.0) or 0.0)
            if "seed" in params:
                torch.manual_seed(int(params["seed"]))
            sampling = {"do_sample": True, "temperature": temperature, "top_p": float(params.get("top_p", 1.0))} if temperature > 0 else {"do_sample": False}
            with torch.no_grad():
                output = model.generate(
                    input_ids,
                    attention_mask=torch.ones_like(input_ids),
                    max_new_tokens=int(params.get("max_tokens") or self.default_max_new_tokens),
                    pad_token_id=tokenizer.pad_token_id if tokenizer.pad_token_id is not None else tokenizer.eos_token_id,
                    **sampling,
                )
            new_tokens = output[0, input_ids.shape[1]:]
            text = tokenizer.decode(new_tokens, skip_special_tokens=True)
            return Completion(content=text.strip(), prompt_tokens=int(input_ids.shape[1]), completion_tokens=int(new_tokens.shape[0]))

    async def complete(self, messages: Sequence[Mapping[str, Any]], params: Mapping[str, Any]) -> Completion:
        return await asyncio.to_thread(self._generate, messages, params)

    async def aclose(self) -> None:
        """Nothing to release per batch: the model stays loaded for the next one."""
