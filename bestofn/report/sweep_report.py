"""``bestofn sweep``'s runs (one per temperature) side by side in ``SWEEP_DIR/report/``.

Each temperature's run is analysed like any run; this adds what varies with temperature: distinct answers,
share of right samples, and the best temperature against the worst.
"""

from __future__ import annotations

import os
import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..config import BestOfNConfig
from ..errors import BestOfNError
from . import analysis as A
from . import plots as P
from . import run_report as R
from .render import Page, bullets, code, table, write_page
from .run_report import pct, points, with_ci

_DIR_PATTERN = re.compile(r"^temperature-(\d+(?:\.\d+)?)$")
SWEEP_PLOTS = {
    "accuracy_vs_temperature.png": (P.plot_accuracy_vs_temperature, "Accuracy vs temperature"),
    "sweep_accuracy_vs_n.png": (P.plot_sweep_accuracy_vs_n, "Accuracy vs N per temperature"),
}


def find_temperature_runs(sweep_dir: str | Path) -> list[tuple[float, Path]]:
    """The ``temperature-<t>`` run directories of a sweep, by temperature (read from their config.yaml)."""
    sweep_dir, found = Path(sweep_dir), []
    for child in sweep_dir.iterdir() if sweep_dir.is_dir() else []:
        m = _DIR_PATTERN.match(child.name)
        if m and child.is_dir():
            cfg_file = child / "config.yaml"
            found.append((BestOfNConfig.from_yaml(cfg_file).temperature if cfg_file.is_file() else float(m.group(1)),
                          child))
    return sorted(found)


@dataclass
class SweepAnalysis:
    """One :class:`~bestofn.report.analysis.Analysis` per temperature, plus what varies with temperature."""

    sweep_dir: Path
    temperatures: list[float]
    analyses: list[A.Analysis]
    distinct_answers: list[float]  # mean number of answer groups per problem
    sample_accuracy: list[float]  # share of right samples
    best_vs_worst: A.Comparison | None  # weighted Best-of-N, best vs worst temperature, paired over problems
    greedy_shared: bool  # every temperature has the same greedy answers (one baseline)


def analyze_sweep(sweep_dir: str | Path, subsets: int = A.DEFAULT_SUBSETS, seed: int = A.DEFAULT_SEED,
                  bootstrap: int = A.DEFAULT_BOOTSTRAP) -> SweepAnalysis:
    """Analyze every temperature run of ``sweep_dir`` with the same settings."""
    runs = find_temperature_runs(sweep_dir)
    if not runs:
        raise BestOfNError(f"{sweep_dir} has no temperature-<t> run directories; make them with "
                           f"`bestofn sweep --temperatures 0.4,0.8,1.2 --output-dir {sweep_dir}`")
    analyses = [A.analyze(path, subsets=subsets, seed=seed, bootstrap=bootstrap) for _, path in runs]
    ids = [[p.unique_id for p in an.run.problems] for an in analyses]
    same_problems = all(i == ids[0] for i in ids)
    greedy = [[p.greedy_answer for p in an.run.problems] for an in analyses]
    return SweepAnalysis(
        Path(sweep_dir), [t for t, _ in runs], analyses,
        distinct_answers=[float(np.mean([p.labels.max() + 1 for p in an.run.problems])) for an in analyses],
        sample_accuracy=[float(np.mean([p.correct.mean() for p in an.run.problems])) for an in analyses],
        best_vs_worst=_best_vs_worst(analyses, seed, bootstrap) if same_problems and len(analyses) > 1 else None,
        greedy_shared=same_problems and all(g == greedy[0] for g in greedy))


def _best_vs_worst(analyses: list[A.Analysis], seed: int, rounds: int) -> A.Comparison:
    """Weighted Best-of-N at full N, best temperature against worst, paired over the shared problems."""
    values = [an.at_full_n("weighted_bon").value for an in analyses]
    best, worst = analyses[int(np.argmax(values))], analyses[int(np.argmin(values))]
    diff = best.curves.methods["weighted_bon"][-1] - worst.curves.methods["weighted_bon"][-1]
    solved = [{o.unique_id for o in an.outcomes if o.weighted_bon.correct} for an in (best, worst)]
    only_best = [o.unique_id for o in best.outcomes if o.unique_id in solved[0] - solved[1]]
    only_worst = [o.unique_id for o in best.outcomes if o.unique_id in solved[1] - solved[0]]
    difference = A.bootstrap_mean(diff, np.random.default_rng([seed, 7]), rounds)
    return A.Comparison("weighted_bon", "weighted_bon", difference, only_best, only_worst,
                        A.mcnemar_p(len(only_best), len(only_worst)))


def sweep_summary(sw: SweepAnalysis) -> list[str]:
    """The written part of the sweep report, computed from the numbers."""
    n = sw.analyses[0].run.n
    weighted = [an.at_full_n("weighted_bon") for an in sw.analyses]
    values = [e.value for e in weighted]
    best, worst = int(np.argmax(values)), int(np.argmin(values))

    def temps(value: float) -> str:  # every temperature that reached ``value`` (ties are named together)
        return "/".join(f"{t:g}" for t, v in zip(sw.temperatures, values) if v == value)

    line = f"**Best temperature.** Weighted Best-of-{n} was "
    if values[best] == values[worst]:
        line += f"equally accurate at every temperature ({pct(values[best])})."
    else:
        line += (f"most accurate at T={temps(values[best])} "
                 f"({with_ci(weighted[best])}) and least at T={temps(values[worst])} ({with_ci(weighted[worst])}).")
    if (c := sw.best_vs_worst) is not None and values[best] != values[worst]:
        line += (f" Best against worst on the same problems: {c.informative} informative problems (solved at only one "
                 f"of the two temperatures), {len(c.only_a)} won, {len(c.only_b)} lost; exact McNemar p = "
                 f"{c.p_value:.3g}, {'' if c.significant else 'not '}significant at 5%. "
                 f"Difference: {points(c.difference)}.")
    gains = "; ".join(f"T={t:g}: {points(an.comparisons['weighted_bon-greedy'].difference)}"
                      for t, an in zip(sw.temperatures, sw.analyses))
    diversity = "; ".join(f"T={t:g}: {d:.1f} distinct answers per problem, {pct(s)} of samples right, "
                          f"pass@{n} {pct(an.at_full_n('pass_at_n').value)}" for t, d, s, an
                          in zip(sw.temperatures, sw.distinct_answers, sw.sample_accuracy, sw.analyses))
    return [line, f"**Gain over greedy per temperature.** {gains}.",
            f"**Diversity vs quality.** {diversity}. Hotter sampling spreads the samples over more answers: the oracle "
            "ceiling can rise while each sample is less often right, and the selection rule must find the right "
            "answer among more candidates.",
            f"**Greedy** is one shared baseline (same answers at every temperature): "
            f"{with_ci(sw.analyses[0].at_full_n('greedy'))}." if sw.greedy_shared else
            "**Warning:** the temperature runs do not share one greedy baseline (different problems or greedy "
            "answers)."]


def build_sweep_report(sw: SweepAnalysis, run_report_links: Sequence[str | None]) -> Page:
    """The sweep report: setup, summary, per-temperature table, the two plots, links to each run's report."""
    temperatures = ", ".join(f"{t:g}" for t in sw.temperatures)
    doc, first = Page(f"Temperature sweep ({temperatures}) of {R.title(sw.analyses[0])}"), sw.analyses[0]
    cfg = first.run.config
    doc.heading(2, "Setup")
    doc.add(bullets([
        f"temperatures: {temperatures}",
        f"problems: {len(first.run.problems)}; samples per problem N = {first.run.n}",
        *([f"generator: {code(cfg['generator'])}; PRM: {code(cfg.get('prm', '?'))}"] if "generator" in cfg else []),
        f"report settings: {first.curves.subsets} subsets per point, seed {first.curves.seed}, "
        f"{first.bootstrap} bootstrap resamples"]))
    doc.heading(2, "Summary")
    for paragraph in sweep_summary(sw):
        doc.para(paragraph)
    doc.heading(2, f"Accuracy at N={first.run.n} per temperature")
    doc.add(table(
        ["temperature", *(A.METHOD_LABELS[m] for m in first.methods), "distinct answers / problem", "right samples",
         "tokens / problem", "run report"],
        [[f"{t:g}", *(with_ci(an.at_full_n(m)) for m in first.methods), f"{d:.2f}", pct(s),
          R.tokens_text(an.mean_tokens[-1] if an.mean_tokens else None), link or "-"]
         for t, an, d, s, link in zip(sw.temperatures, sw.analyses, sw.distinct_answers, sw.sample_accuracy,
                                      run_report_links)]))
    for name, (_, caption) in SWEEP_PLOTS.items():
        doc.heading(2, caption)
        doc.image(name, caption)
    return doc


def write_sweep_report(sweep_dir: str | Path, output_dir: str | Path | None = None, subsets: int = A.DEFAULT_SUBSETS,
                       seed: int = A.DEFAULT_SEED, bootstrap: int = A.DEFAULT_BOOTSTRAP,
                       formats: Sequence[str] = ("md", "html"), run_reports: bool = True) -> list[Path]:
    """Write the sweep report (default ``SWEEP_DIR/report/``) and, with ``run_reports``, each temperature's report
    (in ``temperature-<t>/report/``). The sweep report links every run report that exists."""
    sw = analyze_sweep(sweep_dir, subsets=subsets, seed=seed, bootstrap=bootstrap)
    out_dir = Path(output_dir) if output_dir is not None else Path(sweep_dir) / "report"
    links: list[str | None] = []
    for an in sw.analyses:
        run_report = an.run.run_dir / "report"
        if run_reports:
            R.write_analysis_report(an, run_report, formats)
        # relative links keep working when the sweep is moved
        links.append(" / ".join(f"[{fmt}]({Path(os.path.relpath(page.resolve(), out_dir.resolve())).as_posix()})"
                                for fmt in ("md", "html") if (page := run_report / f"report.{fmt}").is_file()) or None)
    figures = {name: plot(sw.temperatures, sw.analyses) for name, (plot, _) in SWEEP_PLOTS.items()}
    return write_page(build_sweep_report(sw, links), figures, out_dir, formats)
