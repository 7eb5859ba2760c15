"""Where chunks run: in this process, or on a Ray cluster as a Ray Data actor pool.

Contract (the one seam between the run and the hardware): ``map(factory, payloads)`` yields ``(index into
payloads, result)`` as each chunk finishes, in any order. ``factory(device)`` (picklable) builds a worker for a
device (None: the configured one), called as ``worker(payload) -> JSON-able result`` and freed by
``worker.close()``; a payload is a JSON-able dict whose ``unique_ids`` an error names. Results are decoded from
JSON in both executors, so a worker can only return what a chunk file can hold.

:class:`LocalExecutor` runs chunks in order on one worker kept for the whole run (its models load once).
:class:`RayExecutor` runs each ``map`` as ``ray.data.from_items(chunks).map_batches(...)`` over a pool of
actors (one GPU each, or one CPU on a CPU-only cluster). A chunk whose work raises is retried once in its
actor; an actor that dies is restarted and its chunk retried once; a chunk that fails twice stops the run
with one line naming its problems. Connecting to a cluster that does not answer fails within seconds, and
a cluster this process started is shut down on every exit (a SIGKILL of the driver leaves Ray's own
agent processes behind: ``ray stop`` ends them, see docs/scale-out.md).
"""

from __future__ import annotations

import json
import logging
import re
import socket
import warnings
from collections.abc import Callable, Iterator, Sequence
from typing import Any

from .config import BestOfNConfig
from .errors import BestOfNError, first_line

log = logging.getLogger(__name__)

CPU_WORKERS = 2  # default actors on a cluster without GPUs: each holds a whole model in RAM
CONNECT_TIMEOUT_S = 5.0  # how long a cluster address may take to answer before the run stops
FAILED_MARK = "bestofn chunk failed"  # starts the message a worker raises, so the driver can find it

WorkerFactory = Callable[[str | None], Any]


def make_executor(config: BestOfNConfig) -> LocalExecutor | RayExecutor:
    """Ray when ``config.ray_address`` is set, else this process."""
    return RayExecutor(config) if config.ray_address else LocalExecutor()


def describe_chunk(payload: dict[str, Any], limit: int = 5) -> str:
    """``problems a, b, c (+4 more)``: how an error names a chunk."""
    items = list(dict.fromkeys(payload.get("unique_ids", [])))
    more = f" (+{len(items) - limit} more)" if len(items) > limit else ""
    return f"problems {', '.join(items[:limit])}{more}"


class LocalExecutor:
    """Chunks in order in this process, on one worker kept until :meth:`close`."""

    def __init__(self) -> None:
        self.worker: Any = None

    def map(self, factory: WorkerFactory, payloads: Sequence[dict[str, Any]]) -> Iterator[tuple[int, Any]]:
        for index, payload in enumerate(payloads):
            if self.worker is None:
                self.worker = factory(None)
            yield index, json.loads(json.dumps(self.worker(payload), ensure_ascii=False))

    def close(self) -> None:
        if self.worker is not None:
            self.worker.close()
            self.worker = None


class _RayWorker:
    """The callable class of ``map_batches``: one actor, one worker, one chunk per batch."""

    def __init__(self, factory: WorkerFactory, device: str):
        self.worker = factory(device)

    def __call__(self, batch: dict[str, Any]) -> dict[str, list]:
        results = []
        for payload in batch["payload"]:
            payload = json.loads(payload)
            try:
                results.append(json.dumps(self.worker(payload), ensure_ascii=False))
            except Exception as e:  # named here, where the chunk is known; Ray retries it once
                raise RuntimeError(f"{FAILED_MARK}: {describe_chunk(payload)}: {type(e).__name__}: {first_line(e)}") from e
        return {"index": list(batch["index"]), "result": results}

    def __del__(self) -> None:
        # Ray Data deletes the UDF when the job ends gracefully: shut vLLM's engine processes down with it.
        worker = getattr(self, "worker", None)
        if worker is not None:
            worker.close()


class RayExecutor:
    """Each ``map`` is one Ray Data job: an actor pool of ``config.workers`` actors, each holding its models."""

    def __init__(self, config: BestOfNConfig):
        self.config = config
        self.ray: Any = None  # connected on the first chunk: a rerun with nothing left to do never starts Ray
        self.connected_here = False

    def _connect(self) -> None:
        try:
            import ray  # optional dependency: pip install 'bestofn[ray]'
        except ImportError:
            raise BestOfNError("--ray needs Ray Data: pip install 'bestofn[ray]' (or 'ray[data]')") from None
        address = self.config.ray_address
        _check_reachable(address)
        if not ray.is_initialized():
            try:
                ray.init(address=None if address == "local" else address, configure_logging=False)
            except (ConnectionError, ValueError, RuntimeError) as e:
                raise BestOfNError(f"cannot join the Ray cluster at {address!r} ({first_line(e)}); start one with "
                                   f"`ray start --head`, or pass --ray without a value to start a local one") from None
            self.connected_here = True
        self.ray = ray
        resources = ray.cluster_resources()
        self.gpus = 0 if self.config.device == "cpu" else int(resources.get("GPU", 0))
        self.cpus = int(resources.get("CPU", 1))
        log.info("Ray cluster: %d CPUs, %d GPUs", self.cpus, self.gpus)

    def _pool(self) -> tuple[int, int]:
        """Actors and GPUs per actor: ``config.workers``, else one actor per GPU (group), else a few CPU actors."""
        if not self.gpus:
            return self.config.workers or max(1, min(CPU_WORKERS, self.cpus)), 0
        per_actor = self.config.tensor_parallel_size if self.config.backend == "vllm" else 1
        return self.config.workers or max(1, self.gpus // per_actor), per_actor

    def map(self, factory: WorkerFactory, payloads: Sequence[dict[str, Any]]) -> Iterator[tuple[int, Any]]:
        if not payloads:
            return
        if self.ray is None:
            self._connect()
        from ray.data import ActorPoolStrategy, DataContext

        # Ray Data copies the current context into each dataset: set its knobs here, before from_items.
        context = DataContext.get_current()
        context.enable_progress_bars = False  # the run draws one bar over chunks
        context.retried_map_errors = True  # an exception in a chunk's work: retry the chunk once, in its actor
        context.max_map_retries = 1
        workers, gpus = self._pool()
        workers = min(workers, len(payloads))
        log.info("%d chunks on %d Ray workers (%s each)", len(payloads), workers, f"{gpus} GPU" if gpus else "1 CPU")
        # Workers use the device Ray gives them: their own GPU(s), or the CPU on a cluster without GPUs.
        device = "auto" if self.gpus else "cpu"
        rows = [{"index": i, "payload": json.dumps(p, ensure_ascii=False)} for i, p in enumerate(payloads)]
        with warnings.catch_warnings():
            # Actor restarts and task retries have no named parameter in Ray 2.60 (pinned), only ray_remote_args.
            warnings.filterwarnings("ignore", message=".*ray_remote_args. is deprecated")
            dataset = self.ray.data.from_items(rows, override_num_blocks=len(rows)).map_batches(
                _RayWorker,
                fn_constructor_kwargs={"factory": factory, "device": device},
                batch_size=1,  # one chunk per call: a chunk is the unit of work, of seeding and of saving
                # A fixed pool with one chunk in flight per actor, so an actor that dies charges a retry to its own chunk.
                compute=ActorPoolStrategy(size=workers, max_tasks_in_flight_per_actor=1),
                num_gpus=gpus, num_cpus=1,
                max_restarts=-1,  # a lost actor is restarted ...
                max_task_retries=1,  # ... and its chunk retried once
            )
        try:
            for row in dataset.iter_rows():
                yield int(row["index"]), json.loads(row["result"])
        except Exception as e:
            raise _chunk_error(e) from None

    def close(self) -> None:
        if self.connected_here and self.ray.is_initialized():
            self.ray.shutdown()  # stops a local cluster this run started; a cluster it joined keeps running


def _check_reachable(address: str | None) -> None:
    """A ``host:port`` that does not accept a connection within seconds is one line, not minutes of retries."""
    match = re.fullmatch(r"(?:ray://)?([^:/]+):(\d+)", address or "")
    if not match:
        return  # "local", "auto": Ray itself answers at once
    try:
        socket.create_connection((match.group(1), int(match.group(2))), timeout=CONNECT_TIMEOUT_S).close()
    except OSError as e:
        raise BestOfNError(f"no Ray cluster answers at {address} ({e.strerror or type(e).__name__} within "
                           f"{CONNECT_TIMEOUT_S:.0f} s); start one there with `ray start --head --port "
                           f"{match.group(2)}`, or pass --ray without a value to start a local one") from None


def _chunk_error(error: Exception) -> BestOfNError:
    """One line for a Ray job that stopped: which chunk failed twice and why, else Ray's own first line."""
    text = str(error)
    found = re.search(rf"{FAILED_MARK}: (.*)", text)
    if found:
        return BestOfNError(f"a chunk of work failed twice on the Ray cluster, the run stops: {found.group(1)}; "
                            f"finished chunks are saved, rerun the same command to resume")
    inner = re.search(r"BestOfNError: (.*)", text)  # e.g. a model that a worker cannot load
    if inner:
        return BestOfNError(inner.group(1))
    return BestOfNError(f"the Ray job stopped ({type(error).__name__}: {first_line(error)[:300]}); finished "
                        f"chunks are saved, rerun the same command to resume")
