"""The transformers backend: batched, left-padded ``model.generate`` on CPU or GPU (always available)."""

from __future__ import annotations

import logging
from typing import Any

import torch

from ..config import BestOfNConfig
from ..errors import BestOfNError, model_load_error
from .base import Completion, GenerationBackend, resolve_device, resolve_dtype, stop_token_ids

log = logging.getLogger(__name__)


class TransformersBackend(GenerationBackend):
    """Batched, left-padded ``model.generate``: slow but runs anywhere torch runs."""

    def __init__(self, model: Any, tokenizer: Any, batch_size: int = 64):
        self.model = model
        self.tokenizer = tokenizer
        self.batch_size = batch_size
        # Left padding: every prompt then ends at the same position, where decoding starts.
        self.tokenizer.padding_side = "left"
        if self.tokenizer.pad_token is None:
            self.tokenizer.pad_token = self.tokenizer.eos_token
        self.stop_ids = stop_token_ids(model.generation_config, tokenizer)

    @classmethod
    def from_config(cls, config: BestOfNConfig) -> TransformersBackend:
        from transformers import AutoModelForCausalLM, AutoTokenizer

        device = resolve_device(config.device)
        try:
            tokenizer = AutoTokenizer.from_pretrained(config.generator, revision=config.generator_revision)
            model = AutoModelForCausalLM.from_pretrained(
                config.generator, revision=config.generator_revision, dtype=resolve_dtype(config.dtype, device)
            )
        except (OSError, ValueError) as e:
            raise model_load_error("generator", config.generator, "--generator", e) from None
        return cls(model.to(device).eval(), tokenizer, config.generation_batch_size)

    @classmethod
    def chunk_size(cls, config: BestOfNConfig, n: int) -> int:
        return max(1, config.generation_batch_size // n)  # one call = one batch of generation_batch_size sequences

    @torch.inference_mode()
    def generate(
        self, prompts: list[str], *, n: int, temperature: float, top_p: float, max_new_tokens: int, seed: int
    ) -> list[list[Completion]]:
        greedy = temperature == 0
        if greedy and n != 1:
            raise ValueError("greedy decoding gives one solution per prompt: use n=1")
        per_batch = max(1, self.batch_size // n)  # prompts per batch; each expands to n sequences
        out: list[list[Completion]] = []
        for b, start in enumerate(range(0, len(prompts), per_batch)):
            # One seed per batch: the same chunk of prompts always samples the same solutions.
            torch.manual_seed(seed + b)
            out.extend(self._generate_batch(prompts[start : start + per_batch], n, temperature, top_p, max_new_tokens))
        return out

    def _generate_batch(
        self, prompts: list[str], n: int, temperature: float, top_p: float, max_new_tokens: int
    ) -> list[list[Completion]]:
        # The chat template already wrote the special tokens, so none are added here.
        enc = self.tokenizer(prompts, return_tensors="pt", padding=True, add_special_tokens=False).to(self.model.device)
        sampling = {"do_sample": True, "temperature": temperature, "top_p": top_p, "top_k": 0}
        output = self.model.generate(
            **enc,
            max_new_tokens=max_new_tokens,
            num_return_sequences=n,
            eos_token_id=self.stop_ids,
            pad_token_id=self.tokenizer.pad_token_id,
            # The method samples from the model's own distribution, shaped only by temperature and top_p.
            # Qwen2.5-Instruct's generation_config.json sets repetition_penalty=1.1 (and top_k=20), which
            # generate() would otherwise apply, even to greedy decoding; vLLM does not apply them either.
            repetition_penalty=1.0,
            **(sampling if temperature > 0 else {"do_sample": False, "temperature": None, "top_p": None, "top_k": None}),
        )
        new_tokens = output[:, enc["input_ids"].shape[1] :].tolist()
        completions = [self._completion(seq, max_new_tokens) for seq in new_tokens]
        return [completions[i * n : (i + 1) * n] for i in range(len(prompts))]

    def _completion(self, token_ids: list[int], max_new_tokens: int) -> Completion:
        stop_at = next((i for i, t in enumerate(token_ids) if t in self.stop_ids), None)
        if stop_at is None:
            kept, reason = token_ids, "length"
        else:
            kept, reason = token_ids[:stop_at], "stop"
        text = self.tokenizer.decode(kept, skip_special_tokens=True)
        return Completion(text=text, num_tokens=len(kept) + (reason == "stop"), finish_reason=reason)

    def close(self) -> None:
        device = self.model.device
        del self.model
        if device.type == "cuda":
            torch.cuda.empty_cache()
