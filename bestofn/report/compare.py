"""``bestofn compare RUN_DIR... --output-dir DIR``: Best-of-N, beam search and DVTS runs side by side.

A Best-of-N run is a series of points (its n-subsets), a search run one point at its N. Only runs made alike
(:data:`COMPARED_SETTINGS`) are compared, on their shared problems: which method is best at each N, level and
token budget, with the compute-optimal choice cross-validated over two folds.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from matplotlib.figure import Figure

from ..config import compared_settings
from ..errors import BestOfNError
from ..io import read_jsonl
from ..methods import BEST_OF_N, RUN_METHODS
from ..methods import RUN_METHOD_LABELS as METHOD_LABELS
from ..provenance import NOT_STATED
from ..rundir import FILES
from ..selection import choose
from . import analysis as A
from .plots import fitted_percent_axis, n_axis, token_axis
from .render import Page, bullets, details, output_lock, table, write_page
from .run_report import pct, plural, points, tokens_text, with_ci

METHOD_COLORS = {"best_of_n": "#2ca02c", "beam_search": "#d62728", "dvts": "#1f77b4"}
METHOD_MARKERS = {"best_of_n": ("o", 4), "beam_search": ("s", 8), "dvts": ("^", 5)}  # sizes: coinciding points stay visible
LINE_STYLES = ("-", "--", ":", "-.")  # several runs of one method: one style each
DEFAULT_SELECTION = "weighted_bon"
# Settings two runs must share: every setting that changes a result (config.RESULT_SETTINGS) but what a comparison
# varies (the method, N, a search's shape) and how many problems were drawn (only the shared ones are compared).
COMPARED_SETTINGS = compared_settings()
COSTS = {"generated": "generated tokens", "total": "generated + PRM tokens"}  # the equal-compute views


def _mean(values: np.ndarray) -> float | None:
    """The mean, or None when it is unknown (no values, or a nan among them)."""
    value = float(values.mean()) if len(values) else float("nan")
    return None if np.isnan(value) else value


# --- Numbers ----------------------------------------------------------------------------------------------------------
@dataclass
class Point:
    """One series at one budget N: per-problem accuracy and cost, on the compared problems."""

    series: str  # the label of its run's series
    method: str
    n: int
    run_dir: Path
    accuracy: np.ndarray  # (problems,) expected accuracy of the selection rule
    tokens: np.ndarray  # (problems,) generated tokens (nan: unknown)
    prm_tokens: np.ndarray  # (problems,) tokens read by the PRM (nan: unknown)

    def cost(self, kind: str, mask: np.ndarray) -> float | None:
        """Mean tokens per problem of ``kind`` (:data:`COSTS`) over ``mask``; None when unknown."""
        return _mean(self.tokens[mask] + (self.prm_tokens[mask] if kind == "total" else 0))


@dataclass
class Verdict:
    """The best series at one budget and level, and its margin over the runner-up. The lead is clear as in the run
    report: by the exact McNemar test where both are 0/1 per problem, else by the margin's paired bootstrap interval
    with at least as many differing problems as McNemar would need."""

    level: int | None  # None: all levels
    n: int
    ranking: list[tuple[str, A.Estimate]]  # (series, accuracy), best first
    margin: A.Estimate | None  # best - runner-up, paired bootstrap; None with a single series
    differing: int = 0  # problems on which the best and the runner-up differ
    p_value: float | None = None  # exact McNemar, when both are 0/1 per problem

    @property
    def clear(self) -> bool:
        if self.margin is None:
            return False
        if self.p_value is not None:
            return self.p_value < 1 - A.CI_LEVEL
        return self.margin.low > 0 and self.differing >= A.min_informative_for_significance()


@dataclass
class OptimalPick:
    """The compute-optimal series at one level and N: chosen out of sample (two folds) and in sample."""

    level: int | None
    n: int
    candidates: list[str]  # series with a point at n
    cv: A.CrossValidated | None  # None: a fold of this level is empty
    in_sample: tuple[str, A.Estimate]  # the argmax on every problem (optimistic)


@dataclass
class BudgetVerdict:
    """At a token budget (mean per problem, at one level): each series' most expensive point within it."""

    level: int | None
    kind: str  # a key of COSTS
    budget: float
    within: list[tuple[Point, float, A.Estimate]]  # (point, its cost, accuracy), best first; one per series that fits

    @property
    def best(self) -> list[str]:
        """The series with the highest accuracy within the budget (several: a tie)."""
        return [p.series for p, _, e in self.within if e.value == self.within[0][2].value]


@dataclass
class MethodComparison:
    """All numbers of a compare report."""

    runs: list[Path]
    names: list[str]  # each run's name in the report
    run_methods: list[str]
    differences: dict[str, list[str]]  # setting -> its value in each run (only settings that differ)
    selection: str
    unique_ids: list[str]
    levels: np.ndarray  # (problems,) level of each compared problem
    folds: np.ndarray  # (problems,) 0/1: the two halves of each level
    points: list[Point]  # in report order: by method, then run, then N
    accuracy: dict[tuple[str, int, int | None], A.Estimate]  # (series, n, level or None) -> estimate
    verdicts: list[Verdict]
    choices: list[OptimalPick]
    budget_verdicts: list[BudgetVerdict]
    dropped: int  # problems not present in every run
    seed: int = A.DEFAULT_SEED

    @property
    def series_method(self) -> dict[str, str]:
        """Series label -> method, in report order."""
        return {p.series: p.method for p in self.points}

    def methods(self) -> list[str]:
        return [m for m in RUN_METHODS if m in self.series_method.values()]

    def series(self, label: str) -> list[Point]:
        return sorted((p for p in self.points if p.series == label), key=lambda p: p.n)

    def mask(self, level: int | None) -> np.ndarray:
        return _mask(self.levels, level)

    @property
    def level_list(self) -> list[int]:
        return sorted({int(x) for x in self.levels})


def _mask(levels: np.ndarray, level: int | None) -> np.ndarray:
    return np.ones(len(levels), bool) if level is None else levels == level


def compare_runs(run_dirs: Sequence[str | Path], selection: str = DEFAULT_SELECTION, subsets: int = A.DEFAULT_SUBSETS,
                 seed: int = A.DEFAULT_SEED, bootstrap: int = A.DEFAULT_BOOTSTRAP,
                 allow_mixed: bool = False) -> MethodComparison:
    """Load the runs and compute every number of the comparison (deterministic for a given seed); refuses runs
    whose :data:`COMPARED_SETTINGS` differ, unless ``allow_mixed``."""
    if selection not in A.SELECTION_METHODS:
        raise BestOfNError(f"selection must be one of {', '.join(A.SELECTION_METHODS)}, got {selection!r}")
    if not run_dirs:
        raise BestOfNError("compare needs at least one run directory")
    runs = [A.load_run_data(d) for d in run_dirs]
    # each run's name: its directory's name, or its path where two runs share a name
    base = [r.run_dir.name for r in runs]
    names = [b if base.count(b) == 1 else str(r.run_dir) for b, r in zip(base, runs)]
    differences = setting_differences(runs)
    if differences and not allow_mixed:
        described = "; ".join(f"{k} differs (" + "; ".join(f"{name}: {_short(v)}" for name, v in zip(names, values))
                              + ")" for k, values in differences.items())  # ``temperature differs (a: 0.8; b: 1.0)``
        raise BestOfNError(f"the runs are not comparable: {described}; compare runs "
                           "made with the same settings, or pass --allow-mixed to compare them with every difference "
                           "labelled in the report")
    common = set.intersection(*({p.unique_id for p in r.problems} for r in runs))
    if not common:
        raise BestOfNError("the run directories share no problem; compare runs made on the same problems "
                           "(same dataset, levels, num_problems and seed)")
    order = [p.unique_id for p in runs[0].problems if p.unique_id in common]
    dropped = len({p.unique_id for r in runs for p in r.problems}) - len(order)
    methods = [str(r.config.get("method", BEST_OF_N)) for r in runs]
    # a series: ``beam search``, or ``Best-of-N (run name)`` for a method that several runs share
    labels = [METHOD_LABELS[m] if methods.count(m) == 1 else f"{METHOD_LABELS[m]} ({name})"
              for m, name in zip(methods, names)]
    pts = [pt for run, lab in zip(runs, labels) for pt in _run_points(run, lab, order, selection, subsets, seed)]
    pts.sort(key=lambda p: (RUN_METHODS.index(p.method), labels.index(p.series), p.n))
    levels = np.array([next(p.level for p in runs[0].problems if p.unique_id == u) for u in order])
    folds = np.zeros(len(order), dtype=int)
    for level in set(levels.tolist()):
        where = np.flatnonzero(levels == level)
        folds[where] = A.two_fold_split([order[i] for i in where], seed)
    rng = np.random.default_rng([seed, 2_000_003])
    accuracy: dict[tuple[str, int, int | None], A.Estimate] = {}
    verdicts, choices, budget_verdicts = [], [], []
    for level in [None, *sorted({int(x) for x in levels})]:
        mask = _mask(levels, level)
        for p in pts:
            accuracy[(p.series, p.n, level)] = A.proportion(p.accuracy[mask])  # as the run report: Wilson
        verdicts += _verdicts(pts, mask, level, accuracy, rng, bootstrap)
        choices += _choices(pts, mask, folds, level, accuracy)
        budget_verdicts += [v for kind in COSTS for v in _budget_verdicts(pts, mask, level, kind, accuracy)]
    return MethodComparison([r.run_dir for r in runs], names, methods, differences, selection, order, levels, folds,
                            pts, accuracy, verdicts, choices, budget_verdicts, dropped, seed)


def setting_differences(runs: Sequence[A.RunData]) -> dict[str, list[str]]:
    """The compared settings whose values differ between the runs, with each run's value as text (an imported
    run's unstated ones are :data:`NOT_STATED`)."""
    settings = []
    for run in runs:
        imported = run.manifest.get("imported_from")
        stated = imported.get("stated", {}) if imported else run.config
        settings.append({k: NOT_STATED if stated.get(k) is None and imported else str(run.config.get(k))
                         for k in COMPARED_SETTINGS})
    return {k: [s[k] for s in settings] for k in COMPARED_SETTINGS if len({s[k] for s in settings}) > 1}


def _short(text: str, limit: int = 60) -> str:
    flat = " ".join(text.split())
    return flat if len(flat) <= limit else flat[: limit - 3] + "..."


def _run_points(run: A.RunData, series: str, order: list[str], selection: str, subsets: int, seed: int) -> list[Point]:
    """The (series, N) points of one run, restricted to the compared problems in ``order``."""
    method = str(run.config.get("method", BEST_OF_N))
    position = {p.unique_id: i for i, p in enumerate(run.problems)}
    keep = [position[u] for u in order]
    prm_tokens = _per_problem(read_jsonl(run.run_dir / "samples.jsonl"), "prm_tokens")
    per_problem = lambda counts: np.array([counts.get(u, np.nan) for u in order])  # noqa: E731
    adaptive = run.config.get("adaptive", "off") != "off"
    if method == BEST_OF_N and not adaptive:
        curves = A.accuracy_curves(run, subsets, seed)
        return [Point(series, method, n, run.run_dir, curves.methods[selection][k][keep], curves.tokens[k][keep],
                      per_problem(prm_tokens) * n / run.n)  # the PRM reads each sampled solution once
                for k, n in enumerate(curves.ns)]
    # A search or adaptive run: the selection rule on all a problem's solutions, and their full cost.
    accuracy = []
    for i in keep:
        p = run.problems[i]
        rewards, every = p.rewards(run.reward_aggregation), np.arange(p.size)[None, :]
        accuracy.append(float(A.is_hit(p.correct, choose(selection, p.labels, rewards, every))[0]))
    tree_file = run.run_dir / FILES["tree"]
    if tree_file.exists():
        nodes = read_jsonl(tree_file)
        generated = _per_problem([{**r, "spent": r["num_tokens"] + r["lookahead_tokens"]} for r in nodes], "spent")
        prm_tokens = _per_problem(nodes, "prm_tokens")
    elif adaptive:  # every sample drawn is in samples.jsonl: its tokens are what was spent
        generated = _per_problem(read_jsonl(run.run_dir / FILES["samples"]), "num_tokens")
    else:  # a search run without its tree: what it spent is not known
        generated = {}
    return [Point(series, method, run.n, run.run_dir, np.array(accuracy), per_problem(generated),
                  per_problem(prm_tokens))]


def _per_problem(rows: list[dict], key: str) -> dict[str, float]:
    """Sum of ``key`` per problem; nan for a problem where any row does not know it (never 0)."""
    out: dict[str, float] = {}
    for r in rows:
        value = r.get(key)
        out[r["unique_id"]] = out.get(r["unique_id"], 0.0) + (np.nan if value is None else float(value))
    return out


def _shared_ns(pts: list[Point]) -> Iterator[tuple[int, list[Point]]]:
    """Every N where at least two series have a point, with those points."""
    for n in sorted({p.n for p in pts}):
        if len(here := [p for p in pts if p.n == n]) >= 2:
            yield n, here


def _verdicts(pts: list[Point], mask: np.ndarray, level: int | None, accuracy: dict, rng: np.random.Generator,
              rounds: int) -> list[Verdict]:
    """At every shared N: the ranking, and the winner's paired margin."""
    out = []
    for n, here in _shared_ns(pts):
        ranked = sorted(here, key=lambda p: -accuracy[(p.series, n, level)].value)
        best, runner = ranked[0].accuracy[mask], ranked[1].accuracy[mask]
        diff = best - runner
        binary = bool(np.isin(best, (0.0, 1.0)).all() and np.isin(runner, (0.0, 1.0)).all())
        out.append(Verdict(level, n, [(p.series, accuracy[(p.series, n, level)]) for p in ranked],
                           A.bootstrap_mean(diff, rng, rounds), int((diff != 0).sum()),
                           A.mcnemar_p(int((diff > 0).sum()), int((diff < 0).sum())) if binary else None))
    return out


def _choices(pts: list[Point], mask: np.ndarray, folds: np.ndarray, level: int | None,
             accuracy: dict) -> list[OptimalPick]:
    """At every shared N: the pick cross-validated over the two folds."""
    out = []
    for n, here in _shared_ns(pts):
        best = max(here, key=lambda p: accuracy[(p.series, n, level)].value)  # ties: the first
        out.append(OptimalPick(level, n, [p.series for p in here],
                               A.cross_validate(np.stack([p.accuracy[mask] for p in here]), folds[mask]),
                               (best.series, accuracy[(best.series, n, level)])))
    return out


def _budget_verdicts(pts: list[Point], mask: np.ndarray, level: int | None, kind: str,
                     accuracy: dict) -> list[BudgetVerdict]:
    """At each point's cost (a budget), every series' most expensive point that costs no more, ranked; only budgets
    where at least two series have a point are kept, and a series whose costs are unknown is left out."""
    costed = [(p, c) for p in pts if (c := p.cost(kind, mask)) is not None]
    out = []
    for budget in sorted({c for _, c in costed}):
        within: dict[str, tuple[Point, float]] = {}
        for p, c in costed:
            if c <= budget and (p.series not in within or c > within[p.series][1]):
                within[p.series] = (p, c)
        if len(within) >= 2:
            ranked = sorted(within.values(), key=lambda pc: -accuracy[(pc[0].series, pc[0].n, level)].value)
            out.append(BudgetVerdict(level, kind, budget,
                                     [(p, c, accuracy[(p.series, p.n, level)]) for p, c in ranked]))
    return out


# --- Plots ------------------------------------------------------------------------------------------------------------
def _draw(ax, cmp: MethodComparison, level: int | None, x: str) -> None:
    values: list[float] = []  # every interval end, to fit the y axis to the data
    costs: list[float] = []  # every x on a cost axis, to label it
    mask = cmp.mask(level)
    for label, method in cmp.series_method.items():
        # a point whose cost is unknown has no place on a cost axis
        series = [p for p in cmp.series(label) if x == "n" or p.cost(x, mask) is not None]
        if not series:
            continue
        xs = [p.n if x == "n" else p.cost(x, mask) for p in series]
        ests = [cmp.accuracy[(label, p.n, level)] for p in series]
        marker, size = METHOD_MARKERS[method]
        same = [s for s, m in cmp.series_method.items() if m == method]
        color = METHOD_COLORS[method]
        ax.plot(xs, [e.value for e in ests], label=label, color=color, marker=marker, ms=size,
                ls=LINE_STYLES[same.index(label) % len(LINE_STYLES)], mfc="none" if method == "beam_search" else color)
        ax.fill_between(xs, [e.low for e in ests], [e.high for e in ests], color=color, alpha=0.12, lw=0)
        if len(series) == 1:  # a single point: show its interval as an error bar (a band needs two)
            e = ests[0]
            ax.errorbar(xs, [e.value], yerr=[[e.value - e.low], [e.high - e.value]], color=color, capsize=3)
        values += [v for e in ests for v in (e.low, e.high)]
        costs += xs
    if x == "n":
        n_axis(ax, sorted({p.n for p in cmp.points}))
    else:
        token_axis(ax, costs, f"{COSTS[x]} per problem")
    fitted_percent_axis(ax, values)


def plot_overall(cmp: MethodComparison) -> Figure:
    """Accuracy vs N, vs generated tokens and vs generated + PRM tokens, one line per series, 95% bands."""
    fig = Figure(figsize=(15, 4.5))
    axes = fig.subplots(1, 3)
    for ax, x, name in zip(axes, ("n", *COSTS), ("N", *COSTS.values())):
        _draw(ax, cmp, None, x)
        ax.set_title(f"accuracy vs {name}", fontsize=10)
    axes[0].set_ylabel(f"accuracy ({A.METHOD_LABELS[cmp.selection]})")
    axes[0].legend(loc="lower right", fontsize=8)
    fig.suptitle(f"{len(cmp.unique_ids)} problems, all levels", fontsize=10)
    return fig


def plot_by_level(cmp: MethodComparison) -> Figure:
    """The same three views, one column per difficulty level."""
    levels = cmp.level_list
    fig = Figure(figsize=(4 * len(levels), 10))
    axes = np.array(fig.subplots(3, len(levels), squeeze=False))
    for j, level in enumerate(levels):
        for i, x in enumerate(("n", *COSTS)):
            _draw(axes[i, j], cmp, level, x)
        axes[0, j].set_title(f"level {level} ({plural(int((cmp.levels == level).sum()), 'problem')})", fontsize=10)
    for i, name in enumerate(("N", *COSTS.values())):
        axes[i, 0].set_ylabel(f"accuracy vs {name}")
    axes[0, 0].legend(loc="lower right", fontsize=8)
    return fig


# --- Words ------------------------------------------------------------------------------------------------------------
def title(cmp: MethodComparison) -> str:
    """The methods present: ``Best-of-N vs beam search``; one method: ``DVTS: 2 runs side by side``."""
    methods = [METHOD_LABELS[m] for m in cmp.methods()]
    return f"{methods[0]}: {plural(len(cmp.runs), 'run')} side by side" if len(methods) == 1 else " vs ".join(methods)


def _where(level: int | None) -> str:
    return "all levels" if level is None else f"level {level}"


def verdict_sentence(v: Verdict) -> str:
    """One sentence: who wins at this budget, by how much, and whether it is beyond the noise."""
    (best, est), (runner, _) = v.ranking[:2]
    where = f"At N={v.n} ({_where(v.level)}), "
    tied = [s for s, e in v.ranking if e.value == est.value]
    if len(tied) > 1:
        return f"{where}{' and '.join(tied)} tie at {with_ci(est)}: no method is better here."
    test = (f"{plural(v.differing, 'problem')} solved by only one of them, exact McNemar p = {v.p_value:.3g}"
            if v.p_value is not None else f"{plural(v.differing, 'problem')} on which they differ")
    if v.clear:
        return f"{where}**{best}** is best with {with_ci(est)}, ahead of {runner} by {points(v.margin)}; {test}."
    return (f"{where}{best} scores highest ({with_ci(est)}) but its lead over {runner}, {points(v.margin)}, is within "
            f"the noise ({test}): no method is clearly better here.")


def choice_sentence(c: OptimalPick) -> str:
    """The cross-validated pick at one level and N, then the in-sample pick, named as such."""
    where = f"{'All levels' if c.level is None else f'Level {c.level}'}, N={c.n}"
    best, est = c.in_sample
    in_sample = f"in-sample best (chosen and graded on the same problems, so optimistic): {best}, {with_ci(est)}"
    if c.cv is None:
        return f"{where}: too few problems to split in two; {in_sample}."
    first, second = (c.candidates[k] for k in c.cv.picks)
    picked = (f"**{first}** on both halves" if first == second
              else f"{first} on half 1, {second} on half 2 (the choice depends on the problems drawn)")
    return f"{where}: chosen {picked}; held-out accuracy of the choice {with_ci(c.cv.estimate)}; {in_sample}."


def build_compare_report(cmp: MethodComparison) -> Page:
    doc = Page(title(cmp))
    doc.para(f"{len(cmp.unique_ids)} problems present in all {len(cmp.runs)} runs"
             + (f" ({cmp.dropped} others left out)" if cmp.dropped else "")
             + f"; answers picked by {A.METHOD_LABELS[cmp.selection]} on each run's final pool; accuracies with 95% "
             "Wilson intervals over problems (as in `bestofn report`), differences with paired bootstrap intervals.")
    doc.add(bullets([f"{name}: {METHOD_LABELS[m]}, `{d}`" for name, m, d in zip(cmp.names, cmp.run_methods, cmp.runs)]))
    if cmp.differences:
        doc.heading(2, "The runs differ (--allow-mixed)")
        doc.para("These runs were not made alike, so a difference in accuracy may come from these settings rather than "
                 "from the method:")
        doc.add(table(["setting", *cmp.names], [[k, *(_short(v) for v in vs)] for k, vs in cmp.differences.items()]))
    doc.heading(2, "Accuracy and compute")
    doc.add(table(["series", "N", "generated tokens / problem", "PRM tokens / problem", "accuracy",
                   *[f"level {lvl}" for lvl in cmp.level_list]],
                  [[p.series, p.n, tokens_text(p.cost("generated", cmp.mask(None))), tokens_text(_mean(p.prm_tokens)),
                    with_ci(cmp.accuracy[(p.series, p.n, None)]),
                    *[pct(cmp.accuracy[(p.series, p.n, lvl)].value) for lvl in cmp.level_list]] for p in cmp.points]))
    doc.image("compare_accuracy.png", "accuracy vs N, vs generated tokens and vs generated + PRM tokens")
    doc.heading(2, "Which method wins at equal N")
    if cmp.verdicts:
        doc.add(bullets([verdict_sentence(v) for v in cmp.verdicts]))
    else:
        doc.para("No budget N has points from two runs: run the methods at a shared N to compare them.")
    doc.heading(2, "Compute-optimal choice per level")
    doc.para("Snell et al. choose the test-time strategy per difficulty level. Choosing the best method and reporting "
             "its accuracy on the same problems overstates it, so here each level's problems are split in two halves "
             f"(by the sha256 rank of their ids, seed {cmp.seed}): the method is chosen on one half and graded on the "
             "other, both ways (two-fold cross-validation); the held-out accuracy is that of the choice. The "
             "in-sample best is shown beside it, only as such.")
    doc.add(bullets([choice_sentence(c) for c in cmp.choices]) if cmp.choices
            else "No budget N has points from two runs.")
    doc.heading(2, "Which method wins at equal compute")
    doc.para("Methods spend different tokens at the same N (a search also generates pruned beams and lookahead, and "
             "its PRM reads every step). Here each budget is the cost of one point; every series is represented by "
             "its most expensive point within that budget (per problem, on that level's problems).")
    for level in [None, *cmp.level_list]:
        for kind in COSTS:
            rows = [[tokens_text(v.budget), v.best[0] if len(v.best) == 1 else f"tie ({', '.join(v.best)})",
                     "; ".join(f"{p.series} N={p.n} ({tokens_text(c)} tokens): {with_ci(e)}" for p, c, e in v.within)]
                    for v in cmp.budget_verdicts if v.level == level and v.kind == kind]
            header = [f"budget: {COSTS[kind]} / problem", "highest accuracy within it", "every series within it"]
            if rows:
                doc.add(details(f"{_where(level)}, {COSTS[kind]}", table(header, rows)))
    doc.image("compare_by_level.png", "accuracy per difficulty level")
    return doc


def write_compare_report(run_dirs: Sequence[str | Path], output_dir: str | Path, selection: str = DEFAULT_SELECTION,
                         subsets: int = A.DEFAULT_SUBSETS, seed: int = A.DEFAULT_SEED,
                         bootstrap: int = A.DEFAULT_BOOTSTRAP, formats: Sequence[str] = ("md", "html"),
                         allow_mixed: bool = False) -> list[Path]:
    """Compare the runs and write ``report.md``/``report.html`` and the PNGs into ``output_dir`` (into a run
    directory, under its run lock: :func:`~bestofn.report.render.output_lock`)."""
    with output_lock(output_dir):
        cmp = compare_runs(run_dirs, selection, subsets, seed, bootstrap, allow_mixed)
        figures = {"compare_accuracy.png": plot_overall(cmp), "compare_by_level.png": plot_by_level(cmp)}
        return write_page(build_compare_report(cmp), figures, Path(output_dir), formats)
