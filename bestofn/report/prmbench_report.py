"""The reports of ``bestofn prm-bench``: one PRM's ProcessBench F1 beside the published numbers, and several PRMs
side by side (``bestofn compare BENCH_DIR...``)."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
from matplotlib.figure import Figure

from ..io import read_json, read_jsonl
from ..bench.processbench import GSM8K, SUBSETS, f1_interval, is_bench_dir
from ..errors import BestOfNError
from .render import Page, bullets, code, output_lock, table, write_page

SUBSET_NAMES = {"gsm8k": "GSM8K", "math": "MATH", "olympiadbench": "OlympiadBench", "omnimath": "Omni-MATH"}

# Published ProcessBench F1 (percent): GSM8K, MATH, OlympiadBench, Omni-MATH, average. Qwen2.5-Math-PRM-7B's row
# (Qwen's "The Lessons of Developing Process Reward Models in Mathematical Reasoning", 2025) is left out: its table
# could not be checked against the paper here.
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
MIN_SHARED = 30  # fewer shared solutions: a bootstrap interval of an F1 difference is too coarse to call a lead


def pct(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.1f}"


def name_of(subset: str) -> str:
    return SUBSET_NAMES.get(subset, subset)


def f1_cell(m: dict[str, Any]) -> str:
    """``63.4 [59.0, 67.6]``, and ``(partial: 120 of 1000 rows)`` when only part of a published subset was scored."""
    ci = m.get("f1_ci")
    text = pct(m["f1"]) + (f" [{ci[0]:.1f}, {ci[1]:.1f}]" if ci else "")
    return text + (f" (partial: {m['n']} of {m['published_rows']} rows)" if m.get("partial") else "")


def partial_note(results: dict[str, Any]) -> str | None:
    """The warning beside the published rows when a subset was scored in part (None: every subset whole)."""
    parts = [f"{name_of(s)} ({m['n']} of {m['published_rows']} rows)" for s, m in results["subsets"].items()
             if m.get("partial")]
    return (f"**Partial subsets: {', '.join(parts)}.** Their F1 is measured on part of the subset and is not "
            f"comparable with the published numbers, which are over the whole subset; the intervals say how far "
            f"the part can stray.") if parts else None


def format_results(results: dict[str, Any]) -> str:
    """A short table for the terminal."""
    t = results["threshold"]
    lines = [f"ProcessBench, PRM {results['prm']} ({results['format']}), threshold {t['value']:.4g} ({t['rule']})",
             f"  {'subset':<14}{'error acc':>10}{'correct acc':>12}{'F1':>7}{'n':>6}"]
    lines += [f"  {subset:<14}{pct(m['error_accuracy']):>10}{pct(m['correct_accuracy']):>12}{pct(m['f1']):>7}"
              f"{m['n']:>6}" for subset, m in results["subsets"].items()]
    lines.append(f"  average F1 {pct(results['average_f1'])}")
    if results["truncated_rows"]:
        lines.append(f"  {results['truncated_rows']} solution(s) cut at the PRM's context (prm_truncated)")
    return "\n".join(lines)


def build_page(results: dict[str, Any], subsets: Sequence[str]) -> Page:
    t, data = results["threshold"], results["data"]
    page = Page(f"ProcessBench: {results['prm']}")
    rule = (f"chosen on GSM8K, where it gives the best F1 ({pct(t['gsm8k_f1'])}; ties go to the lowest threshold), "
            f"and used for every subset" if t["rule"] == GSM8K else "set by --threshold")
    data = ", ".join(map(str, data)) if isinstance(data, list) else str(data)
    page.para(f"PRM {code(results['prm'])} (format {code(results['format'])}, steps joined with "
              f"{code(repr(results['step_separator']))}) on {code(data)}, {results['n']} solutions. "
              f"A step is judged wrong when its reward is below **{t['value']:.4g}** ({rule}); the prediction is the "
              f"first such step, -1 if none.")
    page.heading(2, "ProcessBench F1 beside published PRMs")
    mine = next((name for name, row in PUBLISHED_F1.items() if row["hub_id"].lower() == results["prm"].lower()),
                None)  # the published row of this PRM, if there is one
    page.add(table(["PRM", *map(name_of, subsets), "average"],
                   [[f"**{results['prm']} (this run)**", *(f1_cell(results["subsets"][s]) for s in subsets),
                     pct(results["average_f1"])]]
                   + [[f"{name} (published)" + (" = this PRM" if name == mine else ""),
                       *(pct(row["f1"].get(s)) for s in subsets), pct(row["f1"]["average"])]
                      for name, row in PUBLISHED_F1.items()]))
    if partial_note(results):
        page.para(partial_note(results))
    page.para(f"This run's F1 with its 95% bootstrap interval over the subset's solutions. Published numbers: "
              f"{PUBLISHED_SOURCE}. Qwen2.5-Math-PRM-7B's row (Qwen's \"Lessons of Developing "
              f"PRMs\" paper) is not shown: it could not be checked against the paper. Averages over other subsets than "
              f"the four are not comparable.")
    page.heading(2, "Per subset")
    page.add(table(
        ["subset", "error acc. %", "correct acc. %", "F1", "n (wrong / right)", "cut at context", "step AUROC",
         "best threshold (in-sample)"],
        [[name_of(s), pct(m["error_accuracy"]), pct(m["correct_accuracy"]), pct(m["f1"]),
          f"{m['n']} ({m['n_error']} / {m['n_correct']})", m["truncated"],
          "n/a" if m["step_auroc"] is None else f"{m['step_auroc']:.3f}",
          "n/a" if (b := m["best_threshold_in_sample"]) is None else f"{b['threshold']:.4g} (F1 {pct(b['f1'])})"]
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
        page.image(f"predictions-{s}.png", f"predictions against labels, {name_of(s)}")
    return page


def plot_predictions(labels: Sequence[int], predictions: Sequence[int], title: str) -> Figure:
    """A count matrix: label (rows) against prediction (columns), -1 first, indices from MAX_INDEX pooled."""
    top = max([min(v, MAX_INDEX) for v in (*labels, *predictions)] + [0])  # the largest index shown
    used = top + 2  # -1, 0, ..., top
    counts = np.zeros((used, used), dtype=int)
    np.add.at(counts, tuple(np.minimum(np.asarray(v, dtype=int), MAX_INDEX) + 1 for v in (labels, predictions)), 1)
    names = ["-1", *(str(k) for k in range(top)), f"{top}+" if top == MAX_INDEX else str(top)]
    fig = Figure(figsize=(1.2 + 0.45 * used, 1.0 + 0.42 * used))
    ax = fig.subplots()
    ax.imshow(counts, cmap="Greens", origin="upper")
    for i, j in zip(*np.nonzero(counts)):
        ax.text(j, i, str(counts[i, j]), ha="center", va="center", fontsize=8,
                color="white" if counts[i, j] > counts.max() / 2 else "black")
    ax.set_xticks(range(used), names, fontsize=8)
    ax.set_yticks(range(used), names, fontsize=8)
    ax.set(xlabel="predicted first wrong step", ylabel="labelled first wrong step")
    ax.set_title(title, fontsize=9)
    return fig


def write_prm_bench_report(bench_dir: str | Path, formats: Sequence[str] = ("md", "html"),
                           output_dir: str | Path | None = None) -> list[Path]:
    """Write the report of a finished ``bestofn prm-bench`` directory into it (or ``output_dir``); return the paths."""
    bench_dir = Path(bench_dir)
    out = Path(output_dir) if output_dir else bench_dir
    out.mkdir(parents=True, exist_ok=True)
    results = read_json(bench_dir / "results.json")
    predictions = read_jsonl(bench_dir / "predictions.jsonl")
    subsets = list(results["subsets"])
    ordered = [s for s in SUBSETS if s in subsets] + [s for s in subsets if s not in SUBSETS]
    figures = {}
    for s in ordered:
        rows = [p for p in predictions if p["subset"] == s]
        figures[f"predictions-{s}.png"] = plot_predictions(
            [p["label"] for p in rows], [p["prediction"] for p in rows],
            f"{name_of(s)}: {len(rows)} solutions, F1 {pct(results['subsets'][s]['f1'])}")
    return write_page(build_page(results, ordered), figures, out, formats)


# --- several PRMs side by side: `bestofn compare BENCH_DIR... --output-dir OUT` ---------------------------------------
def lead_sentence(subset: str, names: Sequence[str], preds: Sequence[dict[str, dict]], f1s: Sequence[float | None],
                  seed: int = 0) -> str | None:
    """The best PRM against the runner-up on one subset: the F1 difference on the solutions both scored, with its
    paired bootstrap interval (None with fewer than two F1s)."""
    ranked = sorted((k for k, f in enumerate(f1s) if f is not None), key=lambda k: -f1s[k])
    if len(ranked) < 2:
        return None
    a, b = ranked[:2]
    shared = [i for i in preds[a] if i in preds[b] and preds[a][i]["subset"] == subset]
    ci = f1_interval([preds[a][i]["label"] for i in shared], [preds[a][i]["prediction"] for i in shared],
                     [preds[b][i]["prediction"] for i in shared], seed=seed)
    if ci is None:
        return f"{name_of(subset)}: the shared solutions lack a kind of row; no paired interval."
    if len(shared) < MIN_SHARED:
        verdict = f"too few solutions to judge (fewer than {MIN_SHARED})"
    else:
        verdict = "beyond the noise" if ci[0] > 0 else "within the noise: either could be the better verifier here"
    lead = (f"{names[a]} and {names[b]} tie" if f1s[a] == f1s[b] else
            f"{names[a]} leads {names[b]} by {f1s[a] - f1s[b]:.1f} F1 points")
    return (f"{name_of(subset)}: {lead} (paired bootstrap 95% CI of the difference on the {len(shared)} solutions "
            f"both scored: {ci[0]:+.1f} to {ci[1]:+.1f}), {verdict}.")


def plot_f1(names: Sequence[str], subsets: Sequence[str], results: Sequence[dict[str, Any]]) -> Figure:
    """F1 per subset, one bar per PRM, with its 95% interval (hatched: part of the subset)."""
    fig = Figure(figsize=(1.5 + 1.4 * len(subsets), 3.6))
    ax = fig.subplots()
    width = 0.8 / len(names)
    for k, (name, res) in enumerate(zip(names, results)):
        ms = [res["subsets"].get(s) for s in subsets]
        x = np.arange(len(subsets)) + (k - (len(names) - 1) / 2) * width
        f1 = np.array([m["f1"] if m and m["f1"] is not None else np.nan for m in ms])
        low = [f - m["f1_ci"][0] if m and m.get("f1_ci") else 0 for f, m in zip(f1, ms)]
        high = [m["f1_ci"][1] - f if m and m.get("f1_ci") else 0 for f, m in zip(f1, ms)]
        for bar, m in zip(ax.bar(x, f1, width, yerr=[low, high], capsize=3, label=name), ms):
            if m and m.get("partial"):
                bar.set_hatch("//")
    ax.set_xticks(range(len(subsets)), [name_of(s) for s in subsets], fontsize=9)
    ax.set(ylabel="ProcessBench F1 (%)", ylim=(0, 100))
    ax.legend(fontsize=7, loc="upper right")
    ax.set_title("F1 with 95% bootstrap intervals (hatched: part of the subset)", fontsize=9)
    return fig


def build_comparison(dirs: Sequence[Path], results: Sequence[dict[str, Any]], preds: Sequence[dict[str, dict]],
                     names: Sequence[str], subsets: Sequence[str]) -> Page:
    order = sorted(range(len(results)), key=lambda k: -(results[k]["average_f1"] or -1))
    page = Page(f"ProcessBench: {len(results)} PRMs side by side")
    page.para("Which PRM finds the first wrong step best: ProcessBench's F1 per subset (with a 95% bootstrap interval "
              "over the subset's solutions), from " + ", ".join(f"{code(str(d))}" for d in dirs) + ".")
    page.heading(2, "F1 per subset")
    page.add(table(["PRM", "threshold", *map(name_of, subsets), "average"],
                   [[names[k], f"{results[k]['threshold']['value']:.4g} ({results[k]['threshold']['rule']})",
                     *(f1_cell(results[k]["subsets"][s]) if s in results[k]["subsets"] else "not scored"
                       for s in subsets), pct(results[k]["average_f1"])] for k in order]))
    page.add(bullets(list(dict.fromkeys(note for r in results if (note := partial_note(r))))
                     + ["Averages are comparable only over the same subsets, each scored whole."]))
    page.heading(2, "The lead on each subset")
    page.add(bullets([s for sub in subsets if (s := lead_sentence(
        sub, names, preds, [r["subsets"].get(sub, {}).get("f1") for r in results])) is not None]
        or ["Fewer than two PRMs have an F1 on any subset."]))
    page.heading(2, "Step AUROC per subset")
    page.add(table(["PRM", *map(name_of, subsets)],
                   [[names[k], *("n/a" if (m := results[k]["subsets"].get(s)) is None or m["step_auroc"] is None
                                 else f"{m['step_auroc']:.3f}" for s in subsets)] for k in order]))
    page.image("prm_bench_f1.png", "ProcessBench F1 per subset and PRM")
    return page


def write_prm_bench_comparison(bench_dirs: Sequence[str | Path], output_dir: str | Path,
                               formats: Sequence[str] = ("md", "html")) -> list[Path]:
    """Several ``bestofn prm-bench`` directories side by side: report.md/report.html and a PNG in ``output_dir``."""
    dirs = [Path(d) for d in bench_dirs]
    not_bench = [str(d) for d in dirs if not is_bench_dir(d)]
    if not_bench:
        raise BestOfNError(f"{', '.join(not_bench)}: not a prm-bench directory (results.json and predictions.jsonl of "
                           f"`bestofn prm-bench`); compare prm-bench directories with each other, runs with runs")
    results = [read_json(d / "results.json") for d in dirs]
    preds = [{p["id"]: p for p in read_jsonl(d / "predictions.jsonl")} for d in dirs]
    # each PRM's name: its id, with the directory's name where two share an id
    prms = [r["prm"] for r in results]
    names = [p if prms.count(p) == 1 else f"{p} ({d.name})" for p, d in zip(prms, dirs)]
    # every subset some PRM scored: the published four in the paper's order, then any other
    present = {s for r in results for s in r["subsets"]}
    subsets = [s for s in SUBSETS if s in present] + sorted(present - set(SUBSETS))
    Path(output_dir).mkdir(parents=True, exist_ok=True)
    with output_lock(output_dir):
        return write_page(build_comparison(dirs, results, preds, names, subsets),
                          {"prm_bench_f1.png": plot_f1(names, subsets, results)}, Path(output_dir), formats)
