"""``bestofn sweep``: the Best-of-N experiment at several sampling temperatures, and a report comparing them.

Temperature trades diversity for quality: hotter sampling finds more distinct answers (a higher pass@N
ceiling) but fewer of the samples are right. The sweep runs the pipeline once per temperature into
``SWEEP_DIR/temperature-<t>/``. The greedy baseline does not depend on temperature (its chunks' names leave
it out), so it is computed once, by the first temperature's run, and its chunks are copied to the others;
a rerun of the same sweep reuses every finished chunk. Each temperature gets its own report
(``temperature-<t>/report/``) and the sweep gets one comparing them (``SWEEP_DIR/report/``), written by
:mod:`bestofn.report.sweep_report`; this module only orchestrates the runs.
"""

from __future__ import annotations

import dataclasses
import logging
import math
from collections.abc import Callable, Sequence
from pathlib import Path

from .config import BestOfNConfig
from .errors import BestOfNError

log = logging.getLogger(__name__)

SHARED_STAGE = "greedy"  # the stage whose chunks do not depend on the temperature

RunFn = Callable[..., dict]  # bestofn.pipeline.run(config, overwrite=False) -> results


def temperature_dir(sweep_dir: str | Path, temperature: float) -> Path:
    """``SWEEP_DIR/temperature-0.8``: ``%g`` keeps the name short and stable (0.8, not 0.8000000000000002)."""
    return Path(sweep_dir) / f"temperature-{temperature:g}"


def parse_temperatures(text: str) -> list[float]:
    """``"0.4,0.8,1.2"`` -> ``[0.4, 0.8, 1.2]``: positive, distinct, in the given order."""
    try:
        temps = [float(t) for t in text.split(",")]
    except ValueError:
        raise BestOfNError(
            f"--temperatures must be numbers separated by commas, e.g. 0.4,0.8,1.2; got {text!r}"
        ) from None
    if not all(math.isfinite(t) and t > 0 for t in temps):  # nan and inf too: `nan <= 0` is false
        raise BestOfNError(f"--temperatures must be positive, finite numbers (greedy is run anyway), e.g. 0.4,0.8,1.2; got {text!r}")
    if len({f"{t:g}" for t in temps}) != len(temps):
        raise BestOfNError(f"--temperatures has duplicates: {text!r}")
    return temps


def run_sweep(
    config: BestOfNConfig,
    temperatures: Sequence[float],
    run_fn: RunFn | None = None,
) -> list[Path]:
    """Run the pipeline at each temperature, sharing the greedy baseline; return the run directories.

    ``config.output_dir`` is the sweep directory. ``run_fn`` defaults to :func:`bestofn.pipeline.run` (tests
    pass one with scripted models).
    """
    from .rundir import share_chunks

    if run_fn is None:
        from .pipeline import run as run_fn  # imported late: pipeline loads torch and the generation stack
    sweep_dir = Path(config.output_dir)
    # Every run's settings are checked before the first run starts: a bad temperature must not wait for hours.
    configs = [dataclasses.replace(config, temperature=float(parse_temperatures(str(t))[0]),
                                   output_dir=str(temperature_dir(sweep_dir, t))) for t in temperatures]
    run_dirs: list[Path] = []
    for t, run_config in zip(temperatures, configs):
        if run_dirs:  # the first run computed greedy; the others copy its chunks
            copied = share_chunks(run_dirs[0], run_config.output_dir, SHARED_STAGE)
            log.info("temperature %g: %d greedy chunks shared from %s", t, copied, run_dirs[0])
        log.info("temperature %g: running into %s", t, run_config.output_dir)
        run_fn(run_config, overwrite=False)
        run_dirs.append(Path(run_config.output_dir))
    return run_dirs
