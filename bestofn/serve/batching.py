"""Batching across requests: one generator call and one PRM call for the work of many concurrent requests.

Each request runs the unchanged method code (:mod:`bestofn.methods`) in its own worker thread, handed a
:class:`RequestModels`: it looks like a backend and a PRM (``generate``, ``score_detailed``, ``tokenizer``),
but each call becomes a *job* on a :class:`Lane`. A lane's thread owns its model: it waits for a job, gathers
every other job that arrives within ``window_s`` (a few milliseconds), merges them into one call, and hands each
job its share of the outputs. The generator and the PRM have a lane each, so one request's scoring never waits
for another's generation.

- **Generation** jobs merge when they sample alike (``n``, the first sample index, temperature, top_p, stop strings, max_new_tokens),
  up to the backend's batch token budget (prompt + max_new_tokens per sequence, as the transformers backend
  plans its batches). Every prompt gets its own seed (``seeds=``), derived from the request's seed and the
  prompt's position, so what a request samples never depends on what it was batched with.
- **Scoring** jobs all merge into one ``score_detailed`` call; the PRM packs it into token-budget batches.

A :class:`Ticket` is one request's stop signal: a client that disconnects cancels it, and ``deadline_s`` sets
its deadline. A job whose ticket is stopped before it is batched is dropped. While a transformers backend
decodes, a stopping criterion checks every ticket between decoding steps and stops the rows of stopped
requests (all rows, when the call holds one request's work): a cancelled request's sequences stop decoding at
the next step, and rows cut at a deadline come back with ``finish_reason`` ``length`` (the ticket records that
its deadline cut them, so the server answers from the solutions that finished).
"""

from __future__ import annotations

import logging
import queue
import threading
import time
from collections.abc import Callable, Sequence
from concurrent.futures import Future
from dataclasses import dataclass, field
from typing import Any

from ..backends.base import Completion, prompt_seeds

log = logging.getLogger(__name__)


class Cancelled(Exception):
    """The request's client went away: its work was dropped."""


class Ticket:
    """One request's stop signal: cancelled by a disconnect, or past its deadline (``time.monotonic``)."""

    def __init__(self, deadline: float | None = None):
        self.deadline = deadline
        self.cancelled = threading.Event()
        self.deadline_hit = False  # its deadline cut some generation short

    def cancel(self) -> None:
        self.cancelled.set()

    def past_deadline(self) -> bool:
        return self.deadline is not None and time.monotonic() >= self.deadline

    def stopped(self) -> bool:
        """Whether its generation must stop now (and why is recorded: a deadline marks the ticket)."""
        if self.cancelled.is_set():
            return True
        if self.past_deadline():
            self.deadline_hit = True
            return True
        return False


@dataclass
class Stats:
    """What the lanes did, for tests and the server's log: calls made, jobs merged and dropped, decode steps."""

    generate_calls: int = 0
    generate_jobs: int = 0
    score_calls: int = 0
    score_jobs: int = 0
    dropped_jobs: int = 0  # cancelled before they were batched
    decode_steps: int = 0  # transformers: decoding steps run (the stopping criterion counts them)
    stopped_rows: int = 0  # sequences stopped early because their request was cancelled or past its deadline
    largest_generate_batch: int = 0  # most requests merged into one generator call


@dataclass
class Job:
    """One call of one request, waiting in a lane."""

    ticket: Ticket
    args: dict[str, Any]
    future: Future = field(default_factory=Future)


class Lane:
    """A queue of jobs and the thread that owns one model: gathers jobs for ``window_s``, runs them merged."""

    def __init__(self, name: str, run: Callable[[list[Job]], None], window_s: float, stats: Stats):
        self.name, self._run, self.window_s, self.stats = name, run, window_s, stats
        self._queue: queue.Queue[Job | None] = queue.Queue()
        self._thread = threading.Thread(target=self._loop, name=f"bestofn-{name}", daemon=True)
        self._thread.start()

    def submit(self, ticket: Ticket, **args: Any) -> Any:
        """Queue one call and wait for its result (raises :class:`Cancelled` if the request was cancelled)."""
        job = Job(ticket, args)
        self._queue.put(job)
        return job.future.result()

    def close(self) -> None:
        self._queue.put(None)
        self._thread.join(timeout=60)

    def _loop(self) -> None:
        while True:
            job = self._queue.get()
            if job is None:
                return
            jobs = [job]
            until = time.monotonic() + self.window_s
            while (left := until - time.monotonic()) > 0:  # 1. gather what arrives within the window
                try:
                    more = self._queue.get(timeout=left)
                except queue.Empty:
                    break
                if more is None:
                    self._queue.put(None)  # closing: finish these jobs first
                    break
                jobs.append(more)
            live = []
            for j in jobs:  # 2. drop the work of requests that are gone
                if j.ticket.cancelled.is_set():
                    j.future.set_exception(Cancelled())
                    self.stats.dropped_jobs += 1
                else:
                    live.append(j)
            if live:
                try:
                    self._run(live)  # 3. one merged call (or a few), results handed back
                except BaseException as e:  # noqa: BLE001 - every waiting request gets the error, the lane lives on
                    log.exception("%s lane: a merged call failed", self.name)
                    for j in live:
                        if not j.future.done():
                            j.future.set_exception(e)


class Batcher:
    """The server's models behind two lanes: the generator's and the PRM's. Thread-safe; one per server."""

    def __init__(self, generator: Any, prm: Any, window_s: float = 0.005):
        self.generator, self.prm = generator, prm
        self.tokenizer = generator.tokenizer
        # An engine that batches continuously (vLLM's async engine) takes each call as it comes: no lane.
        self.continuous = getattr(generator, "continuous", False)
        self.stats = Stats()
        self._lock = threading.Lock()
        self.generate_lane = Lane("generate", self._generate, window_s, self.stats)
        self.score_lane = Lane("score", self._score, window_s, self.stats)

    def close(self) -> None:
        self.generate_lane.close()
        self.score_lane.close()

    # --- generation ------------------------------------------------------------------------------------------
    def _generate(self, jobs: list[Job]) -> None:
        groups: dict[tuple, list[Job]] = {}
        for job in jobs:
            a = job.args
            key = (a["n"], a["first"], a["temperature"], a["top_p"], a["max_new_tokens"], tuple(a.get("stop") or ()))
            groups.setdefault(key, []).append(job)
        for group in groups.values():
            for merged in self._fit_budget(group):
                self._generate_merged(merged)

    def _fit_budget(self, jobs: list[Job]) -> list[list[Job]]:
        """Consecutive jobs merged while their sequences fit one batch of the backend's token budget."""
        budget = getattr(self.generator, "batch_tokens", None)
        if budget is None:
            return [jobs]
        out: list[list[Job]] = []
        current: list[Job] = []
        rows = longest = 0
        for job in jobs:
            a = job.args
            lengths = [len(ids) for ids in self.tokenizer(list(a["prompts"]), add_special_tokens=False)["input_ids"]]
            more_rows, more_longest = len(lengths) * a["n"], max(lengths, default=0)
            grown = max(longest, more_longest)
            if current and (rows + more_rows) * (grown + a["max_new_tokens"]) > budget:
                out.append(current)
                current, rows, grown = [], 0, more_longest
            current.append(job)
            rows, longest = rows + more_rows, grown
        if current:
            out.append(current)
        return out

    def _generate_merged(self, jobs: list[Job]) -> None:
        live = [j for j in jobs if not self._expired(j)]
        if not live:
            return
        a = live[0].args
        prompts = [p for j in live for p in j.args["prompts"]]
        seeds = [s for j in live for s in _seeds(j.args)]
        owners = [j.ticket for j in live for _ in j.args["prompts"] for _ in range(a["n"])]
        criterion = self._criterion(owners)
        hook = getattr(self.generator, "stopping_criteria", None)
        if hook is not None and criterion is not None:
            hook.append(criterion)
        try:
            outputs = self.generator.generate(prompts, n=a["n"], temperature=a["temperature"], top_p=a["top_p"],
                                              max_new_tokens=a["max_new_tokens"], seed=a["seed"], stop=a.get("stop"),
                                              seeds=seeds, first=a["first"])
        finally:
            if hook is not None and criterion is not None:
                hook.remove(criterion)
        with self._lock:
            self.stats.generate_calls += 1
            self.stats.generate_jobs += len(live)
            self.stats.largest_generate_batch = max(self.stats.largest_generate_batch, len(live))
        start = 0
        for job in live:
            k = len(job.args["prompts"])
            mine = outputs[start : start + k]
            start += k
            if job.ticket.cancelled.is_set():
                job.future.set_exception(Cancelled())
            else:
                job.future.set_result(mine)

    def generate_now(self, ticket: Ticket, args: dict[str, Any]) -> list[list[Completion]]:
        """One request's call straight to a continuously batching engine, which watches its ticket."""
        outputs = self.generator.generate(args["prompts"], n=args["n"], temperature=args["temperature"],
                                          top_p=args["top_p"], max_new_tokens=args["max_new_tokens"], seed=args["seed"],
                                          stop=args.get("stop"), seeds=_seeds(args), first=args["first"],
                                          ticket=ticket)
        with self._lock:
            self.stats.generate_calls += 1
            self.stats.generate_jobs += 1
        return outputs

    def _expired(self, job: Job) -> bool:
        """Answer a job at once, without generating, when its request is past its deadline (the lane has
        dropped the cancelled ones)."""
        if job.ticket.stopped():
            job.future.set_result(cut_at_deadline(job.args))
            return True
        return False

    def _criterion(self, owners: list[Ticket]) -> Any:
        """A transformers stopping criterion that stops the rows of stopped requests (None: not transformers)."""
        if getattr(self.generator, "stopping_criteria", None) is None:
            return None
        from .cancel import StopStopped

        return StopStopped(owners, self.stats)

    # --- scoring ---------------------------------------------------------------------------------------------
    def _score(self, jobs: list[Job]) -> None:
        problems = [p for j in jobs for p in j.args["problems"]]
        responses = [r for j in jobs for r in j.args["responses"]]
        scores = self.prm.score_detailed(problems, responses)
        with self._lock:
            self.stats.score_calls += 1
            self.stats.score_jobs += len(jobs)
        start = 0
        for job in jobs:
            k = len(job.args["responses"])
            job.future.set_result(scores[start : start + k])
            start += k


def _seeds(args: dict[str, Any]) -> list[int]:
    """One seed per prompt: the method's own (a search's, a sample's problem), else the backend's rule."""
    return prompt_seeds(args["seed"], args.get("seeds"), len(args["prompts"]))


def cut_at_deadline(args: dict[str, Any]) -> list[list[Completion]]:
    """What a call asked for after its request's deadline: nothing generated, every sequence cut (``length``)."""
    return [[Completion("", 0, "length") for _ in range(args["n"])] for _ in args["prompts"]]


class RequestModels:
    """One request's view of the batcher: what a method calls (``generate``, ``score_detailed``, ``tokenizer``)."""

    def __init__(self, batcher: Batcher, ticket: Ticket, on_call: Callable[[str], None] | None = None):
        self.batcher, self.ticket = batcher, ticket
        self.tokenizer = batcher.tokenizer
        self._on_call = on_call or (lambda stage: None)  # progress: called after each finished call

    def generate(self, prompts: list[str], *, n: int, temperature: float, top_p: float, max_new_tokens: int,
                 seed: int, stop: Sequence[str] | None = None, seeds: Sequence[int] | None = None, first: int = 0
                 ) -> list[list[Completion]]:
        """The backend's ``generate`` (``first``: the index of the first sample wanted, as in a run), queued."""
        if self.ticket.cancelled.is_set():
            raise Cancelled()
        args = dict(prompts=list(prompts), n=n, temperature=temperature, top_p=top_p, max_new_tokens=max_new_tokens,
                    seed=seed, stop=list(stop) if stop else None, seeds=None if seeds is None else list(seeds),
                    first=first)
        if self.ticket.stopped():
            return cut_at_deadline(args)
        if self.batcher.continuous:
            outputs = self.batcher.generate_now(self.ticket, args)
        else:
            outputs = self.batcher.generate_lane.submit(self.ticket, **args)
        self._on_call("generation")
        return outputs

    def score_detailed(self, problems: Sequence[str], responses: Sequence[str]) -> list[Any]:
        if self.ticket.cancelled.is_set():
            raise Cancelled()
        scores = self.batcher.score_lane.submit(self.ticket, problems=list(problems), responses=list(responses))
        self._on_call("scoring")
        return scores
