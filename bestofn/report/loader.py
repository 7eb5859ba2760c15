"""Reading a finished run directory: the one loader that report, compare, sweep and the Hub upload start from.

Finished: every file is there with the sha256 that ``manifest.json`` records (an edited one is refused, with the
command that rebuilds it), and the files describe the same problems.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .. import __version__
from ..config import BestOfNConfig
from ..errors import BestOfNError
from ..io import read_json, read_jsonl
from ..prm.formats import LINE
from ..rundir import FILES, edited_files, read_manifest


def finish_hint(run_dir: str | Path) -> str:
    """How to complete (or rebuild) a run directory: its own config.yaml reuses every finished chunk."""
    return f"finish the run with `bestofn run --config {Path(run_dir) / 'config.yaml'} --output-dir {run_dir}`"


@dataclass
class Run:
    """A finished run directory, read and checked: the one view report, sweep, compare and the Hub start from."""

    run_dir: Path
    config: BestOfNConfig
    problems: list[dict[str, Any]]  # problems.jsonl, in run order
    greedy: dict[str, dict[str, Any]]  # by unique_id (empty: imported completions without a greedy solution)
    samples: dict[str, list[dict[str, Any]]]  # by unique_id, sorted by sample_index: 0..k-1, k <= config.n each
    results: dict[str, Any]
    bestofn_version: str
    model_commits: dict[str, str | None] = field(default_factory=dict)  # role -> Hub commit used
    step_separator: str = LINE  # how the prompt asked for steps to be separated
    imported_from: dict[str, Any] | None = None  # `bestofn import`: where the completions came from

    @property
    def n(self) -> int:
        return self.config.n


def load_run(run_dir: str | Path) -> Run:
    """Check that ``run_dir`` is a finished run, read every file, and check they describe the same problems.
    Raises :class:`BestOfNError` naming the file and the fix when anything is missing, edited or off."""
    run_dir = Path(run_dir)
    hint = finish_hint(run_dir)
    from ..bench.processbench import is_bench_dir

    if is_bench_dir(run_dir):
        raise BestOfNError(f"{run_dir} holds `bestofn prm-bench` results, not a run: its report is "
                           f"{run_dir / 'report.html'} (`bestofn report {run_dir}` writes it again)")
    if run_dir.is_file():
        raise BestOfNError(f"{run_dir} is a file, not a run directory; pass the folder that holds it: {run_dir.parent}")
    if not run_dir.is_dir():
        raise BestOfNError(f"run directory {run_dir} does not exist; create it with `bestofn run --output-dir {run_dir}`")
    wanted = ["config.yaml", "manifest.json", FILES["problems"], FILES["greedy"], FILES["samples"], FILES["results"]]
    absent = [f for f in wanted if not (run_dir / f).is_file()]
    if absent:
        if not (run_dir / "config.yaml").is_file():
            hint = f"create it with `bestofn run --output-dir {run_dir}`"
        raise BestOfNError(f"{run_dir} is not a finished run directory (missing {', '.join(absent)}); {hint}")
    manifest = read_manifest(run_dir)
    edited = edited_files(run_dir, manifest)
    if edited:
        raise BestOfNError(f"{run_dir / edited[0]} was changed after the run wrote it (its sha256 differs from "
                           f"manifest.json); {hint} to rebuild it from its chunks")
    config = BestOfNConfig.from_yaml(run_dir / "config.yaml")
    samples: dict[str, list[dict[str, Any]]] = {}
    for row in sorted(read_jsonl(run_dir / FILES["samples"]), key=lambda r: r["sample_index"]):  # stable
        samples.setdefault(row["unique_id"], []).append(row)
    run = Run(run_dir, config, read_jsonl(run_dir / FILES["problems"]),
              {r["unique_id"]: r for r in read_jsonl(run_dir / FILES["greedy"])}, samples,
              read_json(run_dir / FILES["results"]), manifest.get("bestofn_version", __version__),
              {role: m.get("commit") for role, m in manifest.get("models", {}).items()},
              manifest.get("step_separator") or LINE, manifest.get("imported_from"))
    _check_consistent(run, hint)
    return run


def _check_consistent(run: Run, hint: str) -> None:
    """Every problem has its greedy solution (unless none was imported), N scored samples and a results entry."""
    per_problem = {p["unique_id"]: p for p in run.results.get("per_problem", [])}
    if not run.problems:
        raise BestOfNError(f"{run.run_dir / FILES['problems']} has no problems; {hint}")
    for p in run.problems:
        uid = p["unique_id"]
        if run.greedy and uid not in run.greedy:
            raise BestOfNError(f"{run.run_dir / FILES['greedy']} has no entry for problem {uid!r}; {hint}")
        if uid not in per_problem:
            raise BestOfNError(f"{run.run_dir / FILES['results']} has no entry for problem {uid!r}; {hint}")
        rows = run.samples.get(uid, [])
        # results.json records how many samples each problem used (runs from before it did: all n)
        used = per_problem[uid].get("samples_used", run.n)
        if not whole_samples([s["sample_index"] for s in rows], used) or any("step_rewards" not in s for s in rows):
            raise BestOfNError(f"{run.run_dir / FILES['samples']} lacks scored samples 0..{used - 1} (samples_used in "
                               f"results.json, at most n in config.yaml) of problem {uid!r}; {hint}")


def whole_samples(indices: list[int], k: int) -> bool:
    """Whether a problem's ``sample_index`` values (sorted) are exactly 0..k-1: k = n, or fewer where adaptive
    Best-of-N stopped early or a search's pool merged duplicates (results.json records k). A gap, a repeat or a
    missing last sample is a damaged file."""
    return k >= 1 and indices == list(range(k))
