"""The report of ``bestofn prm-bench``: ProcessBench's table beside published numbers, and where predictions fall.

Reads ``results.json`` and ``predictions.jsonl`` of a finished benchmark directory (:mod:`bestofn.prmbench`)
and writes ``report.md`` (PNGs beside it) and ``report.html`` (PNGs embedded) with
:mod:`bestofn.report.render`, like the run reports.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
from matplotlib.figure import Figure

from ..io import read_json, read_jsonl
from ..bench.processbench import GSM8K, SUBSETS
from .render import Page, bullets, code, table, write_page

SUBSET_NAMES = {"gsm8k": "GSM8K", "math": "MATH", "olympiadbench": "OlympiadBench", "omnimath": "Omni-MATH"}

# Published ProcessBench F1 (percent), one place: GSM8K, MATH, OlympiadBench, Omni-MATH, average.
# Qwen2.5-Math-PRM-7B's row (Qwen's "The Lessons of Developing Process Reward Models in Mathematical
# Reasoning", 2025) is left out: its table could not be checked against the paper here.
PUBLISHED_SOURCE = ("Zheng et al., ProcessBench: Identifying Process Errors in Mathematical Reasoning, ACL 2025 "
                    "(arXiv:2412.06559), Table 3; Skywork PRMs with the threshold of the best GSM8K F1")
PUBLISHED_F1: dict[str, dict[str, Any]] = {
    "Math-Shepherd-PRM-7B": {"hub_id": "peiyi9979/math-shepherd-mistral-7b-prm",
                             "f1": {"gsm8k": 47.9, "math": 29.5, "olympiadbench": 24.8, "omnimath": 23.8, "average": 31.5}},
    "RLHFlow-PRM-Mistral-8B": {"hub_id": "RLHFlow/Llama3.1-8B-PRM-Mistral-Data",
                               "f1": {"gsm8k": 50.4, "math": 33.4, "olympiadbench": 13.8, "omnimath": 15.8, "average": 28.4}},
    "RLHFlow-PRM-Deepseek-8B": {"hub_id": "RLHFlow/Llama3.1-8B-PRM-Deepseek-Data",
                                "f1": {"gsm8k": 38.8, "math": 33.8, "olympiadbench": 16.9, "omnimath": 16.9, "average": 26.6}},
    "Skywork-PRM-1.5B": {"hub_id": "Skywork/Skywork-o1-Open-PRM-Qwen-2.5-1.5B",
                         "f1": {"gsm8k": 59.0, "math": 48.0, "olympiadbench": 19.3, "omnimath": 19.2, "average": 36.4}},
    "Skywork-PRM-7B": {"hub_id": "Skywork/Skywork-o1-Open-PRM-Qwen-2.5-7B",
                       "f1": {"gsm8k": 70.8, "math": 53.6, "olympiadbench": 22.9, "omnimath": 21.0, "average": 42.1}},
}
MAX_INDEX = 12  # the plots bucket step indices from here on ("12+")


def pct(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.1f}"


def published_name(prm: str) -> str | None:
    """The published row of the PRM ``prm`` (a Hub id), if there is one."""
    return next((name for name, row in PUBLISHED_F1.items() if row["hub_id"].lower() == prm.lower()), None)


def format_results(results: dict[str, Any]) -> str:
    """A short table for the terminal."""
    t = results["threshold"]
    lines = [f"ProcessBench, PRM {results['prm']} ({results['format']}), threshold {t['value']:.4g} ({t['rule']})",
             f"  {'subset':<14}{'error acc':>10}{'correct acc':>12}{'F1':>7}{'n':>6}"]
    for subset, m in results["subsets"].items():
        lines.append(f"  {subset:<14}{pct(m['error_accuracy']):>10}{pct(m['correct_accuracy']):>12}{pct(m['f1']):>7}"
                     f"{m['n']:>6}")
    lines.append(f"  average F1 {pct(results['average_f1'])}")
    if results["truncated_rows"]:
        lines.append(f"  {results['truncated_rows']} solution(s) cut at the PRM's context (prm_truncated)")
    return "\n".join(lines)


def build_page(results: dict[str, Any], subsets: Sequence[str]) -> Page:
    t = results["threshold"]
    page = Page(f"ProcessBench: {results['prm']}")
    rule = (f"chosen on GSM8K, where it gives the best F1 ({pct(t['gsm8k_f1'])}; ties go to the lowest threshold), "
            f"and used for every subset" if t["rule"] == GSM8K else "set by --threshold")
    page.para(f"PRM {code(results['prm'])} (format {code(results['format'])}, steps joined with "
              f"{code(repr(results['step_separator']))}) on {code(results['data'])}, {results['n']} solutions. "
              f"A step is judged wrong when its reward is below **{t['value']:.4g}** ({rule}); the prediction is the "
              f"first such step, -1 if none.")
    page.heading(2, "ProcessBench F1 beside published PRMs")
    header = ["PRM", *(SUBSET_NAMES.get(s, s) for s in subsets), "average"]
    rows = [[f"**{results['prm']} (this run)**", *(pct(results["subsets"][s]["f1"]) for s in subsets),
             pct(results["average_f1"])]]
    mine = published_name(results["prm"])
    for name, row in PUBLISHED_F1.items():
        label = f"{name} (published)" + (" = this PRM" if name == mine else "")
        rows.append([label, *(pct(row["f1"].get(s)) for s in subsets), pct(row["f1"]["average"])])
    page.add(table(header, rows))
    page.para(f"Published numbers: {PUBLISHED_SOURCE}. Qwen2.5-Math-PRM-7B's row (Qwen's \"Lessons of Developing "
              f"PRMs\" paper) is not shown: it could not be checked against the paper. Averages over other subsets than "
              f"the four are not comparable.")
    page.heading(2, "Per subset")
    page.add(table(
        ["subset", "error acc. %", "correct acc. %", "F1", "n (wrong / right)", "cut at context", "step AUROC",
         "best threshold (in-sample)"],
        [[SUBSET_NAMES.get(s, s), pct(m["error_accuracy"]), pct(m["correct_accuracy"]), pct(m["f1"]),
          f"{m['n']} ({m['n_error']} / {m['n_correct']})", m["truncated"],
          "n/a" if m["step_auroc"] is None else f"{m['step_auroc']:.3f}",
          "n/a" if m["best_threshold_in_sample"] is None else
          f"{m['best_threshold_in_sample']['threshold']:.4g} (F1 {pct(m['best_threshold_in_sample']['f1'])})"]
         for s, m in results["subsets"].items()]))
    page.add(bullets([
        "Error accuracy: solutions with a wrong step whose predicted step is the labelled one; correct accuracy: "
        "solutions with every step right predicted -1; F1: their harmonic mean (ProcessBench's numbers).",
        "Step AUROC: how well a step's reward separates the steps before the first error (right) from the first "
        "wrong step; steps after the first error are left out, since ProcessBench labels only the first one.",
        "Best threshold (in-sample): the threshold with the best F1 on that subset itself, an upper bound for a "
        "threshold chosen elsewhere (as the paper's Table 6 shows for the Skywork PRMs).",
        f"Cut at context: solutions longer than the PRM's context; only their first steps were scored and the "
        f"prediction looks at those only ({results['truncated_rows']} in all).",
    ]))
    page.heading(2, "Where predictions fall")
    page.para("Each cell counts solutions by their label (row) and the PRM's prediction (column); -1 means "
              "\"every step right\". The diagonal is what ProcessBench counts as right; columns left of it are "
              f"errors flagged too early, right of it too late or missed. Steps from {MAX_INDEX} on are pooled.")
    for s in subsets:
        page.image(f"predictions-{s}.png", f"predictions against labels, {SUBSET_NAMES.get(s, s)}")
    return page


def plot_predictions(labels: Sequence[int], predictions: Sequence[int], title: str) -> Figure:
    """A count matrix: label (rows) against prediction (columns), -1 first, indices from MAX_INDEX pooled."""
    top = max([min(v, MAX_INDEX) for v in (*labels, *predictions)] + [0])  # the largest index shown
    used = top + 2  # -1, 0, ..., top
    counts = np.zeros((used, used), dtype=int)
    for lab, p in zip(labels, predictions):
        counts[min(lab, MAX_INDEX) + 1, min(p, MAX_INDEX) + 1] += 1
    names = ["-1", *(str(k) for k in range(top)), f"{top}+" if top == MAX_INDEX else str(top)]
    fig = Figure(figsize=(1.2 + 0.45 * used, 1.0 + 0.42 * used))
    ax = fig.subplots()
    ax.imshow(counts, cmap="Greens", origin="upper")
    for i in range(used):
        for j in range(used):
            if counts[i, j]:
                ax.text(j, i, str(counts[i, j]), ha="center", va="center", fontsize=8,
                        color="white" if counts[i, j] > counts.max() / 2 else "black")
    ax.set_xticks(range(used), names, fontsize=8)
    ax.set_yticks(range(used), names, fontsize=8)
    ax.set_xlabel("predicted first wrong step")
    ax.set_ylabel("labelled first wrong step")
    ax.set_title(title, fontsize=9)
    return fig


def write_prm_bench_report(bench_dir: str | Path, formats: Sequence[str] = ("md", "html")) -> list[Path]:
    """Write the report of a finished ``bestofn prm-bench`` directory into it; return the written paths."""
    bench_dir = Path(bench_dir)
    results = read_json(bench_dir / "results.json")
    predictions = read_jsonl(bench_dir / "predictions.jsonl")
    subsets = list(results["subsets"])
    ordered = [s for s in SUBSETS if s in subsets] + [s for s in subsets if s not in SUBSETS]
    figures = {}
    for s in ordered:
        rows = [p for p in predictions if p["subset"] == s]
        m = results["subsets"][s]
        figures[f"predictions-{s}.png"] = plot_predictions(
            [p["label"] for p in rows], [p["prediction"] for p in rows],
            f"{SUBSET_NAMES.get(s, s)}: {len(rows)} solutions, F1 {pct(m['f1'])}")
    return write_page(build_page(results, ordered), figures, bench_dir, formats)
