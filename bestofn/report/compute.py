"""The report's compute section: what each stage of the run cost, and each method's accuracy per token.

Two tables, both computed from the run directory alone:

- **Per stage** (from ``timings.json``, see :mod:`bestofn.costs`): wall time, model load, time in the model,
  sequences, tokens read and generated, tokens/s, peak memory, and the hardware.
- **Per method** (accuracy from ``results.json``, tokens from the artifacts): accuracy, generated tokens per
  problem behind the method's answer, and *solved problems per 1k generated tokens*: correct answers x 1000 /
  generated tokens, i.e. accuracy per 1k tokens of generation per problem. Greedy spends one solution per problem; every Best-of-N method and
  pass@N spend the N samples (and the PRM methods also the PRM's reading of them, shown per stage).

:func:`add_compute_section` writes it into any document with ``heading``/``para``/``table`` methods (the run
report's ``Doc``); :func:`compute_markdown` gives it as Markdown on its own.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..config import BestOfNConfig
from ..costs import COLUMNS, cost_rows, hardware_lines, stage_totals
from ..io import read_json, read_jsonl
from ..selection import METHOD_LABELS


@dataclass(frozen=True)
class MethodCost:
    """One method's accuracy and the generation it took."""

    method: str
    correct: int
    total: int
    generated_tokens: int  # over all problems

    @property
    def tokens_per_problem(self) -> float:
        return self.generated_tokens / self.total if self.total else 0.0

    @property
    def solved_per_1k_tokens(self) -> float | None:
        """Correct answers per 1000 generated tokens (accuracy per 1k tokens of generation per problem)."""
        return 1000 * self.correct / self.generated_tokens if self.generated_tokens else None


def method_tokens(method: str, tokens: dict[str, int]) -> int:
    """Generated tokens behind a method's answers: its own count when results.json has one (e.g. a search
    method), greedy's for greedy, else the N samples' (majority, Best-of-N and pass@N all read them)."""
    if method in tokens:
        return tokens[method]
    return tokens["samples"]


def generated_tokens(run_dir: str | Path, results: dict[str, Any]) -> dict[str, int]:
    """Generated tokens per artifact (greedy.jsonl, samples.jsonl: their ``num_tokens``), and any count
    results.json adds (e.g. a search method's own)."""
    run_dir = Path(run_dir)
    counted = {stage: sum(r["num_tokens"] for r in read_jsonl(run_dir / f"{stage}.jsonl"))
               for stage in ("greedy", "samples") if (run_dir / f"{stage}.jsonl").is_file()}
    return {**counted, **results.get("tokens", {})}


def method_costs(results: dict[str, Any], tokens: dict[str, int]) -> list[MethodCost]:
    """Every method of ``results.json`` with its accuracy and the generated tokens behind it."""
    return [MethodCost(m, acc["correct"], acc["total"], method_tokens(m, tokens))
            for m, acc in results["accuracy"].items()]


def _method_table(costs: list[MethodCost], n: int) -> tuple[list[str], list[list[str]]]:
    header = ["method", "accuracy", "generated tokens / problem", "solved / 1k generated tokens"]
    rows = [[METHOD_LABELS.get(c.method, c.method).replace("N", str(n)), f"{c.correct}/{c.total}",
             f"{c.tokens_per_problem:,.0f}", "-" if c.solved_per_1k_tokens is None else f"{c.solved_per_1k_tokens:.3f}"]
            for c in costs]
    return header, rows


def add_compute_section(doc: Any, run_dir: str | Path) -> None:
    """Append the compute section (heading, per-stage and per-method tables) to ``doc``."""
    run_dir = Path(run_dir)
    results = read_json(run_dir / "results.json")
    has_config = (run_dir / "config.yaml").is_file()
    totals = stage_totals(run_dir, BestOfNConfig.from_yaml(run_dir / "config.yaml")) if has_config else {}
    doc.heading(2, "Compute")
    if totals:
        doc.table(list(COLUMNS), cost_rows(totals))
        doc.para(
            "Per stage, summed over resumed runs: wall time (model load included), time inside the model's calls, "
            "sequences generated or scored, tokens read (prompts once each; PRM: problem + solution) and generated, "
            "tokens/s in the model (generated, or read by the PRM), and peak memory (GPU: allocated by torch; "
            "CPU: resident set of the process). " + "; ".join(hardware_lines(totals)) + "."
        )
    else:
        doc.para("This run directory has no timings.json (it was made before costs were recorded).")
    doc.table(*_method_table(method_costs(results, generated_tokens(run_dir, results)), results["n"]))
    doc.para(
        "Solved / 1k generated tokens: correct answers per 1000 tokens the generator wrote for them (greedy: one "
        f"solution per problem; the others: the {results['n']} samples per problem). PRM scoring is not counted here."
    )


class _Markdown:
    """The smallest document :func:`add_compute_section` can write into, rendered as Markdown."""

    def __init__(self) -> None:
        self.lines: list[str] = []

    def heading(self, level: int, text: str) -> None:
        self.lines += ["#" * level + " " + text, ""]

    def para(self, text: str) -> None:
        self.lines += [text, ""]

    def table(self, header: list[str], rows: list[list[str]]) -> None:
        self.lines += ["| " + " | ".join(header) + " |", "|" + "---|" * len(header),
                       *("| " + " | ".join(r) + " |" for r in rows), ""]


def compute_markdown(run_dir: str | Path) -> str:
    """The compute section of ``run_dir`` as Markdown."""
    doc = _Markdown()
    add_compute_section(doc, run_dir)
    return "\n".join(doc.lines)
