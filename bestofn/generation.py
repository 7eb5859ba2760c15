"""Steps 2 and 3: generate solutions, greedily (the baseline) and N at a time by sampling.

A backend turns rendered prompts into :class:`Completion` records. Two exist: :class:`TransformersBackend`
here (CPU or GPU, always available) and ``VLLMBackend`` in ``vllm_backend.py`` (fast, GPU). The pipeline
only sees the :class:`GenerationBackend` interface, so backends are interchangeable.
"""

from __future__ import annotations

import logging
from abc import ABC, abstractmethod
from dataclasses import asdict, dataclass
from typing import Any

import torch

from .config import BestOfNConfig
from .errors import BestOfNError, model_load_error

log = logging.getLogger(__name__)


@dataclass
class Completion:
    """One generated solution."""

    text: str
    num_tokens: int  # generated tokens, the end-of-sequence token included when there is one
    finish_reason: str  # "stop": the model ended it; "length": cut off at max_new_tokens

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


class GenerationBackend(ABC):
    """What the pipeline needs from a generator."""

    tokenizer: Any  # renders the chat prompt (see prompts.render_prompt)

    @abstractmethod
    def generate(
        self, prompts: list[str], *, n: int, temperature: float, top_p: float, max_new_tokens: int, seed: int
    ) -> list[list[Completion]]:
        """``n`` completions per prompt; ``temperature == 0`` means greedy (then ``n`` must be 1).

        The same prompts, settings and seed must give the same completions on the same hardware.
        """

    def chunk_size(self, n: int) -> int:
        """Prompts per :meth:`generate` call when each asks for ``n`` solutions.

        The pipeline journals finished work after each call, so this is also how much a kill can lose.
        """
        return max(1, 64 // n)

    def close(self) -> None:
        """Free the model's memory (the PRM is loaded next, on the same device)."""


def resolve_device(device: str) -> str:
    if device == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    if device.startswith("cuda") and not torch.cuda.is_available():
        raise BestOfNError(f"device {device!r} asked for, but torch sees no CUDA GPU; use --device cpu")
    return device


def resolve_dtype(dtype: str, device: str) -> torch.dtype:
    """``auto``: bf16 on GPU (the models' native precision), fp32 on CPU (bf16 matmuls are slow there).

    GPUs without native bf16 (T4, V100) get fp16: emulated bf16 there is many times slower.
    """
    if dtype != "auto":
        return getattr(torch, dtype)
    if not device.startswith("cuda"):
        return torch.float32
    return torch.bfloat16 if torch.cuda.is_bf16_supported(including_emulation=False) else torch.float16


def make_backend(config: BestOfNConfig) -> GenerationBackend:
    """The backend named by ``config.backend``, with the generator loaded."""
    if config.backend == "vllm":
        from .vllm_backend import VLLMBackend  # optional dependency, imported only when asked for

        return VLLMBackend.from_config(config)
    return TransformersBackend.from_config(config)


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

    def chunk_size(self, n: int) -> int:
        return max(1, self.batch_size // n)  # one call = one batch of batch_size sequences

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


def stop_token_ids(generation_config: Any, tokenizer: Any) -> list[int]:
    """End-of-sequence ids from the generation config (Qwen2.5-Instruct has two: <|im_end|>, <|endoftext|>).

    Both backends use this one rule, so they stop at the same tokens.
    """
    ids = getattr(generation_config, "eos_token_id", None)
    ids = [ids] if isinstance(ids, int) else list(ids or [])
    if tokenizer.eos_token_id is not None and tokenizer.eos_token_id not in ids:
        ids.append(tokenizer.eos_token_id)
    if not ids:
        raise BestOfNError("the generator defines no end-of-sequence token; set eos_token_id in its generation_config.json")
    return ids
