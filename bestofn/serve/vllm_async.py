"""vLLM for the server: its async engine (``AsyncLLM``), so concurrent requests batch continuously.

The run's :class:`~bestofn.backends.vllm_backend.VLLMBackend` drives the synchronous ``vllm.LLM``, one call
at a time. A server must not hold a request back until another's call ends, so here every prompt a
request's method asks for (with its ``n`` samples, and its own seed) becomes an engine request the moment it
is asked for: the engine's scheduler batches all of them, step by step (continuous batching), and a request
that finishes early leaves at once. The same tokenization, stop tokens, sampling parameters and
:class:`Completion` records as the run's backend (this class extends it).

A request's ticket is checked while its engine requests run: a cancelled request (its client went away) or
one past its deadline is aborted in the engine; at a deadline the samples that had finished are kept and the
others come back cut (``length``), as with the transformers backend.
"""

from __future__ import annotations

import asyncio
import itertools
from concurrent import futures
import threading
from collections.abc import Sequence
from typing import Any

from ..backends.base import Completion, prompt_seeds, row_seed
from ..backends.vllm_backend import (VLLMBackend, _check_device, _check_head_size, _platform, engine_args, import_vllm,
                                     load_generator_files)
from ..config import BestOfNConfig
from ..errors import BestOfNError, first_line
from .batching import Cancelled, Ticket


class AsyncVLLMBackend(VLLMBackend):
    """``AsyncLLM`` on an event loop of its own thread, behind the backend interface (plus a ticket)."""

    continuous = True  # the batcher hands calls straight to the engine, which batches them itself

    def __init__(self, config: BestOfNConfig):
        import_vllm()
        from vllm.engine.arg_utils import AsyncEngineArgs
        from vllm.v1.engine.async_llm import AsyncLLM

        self.tokenizer, model_config, self.stop_ids = load_generator_files(config)  # as the run's backend
        platform = _platform()
        _check_head_size(model_config, platform)
        _check_device(config.device, platform)
        self.context_is_models_own = config.max_model_len is None
        self.aborted = 0  # engine requests aborted (cancelled or past their deadline), for tests and logs
        self._ids = itertools.count()
        self.loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self.loop.run_forever, name="bestofn-vllm", daemon=True)
        self._thread.start()

        async def create() -> Any:
            return AsyncLLM.from_engine_args(AsyncEngineArgs(**engine_args(config, platform)))

        try:
            self.engine = asyncio.run_coroutine_threadsafe(create(), self.loop).result()
        except Exception as e:
            self.close()
            raise BestOfNError(f"vLLM could not start the generator engine ({type(e).__name__}: "
                               f"{first_line(e)}); its log above shows why") from None
        self.llm = None
        self.max_model_len = self.engine.model_config.max_model_len

    @classmethod
    def from_config(cls, config: BestOfNConfig) -> AsyncVLLMBackend:
        return cls(config)

    def generate(self, prompts: list[str], *, n: int, temperature: float, top_p: float, max_new_tokens: int,
                 seed: int, stop: Sequence[str] | None = None, seeds: Sequence[int] | None = None, first: int = 0,
                 ticket: Ticket | None = None) -> list[list[Completion]]:
        from vllm import SamplingParams
        from vllm.inputs import TokensPrompt
        from vllm.sampling_params import RequestOutputKind

        if not prompts:
            return []
        ticket = ticket or Ticket()
        seeds = prompt_seeds(seed, seeds, len(prompts))
        token_ids = self.tokenizer(prompts, add_special_tokens=False)["input_ids"]
        self._check_context(max(len(ids) for ids in token_ids), max_new_tokens)
        # One engine request per sample, seeded as the run's backend seeds it (sample first + j of prompt k), so
        # a request's samples are the run's samples, whatever else the engine is batching.
        request_ids, runs = [], []
        for k, ids in enumerate(token_ids):
            for j in range(n):
                params = SamplingParams(
                    n=1, temperature=temperature, top_p=top_p if temperature > 0 else 1.0,
                    seed=row_seed(seeds[k], first + j), max_tokens=max_new_tokens, stop_token_ids=self.stop_ids,
                    stop=list(stop) if stop else None, include_stop_str_in_output=True, detokenize=bool(stop),
                    output_kind=RequestOutputKind.CUMULATIVE)  # the latest state: a deadline keeps it
                rid = f"bestofn-{next(self._ids)}"
                request_ids.append(rid)
                runs.append(asyncio.run_coroutine_threadsafe(
                    self._run(TokensPrompt(prompt_token_ids=ids), params, rid), self.loop))
        # Wait for every engine request, checking the ticket: a stopped request's engine requests are aborted.
        pending = list(runs)
        while pending:
            if ticket.stopped():
                asyncio.run_coroutine_threadsafe(self.engine.abort(request_ids), self.loop).result()
                self.aborted += len(pending)
                futures.wait(pending, timeout=30)  # their streams end with what they had
                break
            futures.wait(pending, timeout=0.05)
            pending = [r for r in runs if not r.done()]
        if ticket.cancelled.is_set():
            raise Cancelled()
        samples = [self._completion_of(r.result()) for r in runs]
        return [samples[k * n:(k + 1) * n] for k in range(len(prompts))]

    async def _run(self, prompt: Any, params: Any, request_id: str) -> Any:
        last = None
        try:
            async for out in self.engine.generate(prompt, params, request_id):
                last = out
        except Exception:  # noqa: BLE001 - an aborted request may end its stream with an error: keep what came
            if last is None:
                raise
        return last

    def _completion_of(self, out: Any) -> Completion:
        """A sample as the run's backend records it; one cut by an abort (or never started) as ``length``."""
        child = out.outputs[0] if out is not None and out.outputs else None
        if child is None:
            return Completion("", 0, "length")
        if child.finish_reason in ("stop", "length"):
            return self._completion(child)
        ids = list(child.token_ids)  # aborted mid-way: what it had generated, cut
        return Completion(self.tokenizer.decode(ids, skip_special_tokens=True), len(ids), "length")

    def close(self) -> None:
        engine = getattr(self, "engine", None)
        if engine is not None:
            engine.shutdown()
            self.engine = None
        if self.loop.is_running():
            self.loop.call_soon_threadsafe(self.loop.stop)
            self._thread.join(timeout=10)
