"""The one exception type that users see.

Anything the user can fix (a typo in a model id, a bad dataset file, an impossible setting) is raised as
``BestOfNError`` with a message that names the problem and the fix. The CLI prints that message as a
single line instead of a traceback.
"""

from __future__ import annotations

import os
from pathlib import Path


class BestOfNError(Exception):
    """A problem with the user's input or environment, with a message that says how to fix it."""


def first_line(error: BaseException, limit: int = 300) -> str:
    """The first line of an exception's message (or its type), short enough for a one-line error."""
    text = str(error).strip()
    return (text.splitlines()[0] if text else type(error).__name__)[:limit]


def looks_local(name_or_path: str) -> bool:
    """Whether a model name was meant as a local folder rather than a Hub id (``owner/name``).

    The one rule for every model (generator, PRM): a path that starts like one (``/``, ``./``, ``../``, ``~``, a
    drive letter), has a backslash or more than one ``/``, or whose first part exists here.
    """
    if name_or_path.startswith(("/", ".", "~")) or "\\" in name_or_path or ":" in name_or_path:
        return True
    if name_or_path.count("/") > 1:  # a Hub id is "owner/name": one slash at most
        return True
    return os.path.exists(name_or_path) or ("/" in name_or_path and os.path.isdir(name_or_path.split("/")[0]))


def missing_folder_error(role: str, name: str, flag: str) -> BestOfNError | None:
    """The error for a model that looks like a local folder but is none, or ``None`` when that is not the case."""
    folder = Path(name).expanduser()
    if not looks_local(name) or folder.is_dir():
        return None
    what = "is a file, not a folder" if folder.exists() else "does not exist"
    return BestOfNError(f"the {role} folder {name} {what} (looked for {folder.resolve()}); pass an existing model "
                        f"folder, or a Hub id OWNER/NAME, with {flag}")


def model_load_error(role: str, name: str, flag: str, error: BaseException) -> BestOfNError:
    """One-line error for a model that cannot be loaded: name it, and show how to pass a local copy.

    A name that looks like a local folder but is none gets the missing-folder message instead: the Hub's
    ("Repo id must be in the form ...") would send the user looking in the wrong place.
    """
    missing = missing_folder_error(role, name, flag)
    if missing is not None:
        return missing
    return BestOfNError(
        f"cannot load the {role} {name!r} ({type(error).__name__}: {first_line(error)}). If the id is right but "
        f"this machine is offline, download it elsewhere (`hf download {name} --local-dir DIR`) and pass "
        f"the folder: {flag} DIR"
    )


def check_model(name_or_path: str, revision: str | None, role: str, flag: str) -> str | None:
    """Fetch only the model's config.json, so a typo stops the run at once; return the Hub commit."""
    missing = missing_folder_error(role, name_or_path, flag)
    if missing is not None:
        raise missing
    if Path(name_or_path).expanduser().is_dir():
        if not (Path(name_or_path).expanduser() / "config.json").exists():
            raise BestOfNError(f"the {role} folder {name_or_path} has no config.json; pass a model folder with {flag}")
        return None
    from huggingface_hub import hf_hub_download

    try:
        config_file = Path(hf_hub_download(name_or_path, "config.json", revision=revision))
    except Exception as e:  # offline, unknown repo, gated repo, bad revision: all end the same way
        raise model_load_error(role, name_or_path, flag, e) from None
    # The Hub cache stores files under .../snapshots/<commit>/, which names the exact weights used.
    return config_file.parent.name if config_file.parent.parent.name == "snapshots" else None
