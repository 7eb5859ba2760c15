"""The run directory: where every artifact of a run lives, and what a rerun may trust.

``manifest.json`` records, for each finished stage, the fingerprint of the settings it was computed with,
and for each file the row count and sha256 of what its stage wrote. A rerun skips a stage whose fingerprint
is unchanged and whose file still matches; a stage killed midway resumes from its journal in ``.partial/``
(a problem counts as done only when all its rows are there); a changed setting recomputes exactly the
stages that depend on it, and only when the user says so (``overwrite``), never silently. A damaged file (a
row deleted, a line cut) stops the run with the fix: ``overwrite`` recomputes its stage, ``repair`` only
its missing rows.

One process writes a run directory at a time: :func:`lock_run_dir` holds an exclusive ``flock`` on
``.lock`` for the whole run. Every reader of a finished run directory (report, sweep, Hub upload) reads it
with :func:`load_run`, which checks it with :func:`check_finished` first.
"""

from __future__ import annotations

import fcntl
import logging
import os
import shutil
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from . import __version__
from .config import STAGES, BestOfNConfig, stage_keys
from .errors import BestOfNError
from .io import (Journal, atomic_write_bytes, atomic_write_text, bytes_digest, file_digest, json_bytes, jsonl_bytes,
                 read_json, read_jsonl, read_jsonl_lenient, write_json)
from .methods import SEARCH_METHODS
from .prm.formats import LINE

log = logging.getLogger(__name__)

ARTIFACTS = {"problems": "problems.jsonl", "greedy": "greedy.jsonl", "samples": "samples.jsonl",
             "scores": "samples.jsonl", "results": "results.json"}
SCORE_FIELDS = ("step_rewards", "reward", "prm_truncated")  # what the scores stage adds to samples.jsonl's rows
LOCK_FILE = ".lock"  # holds the PID of the process writing the run directory


class RunDir:
    """A run directory: artifacts, the manifest of finished stages, and journals of unfinished ones."""

    def __init__(self, path: str | Path, config: BestOfNConfig, created: Path | None = None):
        self.path = Path(path)
        self.config = config
        self.created = created  # the outermost folder that this run made, if it made one
        # Finished stages whose files were checked intact: recomputing an earlier stage (a repair) keeps them.
        self.verified: set[str] = set()

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

    def finish(self, stage: str, content: Sequence[dict[str, Any]] | dict[str, Any]) -> None:
        """Write the stage's file (rows for a ``.jsonl``, one document for a ``.json``) and record the stage as finished.

        The new file's digest goes into the manifest first, as *pending*: a kill between writing the file
        and recording the stage leaves a file the manifest still vouches for, so a rerun only does the
        stage again (e.g. scores rewriting samples.jsonl, which the finished samples stage recorded), and
        never reports the file damaged.
        """
        name = ARTIFACTS[stage]
        data = json_bytes(content) if name.endswith(".json") else jsonl_bytes(content)
        self._write_manifest(pending={**self._manifest_doc().get("pending", {}), name: bytes_digest(data)})
        atomic_write_bytes(self.file(stage), data)
        self.mark_done(stage)

    def mark_done(self, stage: str) -> None:
        """Record ``stage`` as finished: its fingerprint, and its file's row count and sha256 (to spot damage)."""
        name = ARTIFACTS[stage]
        doc = self._manifest_doc()
        self._write_manifest(stages={**self.manifest(), stage: self.config.fingerprint(stage)},
                             artifacts={**doc.get("artifacts", {}), name: {"stage": stage, **file_digest(self.file(stage))}},
                             pending={k: v for k, v in doc.get("pending", {}).items() if k != name})
        self.remove_journals(stage)

    def invalidate(self, stage: str) -> None:
        """Forget ``stage`` and every later stage before recomputing it (they were built on the old one).

        Later stages checked intact in this run (:attr:`verified`) are kept: only a repair recomputes a
        stage whose settings are unchanged, and it must not throw away the finished work after it.
        """
        later = STAGES[STAGES.index(stage):]
        drop = {s for s in later if s == stage or s not in self.verified}
        self.verified -= drop
        # The files' records stay: they describe what is on disk until the stage writes its file again.
        self._write_manifest(stages={k: v for k, v in self.manifest().items() if k not in drop})

    def resume_rows(self, stage: str, per_problem: int) -> list[dict[str, Any]]:
        """The journaled rows of ``stage`` for the problems whose ``per_problem`` rows are all there.

        A generation stage writes each problem's rows (1 greedy solution, or N samples) in one chunk, but a
        problem counts as done only when every ``sample_index`` 0..per_problem-1 is present; the rows of any
        other problem are dropped from the journal (and said so), and the problem is generated again.
        """
        journal = self.journal(stage)
        by_problem: dict[str, dict[int, dict[str, Any]]] = {}
        for row in journal.read():
            by_problem.setdefault(row["unique_id"], {})[row.get("sample_index", 0)] = row
        want = set(range(per_problem))
        short = {uid: len(rows) for uid, rows in by_problem.items() if set(rows) != want}
        kept = [row for uid, rows in by_problem.items() if uid not in short for _, row in sorted(rows.items())]
        if short:
            uid, have = next(iter(short.items()))
            log.warning("journal %s: %d problem(s) lack rows (e.g. %s: %d of %d); they are generated again",
                        journal.path, len(short), uid, have, per_problem)
            journal.rewrite(kept)
        return kept

    def record_model(self, role: str, name: str, commit: str | None) -> None:
        """Remember which model (and, for a Hub id, which commit) produced this run's results."""
        models = {**self._manifest_doc().get("models", {}), role: {"name": name, "commit": commit}}
        self._write_manifest(models=models)

    def record_import(self, info: dict[str, Any]) -> None:
        """Remember where imported completions came from (``bestofn import``) and what they lacked."""
        self._write_manifest(imported_from=info)

    def step_separator(self) -> str | None:
        """The step separator the generation prompt asked for (None: not recorded, e.g. an older run)."""
        return self._manifest_doc().get("step_separator")

    def record_step_separator(self, separator: str) -> None:
        """Remember how the solutions' steps were asked to be separated (what a later PRM is checked against)."""
        self._write_manifest(step_separator=separator)

    def journal(self, stage: str, part: str | None = None) -> Journal:
        """The stage's journal, or one of its named ``part`` journals (a search keeps one per chunk and kind)."""
        name = f"{stage}-{self.config.fingerprint(stage)}" + (f"-{part}" if part else "")
        return Journal(self.path / ".partial" / f"{name}.jsonl")

    def remove_journals(self, stage: str) -> None:
        """Delete every journal of ``stage`` with the current settings (its stage is finished, or redone whole)."""
        partial = self.path / ".partial"
        prefix = f"{stage}-{self.config.fingerprint(stage)}"
        for path in sorted(partial.glob(f"{prefix}*.jsonl")) if partial.is_dir() else []:
            if path.stem == prefix or path.stem.startswith(prefix + "-"):
                Journal(path).remove()


def prepare_run_dir(config: BestOfNConfig, overwrite: bool, repair: bool = False,
                    created: Path | None = None) -> RunDir:
    """Create the run directory, refuse to mix settings in it, check its finished files, save the config.

    A finished stage whose file no longer matches the manifest stops the run, unless ``overwrite``
    (recompute that stage) or ``repair`` (recompute only the problems whose rows are missing or unreadable).
    ``created`` is the outermost folder the caller made for this run (:func:`lock_run_dir` yields it).
    """
    path = Path(config.output_dir)
    created = created or _first_missing(path)
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
        keys = set().union(*(stage_keys(s, old.method) | stage_keys(s, config.method) for s in stale))
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
    _check_artifacts(run_dir, overwrite, repair)
    atomic_write_text(previous, config.to_yaml())
    return run_dir


# --- artifacts verified on reuse ---------------------------------------------------------------------------------
def damaged_artifacts(path: Path, stages: Sequence[str]) -> dict[str, str]:
    """``{file name: what is wrong}`` for the files of the finished ``stages`` that no longer match the manifest.

    The manifest keeps one record per file, from the stage that last wrote it (samples.jsonl is written by
    samples, then rewritten by scores). A manifest from before these checks has no ``artifacts``: its files
    are only checked to exist.
    """
    doc = read_json(path / "manifest.json") if (path / "manifest.json").is_file() else {}
    records, pending = doc.get("artifacts", {}), doc.get("pending", {})
    damaged: dict[str, str] = {}
    for name in dict.fromkeys(ARTIFACTS[s] for s in stages):
        file, record = path / name, records.get(name)
        if not file.is_file():
            damaged[name] = "the file is missing"
        elif record and file_digest(file) not in ({"rows": record["rows"], "sha256": record["sha256"]}, pending.get(name)):
            damaged[name] = _what_changed(file, record)  # neither as recorded, nor as a killed stage wrote it
    return damaged


def _what_changed(file: Path, record: dict[str, Any]) -> str:
    """A short account of how ``file`` differs from its manifest record (only called on a mismatch)."""
    said = []
    if file.suffix == ".jsonl":
        _, bad = read_jsonl_lenient(file)
        if bad:
            more = f", and {len(bad) - 1} more bad line(s)" if len(bad) > 1 else ""
            said.append(f"line {bad[0][0]} is not valid JSON ({bad[0][1]}{more})")
    rows = file_digest(file)["rows"]
    if rows != record["rows"]:
        said.append(f"{rows} rows, manifest.json says {record['rows']}")
    return "; ".join(said) or "its content differs from the sha256 in manifest.json (the file was edited)"


def fix_hint(run_dir: str | Path, stages: Sequence[str]) -> str:
    """The two ways out of a damaged run directory, as commands to copy."""
    base = f"bestofn run --config {Path(run_dir) / 'config.yaml'} --output-dir {run_dir}"
    return (f"`{base} --repair` recomputes only the missing or unreadable rows, `{base} --overwrite` "
            f"recomputes the stage(s) {', '.join(stages)}")


def _damage_error(run_dir: Path, damaged: dict[str, str], redo: Sequence[str]) -> BestOfNError:
    name, detail = next(iter(damaged.items()))
    return BestOfNError(f"{run_dir / name} does not match manifest.json ({detail}); it was changed "
                        f"after its stage finished; {fix_hint(run_dir, redo)}")


def _check_artifacts(run_dir: RunDir, overwrite: bool, repair: bool) -> None:
    """Check every finished, up-to-date stage's file before the run trusts it (results is always redone)."""
    finished = [s for s, fp in run_dir.manifest().items() if s != "results" and fp == run_dir.config.fingerprint(s)]
    finished.sort(key=STAGES.index)
    damaged = damaged_artifacts(run_dir.path, finished)
    # A damaged samples.jsonl takes both finished stages that wrote it: its samples and its scores are redone.
    redo = [s for s in finished if ARTIFACTS[s] in damaged]
    if damaged and not (overwrite or repair):
        raise _damage_error(run_dir.path, damaged, redo)
    run_dir.verified = set(finished) - set(redo)
    for stage in redo:
        log.warning("%s: %s; %s stage %r", run_dir.file(stage), damaged[ARTIFACTS[stage]],
                    "repairing" if repair else "recomputing", stage)
    if repair:
        _salvage(run_dir, set(redo))
    for stage in redo:
        run_dir.invalidate(stage)
        if not repair:
            run_dir.remove_journals(stage)


def _salvage(run_dir: RunDir, stages: set[str]) -> None:
    """Put the readable rows of damaged files into their stages' journals, so only missing rows are redone.

    The generation stages then keep every problem whose rows are all there (``resume_rows``); the scores of
    the samples kept are kept too. problems.jsonl is simply recomputed (it is cheap and deterministic). A
    search's pools are not rows of independent samples (each came out of its problem's whole tree), so a
    damaged search ``samples.jsonl`` is searched again.
    """
    file = run_dir.file
    if "samples" in stages and run_dir.config.method in SEARCH_METHODS:
        log.warning("%s: a search is not repaired row by row; searching again", file("samples"))
        run_dir.remove_journals("samples")
        stages = stages - {"samples"}
    if "greedy" in stages and file("greedy").is_file():
        run_dir.journal("greedy").rewrite(read_jsonl_lenient(file("greedy"))[0])
    if "samples" in stages:
        rows = read_jsonl_lenient(file("samples"))[0] if file("samples").is_file() else []
        run_dir.journal("samples").rewrite([{k: v for k, v in r.items() if k not in SCORE_FIELDS} for r in rows])
        kept = {r["unique_id"] for r in run_dir.resume_rows("samples", run_dir.config.n)}
        # Scores of solutions that are kept: from an unfinished scoring journal, and from the damaged file
        # when its scores are up to date (the scores stage was finished with the current settings).
        scores = {(r["unique_id"], r["sample_index"]): r for r in run_dir.journal("scores").read()}
        if "scores" in stages:
            scores.update({(r["unique_id"], r["sample_index"]): {k: r[k] for k in ("unique_id", "sample_index",
                           "step_rewards", "prm_truncated")} for r in rows if "step_rewards" in r})
        run_dir.journal("scores").rewrite([r for key, r in scores.items() if key[0] in kept])


# --- one writer per run directory ----------------------------------------------------------------------------------
@contextmanager
def lock_run_dir(path: str | Path) -> Iterator[Path | None]:
    """Hold the run directory's exclusive lock while the body runs; a second writer stops at once.

    ``flock`` on ``.lock``: the kernel releases it when its process dies, so a lock left by a killed run
    is simply taken over (the file then still names the dead PID, which is logged). The file is removed
    on release. Creates the directory (yields the outermost folder it made, or None), and gives the error
    for one that cannot be written.
    """
    path = Path(path)
    created = _first_missing(path)
    lock_path = path / LOCK_FILE
    try:
        path.mkdir(parents=True, exist_ok=True)
        fd = _acquire(lock_path)
    except OSError as e:
        raise BestOfNError(f"cannot write to output directory {path} ({e.strerror}); choose another --output-dir") from None
    try:
        yield created
    finally:
        lock_path.unlink(missing_ok=True)  # before unlocking: the next writer never locks a file being removed
        os.close(fd)
        if created is not None and path.is_dir() and not any(path.iterdir()):
            shutil.rmtree(created)  # a run that failed before writing anything leaves no directory behind


def _first_missing(path: Path) -> Path | None:
    """The outermost folder of ``path`` that does not exist yet (what creating ``path`` makes), or None."""
    return next((p for p in reversed([path, *path.parents]) if not p.exists()), None)


def _acquire(lock_path: Path) -> int:
    """Open and lock ``lock_path`` (retrying if it was replaced meanwhile) and write our PID into it."""
    while True:
        fd = os.open(lock_path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            raise BestOfNError(
                f"{lock_path.parent} is in use by another `bestofn run` (PID {_holder(lock_path)}); wait for it "
                f"to finish or stop it, or choose another --output-dir") from None
        except BaseException:
            os.close(fd)
            raise
        if lock_path.exists() and os.stat(lock_path).st_ino == os.fstat(fd).st_ino:
            break
        os.close(fd)  # the holder removed the file as we opened it: lock the new one
    stale = os.read(fd, 64).decode(errors="replace").strip()
    if stale:
        log.info("%s: taking over the lock of a run that was killed (PID %s)", lock_path.parent, stale)
    os.ftruncate(fd, 0)
    os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
    return fd


def _holder(lock_path: Path) -> str:
    """The PID written in the lock file (the holder writes it just after locking: wait a moment for it)."""
    for _ in range(20):
        try:
            pid = lock_path.read_text().strip()
        except OSError:
            pid = ""
        if pid:
            return pid
        time.sleep(0.05)
    return "unknown"


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
    damaged = damaged_artifacts(run_dir, STAGES) if finished is not None else {}
    if damaged:
        raise _damage_error(run_dir, damaged, [s for s in STAGES if ARTIFACTS[s] in damaged])
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
    step_separator: str = LINE  # how the prompt asked for steps to be separated (older runs: one per line)

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
    run = Run(run_dir, config, problems, greedy, samples, results, manifest.get("bestofn_version", __version__), commits,
              manifest.get("step_separator") or LINE)
    _check_consistent(run)
    return run


def _check_consistent(run: Run) -> None:
    """Every problem must have a greedy solution, N samples and a results entry; say which file is off."""
    per_problem = {p["unique_id"]: p for p in run.results.get("per_problem", [])}
    n, hint = run.n, finish_hint(run.run_dir)
    sizes = sorted({len(run.samples.get(p["unique_id"], [])) for p in run.problems})
    for p in run.problems:
        uid = p["unique_id"]
        # An empty greedy.jsonl is a run without a greedy baseline (completions imported by `bestofn import`);
        # otherwise every problem needs its greedy solution.
        has_greedy = uid in run.greedy or not run.greedy
        for name, present in ((ARTIFACTS["greedy"], has_greedy), (ARTIFACTS["results"], uid in per_problem)):
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
