"""Where a stage's chunks run: in this process, or on a Ray cluster as a Ray Data actor pool.

Contract (the one seam between the pipeline's stages and the hardware they run on):

- A stage splits its work into *chunks*, fixed by the data and the config alone (never by the number of
  workers), so every executor computes the same chunks. A chunk is a JSON-able dict (its *payload*) that
  holds everything its work needs, its own seed included, plus ``"unique_ids"``: the problems it covers,
  which an error names.
- A *worker class* does the work: ``Worker(config)`` loads its model once (a generation backend, a PRM, or
  both; at once, or with its first chunk when the chunk says how to load it), ``worker(payload)`` returns
  the chunk's JSON-able result, ``worker.close()`` frees the model. It is picklable by reference (a
  module-level class), so a Ray worker process can build it from the config.
- An executor's :meth:`~Executor.map` yields ``(chunk index, result)`` as each chunk finishes, in any
  order; the driver journals each result as it arrives, so a kill loses at most the chunks in flight.
  Results are decoded from JSON in both executors, so a worker can only return what a journal can hold.

:class:`LocalExecutor` runs chunks in order in this process and keeps one worker alive between stages of
the same kind (greedy and samples share the loaded generator). :class:`RayExecutor` runs each stage as
``ray.data.from_items(chunks).map_batches(_RayWorker, ...)`` over a pool of actors (one GPU each, or one
CPU on a CPU-only cluster), streaming finished chunks back to the driver with ``iter_rows``. A chunk whose
work raises is retried once in its actor (Ray Data's ``max_map_retries``); an actor that dies is restarted
and its chunk retried once (Ray's ``max_task_retries``); a chunk that fails twice stops the run with a
:class:`BestOfNError` naming its problems. :func:`make_executor` picks one from ``config.ray_address``.
"""

from __future__ import annotations

import json
import logging
import re
import warnings
from abc import ABC, abstractmethod
from collections.abc import Iterator, Sequence
from dataclasses import replace
from typing import Any, Protocol

from .config import BestOfNConfig
from .errors import BestOfNError, first_line

log = logging.getLogger(__name__)

CPU_WORKERS = 2  # default actors on a cluster without GPUs: each holds a whole model in RAM
FAILED_MARK = "bestofn chunk failed"  # starts the message a worker raises, so the driver can find it


class ChunkWorker(Protocol):
    """One model loaded once; one chunk in, one JSON-able result out.

    A worker class may define ``gpus(config) -> int``, the GPUs one instance needs (default 1; a vLLM
    generator sharded over ``tensor_parallel_size`` GPUs needs that many).
    """

    def __init__(self, config: BestOfNConfig) -> None: ...

    def __call__(self, payload: dict[str, Any]) -> Any: ...

    def close(self) -> None: ...


class Executor(ABC):
    """Runs a stage's chunks on some workers and yields their results as they finish."""

    #: Whether workers run in this process, where they can reach the run directory (to journal their own
    #: progress inside a long chunk); a Ray worker may be on another machine.
    in_process: bool = False

    @abstractmethod
    def map(self, worker: type[ChunkWorker], payloads: Sequence[dict[str, Any]]) -> Iterator[tuple[int, Any]]:
        """Yield ``(index into payloads, result)`` once per chunk, in any order."""

    def close(self) -> None:
        """Free every model this executor still holds."""


def make_executor(config: BestOfNConfig) -> Executor:
    """Ray when ``config.ray_address`` is set, else this process."""
    return RayExecutor(config) if config.ray_address else LocalExecutor(config)


def describe_chunk(payload: dict[str, Any], limit: int = 5) -> str:
    """``problems a, b, c (+4 more)``: how an error names a chunk."""
    ids = list(dict.fromkeys(payload.get("unique_ids", [])))
    more = f" (+{len(ids) - limit} more)" if len(ids) > limit else ""
    return f"problems {', '.join(ids[:limit])}{more}"


def _json_roundtrip(result: Any) -> Any:
    return json.loads(json.dumps(result, ensure_ascii=False))


# --- in this process ---------------------------------------------------------------------------------------------
class LocalExecutor(Executor):
    """Today's single-process run: chunks in order, one worker (model) alive at a time, loaded on first use."""

    in_process = True

    def __init__(self, config: BestOfNConfig):
        self.config = config
        self._worker: ChunkWorker | None = None

    def map(self, worker: type[ChunkWorker], payloads: Sequence[dict[str, Any]]) -> Iterator[tuple[int, Any]]:
        for index, payload in enumerate(payloads):
            yield index, _json_roundtrip(self._get(worker)(payload))

    def _get(self, worker: type[ChunkWorker]) -> ChunkWorker:
        if type(self._worker) is not worker:
            self.close()  # e.g. the generator is freed before the PRM loads on the same device
            self._worker = worker(self.config)
        return self._worker

    def close(self) -> None:
        if self._worker is not None:
            self._worker.close()
            self._worker = None


# --- on a Ray cluster ----------------------------------------------------------------------------------------------
class _RayWorker:
    """The callable class of ``map_batches``: one actor, one :class:`ChunkWorker`, one chunk per batch."""

    def __init__(self, worker: type[ChunkWorker], config: BestOfNConfig):
        self.worker = worker(config)

    def __call__(self, batch: dict[str, Any]) -> dict[str, list]:
        results = []
        for payload in batch["payload"]:
            payload = json.loads(payload)
            try:
                results.append(json.dumps(self.worker(payload), ensure_ascii=False))
            except Exception as e:  # named here, where the chunk is known; Ray retries it once
                raise RuntimeError(f"{FAILED_MARK}: {describe_chunk(payload)}: {type(e).__name__}: "
                                   f"{first_line(e)}") from e
        return {"index": list(batch["index"]), "result": results}

    def __del__(self) -> None:
        # Ray Data deletes the UDF when the job ends gracefully: shut vLLM's engine processes down with it.
        worker = getattr(self, "worker", None)
        if worker is not None:
            worker.close()


class RayExecutor(Executor):
    """Each stage is one Ray Data job: an actor pool of ``config.workers`` actors, each holding one model."""

    def __init__(self, config: BestOfNConfig):
        self.config = config
        self.ray: Any = None  # connected on the first chunk: a rerun with nothing left to do never starts Ray
        self.started_here = False

    def _connect(self) -> None:
        if self.ray is not None:
            return
        try:
            import ray  # optional dependency: pip install 'bestofn[ray]'
        except ImportError:
            raise BestOfNError("--ray needs Ray Data: pip install 'bestofn[ray]' (or 'ray[data]')") from None
        if not ray.is_initialized():
            address = None if self.config.ray_address == "local" else self.config.ray_address
            try:
                ray.init(address=address, configure_logging=False)
            except (ConnectionError, ValueError, RuntimeError) as e:
                raise BestOfNError(f"cannot join the Ray cluster at {self.config.ray_address!r} ({first_line(e)}); "
                                   f"start one with `ray start --head`, or pass --ray without a value to start a "
                                   f"local one") from None
            self.started_here = True
        self.ray = ray
        resources = ray.cluster_resources()
        self.cpus = int(resources.get("CPU", 1))
        self.gpus = 0 if self.config.device == "cpu" else int(resources.get("GPU", 0))
        # Workers use the device Ray gives them: their own GPU(s), or the CPU on a cluster without GPUs.
        self.config = replace(self.config, device="auto" if self.gpus else "cpu")
        log.info("Ray cluster: %d CPUs, %d GPUs", self.cpus, self.gpus)

    def _gpus_per_worker(self, worker: type[ChunkWorker]) -> int:
        """GPUs one actor needs (none on a CPU-only cluster)."""
        if not self.gpus:
            return 0
        gpus = getattr(worker, "gpus", None)
        return gpus(self.config) if gpus else 1

    def _workers(self, gpus_per_worker: int) -> int:
        """``config.workers``, else one actor per GPU (group), else a few CPU actors."""
        if self.config.workers:
            return self.config.workers
        if self.gpus:
            return max(1, self.gpus // gpus_per_worker)
        return max(1, min(CPU_WORKERS, self.cpus))

    def map(self, worker: type[ChunkWorker], payloads: Sequence[dict[str, Any]]) -> Iterator[tuple[int, Any]]:
        if not payloads:
            return
        self._connect()
        from ray.data import ActorPoolStrategy, DataContext

        # Ray Data copies the current context into each dataset: set its knobs here, before from_items.
        context = DataContext.get_current()
        context.enable_progress_bars = False  # the pipeline draws one bar per stage, over chunks
        context.retried_map_errors = True  # an exception in a chunk's work: retry the chunk once, in its actor
        context.max_map_retries = 1
        gpus = self._gpus_per_worker(worker)
        workers = min(self._workers(gpus), len(payloads))
        log.info("%s: %d chunks on %d Ray workers (%s each)", worker.__name__, len(payloads), workers,
                 f"{gpus} GPU" if gpus else "1 CPU")
        rows = [{"index": i, "payload": json.dumps(p, ensure_ascii=False)} for i, p in enumerate(payloads)]
        with warnings.catch_warnings():
            # Actor restarts and task retries have no named parameter in Ray 2.60 (pinned), only ray_remote_args.
            warnings.filterwarnings("ignore", message=".*ray_remote_args. is deprecated")
            dataset = self.ray.data.from_items(rows, override_num_blocks=len(rows)).map_batches(
                _RayWorker,
                fn_constructor_kwargs={"worker": worker, "config": self.config},
                batch_size=1,  # one chunk per call: a chunk is the unit of work, of seeding and of journaling
                # A fixed pool of `workers` actors (map_batches' concurrency=K), with one chunk in flight per
                # actor, so an actor that dies charges a retry to its own chunk only.
                compute=ActorPoolStrategy(size=workers, max_tasks_in_flight_per_actor=1),
                num_gpus=gpus,
                num_cpus=1,
                max_restarts=-1,  # a lost actor is restarted ...
                max_task_retries=1,  # ... and its chunk retried once
            )
        try:
            for row in dataset.iter_rows():
                yield int(row["index"]), json.loads(row["result"])
        except Exception as e:
            raise _chunk_error(e) from None

    def close(self) -> None:
        if self.started_here and self.ray.is_initialized():
            self.ray.shutdown()  # a cluster this run started; one it joined keeps running


def _chunk_error(error: Exception) -> BestOfNError:
    """One line for a Ray job that stopped: which chunk failed twice and why, else Ray's own first line."""
    text = str(error)
    found = re.search(rf"{FAILED_MARK}: (.*)", text)
    if found:
        return BestOfNError(f"a chunk of work failed twice on the Ray cluster, the run stops: {found.group(1)}; "
                            f"finished chunks are journaled, rerun the same command to resume")
    inner = re.search(r"BestOfNError: (.*)", text)  # e.g. a model that a worker cannot load
    if inner:
        return BestOfNError(inner.group(1))
    return BestOfNError(f"the Ray job stopped ({type(error).__name__}: {first_line(error)[:300]}); finished "
                        f"chunks are journaled, rerun the same command to resume")
