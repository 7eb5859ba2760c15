"""The transformers backend: batched, left-padded ``model.generate`` on CPU or GPU (always available).

Two things make it fast on a GPU, both through transformers' own generation options:

- **Batches sized by memory, not by a count.** A batch holds as many sequences as fit a *token budget*:
  each sequence costs its padded prompt plus ``max_new_tokens`` tokens of KV cache. The budget comes from the
  GPU's free memory and the model's bytes per cached token (:func:`default_batch_tokens`), or from the
  ``generation_batch_tokens`` setting. On an 80 GB GPU all 320 sequences of the default experiment (20
  problems x 16) decode in one batch, and greedy decoding of all problems in another.
- **A static KV cache and a compiled decoding step** (``compile_generation``): ``generate`` with
  ``cache_implementation="static"`` and a ``CompileConfig`` compiles the model's forward once and replays it
  with CUDA graphs, removing the Python and kernel-launch overhead that dominates eager decoding of a 1.5B
  model. The compile costs tens of seconds, so ``auto`` turns it on only on CUDA and only for runs with
  enough decoding steps to pay it back (:func:`choose_decoding`).
"""

from __future__ import annotations

import logging
import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import torch

from ..config import SWITCH, BestOfNConfig
from ..data import ALL
from ..errors import BestOfNError, model_load_error
from .base import Completion, GenerationBackend, prompt_seeds, resolve_device, resolve_dtype, row_seed, stop_token_ids
from .row_seeds import RowSeededSampler

log = logging.getLogger(__name__)

# --- batch sizing -------------------------------------------------------------------------------------------
# Share of the GPU's free memory (measured after the weights are loaded) that batches may fill. The budget below
# charges every token with its KV cache AND the transient activations of a prefill token, which over-counts
# (only prompt tokens are prefilled, one layer at a time); the rest covers the sampler's vocabulary-sized
# tensors and allocator fragmentation.
GPU_MEMORY_SHARE = 0.85
# On CPU, throughput barely grows with the batch beyond a few dozen sequences, and memory is shared with
# everything else: 32k tokens are ~2 GB of fp32 KV cache for the 1.5B generator (64 sequences of 512 tokens).
CPU_BATCH_TOKENS = 32768
# Prompt length assumed when the pipeline asks how many prompts one call may take (chunk_size), before any
# prompt is seen: MATH-500 prompts with the chat template are 100-400 tokens with Qwen's tokenizer. Only the
# chunk plan depends on it: generate() itself sizes its batches from the real prompt lengths.
PROMPT_TOKENS_ESTIMATE = 512
# The token budget that plans the pipeline's chunks on a GPU. Chunks must not depend on measured free memory or
# on the batch settings (a resumed run, or a Ray worker on another machine, would plan other chunks, and
# compute again what is done), so this is fixed: 512k tokens hold the default experiment (20 problems x 16
# samples, 512 new tokens) in one chunk, about what one batch of an 80 GB GPU holds; a smaller GPU, or a smaller
# generation_batch_tokens, splits the chunk into several generate() batches, which sample the same solutions.
GPU_CHUNK_TOKENS = 524288


# --- compiled decoding --------------------------------------------------------------------------------------
DECODING_MODES = ("eager", "static", "compiled")  # dynamic cache / static cache / static cache + torch.compile
# Decoding steps (batches x max_new_tokens, summed over the greedy and sampling stages) from which `auto`
# compiles. Compiling the 1.5B generator's step takes ~1 minute and saves most of the ~100 ms of Python and
# launch overhead per eager step (measured on an H200, issue 12), so it pays back after ~700 steps.
COMPILE_MIN_DECODE_STEPS = 1024
# Static-cache lengths are rounded up to this multiple, so calls with slightly different prompt lengths reuse
# one compiled graph (transformers also keeps the cache at the longest length seen so far).
STATIC_CACHE_BUCKET = 256


def kv_cache_bytes_per_token(model_config: Any, dtype: torch.dtype) -> int:
    """Bytes of KV cache one token takes: keys and values, every layer, every KV head."""
    heads = model_config.num_attention_heads
    head_dim = getattr(model_config, "head_dim", None) or model_config.hidden_size // heads
    kv_heads = getattr(model_config, "num_key_value_heads", None) or heads
    return 2 * model_config.num_hidden_layers * kv_heads * head_dim * dtype.itemsize


def prefill_bytes_per_token(model_config: Any, dtype: torch.dtype) -> int:
    """Transient activations of one prefill token in one layer: a few hidden-size tensors and the MLP's three
    intermediate-size ones (gate, up, their product)."""
    return (4 * model_config.hidden_size + 3 * model_config.intermediate_size) * dtype.itemsize


def memory_batch_tokens(free_bytes: int, bytes_per_token: int, share: float = GPU_MEMORY_SHARE) -> int:
    """Token budget of a batch: ``share`` of the free memory, divided by what each token costs."""
    return max(1, int(free_bytes * share) // bytes_per_token)


def default_batch_tokens(model: Any, device: str) -> int:
    """The token budget when ``generation_batch_tokens`` is unset: from free GPU memory, or a CPU default."""
    if not device.startswith("cuda"):
        return CPU_BATCH_TOKENS
    free, _ = torch.cuda.mem_get_info(torch.device(device))
    per_token = kv_cache_bytes_per_token(model.config, model.dtype) + prefill_bytes_per_token(model.config, model.dtype)
    return memory_batch_tokens(free, per_token)


@dataclass(frozen=True)
class Batch:
    """One ``model.generate`` call: prompts ``start:stop``, each expanded to ``copies`` sequences."""

    start: int
    stop: int
    copies: int


def plan_batches(prompt_lengths: Sequence[int], n: int, max_new_tokens: int, budget_tokens: int,
                 max_sequences: int | None = None) -> list[Batch]:
    """Split prompts, in order, into batches whose padded size fits the token budget.

    A batch of prompts costs ``prompts * n * (longest prompt + max_new_tokens)`` tokens (left padding makes
    every row as long as the longest). Consecutive prompts join a batch while it fits ``budget_tokens`` and
    ``max_sequences``. A prompt whose ``n`` sequences alone do not fit is split: its sequences go out in
    batches of as many copies as fit (at least one), e.g. N=16 long solutions on a small CPU budget.
    """
    batches: list[Batch] = []
    start, longest = 0, 0
    cap = max_sequences or math.inf
    for i, length in enumerate(prompt_lengths):
        if i > start:
            grown = max(longest, length)
            if (i - start + 1) * n * (grown + max_new_tokens) <= budget_tokens and (i - start + 1) * n <= cap:
                longest = grown
                continue
            batches.append(Batch(start, i, n))
            start = i
        longest = length
        per_sequence = length + max_new_tokens
        fit = int(min(budget_tokens // per_sequence, cap))
        if fit < n:  # this prompt alone is too big: split its n sequences into several batches
            copies = max(1, fit)
            batches.extend(Batch(i, i + 1, min(copies, n - done)) for done in range(0, n, copies))
            start = i + 1
    if start < len(prompt_lengths):
        batches.append(Batch(start, len(prompt_lengths), n))
    return batches


def prompts_per_call(n: int, max_new_tokens: int, budget_tokens: int, max_sequences: int | None = None) -> int:
    """Prompts per pipeline chunk: as many as one batch of typical prompts holds (at least one)."""
    sequences = budget_tokens // (PROMPT_TOKENS_ESTIMATE + max_new_tokens)
    if max_sequences:
        sequences = min(sequences, max_sequences)
    return max(1, sequences // n)


def chunk_batch_tokens(device: str) -> int:
    """The budget that plans chunks when ``generation_batch_tokens`` is unset: fixed per device type."""
    return GPU_CHUNK_TOKENS if device.startswith("cuda") else CPU_BATCH_TOKENS


def choose_decoding(compile_generation: str, device: str, decode_steps: float) -> str:
    """``eager`` or ``compiled`` for a ``compile_generation`` setting (see :data:`COMPILE_MIN_DECODE_STEPS`).

    transformers compiles the decoding step on CUDA only (on CPU its compiled step is slower than eager, and
    compiling takes minutes), so ``on`` falls back to eager elsewhere, with a warning.
    """
    if compile_generation not in SWITCH:
        choices = ", ".join(SWITCH)
        raise BestOfNError(f"compile_generation must be one of {choices}, got {compile_generation!r}")
    cuda = device.startswith("cuda")
    if compile_generation == "on" and not cuda:
        log.warning("compile_generation=on needs a CUDA GPU (transformers compiles the decoding step only there); "
                    "decoding eagerly on %s", device)
    if compile_generation == "off" or not cuda:
        return "eager"
    return "compiled" if compile_generation == "on" or decode_steps >= COMPILE_MIN_DECODE_STEPS else "eager"


def estimated_decode_steps(config: BestOfNConfig, budget_tokens: int, num_problems: int) -> int:
    """Upper bound on the run's decoding steps: greedy and sampling batches of ``num_problems`` problems (the
    problems drawn, ``num_problems: all`` resolved), each batch up to max_new_tokens long."""
    batches = 0
    for n in (1, config.n):
        per_call = prompts_per_call(n, config.max_new_tokens, budget_tokens, config.generation_batch_size)
        batches += math.ceil(num_problems / per_call)
    return batches * config.max_new_tokens


class TransformersBackend(GenerationBackend):
    """Batched, left-padded ``model.generate``: runs anywhere torch runs; fast on a GPU with compiled decoding."""

    def __init__(self, model: Any, tokenizer: Any, batch_tokens: int = CPU_BATCH_TOKENS,
                 max_batch_sequences: int | None = None, decoding: str = "eager"):
        if decoding not in DECODING_MODES:
            raise ValueError(f"decoding must be one of {DECODING_MODES}, got {decoding!r}")
        self.model = model
        self.tokenizer = tokenizer
        self.batch_tokens = batch_tokens  # padded tokens (prompt + max_new_tokens) per generate() batch
        self.max_batch_sequences = max_batch_sequences  # optional cap on sequences per batch
        self.decoding = decoding
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
        model = model.to(device).eval()
        budget = config.generation_batch_tokens or default_batch_tokens(model, device)
        # A run passes the number of problems it drew; "all" outside a run: unknown, taken as a long run.
        drawn = None if config.num_problems == ALL else config.num_problems
        steps = math.inf if drawn is None else estimated_decode_steps(config, budget, drawn)
        decoding = choose_decoding(config.compile_generation, device, steps)
        log.info("transformers backend: %s decoding, batches of up to %d tokens (prompt + max_new_tokens)",
                 decoding, budget)
        return cls(model, tokenizer, batch_tokens=budget, max_batch_sequences=config.generation_batch_size,
                   decoding=decoding)

    @property
    def settings(self) -> dict[str, Any]:
        """How this backend decodes, recorded with the run's costs (see :mod:`bestofn.costs`)."""
        return {"decoding": self.decoding, "batch_tokens": self.batch_tokens}

    @classmethod
    def chunk_size(cls, config: BestOfNConfig, n: int) -> int:
        """Prompts per pipeline chunk: as many as one batch of typical prompts holds in a fixed budget for the device
        type (:func:`chunk_batch_tokens`). It depends on settings that change a result (n, max_new_tokens) and the
        kind of device, never on the batch settings or the memory this process finds free, so every process and
        every machine of a Ray cluster plans the same chunks, and a rerun with other batch sizes reuses them.
        ``generate`` sizes its batches inside a chunk by the memory it has (:func:`default_batch_tokens`)."""
        return prompts_per_call(n, config.max_new_tokens, chunk_batch_tokens(resolve_device(config.device)))

    @torch.inference_mode()
    def generate(
        self, prompts: list[str], *, n: int, temperature: float, top_p: float, max_new_tokens: int, seed: int,
        stop: Sequence[str] | None = None, seeds: Sequence[int] | None = None, first: int = 0,
        stopping_criteria: Sequence[Any] = (),
    ) -> list[list[Completion]]:
        """``stopping_criteria``: transformers ``StoppingCriteria`` checked between decoding steps of this call only
        (the server's cancellation, see :mod:`bestofn.serve.cancel`); a run passes none."""
        greedy = temperature == 0
        if greedy and n != 1:
            raise ValueError("greedy decoding gives one solution per prompt: use n=1")
        seeds = prompt_seeds(seed, seeds, len(prompts))
        lengths = [len(ids) for ids in self.tokenizer(prompts, add_special_tokens=False)["input_ids"]]
        out: list[list[Completion]] = [[] for _ in prompts]
        for batch in plan_batches(lengths, n, max_new_tokens, self.batch_tokens, self.max_batch_sequences):
            # Every row samples from its own seed (sample first + j of its prompt), so the batches only change speed;
            # a prompt split over several batches continues its copies where the previous batch stopped.
            done = len(out[batch.start])
            groups = self._generate_batch(prompts[batch.start : batch.stop], batch.copies, temperature, top_p,
                                          max_new_tokens, stop, seeds[batch.start : batch.stop], first + done,
                                          stopping_criteria)
            for i, group in enumerate(groups, start=batch.start):
                out[i].extend(group)
        return out

    def _generate_batch(
        self, prompts: list[str], n: int, temperature: float, top_p: float, max_new_tokens: int,
        stop: Sequence[str] | None, seeds: Sequence[int], first: int, stopping_criteria: Sequence[Any] = (),
    ) -> list[list[Completion]]:
        # Per-row seeds decode greedily over the sampled tokens, and greedy decoding takes one sequence per row:
        # the prompts are repeated n times here instead of by num_return_sequences (same row order).
        rows = [p for p in prompts for _ in range(n)]
        # The chat template already wrote the special tokens, so none are added here.
        enc = self.tokenizer(rows, return_tensors="pt", padding=True, add_special_tokens=False).to(self.model.device)
        decoding: dict[str, Any] = {"do_sample": False, "temperature": None, "top_p": None, "top_k": None}
        extra: dict[str, Any] = {"stop_strings": list(stop), "tokenizer": self.tokenizer} if stop else {}
        if temperature > 0:  # per-row streams (see row_seeds): sampled here, so generate() decodes greedily
            row_seeds = [row_seed(s, first + j) for s in seeds for j in range(n)]
            extra["logits_processor"] = [RowSeededSampler(row_seeds, temperature, top_p, self.model.device)]
        output = self.model.generate(
            **enc,
            max_new_tokens=max_new_tokens,
            eos_token_id=self.stop_ids,
            pad_token_id=self.tokenizer.pad_token_id,
            # The method samples from the model's own distribution, shaped only by temperature and top_p.
            # Qwen2.5-Instruct's generation_config.json sets repetition_penalty=1.1 (and top_k=20), which
            # generate() would otherwise apply, even to greedy decoding; vLLM does not apply them either.
            repetition_penalty=1.0,
            **decoding,
            **extra,
            **self._cache_options(enc["input_ids"].shape[1] + max_new_tokens),
            **({"stopping_criteria": list(stopping_criteria)} if stopping_criteria else {}),
        )
        new_tokens = output[:, enc["input_ids"].shape[1] :].tolist()
        completions = [self._completion(seq, max_new_tokens, stop) for seq in new_tokens]
        return [completions[i * n : (i + 1) * n] for i in range(len(prompts))]

    def _cache_options(self, sequence_length: int) -> dict[str, Any]:
        """``generate`` options of the decoding mode: transformers' static cache, with or without its compile."""
        if self.decoding == "eager":
            return {}  # the default dynamic cache, eager forward
        from transformers import CompileConfig

        options: dict[str, Any] = {
            "cache_implementation": "static",
            "max_cache_len": math.ceil(sequence_length / STATIC_CACHE_BUCKET) * STATIC_CACHE_BUCKET,
        }
        if self.decoding == "static":
            return {**options, "disable_compile": True}
        # transformers compiles the forward of a static-cache generate on CUDA (mode "reduce-overhead": CUDA graphs).
        return {**options, "compile_config": CompileConfig()}

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
        if self.decoding == "compiled":
            torch.compiler.reset()  # drop the compiled step and its CUDA graphs, which hold the model's memory
        if device.type == "cuda":
            torch.cuda.empty_cache()
