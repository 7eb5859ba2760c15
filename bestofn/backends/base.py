"""Step 3: generate solutions, greedily (the baseline) and N at a time by sampling.

A backend turns rendered prompts into :class:`Completion` records. Two exist: :class:`TransformersBackend`
here (CPU or GPU, always available) and ``VLLMBackend`` in ``vllm_backend.py`` (fast, GPU). The pipeline
only sees the :class:`GenerationBackend` interface, so backends are interchangeable.
"""

from __future__ import annotations

import logging
from abc import ABC, abstractmethod
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import Any

import torch

from ..errors import BestOfNError
from ..seeds import derived_seed

log = logging.getLogger(__name__)


@dataclass
class Completion:
    """One generated solution."""

    text: str
    num_tokens: int  # generated tokens, the end-of-sequence token included when there is one
    # "stop": the model ended it (end of sequence); "length": cut off at max_new_tokens; "delimiter": halted at
    # one of the call's ``stop`` strings (a step of a search method), which the text keeps at its end.
    finish_reason: str

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


class GenerationBackend(ABC):
    """What the pipeline needs from a generator."""

    tokenizer: Any  # renders the chat prompt (see prompts.render_prompt)

    @abstractmethod
    def generate(
        self, prompts: list[str], *, n: int, temperature: float, top_p: float, max_new_tokens: int, seed: int,
        stop: Sequence[str] | None = None, seeds: Sequence[int] | None = None, first: int = 0,
    ) -> list[list[Completion]]:
        """``n`` completions per prompt; ``temperature == 0`` means greedy (then ``n`` must be 1).

        ``seeds``: one seed per prompt (default: derived from ``seed`` and the prompt's position,
        :func:`prompt_seed`). Completion ``j`` of prompt ``k`` is sample ``first + j`` of that prompt and is
        sampled from its own stream, seeded ``row_seed(seeds[k], first + j)``: it depends on its prompt, its seed,
        its index and the settings, never on the other prompts of the call, the batch sizes or the memory free.
        So asking for samples 0..3 and then 4..7 (``first=4``) gives the samples of asking for 0..7 at once.
        What backends cannot promise is bitwise-equal logits in every batch shape (docs/artifacts.md).
        ``stop``: strings that end a completion (finish reason ``"delimiter"``), kept at the end of its text;
        a prompt may end inside the assistant's turn (rendered chat prompt + a partial solution), and
        generation continues from there.
        """

    @classmethod
    def chunk_size(cls, config: Any, n: int) -> int:
        """Prompts per :meth:`generate` call when each asks for ``n`` solutions, from the settings that change a
        result alone (never batch sizes or free memory: a chunk's name must not depend on how it is batched).
        ``config`` is a :class:`~bestofn.config.BestOfNConfig` (not imported: the config imports the methods,
        which use this).

        The pipeline splits a stage into chunks of this size before any model loads (on a Ray cluster, on
        the driver) and saves each one as it finishes, so this is also how much a kill can lose.
        """
        return max(1, 64 // n)

    def close(self) -> None:
        """Free the model's memory (the PRM is loaded next, on the same device)."""


def prompt_seed(seed: int, position: int) -> int:
    """Seed of the prompt at ``position`` in a call seeded ``seed`` without per-prompt ``seeds``."""
    return derived_seed(seed, position)


def prompt_seeds(seed: int, seeds: Sequence[int] | None, count: int) -> list[int]:
    """One seed per prompt of a call: ``seeds`` when given, else :func:`prompt_seed` of each position."""
    if seeds is None:
        return [prompt_seed(seed, k) for k in range(count)]
    if len(seeds) != count:
        raise ValueError(f"{len(seeds)} seeds for {count} prompts")
    return list(seeds)


def row_seed(seed: int, index: int) -> int:
    """Seed of completion ``index`` of a prompt seeded ``seed`` (:func:`bestofn.seeds.sample_seed`'s rule)."""
    return derived_seed(seed, index)


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
