"""The sweep report: ``bestofn sweep``'s runs (one per temperature) compared in ``SWEEP_DIR/report/``.

Each temperature's run is analysed like any run (:mod:`bestofn.report.analysis`) with the same settings; this
module adds what varies with temperature (distinct answers, share of right samples, the best temperature)
and writes the comparison with the shared plots (:mod:`bestofn.report.plots`) and renderer.
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


def find_temperature_runs(sweep_dir: str | Path) -> list[tuple[float, Path]]:
    """The ``temperature-<t>`` run directories of a sweep, by temperature (read from their config.yaml)."""
    found = []
    sweep_dir = Path(sweep_dir)
    if not sweep_dir.is_dir():
        return []
    for child in sweep_dir.iterdir():
        m = _DIR_PATTERN.match(child.name)
        if not (m and child.is_dir()):
            continue
        temperature = float(m.group(1))
        cfg_file = child / "config.yaml"
        if cfg_file.is_file():
            temperature = BestOfNConfig.from_yaml(cfg_file).temperature
        found.append((temperature, child))
    return sorted(found)


# --- Analysis of a sweep ----------------------------------------------------------------------------------------------
@dataclass
class SweepAnalysis:
    """One :class:`bestofn.report.analysis.Analysis` per temperature, plus what varies with temperature."""

    sweep_dir: Path
    temperatures: list[float]
    analyses: list[A.Analysis]
    distinct_answers: list[float]  # mean number of answer groups per problem
    sample_accuracy: list[float]  # share of right samples
    best_vs_worst: A.Comparison | None  # weighted Best-of-N, best vs worst temperature, paired over problems
    greedy_shared: bool  # every temperature has the same greedy answers (one baseline)


def analyze_sweep(
    sweep_dir: str | Path,
    subsets: int = A.DEFAULT_SUBSETS,
    seed: int = A.DEFAULT_SEED,
    bootstrap: int = A.DEFAULT_BOOTSTRAP,
) -> SweepAnalysis:
    """Analyze every temperature run of ``sweep_dir`` with the same settings."""
    runs = find_temperature_runs(sweep_dir)
    if not runs:
        raise BestOfNError(
            f"{sweep_dir} has no temperature-<t> run directories; make them with "
            f"`bestofn sweep --temperatures 0.4,0.8,1.2 --output-dir {sweep_dir}`"
        )
    analyses = [A.analyze(path, subsets=subsets, seed=seed, bootstrap=bootstrap) for _, path in runs]
    ids = [[p.unique_id for p in an.run.problems] for an in analyses]
    same_problems = all(i == ids[0] for i in ids)
    greedy = [[p.greedy_answer for p in an.run.problems] for an in analyses]
    return SweepAnalysis(
        sweep_dir=Path(sweep_dir),
        temperatures=[t for t, _ in runs],
        analyses=analyses,
        distinct_answers=[float(np.mean([p.labels.max() + 1 for p in an.run.problems])) for an in analyses],
        sample_accuracy=[float(np.mean([p.correct.mean() for p in an.run.problems])) for an in analyses],
        best_vs_worst=_best_vs_worst(analyses, seed, bootstrap) if same_problems and len(analyses) > 1 else None,
        greedy_shared=same_problems and all(g == greedy[0] for g in greedy),
    )


def _best_vs_worst(analyses: list[A.Analysis], seed: int, rounds: int) -> A.Comparison:
    """Weighted Best-of-N at full N, best temperature against worst on the shared problems: the problems only one
    of them solved, the exact McNemar p, and the difference with a paired bootstrap interval."""
    values = [an.at_full_n("weighted_bon").value for an in analyses]
    best, worst = analyses[int(np.argmax(values))], analyses[int(np.argmin(values))]
    diff = best.curves.methods["weighted_bon"][-1] - worst.curves.methods["weighted_bon"][-1]
    solved = [{o.unique_id for o in an.outcomes if o.weighted_bon.correct} for an in (best, worst)]
    only_best = [o.unique_id for o in best.outcomes if o.unique_id in solved[0] - solved[1]]
    only_worst = [o.unique_id for o in best.outcomes if o.unique_id in solved[1] - solved[0]]
    return A.Comparison("weighted_bon", "weighted_bon", A.bootstrap_mean(diff, np.random.default_rng([seed, 7]), rounds), only_best, only_worst,
                        A.mcnemar_p(len(only_best), len(only_worst)))


# --- The report -------------------------------------------------------------------------------------------------------
SWEEP_PLOTS = {
    "accuracy_vs_temperature.png": (P.plot_accuracy_vs_temperature, "Accuracy vs temperature"),
    "sweep_accuracy_vs_n.png": (P.plot_sweep_accuracy_vs_n, "Accuracy vs N per temperature"),
}


def sweep_summary(sw: SweepAnalysis) -> list[str]:
    """The written part of the sweep report, computed from the numbers."""
    n = sw.analyses[0].run.n
    weighted = [an.at_full_n("weighted_bon") for an in sw.analyses]
    values = [e.value for e in weighted]
    best, worst = int(np.argmax(values)), int(np.argmin(values))

    def temps(value: float) -> str:  # every temperature that reached ``value`` (ties are named together)
        return "/".join(f"{t:g}" for t, v in zip(sw.temperatures, values) if v == value)

    out = []
    if values[best] == values[worst]:
        line = f"**Best temperature.** Weighted Best-of-{n} was equally accurate at every temperature ({pct(values[best])})."
    else:
        line = (
            f"**Best temperature.** Weighted Best-of-{n} was most accurate at T={temps(values[best])} "
            f"({with_ci(weighted[best])}) and least at T={temps(values[worst])} ({with_ci(weighted[worst])})."
        )
    if sw.best_vs_worst is not None and values[best] != values[worst]:
        c = sw.best_vs_worst
        verdict = "significant at 5%" if c.significant else "not significant at 5%"
        line += (f" Best against worst on the same problems: {c.informative} informative problems (solved at only one "
                 f"of the two temperatures), {len(c.only_a)} won, {len(c.only_b)} lost; exact McNemar p = "
                 f"{c.p_value:.3g}, {verdict}. Difference: {points(c.difference)}.")
    out.append(line)
    out.append(
        "**Gain over greedy per temperature.** "
        + "; ".join(
            f"T={t:g}: {points(an.comparisons['weighted_bon-greedy'].difference)}"
            for t, an in zip(sw.temperatures, sw.analyses)
        )
        + "."
    )
    out.append(
        "**Diversity vs quality.** "
        + "; ".join(
            f"T={t:g}: {d:.1f} distinct answers per problem, {pct(s)} of samples right, pass@{n} {pct(an.at_full_n('pass_at_n').value)}"
            for t, d, s, an in zip(sw.temperatures, sw.distinct_answers, sw.sample_accuracy, sw.analyses)
        )
        + ". Hotter sampling spreads the samples over more answers: the oracle ceiling can rise while each sample is less often right, "
        "and the selection rule must find the right answer among more candidates."
    )
    if sw.greedy_shared:
        out.append(
            f"**Greedy** is one shared baseline (same answers at every temperature): {with_ci(sw.analyses[0].at_full_n('greedy'))}."
        )
    else:
        out.append(
            "**Warning:** the temperature runs do not share one greedy baseline (different problems or greedy answers)."
        )
    return out


def sweep_title(sw: SweepAnalysis) -> str:
    """Models, N, dataset and temperatures (not the folder name)."""
    return f"Temperature sweep ({', '.join(f'{t:g}' for t in sw.temperatures)}) of {R.title(sw.analyses[0])}"


def build_sweep_report(sw: SweepAnalysis, run_report_links: Sequence[str | None]) -> Page:
    """The sweep report: setup, summary, per-temperature table, the two plots, links to each run's report."""
    doc = Page(sweep_title(sw))
    first = sw.analyses[0]
    doc.heading(2, "Setup")
    cfg = first.run.config
    doc.add(bullets(
        [
            f"temperatures: {', '.join(f'{t:g}' for t in sw.temperatures)}",
            f"problems: {len(first.run.problems)}; samples per problem N = {first.run.n}",
            *(
                [f"generator: {code(cfg['generator'])}; PRM: {code(cfg.get('prm', '?'))}"]
                if "generator" in cfg
                else []
            ),
            f"report settings: {first.curves.subsets} subsets per point, seed {first.curves.seed}, {first.bootstrap} bootstrap resamples",
        ]
    ))
    doc.heading(2, "Summary")
    for paragraph in sweep_summary(sw):
        doc.para(paragraph)
    doc.heading(2, f"Accuracy at N={first.run.n} per temperature")
    doc.add(table(
        [
            "temperature",
            *(A.METHOD_LABELS[m] for m in first.methods),
            "distinct answers / problem",
            "right samples",
            "tokens / problem",
            "run report",
        ],
        [
            [
                f"{t:g}",
                *(with_ci(an.at_full_n(m)) for m in first.methods),
                f"{d:.2f}",
                pct(s),
                R.tokens_text(an.mean_tokens[-1] if an.mean_tokens else None),
                link or "-",
            ]
            for t, an, d, s, link in zip(
                sw.temperatures, sw.analyses, sw.distinct_answers, sw.sample_accuracy, run_report_links
            )
        ],
    ))
    doc.heading(2, "Accuracy vs temperature")
    doc.image("accuracy_vs_temperature.png", SWEEP_PLOTS["accuracy_vs_temperature.png"][1])
    doc.heading(2, "Accuracy vs N per temperature")
    doc.image("sweep_accuracy_vs_n.png", SWEEP_PLOTS["sweep_accuracy_vs_n.png"][1])
    return doc


def write_sweep_report(
    sweep_dir: str | Path,
    output_dir: str | Path | None = None,
    subsets: int = A.DEFAULT_SUBSETS,
    seed: int = A.DEFAULT_SEED,
    bootstrap: int = A.DEFAULT_BOOTSTRAP,
    formats: Sequence[str] = ("md", "html"),
    run_reports: bool = True,
) -> list[Path]:
    """Write the sweep report (default ``SWEEP_DIR/report/``) and, with ``run_reports``, each temperature's report
    (in ``temperature-<t>/report/``). The sweep report links every run report that exists."""
    sw = analyze_sweep(sweep_dir, subsets=subsets, seed=seed, bootstrap=bootstrap)
    out_dir = Path(output_dir) if output_dir is not None else Path(sweep_dir) / "report"
    links: list[str | None] = []
    for an in sw.analyses:
        run_report = an.run.run_dir / "report"
        if run_reports:
            R.write_analysis_report(an, run_report, formats)
        found = [fmt for fmt in ("md", "html") if (run_report / f"report.{fmt}").is_file()]
        links.append(
            " / ".join(f"[{fmt}]({_relative(run_report / f'report.{fmt}', out_dir)})" for fmt in found) or None
        )
    figures = {name: plot(sw.temperatures, sw.analyses) for name, (plot, _) in SWEEP_PLOTS.items()}
    return write_page(build_sweep_report(sw, links), figures, out_dir, formats)


def _relative(target: Path, start: Path) -> str:
    """``target`` as a path relative to ``start`` (links in the report keep working when the sweep is moved)."""
    return Path(os.path.relpath(target.resolve(), start.resolve())).as_posix()


