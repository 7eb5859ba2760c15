"""The report's compute section: what each stage of the run cost, and each method's accuracy per token.

Two tables, both computed from the run directory alone:

- **Per stage** (from ``timings.json``, see :mod:`bestofn.costs`): wall time, model load, time in the model,
  sequences, tokens read and generated, tokens/s, peak memory, and the hardware.
- **Per method** (accuracy from ``results.json``, tokens from the artifacts): accuracy, generated tokens per
  problem behind the method's answer, and *solved problems per 1k generated tokens*: correct answers x 1000 /
  generated tokens, i.e. accuracy per 1k tokens of generation per problem. Greedy spends one solution per problem; every Best-of-N method and
  pass@N spend the N samples (and the PRM methods also the PRM's reading of them, shown per stage).

:func:`add_compute_section` appends it to a report :class:`~bestofn.report.render.Page`;
:func:`compute_markdown` gives it as Markdown on its own.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..config import BestOfNConfig
from ..costs import COLUMNS, cost_rows, hardware_lines, stage_totals
from ..io import read_json
from ..selection import METHOD_LABELS
from .render import Page, table


@dataclass(frozen=True)
class MethodCost:
    """One method's accuracy and the generation it took (None: the run has no token counts)."""

    method: str
    correct: int
    total: int
    generated_tokens: int | None  # over all problems

    @property
    def tokens_per_problem(self) -> float | None:
        return self.generated_tokens / self.total if self.generated_tokens is not None and self.total else None

    @property
    def solved_per_1k_tokens(self) -> float | None:
        """Correct answers per 1000 generated tokens (accuracy per 1k tokens of generation per problem)."""
        return 1000 * self.correct / self.generated_tokens if self.generated_tokens else None


def method_tokens(method: str, tokens: dict[str, int | None]) -> int | None:
    """Generated tokens behind a method's answers: its own count when results.json has one (e.g. a search
    method), greedy's for greedy, else the N samples' (majority, Best-of-N and pass@N all read them)."""
    return tokens[method] if method in tokens else tokens.get("samples")


def generated_tokens(results: dict[str, Any]) -> dict[str, int | None]:
    """Generated tokens per artifact and per method, as the results stage counted them (None: unknown)."""
    return dict(results.get("tokens") or {})


def method_costs(results: dict[str, Any], tokens: dict[str, int | None]) -> list[MethodCost]:
    """Every method of ``results.json`` with its accuracy and the generated tokens behind it."""
    return [MethodCost(m, acc["correct"], acc["total"], method_tokens(m, tokens))
            for m, acc in results["accuracy"].items()]


def _method_table(costs: list[MethodCost], n: int) -> tuple[list[str], list[list[str]]]:
    header = ["method", "accuracy", "generated tokens / problem", "solved / 1k generated tokens"]
    rows = [[METHOD_LABELS.get(c.method, c.method).replace("N", str(n)), f"{c.correct}/{c.total}",
             "unavailable" if c.tokens_per_problem is None else f"{c.tokens_per_problem:,.0f}",
             "unavailable" if c.solved_per_1k_tokens is None else f"{c.solved_per_1k_tokens:.3f}"]
            for c in costs]
    return header, rows


def add_compute_section(doc: Page, run_dir: str | Path) -> None:
    """Append the compute section (heading, per-stage and per-method tables) to ``doc``."""
    run_dir = Path(run_dir)
    results = read_json(run_dir / "results.json")
    has_config = (run_dir / "config.yaml").is_file()
    totals = stage_totals(run_dir, BestOfNConfig.from_yaml(run_dir / "config.yaml")) if has_config else {}
    doc.heading(2, "Compute")
    if totals:
        doc.add(table(list(COLUMNS), cost_rows(totals)))
        doc.para(
            "Per stage, summed over resumed runs: wall time (model load included), time inside the model's calls, "
            "sequences generated or scored, tokens read (prompts once each; PRM: problem + solution) and generated, "
            "tokens/s in the model (generated, or read by the PRM), and peak memory (GPU: allocated by torch; "
            "CPU: resident set of the process). " + "; ".join(hardware_lines(totals)) + "."
        )
    else:
        doc.para("This run directory has no timings.json (it was made before costs were recorded).")
    doc.add(table(*_method_table(method_costs(results, generated_tokens(results)), results["n"])))
    doc.para(
        "Solved / 1k generated tokens: correct answers per 1000 tokens the generator wrote for them (greedy: one "
        f"solution per problem; the others: the {results['n']} samples per problem). PRM scoring is not counted here."
    )


def compute_markdown(run_dir: str | Path) -> str:
    """The compute section of ``run_dir`` as Markdown."""
    page = Page("Compute")
    add_compute_section(page, run_dir)
    return "\n\n".join(md for md, _ in page.blocks) + "\n"  # the section alone, without the page's title
