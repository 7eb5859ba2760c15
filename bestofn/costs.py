"""What the work cost: time, tokens and memory, as values that travel with each chunk's rows.

Test-time compute trades compute for accuracy, so the compute is measured as carefully as the accuracy. A
worker hands a method its models through a :class:`Meter`, which times and counts every call; the chunk's
:class:`Cost` is saved in the chunk file beside its rows, and a stage's cost is the sum of its chunks' costs
(:func:`add_up`). So a resumed run adds up exactly the work behind its results, on one process or many:

    wall_s            seconds the chunk took where it ran, its share of model loading included
    load_s            seconds loading models (charged to the first chunk a worker ran after loading)
    generator_s       seconds inside the generator's calls
    sequences         solutions (or steps of a search) generated
    prompt_tokens     tokens the generator read (each prompt once per call)
    generated_tokens  tokens generated, stop tokens included: every step, pruned beams and lookahead too
    prm_s, prm_sequences, prm_tokens   the PRM's seconds, texts scored and tokens run through it
    prm_cached_tokens tokens of those texts served from the PRM's prefix cache instead (a search's shared prefixes)
    peak_memory_bytes peak GPU memory allocated by torch, or on CPU the process's peak resident set
    device            the hardware, in words; settings: how the backend decoded (when it says)

With several workers, seconds are worker-seconds. ``timings.json`` holds each stage's total; the table
``bestofn run`` prints and the report's compute section read it (:mod:`bestofn.report.compute`).
"""

from __future__ import annotations

import os
import platform
import re
import resource
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field, fields
from typing import Any

import torch


TIMINGS_FILE = "timings.json"  # each stage's total, written with the results
_ADDITIVE = ("wall_s", "load_s", "generator_s", "sequences", "prompt_tokens", "generated_tokens", "prm_s",
             "prm_sequences", "prm_tokens", "prm_cached_tokens")


@dataclass
class Cost:
    """What one chunk (or, added up, one stage) spent; see the module docstring for each field."""

    wall_s: float = 0.0
    load_s: float = 0.0
    generator_s: float = 0.0
    sequences: int = 0
    prompt_tokens: int = 0
    generated_tokens: int = 0
    prm_s: float = 0.0
    prm_sequences: int = 0
    prm_tokens: int | None = 0  # None: the PRM could not count what it read
    prm_cached_tokens: int = 0
    peak_memory_bytes: int | None = None
    memory: str | None = None  # "gpu": torch.cuda.max_memory_allocated; "rss": peak resident set on CPU
    device: str | None = None
    settings: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Cost:
        known = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in data.items() if k in known})


def add_up(parts: Sequence[Cost]) -> Cost:
    """A stage's total: times, sequences and tokens add up; peak memory is the largest (GPU before RSS)."""
    total = Cost()
    for part in parts:
        for key in _ADDITIVE:
            a, b = getattr(total, key), getattr(part, key)
            setattr(total, key, None if a is None or b is None else a + b)
        if part.peak_memory_bytes is not None:
            mine = (total.memory == "gpu", total.peak_memory_bytes or 0)
            if (part.memory == "gpu", part.peak_memory_bytes) >= mine:
                total.peak_memory_bytes, total.memory = part.peak_memory_bytes, part.memory
        total.settings = {**total.settings, **part.settings}
    total.device = " + ".join(dict.fromkeys(p.device for p in parts if p.device)) or None
    return total


# --- measuring, where the models run ------------------------------------------------------------------------------
def device_name(device: str) -> str:
    """The GPU's name, or the CPU's architecture and core count."""
    if device.startswith("cuda") and torch.cuda.is_available():
        return torch.cuda.get_device_name(torch.device(device))
    return f"cpu ({platform.machine()}, {os.cpu_count()} cores)"


def reset_peak_memory(device: str) -> None:
    """Start a new peak: GPU memory stats, or on Linux the resident-set high-water mark (VmHWM)."""
    if device.startswith("cuda") and torch.cuda.is_available():
        torch.cuda.reset_peak_memory_stats(torch.device(device))
        return
    try:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")
    except OSError:
        pass  # not Linux, or not allowed: the process's lifetime peak is read instead


def peak_memory(device: str) -> tuple[int, str]:
    """The peak since :func:`reset_peak_memory`: GPU memory allocated by torch, else the resident set."""
    if device.startswith("cuda") and torch.cuda.is_available():
        return torch.cuda.max_memory_allocated(torch.device(device)), "gpu"
    try:
        with open("/proc/self/status") as f:
            match = re.search(r"VmHWM:\s+(\d+) kB", f.read())
        if match:
            return int(match.group(1)) * 1024, "rss"
    except OSError:
        pass
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss  # kB on Linux, bytes on macOS
    return (peak if platform.system() == "Darwin" else peak * 1024), "rss"


class Meter:
    """A chunk's view of its worker's models: each ``generate`` and ``score_detailed`` call is timed and
    counted into :attr:`cost`. A method calls it as it would call a backend and a PRM."""

    def __init__(self, generator: Any, prm: Any, device: str, load_s: float = 0.0):
        self.generator, self.prm, self.device = generator, prm, device
        self.cost = Cost(load_s=load_s, device=device_name(device))
        self.started = time.perf_counter() - load_s
        reset_peak_memory(device)

    @property
    def tokenizer(self) -> Any:
        return self.generator.tokenizer

    def generate(self, prompts: list[str], **kwargs: Any) -> list[list[Any]]:
        start = time.perf_counter()
        outputs = self.generator.generate(prompts, **kwargs)
        self.cost.generator_s += time.perf_counter() - start
        self.cost.sequences += sum(len(group) for group in outputs)
        self.cost.generated_tokens += sum(c.num_tokens for group in outputs for c in group)
        if prompts:
            ids = self.generator.tokenizer(list(prompts), add_special_tokens=False)["input_ids"]
            self.cost.prompt_tokens += sum(len(x) for x in ids)
        self.cost.settings.update(getattr(self.generator, "settings", {}))
        return outputs

    @property
    def caches_prefixes(self) -> bool:
        """Whether the PRM's ``score_detailed`` takes a prefix cache (``cache``, ``parents``, ``keys``)."""
        return bool(getattr(self.prm, "caches_prefixes", False))

    def score_detailed(self, problems: Sequence[str], responses: Sequence[str], **cache: Any) -> list[Any]:
        start = time.perf_counter()
        scores = self.prm.score_detailed(list(problems), list(responses), **cache)
        self.cost.prm_s += time.perf_counter() - start
        self.cost.prm_sequences += len(responses)
        counts = [sc.num_tokens for sc in scores]
        if self.cost.prm_tokens is not None:
            self.cost.prm_tokens = None if None in counts else self.cost.prm_tokens + sum(counts)
        self.cost.prm_cached_tokens += sum(getattr(sc, "cached_tokens", 0) for sc in scores)
        return scores

    def finish(self) -> Cost:
        """The chunk's cost, with its wall time and peak memory."""
        self.cost.wall_s = time.perf_counter() - self.started
        self.cost.peak_memory_bytes, self.cost.memory = peak_memory(self.device)
        return self.cost
