"""Atomic writes and JSON reading: every file of a run directory is written whole or not at all.

A file is written to a temporary file beside it, fsynced and renamed over the old one (``os.replace``), so a
killed run never leaves a half-written file that a later run or a reader would trust. A file that cannot be
read is one error naming the file and line, never a traceback.
"""

from __future__ import annotations

import json
import os
import tempfile
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from .errors import BestOfNError


def check_output_dir(text: str | Path, flag: str = "--output-dir") -> Path:
    """The folder a command writes into, refused when it is empty text, the filesystem root or the user's home:
    a run there would mix its files with everything else in it (and ``--overwrite`` would remove some)."""
    if not str(text).strip():
        raise BestOfNError(f"{flag} is empty; name the folder to write into, e.g. {flag} runs/my-run")
    folder = Path(text).expanduser().resolve()
    if folder == Path(folder.anchor) or folder == Path.home().resolve():
        raise BestOfNError(f"{flag} {text} is {'the filesystem root' if folder == Path(folder.anchor) else 'your home folder'}; "
                           f"name a folder of its own, e.g. {flag} {Path(text) / 'runs' / 'my-run'}")
    return Path(text)


def atomic_write_bytes(path: str | Path, data: bytes) -> None:
    """Write ``data`` to ``path`` so that readers see either the old file or the whole new one."""
    path = Path(path)
    if path.is_dir():  # else the error would name the temporary file, not the folder in the way
        raise folder_in_the_way(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        mask = os.umask(0)
        os.umask(mask)
        os.chmod(tmp, 0o666 & ~mask)  # mkstemp creates 0600; files get the usual permissions
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


def folder_in_the_way(path: Path) -> BestOfNError:
    """The error for a folder where bestofn keeps a file (it never removes a folder it did not make)."""
    return BestOfNError(f"{path} is a folder, but bestofn keeps a file there; move the folder away (e.g. mv {path} "
                        f"{path}.moved) and rerun the same command")


def atomic_write_text(path: str | Path, text: str) -> None:
    """Text (UTF-8) version of :func:`atomic_write_bytes`."""
    atomic_write_bytes(path, text.encode("utf-8"))


def json_bytes(obj: Any) -> bytes:
    """One JSON document, pretty-printed so people can read it."""
    return (json.dumps(obj, indent=2, ensure_ascii=False) + "\n").encode("utf-8")


def jsonl_bytes(rows: Iterable[dict[str, Any]]) -> bytes:
    """Rows as JSON Lines: one JSON document per line."""
    return "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows).encode("utf-8")


def read_json(path: str | Path) -> Any:
    """One JSON document; an unreadable one is one error naming the file."""
    try:
        with open(path, encoding="utf-8") as f:
            return json.load(f)
    except ValueError as e:
        raise BestOfNError(f"{path} is not valid JSON ({e}): the file is damaged") from None


def read_jsonl(path: str | Path) -> list[dict[str, Any]]:
    """JSON Lines rows; a line that is not a JSON object is one error naming the file and line."""
    rows = []
    with open(path, "rb") as f:
        for number, line in enumerate(f, start=1):
            if not line.strip():
                continue
            try:
                row = json.loads(line)
            except ValueError as e:
                raise BestOfNError(f"{path} line {number} is not valid JSON ({getattr(e, 'msg', e)}): the file is "
                                   f"damaged") from None
            if not isinstance(row, dict):
                raise BestOfNError(f"{path} line {number} is a JSON {type(row).__name__}, not an object: the file is "
                                   f"damaged")
            rows.append(row)
    return rows
