"""Small, safe file helpers shared by every stage.

Three rules hold for every artifact of a run directory:

1. A finished artifact is written atomically (temporary file + ``os.replace``), so a killed run never leaves
   a half-written ``samples.jsonl`` that a later stage would trust.
2. Work in progress goes to an append-only *journal*, one JSON line per chunk of finished work (a *record*
   ``{"rows": [...]}``), fsynced after each chunk. A chunk is therefore visible whole or not at all: a kill
   during an append can only tear the last line, which :meth:`Journal.read` drops (and says so).
3. A damaged artifact is named, never a traceback: :func:`read_jsonl` reports the file and line that cannot
   be read, and :func:`file_digest` gives the row count and sha256 that the manifest keeps to spot damage.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import tempfile
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from .errors import BestOfNError

log = logging.getLogger(__name__)


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def atomic_write_bytes(path: str | Path, data: bytes) -> None:
    """Write ``data`` to ``path`` so that readers see either the old file or the whole new one."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.chmod(tmp, 0o666 & ~_umask())  # mkstemp creates 0600; artifacts get the usual permissions
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


def atomic_write_text(path: str | Path, text: str) -> None:
    """Text (UTF-8) version of :func:`atomic_write_bytes`."""
    atomic_write_bytes(path, text.encode("utf-8"))


def json_bytes(obj: Any) -> bytes:
    """One JSON document as :func:`write_json` writes it (pretty-printed, so people can read it)."""
    return (json.dumps(obj, indent=2, ensure_ascii=False) + "\n").encode("utf-8")


def jsonl_bytes(rows: Iterable[dict[str, Any]]) -> bytes:
    """Rows as :func:`write_jsonl` writes them: one JSON document per line."""
    return "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows).encode("utf-8")


def write_json(path: str | Path, obj: Any) -> None:
    """Atomically write one JSON document."""
    atomic_write_bytes(path, json_bytes(obj))


def read_json(path: str | Path) -> Any:
    with open(path, encoding="utf-8") as f:
        return json.load(f)


def write_jsonl(path: str | Path, rows: Iterable[dict[str, Any]]) -> None:
    """Atomically write rows as JSON Lines."""
    atomic_write_bytes(path, jsonl_bytes(rows))


def read_jsonl(path: str | Path) -> list[dict[str, Any]]:
    """Read a JSON Lines file written by :func:`write_jsonl`; a damaged line is one error naming it."""
    rows, bad = read_jsonl_lenient(path)
    if bad:
        number, reason = bad[0]
        raise BestOfNError(f"{path} line {number} is not valid JSON ({reason}): the file is damaged")
    return rows


def read_jsonl_lenient(path: str | Path) -> tuple[list[dict[str, Any]], list[tuple[int, str]]]:
    """The readable rows of a JSON Lines file, and ``(line number, reason)`` of each unreadable line.

    Used to salvage what a damaged artifact still holds (``bestofn run --repair``). A last line without its
    newline counts as unreadable: it may be a cut-off line that happens to parse.
    """
    rows: list[dict[str, Any]] = []
    bad: list[tuple[int, str]] = []
    with open(path, "rb") as f:
        for number, line in enumerate(f, start=1):
            if not line.strip():
                continue
            if not line.endswith(b"\n"):
                bad.append((number, "cut off: no newline at the end"))
                continue
            try:
                row = json.loads(line)
            except ValueError as e:
                bad.append((number, getattr(e, "msg", str(e))))
                continue
            if isinstance(row, dict):
                rows.append(row)
            else:
                bad.append((number, f"a JSON {type(row).__name__}, not an object"))
    return rows, bad


def bytes_digest(data: bytes) -> dict[str, Any]:
    """:func:`file_digest` of a file that would hold ``data``."""
    return {"rows": data.count(b"\n"), "sha256": hashlib.sha256(data).hexdigest()}


def file_digest(path: str | Path) -> dict[str, Any]:
    """``{"rows": lines in the file, "sha256": hex digest of its bytes}``: what the manifest keeps per artifact.

    One pass over the file; hashing runs at hundreds of MB/s, so checking even a large samples.jsonl on every
    rerun costs seconds at most.
    """
    digest, rows = hashlib.sha256(), 0
    with open(path, "rb") as f:
        while block := f.read(1 << 20):
            digest.update(block)
            rows += block.count(b"\n")
    return {"rows": rows, "sha256": digest.hexdigest()}


class Journal:
    """Append-only log of finished work, used to resume a stage that was killed midway.

    Each :meth:`append` writes one line, ``{"rows": [...]}``, holding every row of a chunk of work, and
    fsyncs it, so a chunk's rows become visible together or not at all; :meth:`read` drops a torn last line
    (from a kill during the append) and anything after it.
    """

    def __init__(self, path: str | Path):
        self.path = Path(path)

    def read(self) -> list[dict[str, Any]]:
        """Return the rows of every whole record; cut off a torn tail (from a kill) so later appends stay valid."""
        if not self.path.exists():
            return []
        rows: list[dict[str, Any]] = []
        good_bytes = kept = 0
        with open(self.path, "rb") as f:
            lines = f.readlines()
        for line in lines:
            record = _parse_record(line)
            if record is None:
                break  # a torn write from a killed run: this chunk and anything after it is redone
            rows.extend(record)
            good_bytes += len(line)
            kept += 1
        if kept < len(lines):
            dropped = len(lines) - kept
            log.warning("journal %s: dropped %d torn record(s) at its end (a run was killed while writing); "
                        "their work is done again", self.path, dropped)
            with open(self.path, "r+b") as f:
                f.truncate(good_bytes)
                f.flush()
                os.fsync(f.fileno())
        return rows

    def append(self, rows: Iterable[dict[str, Any]]) -> None:
        """Commit one chunk of finished rows as one record (one line), durably."""
        self.path.parent.mkdir(parents=True, exist_ok=True)
        line = json.dumps({"rows": list(rows)}, ensure_ascii=False) + "\n"
        with open(self.path, "a", encoding="utf-8") as f:
            f.write(line)
            f.flush()
            os.fsync(f.fileno())

    def rewrite(self, rows: list[dict[str, Any]]) -> None:
        """Replace the journal by one record holding ``rows`` (atomically), e.g. rows salvaged by a repair."""
        if rows:
            atomic_write_text(self.path, json.dumps({"rows": rows}, ensure_ascii=False) + "\n")
        else:
            self.path.unlink(missing_ok=True)

    def remove(self) -> None:
        """Delete the journal (its stage is finished), and its folder once no journal is left in it."""
        self.path.unlink(missing_ok=True)
        if self.path.parent.is_dir() and not any(self.path.parent.iterdir()):
            self.path.parent.rmdir()


def _parse_record(line: bytes) -> list[dict[str, Any]] | None:
    """The rows of one journal line, or None when the line is torn or not a record."""
    if not line.endswith(b"\n"):
        return None
    try:
        record = json.loads(line)
    except ValueError:
        return None
    rows = record.get("rows") if isinstance(record, dict) else None
    return rows if isinstance(rows, list) and all(isinstance(r, dict) for r in rows) else None

