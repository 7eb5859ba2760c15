"""``bestofn compare RUN_DIR... --output-dir DIR``: Best-of-N, beam search and DVTS side by side at equal compute.

Each run directory contributes points (method, N): a Best-of-N run one point per n <= N (its n-subsets, as
in the run report), a search run one point at its own N (a search pool cannot be subsampled into a smaller
search). Every point holds, per problem, the expected accuracy of the chosen selection rule on the final
pool and the tokens spent: generated tokens (for a search every step generated, pruned beams and lookahead
included, from ``tree.jsonl``) and the tokens the PRM read. Only problems present in every run are compared,
and every confidence interval is a paired bootstrap over those problems (the same resamples for every
point), so differences between methods are judged on the same problems.

The written analysis answers Snell et al.'s question on these runs: at each budget N and difficulty level,
which method is best, by how much over the runner-up, and whether that margin is beyond the noise, i.e. the
compute-optimal choice per level.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from matplotlib.figure import Figure
from matplotlib.ticker import NullFormatter

from ..errors import BestOfNError
from ..io import read_jsonl
from ..methods import BEST_OF_N, RUN_METHODS
from ..methods import RUN_METHOD_LABELS as METHOD_LABELS
from ..rundir import FILES
from . import analysis as A
from .plots import fitted_percent_axis, n_axis
from .render import Page, bullets, output_lock, table, write_page
from .run_report import pct, plural, points, with_ci

METHOD_COLORS = {"best_of_n": "#2ca02c", "beam_search": "#d62728", "dvts": "#1f77b4"}
METHOD_MARKERS = {"best_of_n": ("o", 4), "beam_search": ("s", 8), "dvts": ("^", 5)}  # sizes: coinciding points stay visible
DEFAULT_SELECTION = "weighted_bon"
REPORT_TITLE = "Best-of-N vs beam search vs DVTS"


# --------------------------------------------------------------------------------------------------------
# Numbers
# --------------------------------------------------------------------------------------------------------
@dataclass
class Point:
    """One method at one budget N: per-problem accuracy and cost, on the compared problems."""

    method: str
    n: int
    run_dir: Path
    accuracy: np.ndarray  # (problems,) expected accuracy of the selection rule
    tokens: np.ndarray  # (problems,) generated tokens
    prm_tokens: np.ndarray  # (problems,) tokens read by the PRM

    @property
    def label(self) -> str:
        return f"{METHOD_LABELS[self.method]} N={self.n}"


@dataclass
class Verdict:
    """The best method at one budget and level, and its margin over the runner-up."""

    level: int | None  # None: all levels
    n: int
    ranking: list[tuple[str, A.Estimate]]  # best first
    margin: A.Estimate | None  # best - runner-up, paired bootstrap; None with a single method

    @property
    def clear(self) -> bool:
        return self.margin is not None and self.margin.low > 0


@dataclass
class MethodComparison:
    """All numbers of a compare report."""

    runs: list[Path]
    selection: str
    unique_ids: list[str]
    levels: np.ndarray  # (problems,) level of each compared problem
    points: list[Point]
    accuracy: dict[tuple[str, int, int | None], A.Estimate]  # (method, n, level or None) -> estimate
    verdicts: list[Verdict]
    dropped: int  # problems not present in every run

    def methods(self) -> list[str]:
        return [m for m in RUN_METHODS if any(p.method == m for p in self.points)]

    def series(self, method: str) -> list[Point]:
        return sorted((p for p in self.points if p.method == method), key=lambda p: p.n)

    @property
    def level_list(self) -> list[int]:
        return sorted({int(x) for x in self.levels})


def compare_runs(run_dirs: Sequence[str | Path], selection: str = DEFAULT_SELECTION, subsets: int = A.DEFAULT_SUBSETS,
                 seed: int = A.DEFAULT_SEED, bootstrap: int = A.DEFAULT_BOOTSTRAP) -> MethodComparison:
    """Load the runs and compute every number of the comparison (deterministic for a given seed)."""
    if selection not in A.SELECTION_METHODS:
        raise BestOfNError(f"selection must be one of {', '.join(A.SELECTION_METHODS)}, got {selection!r}")
    if not run_dirs:
        raise BestOfNError("compare needs at least one run directory")
    runs = [A.load_run(d) for d in run_dirs]
    common = set.intersection(*({p.unique_id for p in r.problems} for r in runs))
    if not common:
        raise BestOfNError("the run directories share no problem; compare runs made on the same problems "
                           "(same dataset, levels, num_problems and seed)")
    order = [p.unique_id for p in runs[0].problems if p.unique_id in common]
    dropped = len({p.unique_id for r in runs for p in r.problems}) - len(order)
    pts: dict[tuple[str, int], Point] = {}
    for run in runs:
        for point in _run_points(run, order, selection, subsets, seed):
            pts.setdefault((point.method, point.n), point)  # the first run given wins a (method, N) it shares
    levels = np.array([next(p.level for p in runs[0].problems if p.unique_id == u) for u in order])
    rng = np.random.default_rng([seed, 2_000_003])
    points_ = sorted(pts.values(), key=lambda p: (RUN_METHODS.index(p.method), p.n))
    accuracy: dict[tuple[str, int, int | None], A.Estimate] = {}
    verdicts: list[Verdict] = []
    for level in [None, *sorted({int(x) for x in levels})]:
        mask = np.ones(len(order), bool) if level is None else levels == level
        values = np.stack([p.accuracy[mask] for p in points_])
        for p, est in zip(points_, A.estimates(values, rng, bootstrap)):
            accuracy[(p.method, p.n, level)] = est
        verdicts += _verdicts(points_, mask, level, accuracy, rng, bootstrap)
    return MethodComparison([r.run_dir for r in runs], selection, order, levels, points_, accuracy, verdicts, dropped)


def _run_points(run: A.RunData, order: list[str], selection: str, subsets: int, seed: int) -> list[Point]:
    """The (method, N) points of one run, restricted to the compared problems in ``order``."""
    method = str(run.config.get("method", BEST_OF_N))
    position = {p.unique_id: i for i, p in enumerate(run.problems)}
    keep = [position[u] for u in order]
    prm_tokens = _per_problem(read_jsonl(run.run_dir / "samples.jsonl"), "prm_tokens")
    if method == BEST_OF_N:
        curves = A.accuracy_curves(run, subsets, seed)
        full_prm = np.array([prm_tokens.get(u, 0.0) for u in order])
        return [Point(method, n, run.run_dir, curves.methods[selection][k][keep], curves.tokens[k][keep],
                      full_prm * n / run.n)  # the PRM reads each sampled solution once: cost grows with n
                for k, n in enumerate(curves.ns)]
    # A search run: the selection rule on the whole final pool, and the tree's full cost.
    every = np.arange(run.n)[None, :]
    accuracy = []
    for i in keep:
        p = run.problems[i]
        rewards = p.rewards(run.reward_aggregation)
        picked = (A.heaviest_group(p.labels, rewards if selection == "weighted_bon" else np.ones(run.n), every)
                  if selection != "naive_bon" else A.best_solution(p.labels, rewards, every))
        accuracy.append(float(A.is_hit(p.correct, picked)[0]))
    tree_file = run.run_dir / FILES["tree"]
    if tree_file.exists():
        nodes = read_jsonl(tree_file)
        generated = _per_problem([{**r, "spent": r["num_tokens"] + r["lookahead_tokens"]} for r in nodes], "spent")
        prm_tokens = _per_problem(nodes, "prm_tokens")
    else:  # a search run without its tree: only the pool's own tokens are known (a lower bound)
        generated = _per_problem(read_jsonl(run.run_dir / "samples.jsonl"), "num_tokens")
    return [Point(method, run.n, run.run_dir, np.array(accuracy), np.array([generated.get(u, 0.0) for u in order]),
                  np.array([prm_tokens.get(u, 0.0) for u in order]))]


def _per_problem(rows: list[dict], key: str) -> dict[str, float]:
    out: dict[str, float] = {}
    for r in rows:
        out[r["unique_id"]] = out.get(r["unique_id"], 0.0) + float(r.get(key, 0) or 0)
    return out


def _verdicts(pts: list[Point], mask: np.ndarray, level: int | None, accuracy: dict, rng: np.random.Generator,
              rounds: int) -> list[Verdict]:
    """At every N where at least two methods have a point: the ranking, and the winner's paired margin."""
    out = []
    for n in sorted({p.n for p in pts}):
        here = [p for p in pts if p.n == n]
        if len({p.method for p in here}) < 2:
            continue
        ranked = sorted(here, key=lambda p: -accuracy[(p.method, n, level)].value)
        diff = ranked[0].accuracy[mask] - ranked[1].accuracy[mask]
        margin = A.estimate(diff.mean(), A.bootstrap_means(diff[None, :], rng, rounds)[0])
        out.append(Verdict(level, n, [(p.method, accuracy[(p.method, n, level)]) for p in ranked], margin))
    return out


# --------------------------------------------------------------------------------------------------------
# Plots
# --------------------------------------------------------------------------------------------------------
def _draw(ax, cmp: MethodComparison, level: int | None, x: str) -> None:
    values: list[float] = []  # every interval end, to fit the y axis to the data
    for method in cmp.methods():
        series = cmp.series(method)
        mask = np.ones(len(cmp.unique_ids), bool) if level is None else cmp.levels == level
        xs = [p.n if x == "n" else float(p.tokens[mask].mean()) for p in series]
        ests = [cmp.accuracy[(method, p.n, level)] for p in series]
        color = METHOD_COLORS[method]
        marker, size = METHOD_MARKERS[method]
        ax.plot(xs, [e.value for e in ests], "-" + marker, color=color, label=METHOD_LABELS[method], ms=size,
                mfc="none" if method == "beam_search" else color)
        ax.fill_between(xs, [e.low for e in ests], [e.high for e in ests], color=color, alpha=0.12, lw=0)
        if len(series) == 1:  # a single point: show its interval as an error bar (a band needs two)
            e = ests[0]
            ax.errorbar(xs, [e.value], yerr=[[e.value - e.low], [e.high - e.value]], color=color, capsize=3)
        values += [v for e in ests for v in (e.low, e.high)]
    if x == "n":
        n_axis(ax, sorted({p.n for p in cmp.points}))
    else:
        ax.set_xscale("log")
        ax.xaxis.set_minor_formatter(NullFormatter())
        ax.set_xlabel("generated tokens per problem")
    fitted_percent_axis(ax, values)


def plot_overall(cmp: MethodComparison) -> Figure:
    """Accuracy vs N and vs generated tokens, one line per method, 95% bootstrap bands."""
    fig = Figure(figsize=(11, 4.5))
    left, right = fig.subplots(1, 2)
    _draw(left, cmp, None, "n")
    _draw(right, cmp, None, "tokens")
    left.set_ylabel(f"accuracy ({A.METHOD_LABELS[cmp.selection]})")
    left.set_title("accuracy vs N", fontsize=10)
    right.set_title("accuracy vs generated tokens", fontsize=10)
    left.legend(loc="lower right", fontsize=8)
    fig.suptitle(f"{len(cmp.unique_ids)} problems, all levels", fontsize=10)
    return fig


def plot_by_level(cmp: MethodComparison) -> Figure:
    """The same two views, one column per difficulty level."""
    levels = cmp.level_list
    fig = Figure(figsize=(4 * len(levels), 7))
    axes = np.array(fig.subplots(2, len(levels), squeeze=False))
    for j, level in enumerate(levels):
        count = int((cmp.levels == level).sum())
        _draw(axes[0, j], cmp, level, "n")
        _draw(axes[1, j], cmp, level, "tokens")
        axes[0, j].set_title(f"level {level} ({plural(count, 'problem')})", fontsize=10)
    axes[0, 0].set_ylabel("accuracy vs N")
    axes[1, 0].set_ylabel("accuracy vs tokens")
    axes[0, 0].legend(loc="lower right", fontsize=8)
    return fig


# --------------------------------------------------------------------------------------------------------
# Words
# --------------------------------------------------------------------------------------------------------
def verdict_sentence(v: Verdict) -> str:
    """One sentence: who wins at this budget, by how much, and whether it is beyond the noise."""
    best, est = v.ranking[0]
    runner, _ = v.ranking[1]
    where = "all levels" if v.level is None else f"level {v.level}"
    tied = [METHOD_LABELS[m] for m, e in v.ranking if e.value == est.value]
    if len(tied) > 1:
        return f"At N={v.n} ({where}), {' and '.join(tied)} tie at {with_ci(est)}: no method is better here."
    if v.clear:
        return (f"At N={v.n} ({where}), **{METHOD_LABELS[best]}** is best with {with_ci(est)}, ahead of "
                f"{METHOD_LABELS[runner]} by {points(v.margin)}.")
    return (f"At N={v.n} ({where}), {METHOD_LABELS[best]} scores highest ({with_ci(est)}) but its lead over "
            f"{METHOD_LABELS[runner]}, {points(v.margin)}, is within the noise: no method is clearly better here.")


def compute_optimal(cmp: MethodComparison) -> list[str]:
    """Per level, the compute-optimal method at each budget (the paper's main question), as bullets."""
    lines = []
    for level in [None, *cmp.level_list]:
        vs = [v for v in cmp.verdicts if v.level == level]
        if not vs:
            continue
        where = "All levels" if level is None else f"Level {level}"
        picks = ", ".join(f"N={v.n}: {_winner(v)}" for v in vs)
        lines.append(f"{where}: {picks}.")
    return lines


def _winner(v: Verdict) -> str:
    best = v.ranking[0][1].value
    tied = [METHOD_LABELS[m] for m, e in v.ranking if e.value == best]
    if len(tied) > 1:
        return f"tie ({', '.join(tied)})"
    return METHOD_LABELS[v.ranking[0][0]] + ("" if v.clear else " (not significant)")


def build_compare_report(cmp: MethodComparison) -> Page:
    doc = Page(REPORT_TITLE)
    doc.para(f"{len(cmp.unique_ids)} problems present in all {len(cmp.runs)} runs"
             + (f" ({cmp.dropped} others left out)" if cmp.dropped else "")
             + f"; answers picked by {A.METHOD_LABELS[cmp.selection]} on each method's final pool; intervals are "
             f"95% paired bootstrap intervals over problems.")
    doc.add(bullets([f"`{d}`" for d in cmp.runs]))
    doc.heading(2, "Accuracy and compute")
    header = ["method", "N", "generated tokens / problem", "PRM tokens / problem", "accuracy",
              *[f"level {lvl}" for lvl in cmp.level_list]]
    rows = [[METHOD_LABELS[p.method], p.n, f"{p.tokens.mean():.0f}", f"{p.prm_tokens.mean():.0f}",
             with_ci(cmp.accuracy[(p.method, p.n, None)]),
             *[pct(cmp.accuracy[(p.method, p.n, lvl)].value) for lvl in cmp.level_list]] for p in cmp.points]
    doc.add(table(header, rows))
    doc.image("compare_accuracy.png", "accuracy vs N and vs generated tokens")
    doc.heading(2, "Which method wins at which budget")
    sentences = [verdict_sentence(v) for v in cmp.verdicts]
    if sentences:
        doc.add(bullets(sentences))
    else:
        doc.para("No budget N has points from two methods: run the methods at a shared N to compare them.")
    doc.heading(2, "Compute-optimal choice per level")
    doc.para("The method with the highest accuracy at each budget, per difficulty level (Snell et al.: the best "
             "test-time strategy depends on difficulty). Generated tokens differ between methods at the same N "
             "(search methods also spend PRM calls at every step); the table and the right-hand plots show "
             "accuracy against the tokens actually spent.")
    doc.add(bullets(compute_optimal(cmp)))
    doc.image("compare_by_level.png", "accuracy per difficulty level")
    return doc


def write_compare_report(run_dirs: Sequence[str | Path], output_dir: str | Path, selection: str = DEFAULT_SELECTION,
                         subsets: int = A.DEFAULT_SUBSETS, seed: int = A.DEFAULT_SEED,
                         bootstrap: int = A.DEFAULT_BOOTSTRAP, formats: Sequence[str] = ("md", "html")) -> list[Path]:
    """Compare the runs and write ``report.md``/``report.html`` and the PNGs into ``output_dir`` (into a run
    directory, under its run lock: :func:`~bestofn.report.render.output_lock`)."""
    with output_lock(output_dir):
        cmp = compare_runs(run_dirs, selection, subsets, seed, bootstrap)
        figures = {"compare_accuracy.png": plot_overall(cmp), "compare_by_level.png": plot_by_level(cmp)}
        return write_page(build_compare_report(cmp), figures, Path(output_dir), formats)
