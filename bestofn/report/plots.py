"""The report's figures: matplotlib ``Figure`` objects (object API, no pyplot) built from analysis numbers.

So that differences show: accuracy axes fitted to the data, greedy and pass@N drawn as references, coinciding
curves drawn once and labelled "A = B", intervals as light bands.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np
from matplotlib import colormaps
from matplotlib.colors import ListedColormap, TwoSlopeNorm
from matplotlib.figure import Figure
from matplotlib.ticker import FixedLocator, Formatter, LogLocator, MaxNLocator, NullFormatter, NullLocator

from ..selection import AGGREGATIONS
from . import analysis as A

COLORS = {
    "greedy": "#555555",
    "majority": "#1f77b4",
    "naive_bon": "#ff7f0e",
    "weighted_bon": "#2ca02c",
    "pass_at_n": "#9467bd",
}
AGG_COLORS = {"last": "#2ca02c", "min": "#d62728", "prod": "#8c564b", "mean": "#17becf"}
RIGHT, WRONG = "#2ca02c", "#d62728"
BAND_ALPHA = 0.10
REWARD_CMAP = colormaps["RdYlGn"]  # step viewer and reward plots: red (low) to green (high)
MAX_PROBLEM_ROWS = 40  # per-problem plots show at most this many rows (the report's tables list the rest)
CURVES = ("pass_at_n", *A.SELECTION_METHODS)  # the methods drawn as curves (greedy: a reference)


# --- Axes ------------------------------------------------------------------------------------------------------
def n_axis(ax, ns: Sequence[int]) -> None:
    """Log-2 x axis with one tick per n."""
    ax.set_xscale("log", base=2)
    ax.set_xticks(list(ns), [str(n) for n in ns])
    ax.minorticks_off()
    ax.set_xlabel("N (solutions sampled per problem)")


def fitted_percent_axis(ax, values: Sequence[float]) -> None:
    """A percent y axis fitted to ``values`` (with a margin), never beyond 0-100%."""
    values = [v for v in values if v is not None and np.isfinite(v)] or [0.0, 1.0]
    low, high = min(values), max(values)
    margin = max(0.03, 0.08 * (high - low))
    ax.set_ylim(max(-0.01, low - margin), min(1.01, high + margin))
    ax.yaxis.set_major_formatter(SpacingFormatter(scale=100, suffix="%"))
    ax.grid(alpha=0.3)


def decimals_for(values: Sequence[float], most: int = 6) -> int:
    """The fewest decimals (up to ``most``) that write every value exactly: ticks 92.5 and 95 need one."""
    return next((d for d in range(most + 1) if all(abs(round(v, d) - v) < 1e-9 * max(1.0, abs(v)) for v in values)),
                most)


class SpacingFormatter(Formatter):
    """Tick labels with the precision their spacing needs (every tick to the same decimals), so no label is
    rounded onto a neighbouring value: ticks every 2.5% read 92.5%, 95.0%, never 92%, 95%."""

    def __init__(self, scale: float = 1.0, suffix: str = "", thousands: bool = False):
        self.scale, self.suffix, self.thousands = scale, suffix, thousands

    def __call__(self, x: float, pos: int | None = None) -> str:
        decimals = decimals_for([loc * self.scale for loc in self.locs] or [x * self.scale])
        return f"{x * self.scale:{',' if self.thousands else ''}.{decimals}f}{self.suffix}"


def token_axis(ax, values: Sequence[float], label: str = "generated tokens per problem") -> None:
    """A log token axis with a few round, labelled ticks inside the data's range (linear steps for a narrow range,
    1-2-5 per decade for a wide one)."""
    values = [v for v in values if v is not None and np.isfinite(v) and v > 0]
    ax.set_xlabel(label)
    if not values:
        return
    ax.set_xscale("log")
    low, high = min(values), max(values)
    locator = (LogLocator(base=10, subs=(1.0, 2.0, 5.0)) if high / low > 10
               else MaxNLocator(nbins=4, steps=[1, 2, 2.5, 5, 10]))
    ticks = sorted({t for t in locator.tick_values(low, high) if low / 1.15 <= t <= high * 1.15})
    ax.set_xlim(min(low, *ticks) / 1.15, max(high, *ticks) * 1.15)
    ax.xaxis.set_major_locator(FixedLocator(ticks))
    ax.xaxis.set_major_formatter(SpacingFormatter(thousands=True))
    ax.xaxis.set_minor_formatter(NullFormatter())


def _flat(*estimate_lists: Sequence[A.Estimate]) -> list[float]:
    return [x for ests in estimate_lists for e in ests for x in (e.value, e.low, e.high)]


def _errorbar(ax, xs, ests: Sequence[A.Estimate], **style) -> list[float]:  # noqa: ANN001
    """Points with their 95% intervals as error bars; returns every value drawn (for the fitted axis)."""
    err = np.array([[e.value - e.low for e in ests], [e.high - e.value for e in ests]])
    ax.errorbar(xs, [e.value for e in ests], yerr=err, **style)
    return _flat(ests)


# --- Curves that coincide are drawn once ------------------------------------------------------------------------
def merge_identical(series: Mapping[str, Sequence[float]], tol: float = 1e-9) -> list[list[str]]:
    """Group the keys of ``series`` whose values are equal at every point (in order of first appearance)."""
    groups: dict[str, list[str]] = {}  # first key -> every key equal to it
    for key, values in series.items():
        first = next((g for g in groups if np.allclose(series[g], values, atol=tol, rtol=0)), key)
        groups.setdefault(first, []).append(key)
    return list(groups.values())


def accuracy_lines(ax, xs: Sequence[float], curves: Mapping[str, Sequence[A.Estimate]], labels: Mapping[str, str],
                   colors: Mapping[str, str], styles: Mapping[str, str] | None = None, bands: bool = True) -> None:
    """One line (and light band) per curve; curves with equal values share one line labelled "a = b". A curve that
    meets an earlier one at some points only is dashed, ringed at those points, so the first still shows."""
    styles = styles or {}
    drawn: list[np.ndarray] = []
    for group in merge_identical({k: [e.value for e in v] for k, v in curves.items()}):
        first = group[0]
        ests = curves[first]
        ys = np.array([e.value for e in ests], dtype=float)
        label = " = ".join(labels[k] for k in group)
        meets = np.any([np.isclose(ys, other, atol=1e-9, rtol=0) for other in drawn], axis=0) if drawn else None
        style = styles.get(first, "-o")
        if meets is not None and meets.any():
            style = style.replace("-", "--", 1) if style.startswith("-") else style
            ax.plot(np.asarray(xs)[meets], ys[meets], "o", mfc="none", mec=colors[first], ms=8, mew=1.6, zorder=4)
        drawn.append(ys)
        ax.plot(xs, ys, style, color=colors[first], label=label, ms=4, lw=1.8 if len(group) == 1 else 2.6)
        if len(group) > 1:  # the other colours as markers on the shared line, so every legend colour is visible
            for k, other in enumerate(group[1:], 1):
                ax.plot(xs, [e.value for e in ests], "o", color=colors[other], ms=4 - k, zorder=3)
        if bands:
            ax.fill_between(xs, [e.low for e in ests], [e.high for e in ests], color=colors[first], alpha=BAND_ALPHA, lw=0)


def _greedy_reference(ax, greedy: A.Estimate | None) -> None:
    if greedy is not None:
        ax.axhline(greedy.value, color=COLORS["greedy"], ls="--", lw=1.2, label=f"greedy ({100 * greedy.value:.1f}%)")
        ax.axhspan(greedy.low, greedy.high, color=COLORS["greedy"], alpha=0.06, lw=0)


# --- Run report --------------------------------------------------------------------------------------------------
def plot_accuracy_vs_n(an: A.Analysis) -> Figure:
    """Majority, naive and weighted Best-of-N vs n; greedy and pass@n as references; 95% Wilson bands."""
    fig = Figure(figsize=(8, 5))
    ax = fig.subplots()
    greedy = an.at_full_n("greedy") if an.run.has_greedy else None
    _greedy_reference(ax, greedy)
    accuracy_lines(ax, an.ns, {m: an.accuracy[m] for m in CURVES}, A.METHOD_LABELS, COLORS, {"pass_at_n": ":s"},
                   bands=False)
    # One band only (the method the report is about): three overlapping bands blur into one another.
    weighted = an.accuracy["weighted_bon"]
    ax.fill_between(an.ns, [e.low for e in weighted], [e.high for e in weighted], color=COLORS["weighted_bon"],
                    alpha=BAND_ALPHA, lw=0, label="95% Wilson interval (weighted)")
    n_axis(ax, an.ns)
    fitted_percent_axis(ax, [e.value for m in an.methods for e in an.accuracy[m]] + [e.low for e in weighted]
                        + [e.high for e in weighted])
    ax.set_ylabel("accuracy")
    ax.set_title(f"Accuracy vs N ({len(an.run.problems)} problems; intervals of every method in the table)", fontsize=10)
    ax.legend(fontsize=8, loc="best")
    return fig


def plot_selection_grid(an: A.Analysis) -> Figure:
    """Problems with more than one answer group (rows) x methods: solved (green) or not (red) at full N (unanimous
    problems are left out: every rule gives the same answer there)."""
    by_id = {o.unique_id: o for o in an.outcomes}
    outs = sorted((by_id[u] for u in an.matters.contested), key=lambda o: (not o.missed, o.level, -o.num_correct))
    shown = outs[:MAX_PROBLEM_ROWS * 2]
    methods = an.methods
    grid = np.array([[o.solved(m) for m in methods] for o in shown], dtype=float).reshape(len(shown), len(methods))
    fig = Figure(figsize=(7, 1.6 + 0.24 * max(len(shown), 3)))
    ax = fig.subplots()
    ax.imshow(grid, cmap=ListedColormap(["#f4a3a3", "#8fd18f"]), vmin=0, vmax=1, aspect="auto", interpolation="nearest")
    ax.set_xticks(range(len(methods)), [A.METHOD_LABELS[m].replace(" ", "\n", 1) for m in methods], fontsize=8)
    ax.xaxis.tick_top()
    ax.set_yticks(range(len(shown)), [f"{short_id(o.unique_id)}  {f'L{o.level}  ' if o.level else ''}{o.num_correct}/{an.run.n} right, "
                                      f"{len(o.groups)} groups" for o in shown], fontsize=7)
    ax.set_xticks(np.arange(len(methods) + 1) - 0.5, minor=True)
    ax.set_yticks(np.arange(len(shown) + 1) - 0.5, minor=True)
    ax.grid(which="minor", color="white", lw=1)
    ax.tick_params(which="minor", length=0)
    more = f" (first {len(shown)} of {len(outs)})" if len(shown) < len(outs) else ""
    ax.set_title(f"Where selection matters: {len(outs)} of {len(an.outcomes)} problems have more than one answer "
                 f"group{more}\nsolved at N={an.run.n}: green; not: red", fontsize=9, pad=34)
    return fig


def plot_reward_distributions(an: A.Analysis) -> Figure:
    """Histograms of solution rewards, right vs wrong; one panel per aggregation (one panel for one-score rewards)."""
    hows = [an.run.reward_aggregation] if an.run.one_score else list(AGGREGATIONS)
    fig = Figure(figsize=(10, 7) if len(hows) > 1 else (6.5, 4.2))
    axes = np.atleast_1d(fig.subplots(2, 2) if len(hows) > 1 else fig.subplots()).ravel()
    for ax, how in zip(axes, hows):
        s = an.prm[how]
        both = np.concatenate([s.correct_rewards, s.incorrect_rewards])
        bins = np.histogram_bin_edges(both if len(both) else [0.0, 1.0], bins=20)
        for values, color, name in ((s.incorrect_rewards, WRONG, "wrong"), (s.correct_rewards, RIGHT, "right")):
            if len(values):
                ax.hist(values, bins=bins, color=color, alpha=0.45, label=f"{name} ({len(values)})", density=True)
        auc = "n/a" if s.auroc is None else f"{s.auroc:.3f}"
        within = "n/a" if s.within_auroc is None else f"{s.within_auroc:.3f}"
        name = "reward (one score per solution)" if an.run.one_score else f"reward ({how} of step rewards)"
        ax.set_title(f"{how if len(hows) > 1 else name}: AUROC {auc}, within-problem {within}", fontsize=9)
        ax.set_xlabel(name, fontsize=8)
        ax.set_ylabel("density", fontsize=8)
        ax.legend(fontsize=7)
    fig.suptitle("Rewards of right vs wrong sampled solutions", fontsize=11)
    fig.tight_layout()
    return fig


def plot_calibration(cal: A.Calibration, title: str = "Reliability of the solution reward") -> Figure:
    """Reliability diagram: accuracy per reward bin (Wilson bars) against the diagonal; counts below."""
    fig = Figure(figsize=(6.5, 6.2))
    top, bottom = fig.subplots(2, 1, sharex=True, height_ratios=[3, 1])
    centres = (cal.edges[:-1] + cal.edges[1:]) / 2
    width = cal.edges[1] - cal.edges[0]
    filled = cal.counts > 0
    top.plot([0, 1], [0, 1], ":", color="#888", label="perfect calibration")
    top.bar(centres[filled], cal.accuracy[filled], width=width * 0.9, color="#9ecae1", edgecolor="#3182bd",
            label="share right in bin")
    err = np.clip(np.array([[a - iv[0], iv[1] - a] for a, iv, f in zip(cal.accuracy, cal.intervals, filled) if f]).T, 0, None)
    if err.size:
        top.errorbar(cal.mean_reward[filled], cal.accuracy[filled], yerr=err, fmt="o", color="#08519c", ms=4,
                     capsize=2, lw=0.8, label="at the bin's mean reward (95% Wilson)")
    top.set(xlim=(0, 1), ylim=(0, 1.02), ylabel="share of solutions right")
    top.yaxis.set_major_formatter(SpacingFormatter(scale=100, suffix="%"))
    top.grid(alpha=0.3)
    top.legend(fontsize=7, loc="upper left")
    top.set_title(f"{title}: ECE {cal.ece:.3f} over {cal.total} solutions", fontsize=10)
    bottom.bar(centres, cal.counts, width=width * 0.9, color="#bbb")
    for x, c in zip(centres, cal.counts):
        if c:
            bottom.annotate(str(c), (x, c), textcoords="offset points", xytext=(0, 2), ha="center", fontsize=7)
    bottom.set(ylim=(0, max(cal.counts.max(), 1) * 1.3), xlabel="solution reward (bin)")
    bottom.set_ylabel("solutions", fontsize=8)
    fig.tight_layout()
    return fig


def plot_rewards_by_problem(an: A.Analysis) -> Figure:
    """Per problem with right and wrong samples: their rewards side by side, weighted Best-of-N's choice ringed;
    problems where the right answer was missed first."""
    how = an.run.reward_aggregation
    by_id = {o.unique_id: o for o in an.outcomes}
    mixed = [p for p in an.run.problems if 0 < p.correct.sum() < len(p.correct)]
    mixed.sort(key=lambda p: (not by_id[p.unique_id].missed, -len(by_id[p.unique_id].groups), p.unique_id))
    shown = mixed[:MAX_PROBLEM_ROWS]
    fig = Figure(figsize=(8, 1.4 + 0.28 * max(len(shown), 3)))
    ax = fig.subplots()
    for row, p in enumerate(shown):
        rewards = p.rewards(how)
        y = len(shown) - 1 - row
        for ok, color, marker in ((True, RIGHT, "o"), (False, WRONG, "x")):
            sel = p.scored & (p.correct == ok)
            ax.scatter(rewards[sel], np.full(sel.sum(), y + (0.12 if ok else -0.12)), color=color, marker=marker, s=18,
                       label=("right" if ok else "wrong") + " solution" if row == 0 else None, alpha=0.8)
        pick = by_id[p.unique_id].weighted_bon.sample_index
        if pick is not None:
            ax.scatter([rewards[pick]], [y + (0.12 if p.correct[pick] else -0.12)], s=90, facecolors="none",
                       edgecolors="black", lw=1, label="shown for the weighted pick" if row == 0 else None)
    ax.set_yticks(range(len(shown)), [f"{short_id(p.unique_id)}{' (missed)' if by_id[p.unique_id].missed else ''}"
                                      for p in reversed(shown)], fontsize=7)
    ax.set(ylim=(-0.7, len(shown) - 0.3), xlabel="solution reward" if an.run.one_score else f"solution reward ({how})")
    ax.grid(axis="x", alpha=0.3)
    count = f"first {len(shown)} of {len(mixed)} problems" if len(shown) < len(mixed) else f"{len(mixed)} problems"
    ax.set_title(f"Rewards within each problem with right and wrong samples ({count})", fontsize=10, pad=26)
    if shown:
        ax.legend(fontsize=7, loc="lower center", bbox_to_anchor=(0.5, 1.0), ncols=3, frameon=False)
    return fig


def plot_step_rewards(steps: Mapping[bool, A.StepCurve]) -> Figure:
    """Mean step reward by step index for right and wrong solutions (bands: interquartile range)."""
    fig = Figure(figsize=(8, 4.5))
    ax = fig.subplots()
    for ok, color, name in ((True, RIGHT, "right"), (False, WRONG, "wrong")):
        c = steps[ok]
        if not len(c.steps):
            continue
        ax.plot(c.steps, c.mean, "-o", ms=3, color=color, label=f"{name} solutions ({c.count[0]} at step 1)")
        ax.fill_between(c.steps, c.q25, c.q75, color=color, alpha=0.12, lw=0)
    ax.set(xlabel="step (1 = first)", ylabel="step reward", ylim=(-0.02, 1.02))
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax.grid(alpha=0.3)
    if ax.get_legend_handles_labels()[0]:  # no step reached by 3+ solutions: nothing to name
        ax.legend(fontsize=8, loc="lower left")
    ax.set_title("Step rewards along the solution (mean; band: 25-75% of solutions; steps reached by 3+ solutions)",
                 fontsize=9)
    return fig


def plot_aggregations(an: A.Analysis) -> Figure:
    """Weighted and naive Best-of-N vs n under each reward aggregation (majority and greedy for reference)."""
    fig = Figure(figsize=(11, 4.5))
    axes = fig.subplots(1, 2, sharey=True)
    values = _flat(an.accuracy["majority"], *(an.aggregation[h][m] for h in AGGREGATIONS for m in ("naive_bon", "weighted_bon")))
    greedy = an.at_full_n("greedy") if an.run.has_greedy else None
    for ax, method in zip(axes, ("weighted_bon", "naive_bon")):
        if greedy is not None:
            ax.axhline(greedy.value, color=COLORS["greedy"], ls="--", lw=1.2, label="greedy")
        ax.plot(an.ns, [e.value for e in an.accuracy["majority"]], ":", color=COLORS["majority"], label="majority vote")
        accuracy_lines(ax, an.ns, {h: an.aggregation[h][method] for h in AGGREGATIONS}, {h: h for h in AGGREGATIONS},
                       AGG_COLORS, bands=False)
        n_axis(ax, an.ns)
        fitted_percent_axis(ax, values + ([greedy.value] if greedy else []))
        ax.set_title(f"{A.METHOD_LABELS[method]}, by reward aggregation", fontsize=10)
        ax.legend(fontsize=8, loc="best")
    axes[0].set_ylabel("accuracy")
    fig.tight_layout()
    return fig


def plot_by_level(an: A.Analysis) -> Figure:
    """Accuracy per difficulty level at full N: one dot per method with its 95% Wilson interval."""
    fig = Figure(figsize=(8, 4.5))
    ax = fig.subplots()
    levels = an.run.levels
    methods = an.methods
    width = 0.7 / len(methods)
    values = []
    for k, m in enumerate(methods):
        values += _errorbar(ax, np.arange(len(levels)) + (k - (len(methods) - 1) / 2) * width,
                            [an.by_level[lvl][m][-1] for lvl in levels], fmt="s" if m == "pass_at_n" else "o",
                            color=COLORS[m], label=A.METHOD_LABELS[m], capsize=2, ms=5, lw=1)
    counts = {lvl: sum(o.level == lvl for o in an.outcomes) for lvl in levels}
    ax.set_xticks(range(len(levels)), [f"{level_name(lvl)}\n({counts[lvl]} problem{'' if counts[lvl] == 1 else 's'})"
                                        for lvl in levels])
    fitted_percent_axis(ax, values)
    ax.set_ylabel(f"accuracy at N={an.run.n}")
    ax.legend(fontsize=7, ncols=len(methods), loc="upper center", bbox_to_anchor=(0.5, -0.16))
    ax.set_title("Accuracy by difficulty level (95% Wilson intervals over the level's problems)", fontsize=10)
    return fig


def plot_compute(an: A.Analysis) -> Figure:
    """Accuracy vs generated tokens per problem (all problems, then each level); N on the top axis."""
    assert an.mean_tokens is not None, "token counts are unknown: the report leaves this plot out"
    panels = [("all levels", an.accuracy, an.mean_tokens, an.greedy_mean_tokens)]
    if len(an.run.levels) > 1:
        panels += [(level_name(lvl), an.by_level[lvl], an.tokens_by_level[lvl],
                    an.greedy_tokens_by_level[lvl] if an.greedy_tokens_by_level else None) for lvl in an.run.levels]
    cols = 2 if len(panels) in (2, 4) else min(3, len(panels))
    rows = -(-len(panels) // cols)
    fig = Figure(figsize=(4.6 * cols, 4.2 * rows))
    axes = np.atleast_1d(fig.subplots(rows, cols, squeeze=False).ravel())
    for ax in axes[len(panels):]:
        ax.set_visible(False)
    for ax, (title, acc, tokens, greedy_tokens) in zip(axes, panels):
        accuracy_lines(ax, tokens, {m: acc[m] for m in CURVES}, A.METHOD_LABELS, COLORS, {"pass_at_n": ":s"},
                       bands=False)
        values = [e.value for m in CURVES for e in acc[m]]
        if greedy_tokens is not None and "greedy" in acc:
            ax.plot([greedy_tokens], [acc["greedy"][-1].value], "*", ms=12, color=COLORS["greedy"], label="greedy",
                    clip_on=False)
            values.append(acc["greedy"][-1].value)
        token_axis(ax, [*tokens, *([greedy_tokens] if greedy_tokens else [])])
        if min(tokens) > 0:
            top = ax.secondary_xaxis("top")  # N on its own axis: labels never sit on the markers
            top.set_xticks(tokens, [f"N={n}" for n in an.ns], fontsize=7)
            top.xaxis.set_minor_locator(NullLocator())
        fitted_percent_axis(ax, values)
        ax.set_title(title, fontsize=10)
    axes[0].set_ylabel("accuracy")
    axes[0].legend(fontsize=7, loc="best")
    fig.suptitle("Accuracy vs generation cost (PRM scoring not counted)", fontsize=11)
    fig.tight_layout()
    return fig


# --- Sweep report ------------------------------------------------------------------------------------------------
def temperature_colors(temps: Sequence[float]) -> list:
    cmap = colormaps["plasma"]  # cold (blue) to hot (yellow); its light end is cut so every line shows on white
    return [cmap(x) for x in np.linspace(0.0, 0.8, len(temps))] if len(temps) > 1 else [cmap(0.4)]


def plot_sweep_accuracy_vs_n(temperatures: Sequence[float], analyses: Sequence[A.Analysis]) -> Figure:
    """Accuracy vs N, one panel per method, one line (with its 95% band) per temperature."""
    fig = Figure(figsize=(11, 8))
    axes = fig.subplots(2, 2, sharey=True).ravel()
    first = analyses[0]
    greedy = first.at_full_n("greedy") if first.run.has_greedy else None
    values = _flat(*(an.accuracy[m] for an in analyses for m in ("majority", "naive_bon", "weighted_bon", "pass_at_n")))
    labels = {f"T={t:g}": f"T={t:g}" for t in temperatures}
    colors = dict(zip(labels, temperature_colors(temperatures)))
    for ax, method in zip(axes, ("majority", "naive_bon", "weighted_bon", "pass_at_n")):
        _greedy_reference(ax, greedy)
        accuracy_lines(ax, analyses[-1].ns, {f"T={t:g}": an.accuracy[method] for t, an in zip(temperatures, analyses)},
                       labels, colors)
        n_axis(ax, analyses[-1].ns)
        fitted_percent_axis(ax, values + ([greedy.value] if greedy else []))
        ax.set_title(A.METHOD_LABELS[method], fontsize=10)
        ax.legend(fontsize=7, loc="best")
    fig.suptitle("Accuracy vs N at each sampling temperature (bands: 95% Wilson intervals)", fontsize=11)
    fig.tight_layout()
    return fig


def plot_accuracy_vs_temperature(temperatures: Sequence[float], analyses: Sequence[A.Analysis]) -> Figure:
    """Accuracy at full N against temperature for every method; greedy is one line (it has no temperature)."""
    fig = Figure(figsize=(8, 5))
    ax = fig.subplots()
    greedy = analyses[0].at_full_n("greedy") if analyses[0].run.has_greedy else None
    _greedy_reference(ax, greedy)
    spread = (max(temperatures) - min(temperatures)) or 1
    values = [greedy.value] if greedy else []
    for k, method in enumerate(CURVES):
        values += _errorbar(ax, np.array(temperatures) + (k - 1.5) * 0.012 * spread,  # dodge the error bars
                            [an.at_full_n(method) for an in analyses], fmt=":s" if method == "pass_at_n" else "-o",
                            ms=5, capsize=3, color=COLORS[method], label=A.METHOD_LABELS[method])
    ax.set_xticks(list(temperatures), [f"{t:g}" for t in temperatures])
    ax.set(xlabel="sampling temperature", ylabel=f"accuracy at N={analyses[0].run.n}")
    fitted_percent_axis(ax, values)
    ax.legend(fontsize=8, loc="best")
    ax.set_title("Accuracy vs temperature (error bars: 95% Wilson intervals)", fontsize=10)
    return fig


# --- Shared labels -----------------------------------------------------------------------------------------------
def short_id(unique_id: str) -> str:
    """``test/algebra/123.json`` -> ``algebra/123``."""
    return unique_id.removeprefix("test/").removesuffix(".json")


def level_name(level: int) -> str:
    """``level 3``; level 0 stands for "not given" (imported completions without levels)."""
    return f"level {level}" if level else "level not given"


def reward_color(reward: float) -> str:
    """A background colour for a reward in [0, 1] (red-yellow-green, light enough for text on it)."""
    r, g, b, _ = REWARD_CMAP(TwoSlopeNorm(0.5, 0.0, 1.0)(min(max(reward, 0.0), 1.0)))
    mix = lambda c: int(255 * (0.45 * c + 0.55))  # noqa: E731 - blend with white for legibility
    return f"#{mix(r):02x}{mix(g):02x}{mix(b):02x}"
