"""The run directory: where every artifact of a run lives, and what a rerun may trust.

``manifest.json`` records, for each finished stage, the fingerprint of the settings it was computed with.
A rerun skips a stage whose fingerprint is unchanged; a stage killed midway resumes from its journal in
``.partial/``; a changed setting recomputes exactly the stages that depend on it, and only when the user
says so (``overwrite``), never silently. Every reader of a finished run directory (report, sweep, Hub
upload) reads it with :func:`load_run`, which checks it with :func:`check_finished` first.
"""

from __future__ import annotations

import logging
import shutil
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from . import __version__
from .config import STAGES, BestOfNConfig, stage_keys
from .errors import BestOfNError
from .io import Journal, atomic_write_text, read_json, read_jsonl, write_json

log = logging.getLogger(__name__)

ARTIFACTS = {"problems": "problems.jsonl", "greedy": "greedy.jsonl", "samples": "samples.jsonl",
             "scores": "samples.jsonl", "results": "results.json"}

class RunDir:
    """A run directory: artifacts, the manifest of finished stages, and journals of unfinished ones."""

    def __init__(self, path: str | Path, config: BestOfNConfig, created: Path | None = None):
        self.path = Path(path)
        self.config = config
        self.created = created  # the outermost folder that prepare_run_dir made, if it made one

    def discard_if_unfinished(self) -> None:
        """Remove the folder this run created if no stage finished in it: a failed first try leaves nothing."""
        if self.created is not None and not self.manifest():
            shutil.rmtree(self.created, ignore_errors=True)

    def file(self, stage: str) -> Path:
        return self.path / ARTIFACTS[stage]

    def _manifest_doc(self) -> dict[str, Any]:
        path = self.path / "manifest.json"
        return read_json(path) if path.exists() else {"stages": {}}

    def _write_manifest(self, **changes: Any) -> None:
        doc = {**self._manifest_doc(), "bestofn_version": __version__, **changes}
        write_json(self.path / "manifest.json", doc)

    def manifest(self) -> dict[str, str]:
        """Finished stages and their fingerprints."""
        return self._manifest_doc().get("stages", {})

    def is_done(self, stage: str) -> bool:
        return self.manifest().get(stage) == self.config.fingerprint(stage) and self.file(stage).exists()

    def mark_done(self, stage: str) -> None:
        self._write_manifest(stages={**self.manifest(), stage: self.config.fingerprint(stage)})
        self.journal(stage).remove()

    def invalidate(self, stage: str) -> None:
        """Forget ``stage`` and every later stage before recomputing it (they were built on the old one)."""
        later = STAGES[STAGES.index(stage):]
        self._write_manifest(stages={k: v for k, v in self.manifest().items() if k not in later})

    def record_model(self, role: str, name: str, commit: str | None) -> None:
        """Remember which model (and, for a Hub id, which commit) produced this run's results."""
        models = {**self._manifest_doc().get("models", {}), role: {"name": name, "commit": commit}}
        self._write_manifest(models=models)

    def journal(self, stage: str) -> Journal:
        return Journal(self.path / ".partial" / f"{stage}-{self.config.fingerprint(stage)}.jsonl")


def prepare_run_dir(config: BestOfNConfig, overwrite: bool) -> RunDir:
    """Create the run directory, refuse to mix settings in it, and save the resolved config."""
    path = Path(config.output_dir)
    created = next((p for p in reversed([path, *path.parents]) if not p.exists()), None)
    try:
        path.mkdir(parents=True, exist_ok=True)
        probe = path / ".write-test"
        probe.write_text("")
        probe.unlink()
    except OSError as e:
        raise BestOfNError(f"cannot write to output directory {path} ({e.strerror}); choose another --output-dir") from None
    run_dir = RunDir(path, config, created)
    previous = path / "config.yaml"
    if previous.exists():
        old = BestOfNConfig.from_yaml(previous)
        stale = [s for s in run_dir.manifest() if old.fingerprint(s) != config.fingerprint(s)]
        keys = set().union(*(stage_keys(s) for s in stale))
        changed = sorted(k for k in keys if getattr(old, k) != getattr(config, k))
        if stale and not overwrite:
            diff = ", ".join(f"{k}: {getattr(old, k)!r} -> {getattr(config, k)!r}" for k in changed)
            raise BestOfNError(
                f"{path} holds results made with other settings ({diff}); use a new --output-dir, or pass "
                f"--overwrite to recompute the stages they affect ({', '.join(stale)})"
            )
        for stage in STAGES:  # with --overwrite: drop the first stale stage and everything after it
            if stage in stale:
                log.warning("settings changed (%s): recomputing from stage %r", ", ".join(changed), stage)
                run_dir.invalidate(stage)
                break
        if stale and (path / "report").is_dir():  # it describes the old settings
            shutil.rmtree(path / "report")
            log.warning("removed the report of the old settings (%s); `bestofn report %s` writes a new one", path / "report", path)
    atomic_write_text(previous, config.to_yaml())
    return run_dir


def import_stages(src_dir: str | Path, config: BestOfNConfig, stages: Sequence[str] = ("problems", "greedy")) -> list[str]:
    """Copy finished ``stages`` from another run directory into ``config.output_dir`` when their settings match.

    A temperature sweep uses it to share one greedy baseline: greedy does not depend on temperature,
    so its fingerprint is the same in every run of the sweep. Returns the stages copied.
    """
    src = RunDir(src_dir, config)
    dst = RunDir(config.output_dir, config)
    copied = []
    for stage in stages:
        if not src.is_done(stage) or dst.is_done(stage):
            continue
        dst.path.mkdir(parents=True, exist_ok=True)
        tmp = dst.file(stage).with_suffix(".import.tmp")
        shutil.copyfile(src.file(stage), tmp)
        tmp.replace(dst.file(stage))
        dst.mark_done(stage)
        copied.append(stage)
    return copied


def finish_hint(run_dir: str | Path) -> str:
    """How to complete a run directory: its own config.yaml reuses every finished stage."""
    return f"finish the run with `bestofn run --config {Path(run_dir) / 'config.yaml'} --output-dir {run_dir}`"


def check_finished(run_dir: str | Path) -> BestOfNConfig:
    """Return the config of a finished run directory, or raise naming every stage it lacks or holds stale.

    The report and the Hub upload read a run directory; this is their one check that it is complete. A
    stage is missing when its file is absent or the manifest does not list it (without a manifest, e.g. a
    hand-made directory, scored samples are told apart by their ``step_rewards``); it is stale when its
    fingerprint differs from the one config.yaml gives, i.e. settings changed after it ran.
    """
    run_dir = Path(run_dir)
    if not run_dir.is_dir():
        raise BestOfNError(f"run directory {run_dir} does not exist; create it with `bestofn run --output-dir {run_dir}`")
    files = ["config.yaml", *dict.fromkeys(ARTIFACTS.values())]
    if not (run_dir / "config.yaml").is_file():
        absent = [f for f in files if not (run_dir / f).is_file()]
        raise BestOfNError(f"{run_dir} is not a run directory (missing {', '.join(absent)}); "
                           f"create it with `bestofn run --output-dir {run_dir}`")
    config = BestOfNConfig.from_yaml(run_dir / "config.yaml")
    hint = finish_hint(run_dir)
    manifest_path = run_dir / "manifest.json"
    finished = read_json(manifest_path).get("stages", {}) if manifest_path.is_file() else None
    missing = [s for s in STAGES if not (run_dir / ARTIFACTS[s]).is_file() or (finished is not None and s not in finished)]
    if finished is None and "scores" not in missing:
        first = next(iter(read_jsonl(run_dir / ARTIFACTS["scores"])), {})
        if "step_rewards" not in first:
            missing.append("scores")
    if missing:
        absent = sorted({ARTIFACTS[s] for s in missing if not (run_dir / ARTIFACTS[s]).is_file()})
        detail = f" (missing files: {', '.join(absent)})" if absent else ""
        raise BestOfNError(f"run directory {run_dir} lacks stages {', '.join(missing)}{detail}; {hint}")
    stale = [s for s in STAGES if finished is not None and finished[s] != config.fingerprint(s)]
    if stale:
        raise BestOfNError(f"stages {', '.join(stale)} of {run_dir} were computed with other settings than its "
                           f"config.yaml; {hint}")
    return config


# --- reading a finished run ------------------------------------------------------------------------------------
@dataclass
class Run:
    """A finished run directory, read and checked: the one view report, sweep and the Hub upload start from."""

    run_dir: Path
    config: BestOfNConfig
    problems: list[dict[str, Any]]  # problems.jsonl, in run order
    greedy: dict[str, dict[str, Any]]  # by unique_id
    samples: dict[str, list[dict[str, Any]]]  # by unique_id, sorted by sample_index: exactly config.n each
    results: dict[str, Any]
    bestofn_version: str
    model_commits: dict[str, str | None] = field(default_factory=dict)  # role -> Hub commit used, from the manifest

    @property
    def n(self) -> int:
        return self.config.n


def load_run(run_dir: str | Path) -> Run:
    """Check that ``run_dir`` is finished, read every artifact, and verify they describe the same problems.

    Raises :class:`BestOfNError` naming the file and the fix when anything is missing, unreadable or off:
    a problem without its greedy solution, its N scored samples or its results entry.
    """
    run_dir = Path(run_dir)
    config = check_finished(run_dir)
    hint = finish_hint(run_dir)
    try:
        problems = read_jsonl(run_dir / ARTIFACTS["problems"])
        greedy = {r["unique_id"]: r for r in read_jsonl(run_dir / ARTIFACTS["greedy"])}
        rows = read_jsonl(run_dir / ARTIFACTS["samples"])
        results = read_json(run_dir / ARTIFACTS["results"])
        manifest = read_json(run_dir / "manifest.json") if (run_dir / "manifest.json").is_file() else {}
    except (ValueError, KeyError) as e:
        raise BestOfNError(f"run directory {run_dir} has an unreadable artifact ({type(e).__name__}: {e}); {hint}") from None
    if not problems:
        raise BestOfNError(f"{run_dir / ARTIFACTS['problems']} has no problems; {hint}")
    missing = next((f for r in rows for f in ("unique_id", "sample_index", "step_rewards") if f not in r), None)
    if missing == "step_rewards":
        raise BestOfNError(f"{run_dir / ARTIFACTS['samples']} has no PRM scores (step_rewards) yet; {hint}")
    if missing:
        raise BestOfNError(f"run directory {run_dir} has rows without the field {missing!r}; {hint}")
    samples: dict[str, list[dict[str, Any]]] = {}
    for row in rows:
        samples.setdefault(row["unique_id"], []).append(row)
    for group in samples.values():
        group.sort(key=lambda r: r["sample_index"])
    commits = {role: m.get("commit") for role, m in manifest.get("models", {}).items()}
    run = Run(run_dir, config, problems, greedy, samples, results, manifest.get("bestofn_version", __version__), commits)
    _check_consistent(run)
    return run


def _check_consistent(run: Run) -> None:
    """Every problem must have a greedy solution, N samples and a results entry; say which file is off."""
    per_problem = {p["unique_id"]: p for p in run.results.get("per_problem", [])}
    n, hint = run.n, finish_hint(run.run_dir)
    sizes = sorted({len(run.samples.get(p["unique_id"], [])) for p in run.problems})
    for p in run.problems:
        uid = p["unique_id"]
        for name, present in ((ARTIFACTS["greedy"], uid in run.greedy), (ARTIFACTS["results"], uid in per_problem)):
            if not present:
                raise BestOfNError(f"{run.run_dir / name} has no entry for problem {uid!r}; {hint}")
        indices = [s["sample_index"] for s in run.samples.get(uid, [])]
        if indices != list(range(n)):
            raise BestOfNError(
                f"{run.run_dir / ARTIFACTS['samples']} has {sizes} samples per problem, expected n={n} (config.yaml) "
                f"for every problem: samples {indices} for problem {uid!r}, expected 0..{n - 1}; {hint}"
            )
    extra = set(per_problem) - {p["unique_id"] for p in run.problems}
    if extra:
        raise BestOfNError(f"{run.run_dir / ARTIFACTS['results']} has problems not in problems.jsonl: {sorted(extra)[:3]}; "
                           f"{hint}")
