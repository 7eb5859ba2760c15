"""The transformers backend: batched, left-padded ``model.generate`` on CPU or GPU (always available)."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Any

import torch

from ..config import BestOfNConfig
from ..errors import BestOfNError, model_load_error
from .base import Completion, GenerationBackend, resolve_device, resolve_dtype, stop_token_ids
from .row_seeds import RowSeededSampler, row_seed

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

    def chunk_size(self, n: int) -> int:
        return max(1, self.batch_size // n)  # one call = one batch of batch_size sequences

    @torch.inference_mode()
    def generate(
        self, prompts: list[str], *, n: int, temperature: float, top_p: float, max_new_tokens: int, seed: int,
        stop: Sequence[str] | None = None, seeds: Sequence[int] | None = None,
    ) -> list[list[Completion]]:
        greedy = temperature == 0
        if greedy and n != 1:
            raise ValueError("greedy decoding gives one solution per prompt: use n=1")
        per_batch = max(1, self.batch_size // n)  # prompts per batch; each expands to n sequences
        out: list[list[Completion]] = []
        for b, start in enumerate(range(0, len(prompts), per_batch)):
            # One seed per batch: the same chunk of prompts always samples the same solutions.
            torch.manual_seed(seed + b)
            batch_seeds = None if seeds is None or greedy else seeds[start : start + per_batch]
            out.extend(self._generate_batch(prompts[start : start + per_batch], n, temperature, top_p, max_new_tokens,
                                            stop, batch_seeds))
        return out

    def _generate_batch(
        self, prompts: list[str], n: int, temperature: float, top_p: float, max_new_tokens: int,
        stop: Sequence[str] | None = None, seeds: Sequence[int] | None = None,
    ) -> list[list[Completion]]:
        # Per-row seeds decode greedily over the sampled tokens, and greedy decoding takes one sequence per row:
        # the prompts are then repeated n times here instead of by num_return_sequences (same row order).
        rows, per_row = (prompts, n) if seeds is None else ([p for p in prompts for _ in range(n)], 1)
        # The chat template already wrote the special tokens, so none are added here.
        enc = self.tokenizer(rows, return_tensors="pt", padding=True, add_special_tokens=False).to(self.model.device)
        sampling = {"do_sample": True, "temperature": temperature, "top_p": top_p, "top_k": 0}
        greedy = {"do_sample": False, "temperature": None, "top_p": None, "top_k": None}
        extra: dict[str, Any] = {"stop_strings": list(stop), "tokenizer": self.tokenizer} if stop else {}
        if seeds is not None:  # per-row streams (see row_seeds): sampled here, so generate() decodes greedily
            rows = [row_seed(s, j) for s in seeds for j in range(n)]
            extra["logits_processor"] = [RowSeededSampler(rows, temperature, top_p, self.model.device)]
            sampling = greedy
        output = self.model.generate(
            **enc,
            max_new_tokens=max_new_tokens,
            num_return_sequences=per_row,
            eos_token_id=self.stop_ids,
            pad_token_id=self.tokenizer.pad_token_id,
            # The method samples from the model's own distribution, shaped only by temperature and top_p.
            # Qwen2.5-Instruct's generation_config.json sets repetition_penalty=1.1 (and top_k=20), which
            # generate() would otherwise apply, even to greedy decoding; vLLM does not apply them either.
            repetition_penalty=1.0,
            **(sampling if temperature > 0 else greedy),
            **extra,
        )
        new_tokens = output[:, enc["input_ids"].shape[1] :].tolist()
        completions = [self._completion(seq, max_new_tokens, stop) for seq in new_tokens]
        return [completions[i * n : (i + 1) * n] for i in range(len(prompts))]

    def _completion(self, token_ids: list[int], max_new_tokens: int, stop: Sequence[str] | None = None) -> Completion:
        if stop:
            halted = self._stop_string_completion(token_ids, stop)
            if halted is not None:
                return halted
        stop_at = next((i for i, t in enumerate(token_ids) if t in self.stop_ids), None)
        if stop_at is None:
            kept, reason = token_ids, "length"
        else:
            kept, reason = token_ids[:stop_at], "stop"
        text = self.tokenizer.decode(kept, skip_special_tokens=True)
        return Completion(text=text, num_tokens=len(kept) + (reason == "stop"), finish_reason=reason)

    def _stop_string_completion(self, token_ids: list[int], stop: Sequence[str]) -> Completion | None:
        """The completion cut right after its first stop string (as vLLM cuts it), or None without one.

        Generation halts at the token that completes a stop string; later positions of the row are padding
        (which may be an end-of-sequence id), so the stop string is looked for before any stop token.
        """
        end = next((i for i, t in enumerate(token_ids) if t in self.stop_ids), len(token_ids))
        text = self.tokenizer.decode(token_ids[:end], skip_special_tokens=True)
        hits = [text.find(s) + len(s) for s in stop if s in text]
        if not hits:
            return None
        cut = min(hits)
        # Tokens generated: the shortest prefix of ids whose text already holds the stop string.
        lo, hi = 1, end
        while lo < hi:
            mid = (lo + hi) // 2
            if len(self.tokenizer.decode(token_ids[:mid], skip_special_tokens=True)) >= cut:
                hi = mid
            else:
                lo = mid + 1
        return Completion(text=text[:cut], num_tokens=lo, finish_reason="delimiter")

    def close(self) -> None:
        device = self.model.device
        del self.model
        if device.type == "cuda":
            torch.cuda.empty_cache()
