"""Plots that cannot be misread: tick labels read back from the drawn matplotlib axes, token axes, overlaps."""

from __future__ import annotations

import numpy as np
import pytest
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from bestofn.report import analysis as A
from bestofn.report import plots as P


def drawn(fig: Figure) -> Figure:
    FigureCanvasAgg(fig).draw()  # ticks and their labels are decided when the figure is drawn
    return fig


def tick_labels(axis) -> list[tuple[float, str]]:
    """(position, label) of every major tick inside the axis's view."""
    low, high = sorted(axis.get_view_interval())
    return [(t.get_loc(), t.label1.get_text()) for t in axis.get_major_ticks() if low <= t.get_loc() <= high]


@pytest.mark.parametrize("values", [[0.921, 0.935, 0.98], [0.91, 0.99], [0.955, 0.96], [0.4, 0.6], [0.995, 1.0],
                                    [0.0, 1.0]])
def test_percent_tick_labels_say_where_they_are(values):
    """Every label is its tick's value, in percent, exactly: a tick at 92.5% never reads "92%" (the spacing
    needs a decimal), and the labels are all different."""
    fig = Figure()
    ax = fig.subplots()
    ax.plot([0, 1, 2][: len(values)], values)
    P.fitted_percent_axis(ax, values)
    ticks = tick_labels(drawn(fig).axes[0].yaxis)
    assert len(ticks) >= 3
    for loc, text in ticks:
        assert text.endswith("%")
        assert float(text[:-1]) == pytest.approx(100 * loc, abs=1e-9), (loc, text)
    assert len({text for _, text in ticks}) == len(ticks)
    assert len({len(text.split(".")[-1]) if "." in text else 0 for _, text in ticks}) == 1  # one precision per axis


def test_accuracy_plot_in_a_narrow_high_band_labels_its_ticks_exactly():
    """The accuracy lines of a strong model (84-98%, weighted 92.1%, pass@4 98.0%): matplotlib puts a tick every
    2.5%, and the y labels read back from the figure are the tick values to the digit (92.5%, never "92%")."""
    est = lambda v: A.Estimate(v, v, v)  # noqa: E731
    fig = Figure(figsize=(8, 5))
    ax = fig.subplots()
    curves = {"majority": [est(0.84), est(0.88), est(0.90)], "weighted_bon": [est(0.86), est(0.90), est(0.921)],
              "pass_at_n": [est(0.90), est(0.95), est(0.98)]}
    P.accuracy_lines(ax, [1, 2, 4], curves, A.METHOD_LABELS, P.COLORS)
    P.fitted_percent_axis(ax, [e.value for c in curves.values() for e in c])
    ticks = tick_labels(drawn(fig).axes[0].yaxis)
    assert any(abs(100 * loc - round(100 * loc)) > 1e-6 for loc, _ in ticks), "the ticks fall between whole percents"
    assert all(float(text[:-1]) == pytest.approx(100 * loc, abs=1e-9) for loc, text in ticks)


@pytest.mark.parametrize("tokens", [[180.0, 260.0, 340.0], [1200.0, 1350.0], [50.0, 400.0, 5000.0], [300.0]])
def test_token_axis_has_readable_labels_at_any_range(tokens):
    """A log token axis labels at least two ticks inside the data's range (one point: that point), each label
    the tick's value."""
    fig = Figure()
    ax = fig.subplots()
    ax.plot(tokens, np.linspace(0.5, 0.6, len(tokens)), "o")
    P.token_axis(ax, tokens)
    ticks = [(loc, text) for loc, text in tick_labels(drawn(fig).axes[0].xaxis) if text]
    assert len(ticks) >= (1 if len(tokens) == 1 else 2), ticks
    for loc, text in ticks:
        assert float(text.replace(",", "")) == pytest.approx(loc, rel=1e-9)
    assert ax.get_xscale() == "log"
    low, high = ax.get_xlim()
    assert low < min(tokens) and high > max(tokens)


def test_curves_that_meet_at_some_points_are_both_visible():
    """Curves equal everywhere share one line labelled "a = b"; a curve that meets an earlier one at some points
    only is dashed and ringed at those points, so the one beneath still shows."""
    est = lambda v: A.Estimate(v, v, v)  # noqa: E731
    fig = Figure()
    ax = fig.subplots()
    curves = {"majority": [est(0.5), est(0.6), est(0.7)], "naive_bon": [est(0.5), est(0.62), est(0.7)],
              "weighted_bon": [est(0.5), est(0.6), est(0.7)]}
    P.accuracy_lines(ax, [1, 2, 4], curves, A.METHOD_LABELS, P.COLORS, bands=False)
    labelled = {line.get_label(): line for line in ax.get_lines() if not line.get_label().startswith("_")}
    assert set(labelled) == {"majority vote = weighted Best-of-N", "naive Best-of-N"}
    assert labelled["majority vote = weighted Best-of-N"].get_linestyle() == "-"
    assert labelled["naive Best-of-N"].get_linestyle() == "--"
    rings = [line for line in ax.get_lines() if line.get_markerfacecolor() == "none"]
    assert len(rings) == 1 and list(rings[0].get_xdata()) == [1, 4]  # where naive meets the shared line


def test_error_bars_reach_each_interval_exactly():
    """Asymmetric intervals: each bar of the accuracy-vs-temperature plot runs from its low to its high end."""
    from types import SimpleNamespace

    ests = {m: A.Estimate(0.5 + 0.01 * k, 0.3 + 0.01 * k, 0.9) for k, m in enumerate(P.CURVES)}
    an = SimpleNamespace(at_full_n=ests.__getitem__, run=SimpleNamespace(has_greedy=False, n=4))
    ax = P.plot_accuracy_vs_temperature([0.8], [an]).axes[0]
    for container, m in zip(ax.containers, P.CURVES):
        (segment,) = container.lines[2][0].get_segments()
        assert [y for _, y in segment] == pytest.approx([ests[m].low, ests[m].high]), m
