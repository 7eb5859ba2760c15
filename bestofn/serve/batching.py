"""Batching across requests: one generator call and one PRM call for the work of many concurrent requests.

Each request runs the unchanged method code (:mod:`bestofn.methods`) in its own worker thread, handed a
:class:`RequestModels`: it looks like a backend and a PRM (``generate``, ``score_detailed``, ``tokenizer``),
but each call becomes a *job* on a :class:`Lane`. A lane gathers the jobs that arrive within ``window_s`` (a few
milliseconds), merges them into calls, runs each call on a thread of its own and hands each job its share of the
outputs; jobs arriving while calls run wait only for a call that ends within their own work (see :class:`Lane`).
The generator and the PRM have a lane each, so one request's scoring never waits for another's generation.

- **Generation** jobs merge when they sample alike (``n``, the first sample index, temperature, top_p, stop
  strings, max_new_tokens), up to the backend's batch token budget (prompt + max_new_tokens per sequence, as the
  transformers backend plans its batches). Every prompt gets its own seed (``seeds=``), derived from the
  request's seed and the prompt's position, so what a request samples never depends on what it was batched with.
- **Scoring** jobs merge into one ``score_detailed`` call (the PRM packs it into token-budget batches), except a
  search's, which carries its own prefix cache and is a call alone.

A :class:`Ticket` is one request's stop signal: a client that disconnects cancels it, and ``deadline_s`` sets
its deadline. A job whose ticket is stopped before it is batched is dropped. While a transformers backend
decodes, a stopping criterion checks every ticket between decoding steps and stops the rows of stopped
requests (all rows, when the call holds one request's work): a cancelled request's sequences stop decoding at
the next step, and rows cut at a deadline come back with ``finish_reason`` ``length`` (the ticket records that
its deadline cut them, so the server answers from the solutions that finished).
"""

from __future__ import annotations

import inspect
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
    most_concurrent_calls: int = 0  # most calls of one lane in progress at once (a short one beside a long one)


@dataclass
class Job:
    """One call of one request, waiting in a lane."""

    ticket: Ticket
    args: dict[str, Any]
    future: Future = field(default_factory=Future)


@dataclass
class Call:
    """A merged call in progress: its work in its lane's units and the share of it already done."""

    work: float
    started: float = field(default_factory=time.monotonic)
    done: float | None = None  # work the call reports done (transformers: decoding steps); None: it reports none

    def remaining(self, rate: float | None) -> float:
        """Work left: by what the call reported done, else by the lane's measured rate (none measured yet: all)."""
        if self.done is not None:
            done = self.done
        else:
            done = 0.0 if rate is None else (time.monotonic() - self.started) * rate
        return max(0.0, self.work - done)


class Lane:
    """A queue of jobs for one model. A dispatcher thread gathers jobs for ``window_s``, merges them into calls
    (``plan``) and runs each call on a thread of its own (``run``).

    A job waits for the calls in progress only while one of them has no more work left than the job's own
    (``cost``: decoding steps, scored characters), so it joins the next merged call at the price of at most its own
    work; otherwise its call starts at once, beside the slower one. Requests of the same size therefore merge,
    and a short request never queues behind a long one.
    """

    def __init__(self, name: str, plan: Callable[[list[Job]], list[list[Job]]],
                 run: Callable[[list[Job], Call], None], cost: Callable[[list[Job]], float], window_s: float,
                 stats: Stats):
        self.name, self._plan, self._run, self._cost, self.window_s, self.stats = name, plan, run, cost, window_s, stats
        self._queue: queue.Queue[Job | None | str] = queue.Queue()
        self._lock = threading.Lock()
        self._running: dict[int, Call] = {}  # id(call) -> call, for the calls in progress
        self._workers: list[threading.Thread] = []
        self._rate: float | None = None  # work per second of the calls finished so far (moving average)
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
        pending: list[Job] = []
        while True:
            item = self._queue.get()
            if item is None:  # closing: run what waits, then let the calls in progress finish
                self._start(self._live(pending))
                for worker in list(self._workers):
                    worker.join(timeout=60)
                return
            if isinstance(item, Job):  # 1. gather what arrives within the window
                pending += [item, *self._gather()]
            pending = self._live(pending)  # 2. drop the work of requests that are gone
            if pending and self._may_start(pending):  # 3. merged calls, now or once a call in progress ends
                self._start(pending)
                pending = []

    def _gather(self) -> list[Job]:
        jobs: list[Job] = []
        until = time.monotonic() + self.window_s
        while (left := until - time.monotonic()) > 0:
            try:
                more = self._queue.get(timeout=left)
            except queue.Empty:
                break
            if not isinstance(more, Job):
                self._queue.put(more)  # closing, or a call ended: seen by the loop next
                break
            jobs.append(more)
        return jobs

    def _live(self, jobs: list[Job]) -> list[Job]:
        live = []
        for job in jobs:
            if job.ticket.cancelled.is_set():
                job.future.set_exception(Cancelled())
                self.stats.dropped_jobs += 1
            else:
                live.append(job)
        return live

    def _may_start(self, pending: list[Job]) -> bool:
        """Start now unless a call in progress ends within the smallest waiting job's own work."""
        with self._lock:
            left = [call.remaining(self._rate) for call in self._running.values()]
        return not left or min(left) > min(self._cost([job]) for job in pending)

    def _start(self, jobs: list[Job]) -> None:
        for merged in self._plan(jobs) if jobs else []:
            call = Call(work=self._cost(merged))
            worker = threading.Thread(target=self._work, args=(merged, call), name=f"bestofn-{self.name}-call",
                                      daemon=True)
            with self._lock:
                self._running[id(call)] = call
                self.stats.most_concurrent_calls = max(self.stats.most_concurrent_calls, len(self._running))
                self._workers = [w for w in self._workers if w.is_alive()] + [worker]
            worker.start()

    def _work(self, jobs: list[Job], call: Call) -> None:
        try:
            self._run(jobs, call)  # one merged call, results handed back
        except BaseException as e:  # noqa: BLE001 - every waiting request gets the error, the lane lives on
            log.exception("%s lane: a merged call failed", self.name)
            for job in jobs:
                if not job.future.done():
                    job.future.set_exception(e)
        finally:
            seconds = time.monotonic() - call.started
            with self._lock:
                del self._running[id(call)]
                if seconds > 0:
                    rate = call.work / seconds
                    self._rate = rate if self._rate is None else 0.5 * (self._rate + rate)
            self._queue.put("ended")  # waiting jobs may start now


class Batcher:
    """The server's models behind two lanes: the generator's and the PRM's. Thread-safe; one per server."""

    def __init__(self, generator: Any, prm: Any, window_s: float = 0.005):
        self.generator, self.prm = generator, prm
        self.tokenizer = generator.tokenizer
        # An engine that batches continuously (vLLM's async engine) takes each call as it comes: no lane.
        self.continuous = getattr(generator, "continuous", False)
        # The transformers backend checks per-call stopping criteria between decoding steps.
        self.stoppable = "stopping_criteria" in inspect.signature(generator.generate).parameters
        self.stats = Stats()
        self._lock = threading.Lock()
        self.generate_lane = Lane("generate", self._plan_generation, self._generate, _decoding_steps, window_s,
                                  self.stats)
        self.score_lane = Lane("score", _by_cache, self._score, _scored_characters, window_s, self.stats)

    def close(self) -> None:
        self.generate_lane.close()
        self.score_lane.close()

    # --- generation ------------------------------------------------------------------------------------------
    def _plan_generation(self, jobs: list[Job]) -> list[list[Job]]:
        """Jobs that sample alike merge, as many as fit the backend's batch token budget."""
        groups: dict[tuple, list[Job]] = {}
        for job in jobs:
            a = job.args
            key = (a["n"], a["first"], a["temperature"], a["top_p"], a["max_new_tokens"], tuple(a.get("stop") or ()))
            groups.setdefault(key, []).append(job)
        return [merged for group in groups.values() for merged in self._fit_budget(group)]

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

    def _generate(self, jobs: list[Job], call: Call) -> None:
        live = [j for j in jobs if not self._expired(j)]
        if not live:
            return
        a = live[0].args
        prompts = [p for j in live for p in j.args["prompts"]]
        seeds = [s for j in live for s in _seeds(j.args)]
        owners = [j.ticket for j in live for _ in j.args["prompts"] for _ in range(a["n"])]
        extra: dict[str, Any] = {}
        if self.stoppable:
            from .cancel import StopStopped

            extra["stopping_criteria"] = [StopStopped(owners, self.stats, call)]
        outputs = self.generator.generate(prompts, n=a["n"], temperature=a["temperature"], top_p=a["top_p"],
                                          max_new_tokens=a["max_new_tokens"], seed=a["seed"], stop=a.get("stop"),
                                          seeds=seeds, first=a["first"], **extra)
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

    # --- scoring ---------------------------------------------------------------------------------------------
    def _score(self, jobs: list[Job], call: Call) -> None:
        problems = [p for j in jobs for p in j.args["problems"]]
        responses = [r for j in jobs for r in j.args["responses"]]
        cached = jobs[0].args.get("cache")  # a search's prefix cache: its jobs are one request's, never merged
        options = {} if cached is None else {k: jobs[0].args[k] for k in ("cache", "parents", "keys")}
        scores = self.prm.score_detailed(problems, responses, **options)
        with self._lock:
            self.stats.score_calls += 1
            self.stats.score_jobs += len(jobs)
        start = 0
        for job in jobs:
            k = len(job.args["responses"])
            job.future.set_result(scores[start : start + k])
            start += k


def _decoding_steps(jobs: list[Job]) -> float:
    """A generation call's work: its decoding steps (merged jobs share ``max_new_tokens``)."""
    return float(max(job.args["max_new_tokens"] for job in jobs))


def _scored_characters(jobs: list[Job]) -> float:
    """A scoring call's work, in characters of the texts it scores (a stand-in for tokens, without tokenizing)."""
    return float(sum(len(p) + len(r) for job in jobs for p, r in zip(job.args["problems"], job.args["responses"])))


def _by_cache(jobs: list[Job]) -> list[list[Job]]:
    """Scoring jobs without a prefix cache merge into one call; a search's job with its own cache is a call alone
    (a call scores against one cache, and a request's cache holds that request's texts only)."""
    plain = [job for job in jobs if job.args.get("cache") is None]
    return ([plain] if plain else []) + [[job] for job in jobs if job.args.get("cache") is not None]


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
        self.caches_prefixes = getattr(batcher.prm, "caches_prefixes", False)  # a search then keeps a PrefixCache
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

    def score_detailed(self, problems: Sequence[str], responses: Sequence[str], cache: Any = None,
                       parents: Sequence[Any] | None = None, keys: Sequence[Any] | None = None) -> list[Any]:
        """The PRM's ``score_detailed``, queued; a search's prefix cache (``cache``, ``parents``, ``keys``) is passed
        through, so a search through the server scores only the tokens its cache does not hold."""
        if self.ticket.cancelled.is_set():
            raise Cancelled()
        scores = self.batcher.score_lane.submit(self.ticket, problems=list(problems), responses=list(responses),
                                                cache=cache, parents=parents, keys=keys)
        self._on_call("scoring")
        return scores
