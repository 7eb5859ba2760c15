"""After step 6: ``bestofn report RUN_DIR``: plots and a written analysis of what Best-of-N buys over greedy.

Every figure and every sentence is computed from the run directory by :mod:`bestofn.report.analysis`; nothing is
hard-coded. The report is built once as a list of blocks (:class:`Doc`) and rendered twice: ``report.md``
with the PNG plots beside it, and ``report.html``, a single file with the same plots embedded (base64),
to open in a browser or attach to a message. Plots use matplotlib's object API (``Figure``) without
pyplot, so no GUI backend or global state is involved (the Agg canvas renders the PNGs).
"""

from __future__ import annotations

import base64
import html
import io
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from matplotlib.colors import ListedColormap
from matplotlib.figure import Figure
from matplotlib.ticker import NullFormatter

from . import analysis as A
from ..io import atomic_write_bytes, atomic_write_text
from ..selection import AGGREGATIONS

COLORS = {
    "greedy": "#555555",
    "majority": "#1f77b4",
    "naive_bon": "#ff7f0e",
    "weighted_bon": "#2ca02c",
    "pass_at_n": "#9467bd",
}
AGG_COLORS = {"last": "#2ca02c", "min": "#d62728", "prod": "#8c564b", "mean": "#17becf"}
DPI = 110
SOLUTION_CHARS = 6000  # longer solutions are cut in the report (the full text is in samples.jsonl)


# --------------------------------------------------------------------------------------------------------
# A tiny document model, rendered to Markdown and to HTML
# --------------------------------------------------------------------------------------------------------
_INLINE = re.compile(r"`([^`]*)`|\*\*(.+?)\*\*|\[([^\]]+)\]\(([^)\s]+)\)")


def code(text: object) -> str:
    """``text`` as an inline code span (answers are LaTeX: shown verbatim, never interpreted)."""
    return "`" + str(text).replace("`", "'").replace("\n", " ") + "`"


def _inline_html(text: str) -> str:
    out, last = [], 0
    for m in _INLINE.finditer(text):
        out.append(html.escape(text[last : m.start()]))
        if m.group(1) is not None:
            out.append(f"<code>{html.escape(m.group(1))}</code>")
        elif m.group(2) is not None:
            out.append(f"<strong>{html.escape(m.group(2))}</strong>")
        else:
            out.append(f'<a href="{html.escape(m.group(4))}">{html.escape(m.group(3))}</a>')
        last = m.end()
    out.append(html.escape(text[last:]))
    return "".join(out)


@dataclass
class Doc:
    """Headings, paragraphs, lists, tables, images and collapsible text; inline `code`, **bold**, [links](href)."""

    blocks: list[tuple] = field(default_factory=list)

    def heading(self, level: int, text: str) -> None:
        self.blocks.append(("h", level, text))

    def para(self, text: str) -> None:
        self.blocks.append(("p", text))

    def bullets(self, items: Sequence[str]) -> None:
        if items:
            self.blocks.append(("ul", list(items)))

    def table(self, header: Sequence[str], rows: Sequence[Sequence[object]]) -> None:
        self.blocks.append(("table", list(header), [[str(c) for c in r] for r in rows]))

    def image(self, filename: str, alt: str) -> None:
        self.blocks.append(("img", filename, alt))

    def quote(self, text: str) -> None:
        """Verbatim text (a problem statement), shown as a quotation."""
        self.blocks.append(("quote", text))

    def details(self, summary: str, text: str) -> None:
        """Verbatim text (a solution) folded under a summary line."""
        self.blocks.append(("details", summary, text))

    def markdown(self) -> str:
        return "\n".join(_MD[b[0]](*b[1:]) for b in self.blocks)

    def html(self, title: str, images: Mapping[str, bytes]) -> str:
        body = "\n".join(_html_block(b, images) for b in self.blocks)
        return _HTML_PAGE.format(title=html.escape(title), css=_CSS, body=body)


def _md_table(header: list[str], rows: list[list[str]]) -> str:
    def cells(row: list[str]) -> str:
        return "| " + " | ".join(c.replace("|", "\\|").replace("\n", " ") for c in row) + " |"

    return "\n".join([cells(header), "|" + "---|" * len(header), *map(cells, rows)]) + "\n"


def _md_fence(text: str) -> str:
    fence = "```"
    while fence in text:
        fence += "`"
    return f"{fence}text\n{text}\n{fence}"


_MD = {
    "h": lambda level, text: f"{'#' * level} {text}\n",
    "p": lambda text: f"{text}\n",
    "ul": lambda items: "".join(f"- {i}\n" for i in items),
    "table": _md_table,
    "img": lambda name, alt: f"![{alt}]({name})\n",
    "quote": lambda text: "".join(f"> {line}\n" if line else ">\n" for line in text.splitlines()),
    # GitHub renders <details> in Markdown; the blank lines let the fenced block inside render.
    "details": lambda summary, text: (
        f"<details><summary>{html.escape(summary)}</summary>\n\n{_md_fence(text)}\n\n</details>\n"
    ),
}


def _html_block(block: tuple, images: Mapping[str, bytes]) -> str:
    kind, *args = block
    if kind == "h":
        level, text = args
        anchor = re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-")
        return f'<h{level} id="{anchor}">{_inline_html(text)}</h{level}>'
    if kind == "p":
        return f"<p>{_inline_html(args[0])}</p>"
    if kind == "ul":
        return "<ul>" + "".join(f"<li>{_inline_html(i)}</li>" for i in args[0]) + "</ul>"
    if kind == "table":
        header, rows = args
        head = "".join(f"<th>{_inline_html(h)}</th>" for h in header)
        body = "".join("<tr>" + "".join(f"<td>{_inline_html(c)}</td>" for c in r) + "</tr>" for r in rows)
        return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"
    if kind == "img":
        name, alt = args
        data = base64.b64encode(images[name]).decode("ascii")
        return f'<figure><img src="data:image/png;base64,{data}" alt="{html.escape(alt)}"><figcaption>{html.escape(alt)}</figcaption></figure>'
    if kind == "quote":
        return f"<blockquote>{html.escape(args[0])}</blockquote>"
    summary, text = args
    return f"<details><summary>{html.escape(summary)}</summary><pre>{html.escape(text)}</pre></details>"


_CSS = """
body { font-family: -apple-system, "Segoe UI", Roboto, "DejaVu Sans", sans-serif; color: #222; margin: 0; background: #fafafa; }
main { max-width: 1100px; margin: 0 auto; padding: 24px 32px 64px; background: #fff; }
h1 { border-bottom: 2px solid #2ca02c; padding-bottom: 6px; }
h2 { margin-top: 40px; border-bottom: 1px solid #ddd; padding-bottom: 4px; }
h3 { margin-top: 28px; }
table { border-collapse: collapse; margin: 12px 0; font-size: 14px; }
th, td { border: 1px solid #ddd; padding: 4px 10px; text-align: left; vertical-align: top; }
th { background: #f0f0f0; }
tbody tr:nth-child(even) { background: #fafafa; }
code { background: #f3f3f3; padding: 1px 4px; border-radius: 3px; font-size: 90%; }
figure { margin: 16px 0; }
figure img { max-width: 100%; border: 1px solid #eee; }
figcaption { color: #666; font-size: 13px; }
blockquote { white-space: pre-wrap; border-left: 4px solid #ccc; margin: 8px 0; padding: 4px 12px; color: #444; }
details { margin: 8px 0 16px; }
summary { cursor: pointer; color: #1f77b4; }
pre { white-space: pre-wrap; background: #f6f8fa; padding: 12px; border-radius: 4px; font-size: 13px; }
"""
_HTML_PAGE = """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>{title}</title><style>{css}</style></head>
<body><main>
{body}
</main></body></html>
"""


# --------------------------------------------------------------------------------------------------------
# Numbers as text
# --------------------------------------------------------------------------------------------------------
def pct(x: float) -> str:
    return f"{100 * x:.1f}%"


def with_ci(e: A.Estimate) -> str:
    """``55.0% [40.0, 70.0]``: accuracy with its 95% interval, in percent."""
    return f"{100 * e.value:.1f}% [{100 * e.low:.1f}, {100 * e.high:.1f}]"


def points(e: A.Estimate) -> str:
    """A difference of accuracies in percentage points, with its interval: ``+10.0 points (95% CI -5.0 to +25.0)``."""
    return f"{100 * e.value:+.1f} points (95% CI {100 * e.low:+.1f} to {100 * e.high:+.1f})"


def short_id(unique_id: str) -> str:
    """``test/algebra/123.json`` -> ``algebra/123``."""
    s = unique_id.removeprefix("test/")
    return s.removesuffix(".json")


def plural(count: int, noun: str) -> str:
    """``1 problem``, ``3 problems``."""
    return f"{count} {noun}{'' if count == 1 else 's'}"


def id_list(ids: Sequence[str], limit: int = 8) -> str:
    shown = ", ".join(code(short_id(i)) for i in ids[:limit])
    return shown + (f" and {len(ids) - limit} more" if len(ids) > limit else "")


# --------------------------------------------------------------------------------------------------------
# Plots
# --------------------------------------------------------------------------------------------------------
def png_bytes(fig: Figure) -> bytes:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=DPI, bbox_inches="tight")
    return buf.getvalue()


def _n_axis(ax, ns: Sequence[int]) -> None:
    ax.set_xscale("log", base=2)
    ax.set_xticks(ns, [str(n) for n in ns])
    ax.minorticks_off()
    ax.set_xlabel("N (solutions sampled per problem)")


def _percent_axis(ax) -> None:
    ax.set_ylim(-0.02, 1.02)
    ax.yaxis.set_major_formatter(lambda y, _: f"{100 * y:.0f}%")
    ax.grid(alpha=0.3)


def _band(ax, xs, ests: Sequence[A.Estimate], method: str, label: str, style: str = "-o") -> None:
    ax.plot(xs, [e.value for e in ests], style, color=COLORS[method], label=label, ms=4)
    ax.fill_between(xs, [e.low for e in ests], [e.high for e in ests], color=COLORS[method], alpha=0.12, lw=0)


def plot_accuracy_vs_n(an: A.Analysis) -> Figure:
    """Majority, naive and weighted Best-of-N vs n, greedy as a line, pass@n as the ceiling; 95% bands."""
    fig = Figure(figsize=(8, 5))
    ax = fig.subplots()
    g = an.at_full_n("greedy")
    ax.axhline(g.value, color=COLORS["greedy"], ls="--", label=f"greedy ({pct(g.value)})")
    ax.axhspan(g.low, g.high, color=COLORS["greedy"], alpha=0.07, lw=0)
    _band(ax, an.ns, an.accuracy["pass_at_n"], "pass_at_n", A.METHOD_LABELS["pass_at_n"], ":s")
    for m in A.SELECTION_METHODS:
        _band(ax, an.ns, an.accuracy[m], m, A.METHOD_LABELS[m])
    _n_axis(ax, an.ns)
    _percent_axis(ax)
    ax.set_ylabel("accuracy")
    ax.set_title(
        f"Accuracy vs N ({len(an.run.problems)} problems; mean over up to {an.curves.subsets} subsets per point)",
        fontsize=10,
    )
    ax.legend(loc="lower right", fontsize=8)
    return fig


def plot_problem_grid(an: A.Analysis) -> Figure:
    """Problems x methods at full N: solved (green) or not (red); rows labelled with level and right samples."""
    outs = sorted(an.outcomes, key=lambda o: (o.level, -o.num_correct))  # by level, easiest (most right samples) first
    grid = np.array([[o.solved(m) for m in A.METHODS] for o in outs], dtype=float)
    labelled = len(outs) <= 120  # beyond that, labels would overlap: the grid is read as a pattern
    fig = Figure(figsize=(6.5, min(2 + 0.22 * len(outs), 30) if labelled else 12))
    ax = fig.subplots()
    ax.imshow(grid, cmap=ListedColormap(["#f4a3a3", "#8fd18f"]), vmin=0, vmax=1, aspect="auto", interpolation="nearest")
    ax.set_xticks(range(len(A.METHODS)), [A.METHOD_LABELS[m].replace(" ", "\n", 1) for m in A.METHODS], fontsize=8)
    ax.xaxis.tick_top()
    if labelled:
        ax.set_yticks(
            range(len(outs)),
            [f"L{o.level} {short_id(o.unique_id)} ({o.num_correct}/{an.run.n})" for o in outs],
            fontsize=7,
        )
        if len(outs) <= 60:
            for (r, c), v in np.ndenumerate(grid):
                ax.text(c, r, "yes" if v else "no", ha="center", va="center", fontsize=6, color="#333")
    else:
        ax.set_yticks([])
        ax.set_ylabel(f"{len(outs)} problems (by level)")
    ax.set_xticks(np.arange(len(A.METHODS) + 1) - 0.5, minor=True)
    ax.grid(which="minor", color="white", lw=1)
    ax.tick_params(which="minor", length=0)
    ax.set_title(f"Solved at N={an.run.n} (green) or not (red); (k/N) = right samples", fontsize=9, pad=30)
    return fig


def plot_reward_distributions(an: A.Analysis) -> Figure:
    """Histograms of solution rewards, correct vs incorrect, one panel per aggregation, AUROC in the title."""
    fig = Figure(figsize=(10, 7))
    axes = fig.subplots(2, 2).ravel()
    for ax, how in zip(axes, AGGREGATIONS):
        s = an.prm[how]
        both = np.concatenate([s.correct_rewards, s.incorrect_rewards])
        bins = np.histogram_bin_edges(both if len(both) else [0.0, 1.0], bins=20)
        for values, color, name in (
            (s.incorrect_rewards, "#d62728", "incorrect"),
            (s.correct_rewards, "#2ca02c", "correct"),
        ):
            if len(values):
                ax.hist(values, bins=bins, color=color, alpha=0.5, label=f"{name} ({len(values)})", density=True)
        auc = "n/a" if s.auroc is None else f"{s.auroc:.3f}"
        within = "n/a" if s.within_auroc is None else f"{s.within_auroc:.3f}"
        ax.set_title(f"{how}: AUROC {auc}, within-problem {within}", fontsize=9)
        ax.set_xlabel(f"reward ({how} of step rewards)", fontsize=8)
        ax.set_ylabel("density", fontsize=8)
        ax.legend(fontsize=7)
    fig.suptitle("PRM rewards of correct vs incorrect sampled solutions", fontsize=11)
    fig.tight_layout()
    return fig


def plot_aggregations(an: A.Analysis) -> Figure:
    """Weighted and naive Best-of-N vs n under each reward aggregation (greedy for reference)."""
    fig = Figure(figsize=(11, 4.5))
    axes = fig.subplots(1, 2, sharey=True)
    for ax, method in zip(axes, ("weighted_bon", "naive_bon")):
        ax.axhline(an.at_full_n("greedy").value, color=COLORS["greedy"], ls="--", label="greedy")
        ax.plot(an.ns, [e.value for e in an.accuracy["majority"]], ":", color=COLORS["majority"], label="majority vote")
        for how in AGGREGATIONS:
            ests = an.aggregation[how][method]
            ax.plot(an.ns, [e.value for e in ests], "-o", ms=4, color=AGG_COLORS[how], label=how)
        _n_axis(ax, an.ns)
        _percent_axis(ax)
        ax.set_title(f"{A.METHOD_LABELS[method]}, by reward aggregation", fontsize=10)
        ax.legend(fontsize=8, loc="lower right")
    axes[0].set_ylabel("accuracy")
    fig.tight_layout()
    return fig


def plot_compute(an: A.Analysis) -> Figure:
    """Accuracy vs generated tokens per problem: all problems, then each level; points labelled with n."""
    panels = [("all levels", an.accuracy, an.mean_tokens, an.greedy_mean_tokens)]
    if len(an.run.levels) > 1:
        panels += [
            (f"level {lvl}", an.by_level[lvl], an.tokens_by_level[lvl], an.greedy_tokens_by_level[lvl])
            for lvl in an.run.levels
        ]
    cols = 2 if len(panels) in (2, 4) else min(3, len(panels))
    rows = -(-len(panels) // cols)
    fig = Figure(figsize=(4.4 * cols, 4 * rows))
    axes = np.atleast_1d(fig.subplots(rows, cols, sharey=True, squeeze=False).ravel())
    for ax in axes[len(panels) :]:
        ax.set_visible(False)
    for ax, (title, acc, tokens, greedy_tokens) in zip(axes, panels):
        for m in ("pass_at_n", *A.SELECTION_METHODS):
            ax.plot(
                tokens,
                [e.value for e in acc[m]],
                ":s" if m == "pass_at_n" else "-o",
                ms=4,
                color=COLORS[m],
                label=A.METHOD_LABELS[m],
            )
        for n, x, e in zip(an.ns, tokens, acc["weighted_bon"]):
            ax.annotate(f"N={n}", (x, e.value), textcoords="offset points", xytext=(0, -12), ha="center", fontsize=7)
        ax.plot(
            [greedy_tokens],
            [acc["greedy"][-1].value],
            "*",
            ms=12,
            color=COLORS["greedy"],
            label="greedy",
            clip_on=False,
        )
        if max(tokens) > 0 and greedy_tokens > 0:
            ax.set_xscale("log", base=2)  # each doubling of N is one step to the right
            ax.xaxis.set_major_formatter(lambda x, _: f"{x:,.0f}")
            ax.xaxis.set_minor_formatter(NullFormatter())
        ax.set_xlabel("generated tokens per problem")
        _percent_axis(ax)
        ax.set_title(title, fontsize=10)
    axes[0].set_ylabel("accuracy")
    axes[0].legend(fontsize=7, loc="lower right")
    fig.suptitle("Accuracy vs generation cost (PRM scoring not counted)", fontsize=11)
    fig.tight_layout()
    return fig


def plot_by_level(an: A.Analysis) -> Figure:
    """Accuracy per difficulty level at full N, one bar per method, 95% intervals as error bars."""
    fig = Figure(figsize=(8, 4.5))
    ax = fig.subplots()
    levels = an.run.levels
    width = 0.8 / len(A.METHODS)
    for k, m in enumerate(A.METHODS):
        ests = [an.by_level[lvl][m][-1] for lvl in levels]
        xs = np.arange(len(levels)) + (k - (len(A.METHODS) - 1) / 2) * width
        vals = np.array([e.value for e in ests])
        err = np.array([[e.value - e.low for e in ests], [e.high - e.value for e in ests]])
        ax.bar(xs, vals, width, yerr=err, color=COLORS[m], label=A.METHOD_LABELS[m], capsize=2, error_kw={"lw": 0.8})
    counts = {lvl: sum(o.level == lvl for o in an.outcomes) for lvl in levels}
    ax.set_xticks(range(len(levels)), [f"level {lvl}\n({counts[lvl]} problems)" for lvl in levels])
    _percent_axis(ax)
    ax.set_ylabel(f"accuracy at N={an.run.n}")
    ax.legend(fontsize=7, ncols=len(A.METHODS), loc="upper center", bbox_to_anchor=(0.5, -0.15))
    ax.set_title("Accuracy by difficulty level (error bars: 95% bootstrap CI over the level's problems)", fontsize=10)
    return fig


PLOTS = {
    "accuracy_vs_n.png": (plot_accuracy_vs_n, "Accuracy vs N"),
    "per_problem.png": (plot_problem_grid, "Problems x methods: solved or not"),
    "reward_distributions.png": (plot_reward_distributions, "PRM rewards of correct vs incorrect solutions"),
    "aggregation.png": (plot_aggregations, "Best-of-N under each reward aggregation"),
    "by_level.png": (plot_by_level, "Accuracy by level"),
    "compute.png": (plot_compute, "Accuracy vs generated tokens"),
}


# --------------------------------------------------------------------------------------------------------
# The written analysis
# --------------------------------------------------------------------------------------------------------
def written_analysis(an: A.Analysis) -> list[str]:
    """A few paragraphs stating what the numbers show, each claim with its size and uncertainty."""
    n, total = an.run.n, len(an.run.problems)
    solved = {m: A.solved_counts(an.outcomes, m) for m in A.METHODS}
    wg = an.comparisons["weighted_bon-greedy"]
    wm = an.comparisons["weighted_bon-majority"]
    wn = an.comparisons["weighted_bon-naive_bon"]
    out = []

    verdict = (
        "the two methods solved exactly the same problems"
        if not wg.only_a and not wg.only_b
        else "the interval excludes zero, so the gain is larger than the noise of drawing these problems"
        if wg.difference.low > 0
        else "the interval excludes zero: weighted Best-of-N did *worse* than greedy beyond problem-sampling noise"
        if wg.difference.high < 0
        else f"the interval includes zero: with {total} problems this run cannot tell the difference from noise"
    )
    out.append(
        f"**Gain over greedy.** Weighted Best-of-{n} solved {solved['weighted_bon']}/{total} problems "
        f"({pct(an.at_full_n('weighted_bon').value)}), greedy {solved['greedy']}/{total} ({pct(an.at_full_n('greedy').value)}): "
        f"{points(wg.difference)}, paired bootstrap over problems; {verdict}."
    )
    out.append(
        f"**Flips.** Weighted Best-of-{n} solved {plural(len(wg.only_a), 'problem')} that greedy missed"
        f"{' (' + id_list(wg.only_a) + ')' if wg.only_a else ''} and missed {len(wg.only_b)} that greedy solved"
        f"{' (' + id_list(wg.only_b) + ')' if wg.only_b else ''}; exact McNemar test on these flips: p = {wg.p_value:.3g}."
    )
    oracle = solved["pass_at_n"]
    unpicked = [o.unique_id for o in an.outcomes if o.pass_at_n and not o.weighted_bon.correct]
    if oracle:
        out.append(
            f"**Room left.** At least one of the {n} samples was right on {oracle}/{total} problems (pass@{n}, the ceiling of any "
            f"selection rule); weighted Best-of-{n} picked a right answer on {solved['weighted_bon']} of them "
            f"({pct(solved['weighted_bon'] / oracle)}). On {plural(len(unpicked), 'problem')} a right solution was sampled but not selected"
            f"{' (' + id_list(unpicked) + ')' if unpicked else ''}."
        )
    else:
        out.append(
            f"**Room left.** No sample was right on any problem (pass@{n} = 0): no selection rule can help here."
        )
    same = total - len(wm.only_a) - len(wm.only_b)
    out.append(
        f"**PRM vs majority vote.** Majority vote alone solved {solved['majority']}/{total}. Weighting the votes by the PRM "
        f"changed the outcome on {plural(len(wm.only_a) + len(wm.only_b), 'problem')}: it helped on {len(wm.only_a)}"
        f"{' (' + id_list(wm.only_a) + ')' if wm.only_a else ''} and hurt on {len(wm.only_b)}"
        f"{' (' + id_list(wm.only_b) + ')' if wm.only_b else ''}; on the other {same} majority vote did as well. "
        f"Weighted minus majority: {points(wm.difference)}. {_curve_comparison(an)}"
    )
    out.append(
        f"**Weighted vs naive Best-of-N.** Trusting the single highest-reward solution (naive) solved {solved['naive_bon']}/{total}; "
        f"summing rewards over equivalent answers (weighted) changed {plural(len(wn.only_a) + len(wn.only_b), 'outcome')} "
        f"({len(wn.only_a)} for the better, {len(wn.only_b)} for the worse): {points(wn.difference)}."
    )
    out.append(_prm_paragraph(an))
    out.append(_compute_paragraph(an))
    if len(an.run.levels) > 1:
        parts = [
            f"level {lvl}: {pct(an.by_level[lvl]['greedy'][-1].value)} -> {pct(an.by_level[lvl]['weighted_bon'][-1].value)}"
            for lvl in an.run.levels
        ]
        out.append(f"**By level** (greedy -> weighted Best-of-{n}): " + "; ".join(parts) + ".")
    return out


def _curve_comparison(an: A.Analysis) -> str:
    """Where along n the PRM's weights beat plain votes (means only; see the table for intervals)."""
    diffs = [(n, w.value - m.value) for n, w, m in zip(an.ns, an.accuracy["weighted_bon"], an.accuracy["majority"])]
    ahead = [str(n) for n, d in diffs if d > 1e-9]
    behind = [str(n) for n, d in diffs if d < -1e-9]
    parts = []
    if ahead:
        parts.append(f"weighted was ahead of majority at N = {', '.join(ahead)}")
    if behind:
        parts.append(f"behind at N = {', '.join(behind)}")
    if not parts:
        return "Along the curve, weighted and majority vote had the same mean accuracy at every N."
    return "Along the curve (subset means), " + " and ".join(parts) + "."


def _prm_paragraph(an: A.Analysis) -> str:
    last = an.prm["last"]
    if last.auroc is None:
        right = len(last.correct_rewards)
        detector = (
            f"The final-step reward's AUROC is undefined here: all {right + len(last.incorrect_rewards)} scored samples "
            f"are {'right' if right else 'wrong'}."
        )
    else:
        ci = f" (95% CI {last.auroc_ci[0]:.3f}-{last.auroc_ci[1]:.3f})" if last.auroc_ci else ""
        within = (
            f"; within a problem, which is what selection needs, it is {last.within_auroc:.3f} "
            f"(mean over the {plural(last.within_problems, 'problem')} with both right and wrong samples)"
            if last.within_auroc is not None
            else "; no problem had both right and wrong samples, so the within-problem AUROC is undefined"
        )
        detector = (
            f"As a correctness detector, the final-step reward has AUROC {last.auroc:.3f}{ci}: a random right solution "
            f"outscores a random wrong one {pct(last.auroc)} of the time{within}."
        )
    full = {how: an.aggregation[how]["weighted_bon"][-1].value for how in AGGREGATIONS}
    best = max(full.values())
    winners = [h for h in AGGREGATIONS if full[h] == best]
    ranking = ", ".join(f"{h} {pct(v)}" for h, v in sorted(full.items(), key=lambda kv: -kv[1]))
    used = code(an.run.reward_aggregation)
    if len(winners) == len(AGGREGATIONS):
        return f"**The PRM.** {detector} Weighted Best-of-{an.run.n} is {pct(best)} under every reward aggregation (this run selects with {used})."
    return f"**The PRM.** {detector} Weighted Best-of-{an.run.n} by aggregation: {ranking}; best: {' / '.join(winners)} (this run selects with {used})."


def _compute_paragraph(an: A.Analysis) -> str:
    n = an.run.n
    ratio = an.mean_tokens[-1] / an.greedy_mean_tokens if an.greedy_mean_tokens else float("nan")
    text = (
        f"**Cost.** Best-of-{n} generated {an.mean_tokens[-1]:,.0f} tokens per problem on average, {ratio:.1f}x greedy's "
        f"{an.greedy_mean_tokens:,.0f} (PRM scoring reads them once more and is not counted)."
    )
    if len(an.ns) > 1:
        half = an.ns[-2]
        gain = an.accuracy["weighted_bon"][-1].value - an.accuracy["weighted_bon"][-2].value
        text += f" Going from N={half} to N={n} cost {an.mean_tokens[-1] - an.mean_tokens[-2]:,.0f} more tokens per problem for {100 * gain:+.1f} points of weighted Best-of-N accuracy."
    return text


# --------------------------------------------------------------------------------------------------------
# The report
# --------------------------------------------------------------------------------------------------------
def build_report(an: A.Analysis) -> Doc:
    """The whole report as a :class:`Doc` (plots referenced by the file names of :data:`PLOTS`)."""
    doc = Doc()
    run, n = an.run, an.run.n
    doc.heading(1, f"Best-of-N report: {run.run_dir.resolve().name}")
    _setup_section(doc, an)
    doc.heading(2, "Summary")
    for paragraph in written_analysis(an):
        doc.para(paragraph)
    if an.inconsistencies:
        doc.para("**Warning: results.json disagrees with the samples** (this report recomputes from samples.jsonl):")
        doc.bullets(an.inconsistencies)

    doc.heading(2, "Accuracy vs N")
    doc.image("accuracy_vs_n.png", PLOTS["accuracy_vs_n.png"][1])
    doc.para(
        f"Each point is the mean over problems of the expected accuracy over up to {an.curves.subsets} random N-subsets "
        f"(drawn without replacement from the {n} samples; all subsets when there are fewer; subset seed {an.curves.seed}). "
        f"Bands and brackets: 95% percentile bootstrap over problems ({an.bootstrap} resamples)."
    )
    doc.table(
        ["N", "tokens / problem", *(A.METHOD_LABELS[m] for m in A.METHODS)],
        [
            [k, f"{t:,.0f}", *(with_ci(an.accuracy[m][i]) for m in A.METHODS)]
            for i, (k, t) in enumerate(zip(an.ns, an.mean_tokens))
        ],
    )

    doc.heading(2, "Per problem")
    doc.image("per_problem.png", PLOTS["per_problem.png"][1])
    wg = an.comparisons["weighted_bon-greedy"]
    by_id = {o.unique_id: o for o in an.outcomes}
    texts = {p.unique_id: p for p in run.problems}
    for title, ids in (
        (f"Solved by weighted Best-of-{n}, missed by greedy ({len(wg.only_a)})", wg.only_a),
        (f"Solved by greedy, missed by weighted Best-of-{n} ({len(wg.only_b)})", wg.only_b),
    ):
        doc.heading(3, title)
        if not ids:
            doc.para("None.")
        for uid in ids:
            _problem_block(doc, by_id[uid], texts[uid], n, run.reward_aggregation)

    _prm_section(doc, an)
    _level_section(doc, an)
    _notes_section(doc, an)
    return doc


def _setup_section(doc: Doc, an: A.Analysis) -> None:
    cfg, run = an.run.config, an.run
    levels = ", ".join(f"level {lvl}: {sum(o.level == lvl for o in an.outcomes)}" for lvl in run.levels)
    items = [
        f"run directory: {code(run.run_dir)}",
        f"problems: {len(run.problems)} ({levels})",
        f"samples per problem N = {run.n}"
        + (f", temperature {cfg['temperature']}" if "temperature" in cfg else "")
        + (f", top-p {cfg['top_p']}" if "top_p" in cfg else ""),
    ]
    if "generator" in cfg:
        items.append(f"generator: {code(cfg['generator'])}; PRM: {code(cfg.get('prm', '?'))}")
    items.append(f"reward aggregation for selection: {code(run.reward_aggregation)}")
    items.append(
        f"report settings: {an.curves.subsets} subsets per point, seed {an.curves.seed}, {an.bootstrap} bootstrap resamples"
    )
    doc.heading(2, "Setup")
    doc.bullets(items)


def _problem_block(doc: Doc, out: A.ProblemOutcome, p: A.ProblemData, n: int, how: str) -> None:
    doc.heading(4, f"{short_id(out.unique_id)} (level {out.level}{', ' + out.subject if out.subject else ''})")
    doc.quote(p.problem)
    doc.bullets(
        [
            f"gold answer: {code(out.gold)}",
            f"greedy: {code(out.greedy.answer)} ({'right' if out.greedy.correct else 'wrong'})",
            f"majority vote: {code(out.majority.answer)}; naive Best-of-{n}: {code(out.naive_bon.answer)}; "
            f"weighted Best-of-{n}: {code(out.weighted_bon.answer)} ({'right' if out.weighted_bon.correct else 'wrong'})",
            f"right samples: {out.num_correct}/{n}",
        ]
    )
    doc.table(
        ["answer group", "solutions", "summed reward", "right?", "sample indices"],
        [
            [
                code(g["answer"]),
                g["count"],
                f"{g['reward_sum']:.3f}",
                "yes" if g["correct"] else "no",
                ", ".join(map(str, g["indices"])),
            ]
            for g in out.groups
        ],
    )
    i = out.weighted_bon.sample_index
    if i is not None:
        text = p.texts[i]
        if len(text) > SOLUTION_CHARS:
            text = (
                text[:SOLUTION_CHARS]
                + f"\n[... cut: {len(p.texts[i]) - SOLUTION_CHARS} more characters in samples.jsonl]"
            )
        reward = float(p.rewards(how)[i])
        doc.details(
            f"Winning solution: sample {i}, reward {reward:.3f} (the best-scored solution of the winning group)", text
        )


def _prm_section(doc: Doc, an: A.Analysis) -> None:
    n = an.run.n
    doc.heading(2, "The PRM")
    doc.image("reward_distributions.png", PLOTS["reward_distributions.png"][1])
    rows = []
    for how in AGGREGATIONS:
        s = an.prm[how]
        auc = (
            "n/a"
            if s.auroc is None
            else f"{s.auroc:.3f}" + (f" [{s.auroc_ci[0]:.3f}, {s.auroc_ci[1]:.3f}]" if s.auroc_ci else "")
        )
        within = "n/a" if s.within_auroc is None else f"{s.within_auroc:.3f} ({s.within_problems} problems)"
        rows.append(
            [
                code(how) + (" (used)" if how == an.run.reward_aggregation else ""),
                auc,
                within,
                with_ci(an.aggregation[how]["weighted_bon"][-1]),
                with_ci(an.aggregation[how]["naive_bon"][-1]),
            ]
        )
    doc.table(
        ["aggregation", "AUROC (pooled)", "AUROC within problem", f"weighted Best-of-{n}", f"naive Best-of-{n}"], rows
    )
    doc.para(
        "AUROC: probability that a random right solution gets a higher reward than a random wrong one (ties count half), "
        "over all scored samples; the bracket is a 95% bootstrap interval over problems (computed for `last`). "
        "Within problem: the same, per problem with both right and wrong samples, averaged; it ignores how hard "
        "each problem is, which is all that selection among one problem's samples can use."
    )
    doc.image("aggregation.png", PLOTS["aggregation.png"][1])


def _level_section(doc: Doc, an: A.Analysis) -> None:
    doc.heading(2, "Per level and compute")
    doc.image("by_level.png", PLOTS["by_level.png"][1])
    doc.table(
        ["level", "problems", *(A.METHOD_LABELS[m] for m in A.METHODS)],
        [
            [lvl, sum(o.level == lvl for o in an.outcomes), *(with_ci(an.by_level[lvl][m][-1]) for m in A.METHODS)]
            for lvl in an.run.levels
        ],
    )
    doc.image("compute.png", PLOTS["compute.png"][1])
    doc.table(
        ["", "greedy", *(f"N={k}" for k in an.ns)],
        [["all levels", f"{an.greedy_mean_tokens:,.0f}", *(f"{t:,.0f}" for t in an.mean_tokens)]]
        + [
            [f"level {lvl}", f"{an.greedy_tokens_by_level[lvl]:,.0f}", *(f"{t:,.0f}" for t in an.tokens_by_level[lvl])]
            for lvl in an.run.levels
        ],
    )
    doc.para(
        "Generated tokens per problem (mean). N sampled solutions cost N times one solution; greedy is one solution."
    )


def _notes_section(doc: Doc, an: A.Analysis) -> None:
    ps = an.run.problems
    total = sum(len(p.answers) for p in ps)
    notes = [
        f"{sum(a is None for p in ps for a in p.answers)} of {total} samples have no boxed answer (they never win a vote).",
        f"{sum(int(p.cut_off.sum()) for p in ps)} samples were cut off at max_new_tokens.",
        f"{sum(int((~p.scored).sum()) for p in ps)} samples have no scored step (reward 0 in selection, left out of the AUROC); "
        f"{sum(int(p.truncated.sum()) for p in ps)} were longer than the PRM's context (only their first steps were scored).",
        "Answers are grouped by math-verify equivalence once over all N samples; a subset's groups are that grouping restricted to it.",
    ]
    doc.heading(2, "Notes")
    doc.bullets(notes)


# --------------------------------------------------------------------------------------------------------
# Writing files
# --------------------------------------------------------------------------------------------------------
def render(
    doc: Doc, figures: Mapping[str, Figure], out_dir: Path, title: str, formats: Sequence[str] = ("md", "html")
) -> list[Path]:
    """Write the PNGs, then ``report.md`` and/or ``report.html`` into ``out_dir``; return the written paths."""
    images = {name: png_bytes(fig) for name, fig in figures.items()}
    written = []
    for name, data in images.items():
        atomic_write_bytes(out_dir / name, data)
        written.append(out_dir / name)
    if "md" in formats:
        atomic_write_text(out_dir / "report.md", doc.markdown())
        written.append(out_dir / "report.md")
    if "html" in formats:
        atomic_write_text(out_dir / "report.html", doc.html(title, images))
        written.append(out_dir / "report.html")
    return written


def write_report(
    run_dir: str | Path,
    output_dir: str | Path | None = None,
    subsets: int = A.DEFAULT_SUBSETS,
    seed: int = A.DEFAULT_SEED,
    bootstrap: int = A.DEFAULT_BOOTSTRAP,
    formats: Sequence[str] = ("md", "html"),
) -> list[Path]:
    """Analyze ``run_dir`` and write the report (default: ``RUN_DIR/report/``); return the written paths."""
    an = A.analyze(run_dir, subsets=subsets, seed=seed, bootstrap=bootstrap)
    out_dir = Path(output_dir) if output_dir is not None else Path(run_dir) / "report"
    return write_analysis_report(an, out_dir, formats)


def write_analysis_report(an: A.Analysis, out_dir: str | Path, formats: Sequence[str] = ("md", "html")) -> list[Path]:
    """Plot and write the report of an existing :class:`~bestofn.report.analysis.Analysis` into ``out_dir``."""
    figures = {name: plot(an) for name, (plot, _) in PLOTS.items()}
    return render(
        build_report(an), figures, Path(out_dir), f"Best-of-N report: {an.run.run_dir.resolve().name}", formats
    )
