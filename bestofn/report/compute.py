"""The report's compute section: each stage's cost (``timings.json``) and each method's accuracy per token
(``results.json``: a search's pruned beams and lookahead included)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..costs import TIMINGS_FILE, Cost, add_up
from ..io import read_json
from ..selection import METHOD_LABELS
from .render import Page, table

COLUMNS = ("stage", "wall s", "load s", "generator s", "PRM s", "seqs", "prompt tok", "gen tok", "PRM tok",
           "peak memory")


def stage_totals(run_dir: str | Path) -> dict[str, Cost]:
    """Each stage's total from ``timings.json`` (empty when the run has none, e.g. imported completions)."""
    path = Path(run_dir) / TIMINGS_FILE
    stages = read_json(path).get("stages", {}) if path.is_file() else {}
    return {name: Cost.from_dict(total) for name, total in stages.items()}


def cost_rows(totals: dict[str, Cost]) -> list[list[str]]:
    """One row of :data:`COLUMNS` per stage, and a total row."""
    def num(value: float | None, fmt: str = "{:,.0f}") -> str:
        return "-" if not value else fmt.format(value)

    def row(name: str, c: Cost) -> list[str]:
        memory = "-" if c.peak_memory_bytes is None else \
            f"{c.peak_memory_bytes / 2**30:.2f} GiB {'GPU' if c.memory == 'gpu' else 'RSS'}"
        return [name, f"{c.wall_s:.1f}", num(c.load_s, "{:.1f}"), num(c.generator_s, "{:.1f}"), num(c.prm_s, "{:.1f}"),
                num(c.sequences + c.prm_sequences), num(c.prompt_tokens), num(c.generated_tokens), num(c.prm_tokens),
                memory]

    rows = [row(stage, c) for stage, c in totals.items()]
    return [*rows, row("total", add_up(list(totals.values())))] if totals else rows


def hardware_lines(totals: dict[str, Cost]) -> list[str]:
    """What each stage ran on, and how the backend decoded."""
    settings = {stage: ", ".join(f"{k} {v}" for k, v in c.settings.items()) for stage, c in totals.items()}
    return [f"{stage}: {c.device}" + (f" ({settings[stage]})" if settings[stage] else "")
            for stage, c in totals.items() if c.device]


def format_cost_table(totals: dict[str, Cost]) -> str:
    """The per-stage cost table for the terminal, and the hardware each stage ran on."""
    if not totals:
        return "cost: no stage ran"
    rows = [list(COLUMNS), *cost_rows(totals)]
    widths = [max(len(r[i]) for r in rows) for i in range(len(COLUMNS))]
    lines = ["  ".join(c.ljust(w) if i == 0 else c.rjust(w) for i, (c, w) in enumerate(zip(r, widths))) for r in rows]
    return "\n".join(lines + hardware_lines(totals))


@dataclass(frozen=True)
class MethodCost:
    """One method's accuracy and the compute behind it (None: the run does not know it)."""

    method: str
    correct: int
    total: int
    generated_tokens: int | None  # over all problems
    prm_tokens: int | None

    @property
    def tokens_per_problem(self) -> float | None:
        return self.generated_tokens / self.total if self.generated_tokens is not None and self.total else None

    @property
    def solved_per_1k_tokens(self) -> float | None:
        """Correct answers per 1000 generated tokens (accuracy per 1k tokens of generation per problem)."""
        return 1000 * self.correct / self.generated_tokens if self.generated_tokens else None


def method_costs(results: dict[str, Any]) -> list[MethodCost]:
    """Every method of ``results.json`` with its accuracy and the compute behind it: greedy's own solutions; for
    every other rule, everything the run's method generated and the PRM read."""
    spent = results.get("compute") or {}
    greedy = (results.get("tokens") or {}).get("greedy")
    return [MethodCost(m, acc["correct"], acc["total"], greedy if m == "greedy" else spent.get("generated_tokens"),
                       0 if m == "greedy" else spent.get("prm_tokens"))
            for m, acc in results["accuracy"].items()]


def add_compute_section(doc: Page, run_dir: str | Path, name: Callable[[str], str] | None = None) -> None:
    """Append the compute section (heading, per-stage and per-method tables) to ``doc``; ``name`` labels a method
    (default: its label with the run's N)."""
    run_dir = Path(run_dir)
    results = read_json(run_dir / "results.json")
    totals = stage_totals(run_dir)
    doc.heading(2, "Compute")
    if totals:
        doc.add(table(list(COLUMNS), cost_rows(totals)))
        doc.para(
            "Per stage, summed over the chunks behind the results (worker-seconds with several workers): wall time "
            "(model loading included), time inside the generator's and the PRM's calls, sequences generated or "
            "scored, tokens the generator read (prompts) and wrote, tokens the PRM read, and peak memory (GPU: "
            "allocated by torch; CPU: resident set). " + "; ".join(hardware_lines(totals)) + "."
        )
    else:
        doc.para("This run directory has no per-stage costs (imported completions, or a run made elsewhere).")
    costs = method_costs(results)
    if all(c.generated_tokens is None and not c.prm_tokens for c in costs):  # an import: nothing to tabulate
        doc.para("Neither generated nor PRM token counts are known for this run (imported completions came without "
                 "them), so there is no accuracy per token; the accuracies are in the sections above.")
        return
    name = name or (lambda m: METHOD_LABELS.get(m, m).replace("N", str(results["n"])))

    def shown(value: float | None, fmt: str) -> str:
        return "unavailable" if value is None else fmt.format(value)

    doc.add(table(["method", "accuracy", "generated tokens / problem", "PRM tokens / problem",
                   "solved / 1k generated tokens"],
                  [[name(c.method), f"{c.correct}/{c.total}", shown(c.tokens_per_problem, "{:,.0f}"),
                    shown(None if c.prm_tokens is None else c.prm_tokens / max(c.total, 1), "{:,.0f}"),
                    shown(c.solved_per_1k_tokens, "{:.3f}")] for c in costs]))
    doc.para(
        "Solved / 1k generated tokens: correct answers per 1000 tokens the generator wrote for them (greedy: one "
        "solution per problem; the others: everything the run's method generated, for a search every step, pruned "
        "beams and lookahead included). PRM tokens: what the PRM read to score or steer them. Unavailable: the run "
        "does not know the count (never 0)."
    )


def compute_markdown(run_dir: str | Path) -> str:
    """The compute section of ``run_dir`` as Markdown (without the page's title)."""
    page = Page("Compute")
    add_compute_section(page, run_dir)
    return "\n\n".join(md for md, _ in page.blocks) + "\n"
