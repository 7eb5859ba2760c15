"""``bestofn sweep``: the Best-of-N experiment at several sampling temperatures, and a report comparing them.

Temperature trades diversity for quality: hotter sampling finds more distinct answers (a higher pass@N
ceiling) but fewer of the samples are right. The sweep runs the pipeline once per temperature into
``SWEEP_DIR/temperature-<t>/``. Problems and the greedy baseline do not depend on temperature (their stage
fingerprints leave it out), so they are computed once, by the first temperature's run, and imported by
the others; a rerun of the same sweep reuses every finished stage. Each temperature gets its own report
(``temperature-<t>/report/``) and the sweep gets one comparing them (``SWEEP_DIR/report/``).
"""

from __future__ import annotations

import dataclasses
import logging
import os
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from matplotlib import colormaps
from matplotlib.figure import Figure

from .report import analysis as A
from .report import run_report as R
from .config import BestOfNConfig
from .errors import BestOfNError

log = logging.getLogger(__name__)

SHARED_STAGES = ("problems", "greedy")  # stages whose fingerprints do not include the temperature
_DIR_PATTERN = re.compile(r"^temperature-(\d+(?:\.\d+)?)$")

RunFn = Callable[..., dict]  # bestofn.pipeline.run(config, overwrite=False) -> results
ImportFn = Callable[..., list]  # bestofn.rundir.import_stages(src_dir, config, stages=...) -> imported stages


def temperature_dir(sweep_dir: str | Path, temperature: float) -> Path:
    """``SWEEP_DIR/temperature-0.8``: ``%g`` keeps the name short and stable (0.8, not 0.8000000000000002)."""
    return Path(sweep_dir) / f"temperature-{temperature:g}"


def parse_temperatures(text: str) -> list[float]:
    """``"0.4,0.8,1.2"`` -> ``[0.4, 0.8, 1.2]``: positive, distinct, in the given order."""
    try:
        temps = [float(t) for t in text.split(",") if t.strip()]
    except ValueError:
        raise BestOfNError(
            f"--temperatures must be numbers separated by commas, e.g. 0.4,0.8,1.2; got {text!r}"
        ) from None
    if not temps or any(t <= 0 for t in temps):
        raise BestOfNError(f"--temperatures must be positive (greedy is run anyway), e.g. 0.4,0.8,1.2; got {text!r}")
    if len({f"{t:g}" for t in temps}) != len(temps):
        raise BestOfNError(f"--temperatures has duplicates: {text!r}")
    return temps


def run_sweep(
    config: BestOfNConfig,
    temperatures: Sequence[float],
    run_fn: RunFn | None = None,
    import_fn: ImportFn | None = None,
) -> list[Path]:
    """Run the pipeline at each temperature, sharing problems and greedy; return the run directories.

    ``config.output_dir`` is the sweep directory. ``run_fn`` and ``import_fn`` default to
    :func:`bestofn.pipeline.run` and :func:`bestofn.rundir.import_stages` (injectable for tests).
    """
    if run_fn is None or import_fn is None:
        from . import pipeline, rundir  # imported late: pipeline loads torch and the generation stack

        run_fn = run_fn or pipeline.run
        import_fn = import_fn or rundir.import_stages
    sweep_dir = Path(config.output_dir)
    run_dirs: list[Path] = []
    for t in temperatures:
        run_config = dataclasses.replace(config, temperature=float(t), output_dir=str(temperature_dir(sweep_dir, t)))
        if run_dirs:  # the first run computed problems and greedy; the others copy them (fingerprints checked)
            imported = import_fn(run_dirs[0], run_config, stages=SHARED_STAGES)
            log.info("temperature %g: imported %s from %s", t, ", ".join(imported) or "nothing", run_dirs[0])
        log.info("temperature %g: running into %s", t, run_config.output_dir)
        run_fn(run_config, overwrite=False)
        run_dirs.append(Path(run_config.output_dir))
    return run_dirs


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


# --------------------------------------------------------------------------------------------------------
# Analysis of a sweep
# --------------------------------------------------------------------------------------------------------
@dataclass
class SweepAnalysis:
    """One :class:`bestofn.report.analysis.Analysis` per temperature, plus what varies with temperature."""

    sweep_dir: Path
    temperatures: list[float]
    analyses: list[A.Analysis]
    distinct_answers: list[float]  # mean number of answer groups per problem
    sample_accuracy: list[float]  # share of right samples
    best_vs_worst: A.Estimate | None  # weighted Best-of-N, best minus worst temperature, paired over problems
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


def _best_vs_worst(analyses: list[A.Analysis], seed: int, rounds: int) -> A.Estimate:
    """Weighted Best-of-N at full N: best temperature minus worst, bootstrapped over the shared problems."""
    values = [an.at_full_n("weighted_bon").value for an in analyses]
    best, worst = int(np.argmax(values)), int(np.argmin(values))
    diff = analyses[best].curves.methods["weighted_bon"][-1] - analyses[worst].curves.methods["weighted_bon"][-1]
    reps = A.bootstrap_means(diff[None, :], np.random.default_rng([seed, 7]), rounds)[0]
    return A.estimate(diff.mean(), reps)


# --------------------------------------------------------------------------------------------------------
# Plots and report
# --------------------------------------------------------------------------------------------------------
def _temperature_colors(temps: Sequence[float]) -> list:
    cmap = colormaps["plasma"]  # cold (blue) to hot (yellow); its light end is cut so every line shows on white
    return [cmap(x) for x in np.linspace(0.0, 0.8, len(temps))] if len(temps) > 1 else [cmap(0.4)]


def plot_sweep_accuracy_vs_n(sw: SweepAnalysis) -> Figure:
    """Accuracy vs N, one panel per method, one line (with its 95% band) per temperature."""
    fig = Figure(figsize=(11, 8))
    axes = fig.subplots(2, 2, sharey=True).ravel()
    greedy = sw.analyses[0].at_full_n("greedy")
    for ax, method in zip(axes, ("majority", "naive_bon", "weighted_bon", "pass_at_n")):
        ax.axhline(greedy.value, color=R.COLORS["greedy"], ls="--", label=f"greedy ({R.pct(greedy.value)})")
        for t, an, color in zip(sw.temperatures, sw.analyses, _temperature_colors(sw.temperatures)):
            ests = an.accuracy[method]
            ax.plot(an.ns, [e.value for e in ests], "-o", ms=4, color=color, label=f"T={t:g}")
            ax.fill_between(an.ns, [e.low for e in ests], [e.high for e in ests], color=color, alpha=0.12, lw=0)
        R._n_axis(ax, sw.analyses[-1].ns)
        R._percent_axis(ax)
        ax.set_title(A.METHOD_LABELS[method], fontsize=10)
        ax.legend(fontsize=7, loc="lower right")
    fig.suptitle("Accuracy vs N at each sampling temperature (bands: 95% bootstrap CI over problems)", fontsize=11)
    fig.tight_layout()
    return fig


def plot_accuracy_vs_temperature(sw: SweepAnalysis) -> Figure:
    """Accuracy at full N against temperature for every method; greedy is one line (it has no temperature)."""
    fig = Figure(figsize=(8, 5))
    ax = fig.subplots()
    greedy = sw.analyses[0].at_full_n("greedy")
    ax.axhline(greedy.value, color=R.COLORS["greedy"], ls="--", label=f"greedy ({R.pct(greedy.value)})")
    ax.axhspan(greedy.low, greedy.high, color=R.COLORS["greedy"], alpha=0.07, lw=0)
    for k, method in enumerate(("pass_at_n", *A.SELECTION_METHODS)):
        ests = [an.at_full_n(method) for an in sw.analyses]
        xs = np.array(sw.temperatures) + (k - 1.5) * 0.012 * (
            max(sw.temperatures) - min(sw.temperatures) or 1
        )  # dodge bars
        err = np.array([[e.value - e.low for e in ests], [e.high - e.value for e in ests]])
        ax.errorbar(
            xs,
            [e.value for e in ests],
            yerr=err,
            fmt=":s" if method == "pass_at_n" else "-o",
            ms=5,
            capsize=3,
            color=R.COLORS[method],
            label=A.METHOD_LABELS[method],
        )
    ax.set_xticks(sw.temperatures, [f"{t:g}" for t in sw.temperatures])
    ax.set_xlabel("sampling temperature")
    ax.set_ylabel(f"accuracy at N={sw.analyses[0].run.n}")
    R._percent_axis(ax)
    ax.legend(fontsize=8, loc="lower left")
    ax.set_title("Accuracy vs temperature (error bars: 95% bootstrap CI over problems)", fontsize=10)
    return fig


SWEEP_PLOTS = {
    "sweep_accuracy_vs_n.png": (plot_sweep_accuracy_vs_n, "Accuracy vs N per temperature"),
    "accuracy_vs_temperature.png": (plot_accuracy_vs_temperature, "Accuracy vs temperature"),
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
        line = f"**Best temperature.** Weighted Best-of-{n} was equally accurate at every temperature ({R.pct(values[best])})."
    else:
        line = (
            f"**Best temperature.** Weighted Best-of-{n} was most accurate at T={temps(values[best])} "
            f"({R.with_ci(weighted[best])}) and least at T={temps(values[worst])} ({R.with_ci(weighted[worst])})."
        )
    if sw.best_vs_worst is not None and values[best] != values[worst]:
        noise = "larger than" if sw.best_vs_worst.low > 0 else "within"
        line += f" Best minus worst, paired over the same problems: {R.points(sw.best_vs_worst)}, {noise} problem-sampling noise."
    out.append(line)
    out.append(
        "**Gain over greedy per temperature.** "
        + "; ".join(
            f"T={t:g}: {R.points(an.comparisons['weighted_bon-greedy'].difference)}"
            for t, an in zip(sw.temperatures, sw.analyses)
        )
        + "."
    )
    out.append(
        "**Diversity vs quality.** "
        + "; ".join(
            f"T={t:g}: {d:.1f} distinct answers per problem, {R.pct(s)} of samples right, pass@{n} {R.pct(an.at_full_n('pass_at_n').value)}"
            for t, d, s, an in zip(sw.temperatures, sw.distinct_answers, sw.sample_accuracy, sw.analyses)
        )
        + ". Hotter sampling spreads the samples over more answers: the oracle ceiling can rise while each sample is less often right, "
        "and the selection rule must find the right answer among more candidates."
    )
    if sw.greedy_shared:
        out.append(
            f"**Greedy** is one shared baseline (same answers at every temperature): {R.with_ci(sw.analyses[0].at_full_n('greedy'))}."
        )
    else:
        out.append(
            "**Warning:** the temperature runs do not share one greedy baseline (different problems or greedy answers)."
        )
    return out


def build_sweep_report(sw: SweepAnalysis, run_report_links: Sequence[str | None]) -> R.Doc:
    """The sweep report: setup, summary, per-temperature table, the two plots, links to each run's report."""
    doc = R.Doc()
    first = sw.analyses[0]
    doc.heading(1, f"Temperature sweep: {sw.sweep_dir.resolve().name}")
    doc.heading(2, "Setup")
    cfg = first.run.config
    doc.bullets(
        [
            f"temperatures: {', '.join(f'{t:g}' for t in sw.temperatures)}",
            f"problems: {len(first.run.problems)}; samples per problem N = {first.run.n}",
            *(
                [f"generator: {R.code(cfg['generator'])}; PRM: {R.code(cfg.get('prm', '?'))}"]
                if "generator" in cfg
                else []
            ),
            f"report settings: {first.curves.subsets} subsets per point, seed {first.curves.seed}, {first.bootstrap} bootstrap resamples",
        ]
    )
    doc.heading(2, "Summary")
    for paragraph in sweep_summary(sw):
        doc.para(paragraph)
    doc.heading(2, f"Accuracy at N={first.run.n} per temperature")
    doc.table(
        [
            "temperature",
            *(A.METHOD_LABELS[m] for m in A.METHODS),
            "distinct answers / problem",
            "right samples",
            "tokens / problem",
            "run report",
        ],
        [
            [
                f"{t:g}",
                *(R.with_ci(an.at_full_n(m)) for m in A.METHODS),
                f"{d:.2f}",
                R.pct(s),
                f"{an.mean_tokens[-1]:,.0f}",
                link or "-",
            ]
            for t, an, d, s, link in zip(
                sw.temperatures, sw.analyses, sw.distinct_answers, sw.sample_accuracy, run_report_links
            )
        ],
    )
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
    figures = {name: plot(sw) for name, (plot, _) in SWEEP_PLOTS.items()}
    title = f"Temperature sweep: {Path(sweep_dir).resolve().name}"
    return R.render(build_sweep_report(sw, links), figures, out_dir, title, formats)


def _relative(target: Path, start: Path) -> str:
    """``target`` as a path relative to ``start`` (links in the report keep working when the sweep is moved)."""
    return Path(os.path.relpath(target.resolve(), start.resolve())).as_posix()
