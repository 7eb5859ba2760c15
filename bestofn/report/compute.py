"""The report's compute section: what each stage of the run cost, and each method's accuracy per token.

Two tables, both computed from the run directory alone:

- **Per stage** (from ``timings.json``, see :mod:`bestofn.costs`): wall time, model load, time in each model,
  sequences, tokens read and generated, tokens the PRM read, peak memory, and the hardware.
- **Per method** (from ``results.json``): accuracy, generated tokens per problem behind the method's answer,
  PRM tokens per problem, and *solved problems per 1k generated tokens*: correct answers x 1000 / generated
  tokens. Greedy spends one solution per problem; every selection rule and pass@N spend what the run's method
  generated (``results.json``'s ``compute``: every sample, or for a search every step, pruned beams and
  lookahead included) and what the PRM read.

:func:`add_compute_section` appends it to a report :class:`~bestofn.report.render.Page`;
:func:`compute_markdown` gives it as Markdown on its own.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..costs import COLUMNS, cost_rows, hardware_lines, stage_totals
from ..io import read_json
from ..selection import METHOD_LABELS
from .render import Page, table


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
    """Every method of ``results.json`` with its accuracy and the compute behind it: greedy's own solutions;
    for every other rule, everything the run's method generated and the PRM read."""
    spent = results.get("compute") or {}
    greedy = (results.get("tokens") or {}).get("greedy")
    return [MethodCost(m, acc["correct"], acc["total"], greedy if m == "greedy" else spent.get("generated_tokens"),
                       0 if m == "greedy" else spent.get("prm_tokens"))
            for m, acc in results["accuracy"].items()]


def _unavailable(value: float | None, fmt: str) -> str:
    return "unavailable" if value is None else fmt.format(value)


def _method_table(costs: list[MethodCost], n: int) -> tuple[list[str], list[list[str]]]:
    header = ["method", "accuracy", "generated tokens / problem", "PRM tokens / problem", "solved / 1k generated tokens"]
    rows = [[METHOD_LABELS.get(c.method, c.method).replace("N", str(n)), f"{c.correct}/{c.total}",
             _unavailable(c.tokens_per_problem, "{:,.0f}"),
             _unavailable(None if c.prm_tokens is None else c.prm_tokens / max(c.total, 1), "{:,.0f}"),
             _unavailable(c.solved_per_1k_tokens, "{:.3f}")]
            for c in costs]
    return header, rows


def add_compute_section(doc: Page, run_dir: str | Path) -> None:
    """Append the compute section (heading, per-stage and per-method tables) to ``doc``."""
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
    doc.add(table(*_method_table(method_costs(results), results["n"])))
    doc.para(
        "Solved / 1k generated tokens: correct answers per 1000 tokens the generator wrote for them (greedy: one "
        "solution per problem; the others: everything the run's method generated, for a search every step, pruned "
        "beams and lookahead included). PRM tokens: what the PRM read to score or steer them. Unavailable: the run "
        "does not know the count (never 0)."
    )


def compute_markdown(run_dir: str | Path) -> str:
    """The compute section of ``run_dir`` as Markdown."""
    page = Page("Compute")
    add_compute_section(page, run_dir)
    return "\n\n".join(md for md, _ in page.blocks) + "\n"  # the section alone, without the page's title
