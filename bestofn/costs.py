"""What each stage of a run cost: time, tokens, memory and hardware, in ``timings.json`` beside the manifest.

Test-time compute trades compute for accuracy, so the compute is measured as carefully as the accuracy. For
every stage that runs, the pipeline records (decorator :func:`measured`, plus three calls inside the stages):

    wall_s            seconds the stage took, model loading included
    load_s            seconds spent loading its model (:func:`model_load`)
    model_s           seconds inside the model's generate / score calls (:func:`metered_generate`, :func:`metered_score`)
    sequences         solutions generated, or scored by the PRM
    prompt_tokens     tokens the model read: each prompt once (generation), or problem + solution (PRM scoring)
    generated_tokens  tokens generated, stop tokens included (``Completion.num_tokens``)
    tokens_per_s      generated tokens (PRM: tokens read) per second of ``model_s``
    prm_s, prm_tokens the PRM's seconds and the tokens it read in a stage where it steers the generator (a
                      search, :class:`SteeringPRM`), kept apart from the generator's numbers above
    peak_memory_bytes peak GPU memory allocated by this process (``torch.cuda.max_memory_allocated``), or on CPU
                      the peak resident set of this process during the stage (``memory`` says which)
    backend, device, dtype, model, settings (how the backend decoded, when it says)

A stage killed midway and resumed is the sum of its *parts*: each run of the stage appends one part, and the
stage's ``total`` adds them up (peak memory: the largest). Parts are flushed to disk (atomically) after every
model call, so a killed run's work up to its last call is kept. A stage that is recomputed from scratch
(finished before, or run with other settings) starts a new record.

The pipeline's workers may run in other processes (Ray workers), where this process's record cannot be
reached: a worker measures its model's load and calls itself (:class:`WorkerMeter`) and returns the numbers
with each chunk's result, and the pipeline adds them to the stage (:func:`record`), in every executor alike.
With several Ray workers, ``load_s`` and ``model_s`` are worker-seconds (summed over workers, so
``tokens_per_s`` is per worker) and peak memory is the largest of this process's and the workers' (GPU
memory first; a worker's peak is its process's lifetime peak). ``bestofn run`` prints
:func:`format_cost_table`; the report's compute section is :mod:`bestofn.report.compute`.
"""

from __future__ import annotations

import contextvars
import functools
import os
import platform
import re
import resource
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field, fields
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import torch

from .backends.base import resolve_device, resolve_dtype
from .config import BestOfNConfig
from .errors import BestOfNError
from .io import read_json, write_json

TIMINGS_FILE = "timings.json"
# The model each stage runs (stages not named here run none).
STAGE_MODELS = {"greedy": "generator", "samples": "generator", "scores": "prm"}
_ADDITIVE = ("wall_s", "load_s", "model_s", "sequences", "prompt_tokens", "generated_tokens", "prm_s", "prm_tokens")


# --- one part of a stage ----------------------------------------------------------------------------------------
@dataclass
class StageCost:
    """What one run of one stage spent (see the module docstring for each field)."""

    wall_s: float = 0.0
    load_s: float = 0.0
    model_s: float = 0.0
    sequences: int = 0
    prompt_tokens: int = 0
    generated_tokens: int = 0
    prm_s: float = 0.0
    prm_tokens: int = 0
    peak_memory_bytes: int | None = None
    memory: str | None = None  # "gpu": torch.cuda.max_memory_allocated; "rss": peak resident set on CPU
    backend: str | None = None
    device: str | None = None
    dtype: str | None = None
    model: str | None = None
    settings: dict[str, Any] = field(default_factory=dict)

    @property
    def tokens_per_s(self) -> float | None:
        tokens = self.generated_tokens or self.prompt_tokens
        return tokens / self.model_s if tokens and self.model_s > 0 else None

    def to_dict(self) -> dict[str, Any]:
        return {**asdict(self), "tokens_per_s": self.tokens_per_s}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> StageCost:
        known = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in data.items() if k in known})


def add_up(parts: Sequence[StageCost]) -> StageCost:
    """A stage's total over its parts: times, sequences and tokens add up, peak memory is the largest."""
    total = StageCost()
    for part in parts:
        for key in _ADDITIVE:
            setattr(total, key, getattr(total, key) + getattr(part, key))
        if part.peak_memory_bytes is not None and (total.peak_memory_bytes or 0) <= part.peak_memory_bytes:
            total.peak_memory_bytes, total.memory = part.peak_memory_bytes, part.memory
        total.settings = {**total.settings, **part.settings}
    for key in ("backend", "device", "dtype", "model"):  # parts on other hardware: all of them, in order
        values = dict.fromkeys(getattr(p, key) for p in parts if getattr(p, key))
        setattr(total, key, " + ".join(values) or None)
    return total


# --- peak memory ----------------------------------------------------------------------------------------------
class PeakMemory:
    """Peak memory of this process since :meth:`reset`: GPU memory allocated by torch, or resident set on CPU.

    On Linux the resident-set peak (VmHWM) is reset by writing 5 to /proc/self/clear_refs, so each stage gets
    its own peak; elsewhere it is the process's peak so far (``getrusage``), an upper bound.
    """

    def __init__(self, device: str | None):
        self.cuda = bool(device and device.startswith("cuda") and torch.cuda.is_available())
        self.device = torch.device(device) if self.cuda else None

    def reset(self) -> None:
        if self.cuda:
            torch.cuda.reset_peak_memory_stats(self.device)
            return
        try:
            with open("/proc/self/clear_refs", "w") as f:
                f.write("5")
        except OSError:
            pass  # not Linux, or not allowed: read() falls back to the process's lifetime peak

    def read(self) -> tuple[int, str]:
        if self.cuda:
            return torch.cuda.max_memory_allocated(self.device), "gpu"
        try:
            with open("/proc/self/status") as f:
                match = re.search(r"VmHWM:\s+(\d+) kB", f.read())
            if match:
                return int(match.group(1)) * 1024, "rss"
        except OSError:
            pass
        peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss  # kB on Linux, bytes on macOS
        return peak if platform.system() == "Darwin" else peak * 1024, "rss"


def device_name(device: str) -> str:
    """The GPU's name, or the CPU's architecture and core count."""
    if device.startswith("cuda") and torch.cuda.is_available():
        return torch.cuda.get_device_name(torch.device(device))
    return f"cpu ({platform.machine()}, {os.cpu_count()} cores)"


def hardware(config: BestOfNConfig, stage: str) -> dict[str, Any]:
    """Backend, device, dtype and model of the stage's model, as the config resolves them (empty: no model)."""
    role = STAGE_MODELS.get(stage)
    if role is None:
        return {}
    try:
        device = resolve_device(config.device)
        dtype = str(resolve_dtype(config.dtype, device)).removeprefix("torch.")
    except BestOfNError:  # e.g. cuda asked for but absent: the stage itself reports it
        device, dtype = config.device, config.dtype
    return {"backend": config.backend if role == "generator" else "transformers", "device": device_name(device),
            "dtype": dtype, "model": config.generator if role == "generator" else config.prm, "_device": device}


# --- the record of a run directory -------------------------------------------------------------------------------
def read_timings(run_dir: str | Path) -> dict[str, Any]:
    """The run's ``timings.json`` ({"stages": {stage: {fingerprint, finished, parts, total}}}), or an empty one."""
    path = Path(run_dir) / TIMINGS_FILE
    return read_json(path) if path.exists() else {"stages": {}}


def stage_totals(run_dir: str | Path, config: BestOfNConfig | None = None) -> dict[str, StageCost]:
    """Each recorded stage's total, in pipeline order; with ``config``, only stages recorded with its settings."""
    stages = read_timings(run_dir)["stages"]
    return {name: StageCost.from_dict(rec["total"]) for name, rec in stages.items()
            if config is None or rec.get("fingerprint") == config.fingerprint(name)}


class StageMeter:
    """Measures one run of one stage and keeps its part of ``timings.json`` up to date."""

    def __init__(self, run_dir: Any, stage: str):
        self.path = Path(run_dir.path) / TIMINGS_FILE
        self.stage = stage
        self.fingerprint = run_dir.config.fingerprint(stage)
        info = hardware(run_dir.config, stage)
        self.memory = PeakMemory(info.pop("_device", None))
        self.cost = StageCost(**info)
        self.earlier: list[dict[str, Any]] = []  # parts of the same computation from killed runs
        self.worker_memory: tuple[int, str] | None = None  # the largest peak a worker reported (record)
        self.started = time.perf_counter()
        self.started_at = datetime.now(timezone.utc).isoformat(timespec="seconds")

    def start(self) -> None:
        """Resume the stage's record when an earlier run left it unfinished with the same settings, else start anew."""
        record = read_timings(self.path.parent)["stages"].get(self.stage)
        if record and record.get("fingerprint") == self.fingerprint and not record.get("finished"):
            self.earlier = record["parts"]
        self.memory.reset()
        self.flush(finished=False)

    def flush(self, finished: bool) -> None:
        """Write this part (wall time so far, peak memory so far) and the stage's total, atomically."""
        self.cost.wall_s = time.perf_counter() - self.started
        peak = self.memory.read()
        self.cost.peak_memory_bytes, self.cost.memory = _larger_peak(self.worker_memory, peak)
        parts = [*self.earlier, {"started_at": self.started_at, **self.cost.to_dict()}]
        total = add_up([StageCost.from_dict(p) for p in parts])
        record = {"fingerprint": self.fingerprint, "finished": finished, "parts": parts, "total": total.to_dict()}
        doc = read_timings(self.path.parent)
        write_json(self.path, {**doc, "stages": {**doc["stages"], self.stage: record}})


_ACTIVE: contextvars.ContextVar[StageMeter | None] = contextvars.ContextVar("bestofn_stage_meter", default=None)


def measured(stage: str) -> Callable:
    """Decorator of a pipeline stage ``f(run_dir, ...)``: record its costs when it runs (not when it is done)."""

    def wrap(func: Callable) -> Callable:
        @functools.wraps(func)
        def stage_fn(run_dir: Any, *args: Any, **kwargs: Any) -> Any:
            if run_dir.is_done(stage):
                return func(run_dir, *args, **kwargs)
            meter = StageMeter(run_dir, stage)
            meter.start()
            token = _ACTIVE.set(meter)
            try:
                result = func(run_dir, *args, **kwargs)
            except BaseException:
                meter.flush(finished=False)  # a kill or an error: keep what this part did so far
                raise
            finally:
                _ACTIVE.reset(token)
            meter.flush(finished=True)
            return result

        return stage_fn

    return wrap


@contextmanager
def model_load() -> Iterator[None]:
    """Count the time of the block as the current stage's model load time."""
    start = time.perf_counter()
    try:
        yield
    finally:
        meter = _ACTIVE.get()
        if meter is not None:
            meter.cost.load_s += time.perf_counter() - start
            meter.flush(finished=False)


def metered_generate(backend: Any, prompts: list[str], **kwargs: Any) -> Any:
    """``backend.generate(prompts, **kwargs)``, timed, its sequences and tokens added to the current stage."""
    start = time.perf_counter()
    outputs = backend.generate(prompts, **kwargs)
    meter = _ACTIVE.get()
    if meter is not None:
        meter.cost.model_s += time.perf_counter() - start
        meter.cost.sequences += sum(len(group) for group in outputs)
        meter.cost.generated_tokens += sum(c.num_tokens for group in outputs for c in group)
        tokenizer = getattr(backend, "tokenizer", None)
        if tokenizer is not None:
            meter.cost.prompt_tokens += _count_tokens(tokenizer, prompts)
        meter.cost.settings.update(getattr(backend, "settings", {}))
        meter.flush(finished=False)
    return outputs


def metered_score(prm: Any, problems: list[str], responses: list[str]) -> Any:
    """``prm.score_detailed(problems, responses)``, timed, the solutions and tokens it read added to the stage."""
    start = time.perf_counter()
    scores = prm.score_detailed(problems, responses)
    meter = _ACTIVE.get()
    if meter is not None:
        meter.cost.model_s += time.perf_counter() - start
        meter.cost.sequences += len(responses)
        read = [getattr(sc, "num_tokens", None) for sc in scores]
        tokenizer = getattr(prm, "tokenizer", None)
        if all(t is not None for t in read):  # the PRM's own count of what it read
            meter.cost.prompt_tokens += sum(read)
        elif tokenizer is not None:  # else problem + solution: the PRM's own step separators add a few more
            meter.cost.prompt_tokens += _count_tokens(tokenizer, problems) + _count_tokens(tokenizer, responses)
        meter.flush(finished=False)
    return scores


class _ModelWrapper:
    """Wraps a model for code that calls it itself (a search): every attribute it does not define is the model's."""

    def __init__(self, model: Any):
        self.model = model

    def __getattr__(self, name: str) -> Any:  # only called for names the wrapper does not have
        if name.startswith("__") or name == "model":  # copy and pickle probe before __init__ has run
            raise AttributeError(name)
        return getattr(self.model, name)


class MeteredGenerator(_ModelWrapper):
    """A generation backend whose ``generate`` calls count into the current stage (:func:`metered_generate`)."""

    def generate(self, prompts: list[str], **kwargs: Any) -> Any:
        return metered_generate(self.model, prompts, **kwargs)


class SteeringPRM(_ModelWrapper):
    """A PRM that steers a search: its seconds and the tokens it read count into the stage's ``prm_s`` and
    ``prm_tokens``, apart from the generator's numbers."""

    def score_detailed(self, problems: Sequence[str], responses: Sequence[str]) -> Any:
        start = time.perf_counter()
        scores = self.model.score_detailed(problems, responses)
        meter = _ACTIVE.get()
        if meter is not None:
            meter.cost.prm_s += time.perf_counter() - start
            meter.cost.prm_tokens += sum(getattr(sc, "num_tokens", None) or 0 for sc in scores)
            meter.flush(finished=False)
        return scores


# --- costs measured where the model runs -------------------------------------------------------------------------
class _Collector:
    """Stands in for the stage's meter inside a worker: the calls' numbers go into ``cost``, nothing is written."""

    def __init__(self) -> None:
        self.cost = StageCost()

    def flush(self, finished: bool) -> None:
        pass


@contextmanager
def collected(device: str | None) -> Iterator[StageCost]:
    """Count the block's :func:`model_load` and ``metered_*`` calls into a new part (not the stage's record),
    with this process's peak memory on ``device`` at its end."""
    collector = _Collector()
    token = _ACTIVE.set(collector)
    try:
        yield collector.cost
    finally:
        _ACTIVE.reset(token)
        collector.cost.peak_memory_bytes, collector.cost.memory = PeakMemory(device).read()


class WorkerMeter:
    """The costs of one worker's model, measured where it runs and handed over with each chunk's result.

    The model's load time goes with the worker's first chunk after the load, so the stage whose worker
    loaded the model is charged for it, once.
    """

    def __init__(self, device: str | None):
        self.device = device
        self.unreported_load_s = 0.0

    @contextmanager
    def load(self) -> Iterator[None]:
        with collected(self.device) as part, model_load():
            yield
        self.unreported_load_s += part.load_s

    @contextmanager
    def chunk(self) -> Iterator[StageCost]:
        with collected(self.device) as part:
            yield part
        part.load_s, self.unreported_load_s = self.unreported_load_s, 0.0


def record(part: dict[str, Any]) -> None:
    """Add a part a worker measured (:class:`WorkerMeter`, as ``StageCost.to_dict``) to the current stage."""
    meter = _ACTIVE.get()
    if meter is None:
        return
    cost = StageCost.from_dict(part)
    for key in (k for k in _ADDITIVE if k != "wall_s"):  # the stage's wall time is the driver's own
        setattr(meter.cost, key, getattr(meter.cost, key) + getattr(cost, key))
    meter.cost.settings.update(cost.settings)
    if cost.peak_memory_bytes is not None:
        meter.worker_memory = _larger_peak(meter.worker_memory, (cost.peak_memory_bytes, cost.memory))
    meter.flush(finished=False)


def _larger_peak(a: tuple[int, str] | None, b: tuple[int, str]) -> tuple[int, str]:
    """The peak that says more: GPU memory (where a model ran on one) before a resident set, then the larger."""
    return b if a is None else max(a, b, key=lambda peak: (peak[1] == "gpu", peak[0]))


def _count_tokens(tokenizer: Any, texts: list[str]) -> int:
    return sum(len(ids) for ids in tokenizer(texts, add_special_tokens=False)["input_ids"]) if texts else 0


# --- the table -------------------------------------------------------------------------------------------------
def _num(value: float | None, fmt: str = "{:,.0f}") -> str:
    return "-" if value is None or value == 0 else fmt.format(value)


def _rate(value: float | None) -> str:
    return "-" if not value else f"{value:,.0f}" if value >= 100 else f"{value:.1f}"


def _memory(cost: StageCost) -> str:
    if cost.peak_memory_bytes is None:
        return "-"
    return f"{cost.peak_memory_bytes / 2**30:.2f} GiB {'GPU' if cost.memory == 'gpu' else 'RSS'}"


COLUMNS = ("stage", "wall s", "load s", "model s", "seqs", "prompt tok", "gen tok", "tok/s", "peak memory")


def cost_rows(totals: dict[str, StageCost]) -> list[list[str]]:
    """One row of :data:`COLUMNS` per stage, and a total row."""
    rows = []
    for stage, c in totals.items():
        rows.append([stage, f"{c.wall_s:.1f}", _num(c.load_s, "{:.1f}"), _num(c.model_s, "{:.1f}"), _num(c.sequences),
                     _num(c.prompt_tokens), _num(c.generated_tokens), _rate(c.tokens_per_s), _memory(c)])
        if c.prm_s:  # a search: the PRM that steered it, in a row of its own (tokens read, read per second)
            rows.append([f"{stage}: PRM", "", "", _num(c.prm_s, "{:.1f}"), "", _num(c.prm_tokens), "",
                         _rate(c.prm_tokens / c.prm_s), ""])
    if totals:
        t = add_up(list(totals.values()))
        rows.append(["total", f"{t.wall_s:.1f}", _num(t.load_s, "{:.1f}"), _num(t.model_s + t.prm_s, "{:.1f}"), "", "",
                     _num(t.generated_tokens), "", _memory(t)])
    return rows


def format_cost_table(totals: dict[str, StageCost]) -> str:
    """The per-stage cost table for the terminal, and the hardware each model ran on."""
    if not totals:
        return "cost: no stage ran"
    rows = [list(COLUMNS), *cost_rows(totals)]
    widths = [max(len(r[i]) for r in rows) for i in range(len(COLUMNS))]
    lines = ["  ".join(c.ljust(w) if i == 0 else c.rjust(w) for i, (c, w) in enumerate(zip(r, widths))) for r in rows]
    return "\n".join(lines + hardware_lines(totals))


def hardware_lines(totals: dict[str, StageCost]) -> list[str]:
    """What each model stage ran on, and how the backend decoded."""
    lines = []
    for stage, c in totals.items():
        if c.device:
            extra = ", ".join(f"{k} {v}" for k, v in c.settings.items())
            lines.append(f"{stage}: {c.backend} on {c.device}, {c.dtype}" + (f" ({extra})" if extra else ""))
    return lines
