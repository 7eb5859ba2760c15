"""The run directory: chunks of finished work, the files users read from them, one writer at a time.

A run's work is a set of *chunks* (:mod:`bestofn.pipeline`), each written once, atomically, to
``chunks/<stage>/<key>.json`` with its rows, tree nodes and cost, where ``key`` hashes everything it depends
on, and sealed with the sha256 of its content: a missing, torn or edited chunk is computed again, never
trusted. The files users read are written from the chunks at the end of every run and their sha256 recorded
in ``manifest.json``; an edited one, or one the manifest does not record, is rebuilt by the next run and refused
by every reader (:func:`bestofn.report.loader.load_run`). A damaged ``manifest.json`` is rebuilt from
``config.yaml`` and the chunks by the same command. One process writes a run directory at a time
(:func:`lock_run_dir`), never inside another run directory, and removes only what bestofn wrote.
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import logging
import os
import shutil
import time
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from . import __version__
from .config import BestOfNConfig, stage_keys
from .errors import BestOfNError
from .io import atomic_write_bytes, atomic_write_text, check_output_dir, folder_in_the_way, json_bytes
from .prm.formats import LINE

log = logging.getLogger(__name__)

FILES = {"problems": "problems.jsonl", "greedy": "greedy.jsonl", "samples": "samples.jsonl", "tree": "tree.jsonl",
         "results": "results.json"}  # the files users read, written from the chunks
LOCK_FILE = ".lock"  # holds the PID of the process writing the run directory
CHUNKS = "chunks"
# Everything bestofn writes in a run directory: `--overwrite` and a failed first run remove only these (in the
# report folder, only the files its record lists: a user's own files there stay).
REPORT = "report"
WRITTEN = (*FILES.values(), "config.yaml", "manifest.json", "timings.json", CHUNKS, REPORT)
SEALED = (*FILES.values(), "config.yaml", "timings.json")  # the files readers trust: each must match its record
RECORD = ".bestofn-written"  # in a folder bestofn writes reports into: the names of the files it wrote there
IMPORT_STAGE = "import"  # the chunk that keeps `bestofn import`'s record, so a damaged manifest can be rebuilt


def content_key(*parts: Any) -> str:
    """A short sha256 of JSON-able ``parts``: how a chunk is named by what it depends on."""
    return hashlib.sha256(json.dumps(parts, sort_keys=True, ensure_ascii=False).encode()).hexdigest()[:32]


class RunDir:
    """A run directory being written: its chunks, its files and its manifest."""

    def __init__(self, path: str | Path, config: BestOfNConfig):
        self.path = Path(path)
        self.config = config

    # --- chunks ---------------------------------------------------------------------------------------------------
    def chunk_path(self, stage: str, key: str) -> Path:
        return self.path / CHUNKS / stage / f"{key}.json"

    def load_chunk(self, stage: str, key: str) -> dict[str, Any] | None:
        """The chunk's content, or None when it is missing, torn or edited (then it is deleted and redone)."""
        path = self.chunk_path(stage, key)
        if path.is_dir():  # before its work is done again: saving it would fail
            raise folder_in_the_way(path)
        if not path.is_file():
            return None
        try:
            content = json.loads(path.read_bytes())
            body = {k: v for k, v in content.items() if k != "sha256"}
            intact = content.get("sha256") == content_key(body) and body.get("key") == key
        except (ValueError, AttributeError):
            intact = False
        if not intact:
            log.warning("%s was damaged or edited after it was written: its work is done again", path)
            path.unlink()
            return None
        return body

    def save_chunk(self, stage: str, key: str, rows: list[dict], tree: list[dict] | None = None,
                   cost: dict | None = None) -> dict[str, Any]:
        """Write one chunk, whole or not at all, sealed with the sha256 of its content; return that content."""
        body = {"key": key, "rows": rows, "tree": tree or [], "cost": cost}
        atomic_write_bytes(self.chunk_path(stage, key), json_bytes({**body, "sha256": content_key(body)}))
        return body

    def keep_only(self, used: dict[str, set[str]]) -> None:
        """Delete the chunks this run's results do not use (older settings); ``used``: stage -> keys."""
        for stage_dir in sorted((self.path / CHUNKS).glob("*")):
            for path in stage_dir.glob("*.json"):
                if path.stem not in used.get(stage_dir.name, set()):
                    path.unlink()

    # --- the files users read -------------------------------------------------------------------------------------
    def manifest(self) -> dict[str, Any]:
        return read_manifest(self.path)

    def update_manifest(self, drop: Iterable[str] = (), **changes: Any) -> None:
        kept = {k: v for k, v in self.manifest().items() if k not in set(drop)}
        atomic_write_bytes(self.path / "manifest.json", json_bytes({**kept, "bestofn_version": __version__, **changes}))

    def rebuild_manifest(self) -> dict[str, Any]:
        """Replace a damaged ``manifest.json`` with what the chunks still say: ``bestofn import``'s record (its
        own chunk), and that nothing else is known (``rebuilt``: the run finds its step separator from its
        chunks, and the files users read are written again and recorded when it finishes)."""
        log.warning("%s is damaged: it is rebuilt from config.yaml and the chunks (the Hub commits it recorded for "
                    "the models are lost)", self.path / "manifest.json")
        manifest: dict[str, Any] = {"bestofn_version": __version__, "rebuilt": True}
        for path in sorted((self.path / CHUNKS / IMPORT_STAGE).glob("*.json")):
            chunk = self.load_chunk(IMPORT_STAGE, path.stem)
            if chunk is not None:
                record = chunk["rows"][0]
                manifest["imported_from"] = {**record, "chunks": {**record["chunks"], IMPORT_STAGE: [path.stem]}}
                manifest["step_separator"] = LINE  # `bestofn import` keeps the completions' steps one per line
        atomic_write_bytes(self.path / "manifest.json", json_bytes(manifest))
        return manifest

    def publish(self, contents: dict[str, bytes], **record: Any) -> None:
        """Write the files users read and the config.yaml they were made with, then record their sha256 and
        ``record`` in the manifest (a kill in between: the next run writes them again)."""
        contents = {**contents, "config.yaml": self.config.to_yaml().encode("utf-8")}
        for name, data in contents.items():
            atomic_write_bytes(self.path / name, data)
        for name in set(FILES.values()) - set(contents):  # e.g. a search's tree.jsonl, rerun as Best-of-N
            (self.path / name).unlink(missing_ok=True)
        self.update_manifest(drop=("rebuilt",),
                             files={name: hashlib.sha256(data).hexdigest() for name, data in contents.items()},
                             **record)


def read_manifest(run_dir: str | Path) -> dict[str, Any]:
    """``manifest.json`` ({} before a run wrote one); a damaged one is one error naming the command that rebuilds
    it from config.yaml and the chunks."""
    path = Path(run_dir) / "manifest.json"
    if not path.is_file():
        return {}
    try:
        manifest = json.loads(path.read_bytes())
    except ValueError:
        manifest = None
    if not isinstance(manifest, dict) or not isinstance(manifest.get("files", {}), dict):
        raise BestOfNError(f"{path} is damaged; rebuild it from config.yaml and the chunks with `bestofn run --config "
                           f"{Path(run_dir) / 'config.yaml'} --output-dir {run_dir}`")
    return manifest


def manifest_damaged(run_dir: str | Path) -> bool:
    """Whether ``manifest.json`` exists but is damaged (:func:`open_run_dir` then rebuilds it)."""
    try:
        read_manifest(run_dir)
    except BestOfNError:
        return True
    return False


def edited_files(path: Path, manifest: dict[str, Any]) -> list[str]:
    """The files a reader would trust that are not as the last run wrote them: edited or removed since, or present
    without a sha256 in ``manifest.json`` (a record removed from it seals nothing)."""
    recorded = manifest.get("files", {})
    names = [*recorded, *(name for name in SEALED if name not in recorded and (path / name).is_file())]
    return [name for name in names if not (path / name).is_file()
            or hashlib.sha256((path / name).read_bytes()).hexdigest() != recorded.get(name)]


# --- opening a run directory for writing ---------------------------------------------------------------------------
def open_run_dir(config: BestOfNConfig, overwrite: bool) -> RunDir:
    """Check the run directory can take ``config`` (changed settings only with ``overwrite``); save config.yaml.

    Chunks never mix settings (their names hash them), but the files users read would silently change
    meaning: so a rerun with other settings stops with the list of changes, unless ``overwrite``. The
    config.yaml of finished results is rewritten only with the new results (a failed rerun leaves them valid).
    """
    run_dir = RunDir(config.output_dir, config)
    try:
        manifest = run_dir.manifest()
    except BestOfNError:  # damaged: what it said is rebuilt from config.yaml and the chunks
        manifest = run_dir.rebuild_manifest()
    previous = run_dir.path / "config.yaml"
    finished = FILES["results"] in manifest.get("files", {}) or (manifest.get("rebuilt")
                                                                 and (run_dir.path / FILES["results"]).is_file())
    if not (previous.is_file() and finished):
        atomic_write_text(previous, config.to_yaml())  # an unfinished run: says how to finish it
        return run_dir
    old = BestOfNConfig.from_yaml(previous)
    keys = stage_keys("results", old.method, old.adaptive) | stage_keys("results", config.method, config.adaptive)
    changed = sorted(k for k in keys if getattr(old, k) != getattr(config, k))
    diff = ", ".join(f"{k}: {getattr(old, k)!r} -> {getattr(config, k)!r}" for k in changed)
    fixed = sorted(set(changed) - (stage_keys("results") - stage_keys("samples")))  # all but the PRM's and selection's
    if manifest.get("imported_from") and fixed:
        raise BestOfNError(f"{run_dir.path} holds imported completions, which cannot be generated again: only the PRM "
                           f"and the aggregation may change, not {', '.join(fixed)}; import them again for other settings")
    if changed and not overwrite:
        raise BestOfNError(f"{run_dir.path} holds results made with other settings ({diff}); use a new "
                           f"--output-dir, or pass --overwrite to recompute what they change")
    if changed and remove_recorded(run_dir.path / REPORT):  # it describes the old settings
        log.warning("removed the report in %s (it describes the old settings); `bestofn report %s` writes a new one",
                    run_dir.path / REPORT, run_dir.path)
    return run_dir


def remove_written(path: Path, names: Iterable[str] = WRITTEN) -> None:
    """Remove what bestofn wrote in ``path`` (never a user's own files), e.g. for ``--overwrite`` of an import."""
    for name in names:
        target = path / name
        if name == REPORT:
            remove_recorded(target)
        elif target.is_dir() and not target.is_symlink():
            shutil.rmtree(target)
        else:
            target.unlink(missing_ok=True)


def record_written(folder: str | Path, names: Iterable[str]) -> None:
    """Add ``names`` to the record of the files bestofn wrote in ``folder`` (a report's), which alone
    :func:`remove_recorded` removes."""
    folder = Path(folder)
    atomic_write_bytes(folder / RECORD, json_bytes(sorted(set(_recorded(folder)) | set(names))))


def remove_recorded(folder: Path) -> list[str]:
    """Remove the files bestofn wrote in ``folder`` (its record; a report from before records: its report.md and
    report.html), then the folder if nothing else is left in it. Returns the names removed."""
    names = [name for name in (_recorded(folder) or ["report.md", "report.html"]) if (folder / name).is_file()]
    for name in names:
        (folder / name).unlink()
    (folder / RECORD).unlink(missing_ok=True)
    if folder.is_dir() and not any(folder.iterdir()):
        folder.rmdir()
    return names


def _recorded(folder: Path) -> list[str]:
    try:
        names = json.loads((folder / RECORD).read_bytes())
    except (OSError, ValueError):
        return []
    # Only plain names: a record cannot point outside its folder.
    return [n for n in names if isinstance(n, str) and n and Path(n).name == n] if isinstance(names, list) else []


def share_chunks(src: str | Path, dst: str | Path, stage: str) -> int:
    """Copy ``stage``'s chunks from another run directory (a sweep shares one greedy baseline); chunks are
    named by what they depend on, so a run uses exactly those that fit its own settings. Returns how many."""
    files = sorted((Path(src) / CHUNKS / stage).glob("*.json"))
    for path in files:
        target = Path(dst) / CHUNKS / stage / path.name
        if not target.exists():
            atomic_write_bytes(target, path.read_bytes())
    return len(files)


# --- one writer per run directory ----------------------------------------------------------------------------------
@contextmanager
def lock_run_dir(path: str | Path) -> Iterator[Path | None]:
    """Hold the run directory's exclusive lock while the body runs; a second writer stops at once.

    ``flock`` on ``.lock``: the kernel releases it when its process dies, so a lock left by a killed run
    is simply taken over. Creates the directory; yields the outermost folder it made (or None). A body that
    fails before writing any chunk removes what it wrote (the folder too, if it made it).
    """
    path = Path(path)
    check_output_dir(path)
    # The root and home are never a run directory (check_output_dir): files that look like one there are not.
    above = [p for p in Path(os.path.abspath(path)).parents if p != Path(p.anchor) and p != Path.home()]
    outer = next((p for p in above if is_run_dir(p)), None)
    if outer is not None:
        raise BestOfNError(f"{path} is inside the run directory {outer}; choose a folder outside it (e.g. "
                           f"{outer.parent / (outer.name + '-' + path.name)})")
    created = next((p for p in reversed([path, *path.parents]) if not p.exists()), None)
    lock_path = path / LOCK_FILE
    path.mkdir(parents=True, exist_ok=True)  # an OSError (read-only, not a folder) is the CLI's one line
    fd = _acquire(lock_path)
    before = {p.name for p in path.iterdir()}
    try:
        yield created
    except BaseException:
        if not any((path / CHUNKS).rglob("*.json")):  # nothing worth keeping: leave the folder as it was
            remove_written(path, [name for name in WRITTEN if name not in before])
        raise
    finally:
        lock_path.unlink(missing_ok=True)  # before unlocking: the next writer never locks a file being removed
        os.close(fd)
        if created is not None and path.is_dir() and not any(path.iterdir()):
            shutil.rmtree(created)  # a run that failed before writing anything leaves no directory behind


def is_run_dir(path: Path) -> bool:
    """Whether bestofn keeps a run's work in ``path``: its manifest, or its config.yaml beside its chunks."""
    return (path / "manifest.json").is_file() or ((path / "config.yaml").is_file() and (path / CHUNKS).is_dir())


def _acquire(lock_path: Path) -> int:
    """Open and lock ``lock_path`` (retrying if it was replaced meanwhile) and write our PID into it."""
    while True:
        fd = os.open(lock_path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            raise BestOfNError(f"{lock_path.parent} is in use by another bestofn process (PID {_holder(lock_path)}); "
                               f"wait for it to finish or stop it, or choose another directory") from None
        except BaseException:
            os.close(fd)
            raise
        if lock_path.exists() and os.stat(lock_path).st_ino == os.fstat(fd).st_ino:
            break
        os.close(fd)  # the holder removed the file as we opened it: lock the new one
    stale = os.read(fd, 64).decode(errors="replace").strip()
    if stale:
        log.info("%s: taking over the lock of a process that was killed (PID %s)", lock_path.parent, stale)
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
