"""The one exception type that users see.

Anything the user can fix (a typo in a model id, a bad dataset file, an impossible setting) is raised as
``BestOfNError`` with a message that names the problem and the fix. The CLI prints that message as a
single line instead of a traceback.
"""


class BestOfNError(Exception):
    """A problem with the user's input or environment, with a message that says how to fix it."""


def first_line(error: BaseException, limit: int = 300) -> str:
    """The first line of an exception's message (or its type), short enough for a one-line error."""
    text = str(error).strip()
    return (text.splitlines()[0] if text else type(error).__name__)[:limit]


def model_load_error(role: str, name: str, flag: str, error: BaseException) -> BestOfNError:
    """One-line error for a model that cannot be loaded: name it, and show how to pass a local copy."""
    return BestOfNError(
        f"cannot load the {role} {name!r} ({type(error).__name__}: {first_line(error)}). If the id is right but "
        f"this machine is offline, download it elsewhere (`hf download {name} --local-dir DIR`) and pass "
        f"the folder: {flag} DIR"
    )
