"""The report's stopping study: what adaptive Best-of-N would have saved on a finished fixed-N run.

A fixed run's N samples are independent, so any order of them is one an adaptive run could have drawn. Seeded
random orders per problem are walked round by round as :class:`~bestofn.methods.adaptive.AdaptiveBestOfN` walks
its draws, each rule of :mod:`bestofn.stopping` stopping them; majority and weighted Best-of-N choose among the
samples used. Per setting: mean samples used and accuracy (Wilson over problems), beside the fixed-N curve.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from matplotlib.figure import Figure

from ..io import atomic_write_bytes, json_bytes
from ..methods import BEST_OF_N
from ..selection import METHOD_LABELS, heaviest_group
from ..stopping import RULE_LABELS, RULES, fires, round_agrees, round_ends
from . import analysis as A
from .render import Page, bullets, table

CONFIDENCES = (0.8, 0.9, 0.95, 0.99)
BATCHES = (1, 2, 4, 8)
SELECTIONS = ("majority", "weighted_bon")
DEFAULT_ORDERS = 100
KEEP_POINTS = 0.005  # "keeps the fixed-N accuracy": at most half a point below it
FILE = "adaptive.json"
PLOT = "adaptive.png"


@dataclass
class Entry:
    """One setting of one rule under one selection: samples used and accuracy, over all problems and per level."""

    rule: str  # a stopping rule, or "fixed" (the fixed-N curve: batch is N, confidence None)
    confidence: float | None  # None: the rule has none (esc, fixed)
    batch: int
    selection: str
    mean_samples: float
    accuracy: A.Estimate
    by_level: dict[int, tuple[float, A.Estimate]] = field(default_factory=dict)

    def at(self, level: int | None) -> tuple[float, A.Estimate]:
        """Mean samples and accuracy over all problems (``level`` None) or over one level's."""
        return (self.mean_samples, self.accuracy) if level is None else self.by_level[level]

    def to_dict(self) -> dict[str, Any]:
        def numbers(samples: float, acc: A.Estimate) -> dict[str, float]:
            return {"mean_samples": samples, "accuracy": acc.value, "accuracy_low": acc.low, "accuracy_high": acc.high}

        return {"rule": self.rule, "confidence": self.confidence, "batch": self.batch, "selection": self.selection,
                **numbers(self.mean_samples, self.accuracy),
                "by_level": {str(level): numbers(*v) for level, v in self.by_level.items()}}


@dataclass
class Study:
    """Every entry of the study, the run's N and how the orders were drawn."""

    n: int
    orders: int
    seed: int
    levels: list[int]
    entries: list[Entry]

    def fixed(self, selection: str) -> list[Entry]:
        return [e for e in self.entries if e.rule == "fixed" and e.selection == selection]

    def to_json(self) -> list[dict[str, Any]]:
        return [e.to_dict() for e in self.entries]


def is_adaptive(run: A.RunData) -> bool:
    return run.config.get("adaptive", "off") != "off"


def can_study(run: A.RunData) -> bool:
    """A fixed Best-of-N run (or import) with N samples for every problem; not a search, not an adaptive run."""
    return (run.config.get("method", BEST_OF_N) == BEST_OF_N and not is_adaptive(run) and run.n > 1
            and all(p.size == run.n for p in run.problems))


# --- one problem: every order at once ---------------------------------------------------------------------------------
def random_orders(n: int, count: int, seed: int, position: int) -> np.ndarray:
    """``count`` random orders of a problem's N samples, shape (count, N), seeded by (seed, problem position) so
    that adding problems reshuffles no other problem's orders."""
    rng = np.random.default_rng([seed, position])
    return np.stack([rng.permutation(n) for _ in range(count)])


@dataclass
class Prefixes:
    """One problem's samples in many orders: group sizes and summed rewards after each sample, and each
    selection's hit after each sample."""

    labels: np.ndarray  # (orders, N): group label of the k-th sample drawn
    counts: np.ndarray  # (orders, N, groups): group sizes after k + 1 samples
    sums: np.ndarray  # (orders, N, groups): summed rewards after k + 1 samples
    hits: dict[str, np.ndarray]  # selection -> (orders, N): whether its choice among the first k + 1 is right


def prefixes(labels: np.ndarray, rewards: np.ndarray, correct: np.ndarray, orders: np.ndarray) -> Prefixes:
    """The prefixes of every order; a prefix's answer groups are the run's groups restricted to it (transitivity,
    as in the accuracy-vs-n curve)."""
    drawn = labels[orders]
    member = drawn[:, :, None] == np.arange(int(labels.max()) + 1)  # (orders, N, groups); no answer: no group
    counts = np.cumsum(member, axis=1, dtype=float)
    sums = np.cumsum(np.where(member, rewards[orders][:, :, None], 0.0), axis=1)  # in draw order, as the method adds
    weights = {"majority": np.ones(len(labels)), "weighted_bon": rewards}
    hits = {s: np.zeros(orders.shape, dtype=bool) for s in SELECTIONS}
    for k in range(1, orders.shape[1] + 1):  # a prefix of k samples, in the order drawn (ties: drawn first)
        for s in SELECTIONS:
            hits[s][:, k - 1] = A.is_hit(correct, heaviest_group(labels, weights[s], orders[:, :k]))
    return Prefixes(drawn, counts, sums, hits)


def samples_used(pre: Prefixes, rule: str, confidence: float, batch: int) -> np.ndarray:
    """Per order, how many samples the rule draws: the end of the first round after which it fires, else N."""
    n = pre.labels.shape[1]
    ends = round_ends(n, batch)
    starts = [0, *ends[:-1]]
    agrees = np.stack([round_agrees(pre.labels[:, a:b]) for a, b in zip(starts, ends)], axis=1)  # (orders, rounds)
    fired = fires(rule, pre.counts[:, np.array(ends) - 1], pre.sums[:, np.array(ends) - 1], agrees, confidence)
    fired[:, -1] = True  # after the last round there is nothing left to draw
    return np.array(ends)[fired.argmax(axis=1)]


# --- the run -----------------------------------------------------------------------------------------------------
def settings(confidences: tuple[float, ...] = CONFIDENCES, batches: tuple[int, ...] = BATCHES
             ) -> list[tuple[str, float | None, int]]:
    """The grid: every rule at every round size, beta and prm at every confidence (esc has none)."""
    return [(rule, c, b) for rule in RULES for c in ((None,) if rule == "esc" else confidences) for b in batches]


def study(run: A.RunData, curves: A.Curves | None = None, orders: int = DEFAULT_ORDERS, seed: int = A.DEFAULT_SEED,
          confidences: tuple[float, ...] = CONFIDENCES, batches: tuple[int, ...] = BATCHES,
          given_orders: list[np.ndarray] | None = None) -> Study:
    """Simulate every setting of the grid on the run's own samples; ``curves``: the run's accuracy-vs-n curves
    (computed when not given). ``given_orders``: per problem, the orders to walk instead of random ones."""
    curves = curves or A.accuracy_curves(run)
    grid = settings(confidences, [b for b in batches if b < run.n] or [1])
    used = {s: np.zeros(len(run.problems)) for s in grid}
    hit = {(s, sel): np.zeros(len(run.problems)) for s in grid for sel in SELECTIONS}
    for i, p in enumerate(run.problems):
        order = given_orders[i] if given_orders is not None else random_orders(run.n, orders, seed, i)
        pre = prefixes(p.labels, p.rewards(run.reward_aggregation), p.correct, order)
        for s in grid:
            k = samples_used(pre, s[0], s[1] if s[1] is not None else 1.0, s[2])
            used[s][i] = k.mean()
            for sel in SELECTIONS:
                hit[(s, sel)][i] = pre.hits[sel][np.arange(len(k)), k - 1].mean()
    levels = run.levels
    level_of = np.array([p.level for p in run.problems])

    def entry(rule: str, conf: float | None, batch: int, sel: str, samples: np.ndarray, acc: np.ndarray) -> Entry:
        by_level = {lvl: (float(samples[level_of == lvl].mean()), A.proportion(acc[level_of == lvl])) for lvl in levels}
        return Entry(rule, conf, batch, sel, float(samples.mean()), A.proportion(acc), by_level)

    entries = [entry("fixed", None, n, sel, np.full(len(run.problems), float(n)), curves.methods[sel][k])
               for sel in SELECTIONS for k, n in enumerate(curves.ns)]
    entries += [entry(*s, sel, used[s], hit[(s, sel)]) for s in grid for sel in SELECTIONS]
    return Study(run.n, orders if given_orders is None else len(given_orders[0]), seed, levels, entries)


# --- what it says ----------------------------------------------------------------------------------------------
def cheapest_keeping(entries: list[Entry], target: float, level: int | None = None) -> Entry | None:
    """The adaptive entry with the fewest mean samples whose accuracy is at most ``KEEP_POINTS`` below ``target``."""
    keeping = [e for e in entries if e.rule != "fixed" and e.at(level)[1].value >= target - KEEP_POINTS]
    return min(keeping, key=lambda e: (e.at(level)[0], -e.at(level)[1].value), default=None)


def setting_text(e: Entry) -> str:
    conf = "" if e.confidence is None else f", confidence {e.confidence:g}"
    return f"`{e.rule}` ({RULE_LABELS[e.rule]}{conf}, rounds of {e.batch})"


def findings(st: Study) -> list[str]:
    """One sentence per selection and level: the rule and setting that keeps the fixed-N accuracy cheapest."""
    out = []
    for sel in SELECTIONS:
        full = st.fixed(sel)[-1]
        for level in [None, *st.levels] if len(st.levels) > 1 else [None]:
            target = full.at(level)[1].value
            where = "all problems" if level is None else f"level {level}"
            best = cheapest_keeping([e for e in st.entries if e.selection == sel], target, level)
            if best is None:
                out.append(f"{METHOD_LABELS[sel]}, {where}: no setting keeps the fixed-N accuracy "
                           f"({100 * target:.1f}%) within {100 * KEEP_POINTS:.1f} points.")
                continue
            samples, acc = best.at(level)
            out.append(f"{METHOD_LABELS[sel]}, {where}: {setting_text(best)} keeps the fixed-N accuracy "
                       f"({100 * target:.1f}% at N={st.n}; {100 * acc.value:.1f}% [{100 * acc.low:.1f}, "
                       f"{100 * acc.high:.1f}]) with {samples:.2f} samples per problem on average, "
                       f"{100 * samples / st.n:.0f}% of N.")
    return out


def plot(st: Study) -> Figure:
    """Accuracy against mean samples used: the fixed-N curve and every rule's settings, one panel per selection."""
    fig = Figure(figsize=(11, 4.5))
    axes = fig.subplots(1, len(SELECTIONS), sharey=True)
    colors = {"beta": "#1f77b4", "esc": "#ff7f0e", "prm": "#d62728"}
    for ax, sel in zip(axes, SELECTIONS):
        fixed = st.fixed(sel)
        ax.plot([e.mean_samples for e in fixed], [100 * e.accuracy.value for e in fixed], "k-o", label="fixed N")
        for rule in RULES:
            mine = [e for e in st.entries if e.rule == rule and e.selection == sel]
            ax.scatter([e.mean_samples for e in mine], [100 * e.accuracy.value for e in mine], s=18,
                       color=colors[rule], alpha=0.8, label=RULE_LABELS[rule])
        ax.set_xscale("log", base=2)
        ax.set_xlabel("mean samples used per problem")
        ax.set_title(METHOD_LABELS[sel])
        ax.grid(alpha=0.3)
    axes[0].set_ylabel("accuracy (%)")
    axes[-1].legend(fontsize=8, loc="lower right")
    fig.suptitle(f"Stopping rules simulated on this run's own samples ({st.orders} orders per problem)")
    fig.tight_layout()
    return fig


def add_section(page: Page, st: Study) -> None:
    """The report's section: what each rule would have saved, the findings, the plot and the table."""
    page.heading(2, "Stopping early: adaptive Best-of-N on this run's samples")
    page.para(f"Each stopping rule of `bestofn run --adaptive` is replayed on this run's own {st.n} samples per "
              f"problem, in {st.orders} random orders per problem (seed {st.seed}), drawing rounds of the given size "
              f"until the rule fires or N is reached. \"Keeps the fixed-N accuracy\" means at most "
              f"{100 * KEEP_POINTS:.1f} points below it. Every entry is in `{FILE}`.")
    page.add(bullets(findings(st)))
    page.image(PLOT, "accuracy against mean samples used, per stopping rule")
    rows = [[e.rule, "" if e.confidence is None else f"{e.confidence:g}", str(e.batch), METHOD_LABELS[e.selection],
             f"{e.mean_samples:.2f}", f"{100 * e.accuracy.value:.1f}% [{100 * e.accuracy.low:.1f}, "
             f"{100 * e.accuracy.high:.1f}]"] for e in st.entries if e.rule != "fixed" and e.batch in (1, 4)]
    page.add(table(["rule", "confidence", "batch", "selection", "mean samples", "accuracy [95% CI]"], rows))


def add_run_section(page: Page, run: A.RunData) -> None:
    """An adaptive run's own section: its rule and the samples it drew, overall, per level and per stopping point."""
    cfg, sizes = run.config, np.array([p.size for p in run.problems])
    conf = "" if cfg["adaptive"] == "esc" else f", confidence {cfg['adaptive_confidence']:g}"
    page.heading(2, "Adaptive sampling: samples used")
    page.para(f"This run drew its samples in rounds of {cfg['adaptive_batch']} and stopped each problem by "
              f"`{cfg['adaptive']}` ({RULE_LABELS[cfg['adaptive']]}{conf}): {int(sizes.sum())} samples of "
              f"{run.n * len(sizes)}, {sizes.mean():.2f} per problem ({100 * sizes.mean() / run.n:.0f}% of N={run.n}). "
              f"Its accuracies are those of selection on what was drawn; every problem's samples are in samples.jsonl.")
    levels = np.array([p.level for p in run.problems])
    rows = [[f"level {lvl}" if lvl else "all", str(int((levels == lvl).sum())), f"{sizes[levels == lvl].mean():.2f}"]
            for lvl in run.levels] if len(run.levels) > 1 else []
    rows.append(["all problems", str(len(sizes)), f"{sizes.mean():.2f}"])
    page.add(table(["problems", "count", "mean samples used"], rows))
    stops = sorted(set(sizes.tolist()))
    page.add(table(["samples used", "problems"], [[str(k), str(int((sizes == k).sum()))] for k in stops]))


def write(st: Study, out_dir: str | Path) -> Path:
    path = Path(out_dir) / FILE
    atomic_write_bytes(path, json_bytes(st.to_json()))
    return path
