"""Step 2b/3b: find the final answer and judge it against the reference.

Two judgements are recorded for every solution:

- ``correct``: symbolic equivalence with `math-verify` (``\\frac{1}{2}`` = ``0.5``, intervals, matrices, units),
  the grader the method's accuracy numbers use;
- ``string_match``: equality after light normalization, the simple check many codebases use, kept so users
  can see how many right answers it would miss.
"""

from __future__ import annotations

import re
from functools import lru_cache

from math_verify import parse, verify

_BOX_COMMANDS = ("\\boxed", "\\fbox")


def extract_answer(text: str) -> str | None:
    """Content of the last ``\\boxed{...}`` (or ``\\fbox{...}``) in ``text``, braces balanced; None if absent.

    The *last* box is taken because models often box intermediate results before the final one. A box
    whose braces never close (a solution cut off by the token limit) yields None.
    """
    start = max(text.rfind(cmd) for cmd in _BOX_COMMANDS)
    while start != -1:
        answer = _box_content(text, start)
        if answer is not None:
            return answer
        start = max(text.rfind(cmd, 0, start) for cmd in _BOX_COMMANDS)
    return None


def _box_content(text: str, start: int) -> str | None:
    """The argument of the box command at ``start``: ``{...}`` with nested braces, or ``\\boxed 5``."""
    cmd = "\\boxed" if text.startswith("\\boxed", start) else "\\fbox"
    rest = text[start + len(cmd) :]
    if not rest.lstrip().startswith("{"):
        m = re.match(r"\s+([^\s$]+)", rest)  # the brace-less form "\boxed 5"
        return m.group(1) if m else None
    open_at = start + len(cmd) + (len(rest) - len(rest.lstrip()))
    depth = 0
    for j in range(open_at, len(text)):
        if text[j - 1] == "\\":
            continue  # \{ and \} are literal braces (sets), not grouping
        if text[j] == "{":
            depth += 1
        elif text[j] == "}":
            depth -= 1
            if depth == 0:
                return text[open_at + 1 : j].strip()
    return None  # never closed: the solution was cut off


def normalize_answer(answer: str) -> str:
    """Light, purely textual normalization: spacing, ``\\left``/``\\right``, ``\\dfrac``, ``\\text{}``, degrees."""
    s = answer.strip().strip("$").strip()
    s = re.sub(r"\\text\{\s*([^{}]*?)\s*\}", r"\1", s)
    for old, new in (("\\left", ""), ("\\right", ""), ("\\!", ""), ("\\,", ""), ("\\;", ""), ("\\dfrac", "\\frac"),
                     ("\\tfrac", "\\frac"), ("^\\circ", ""), ("^{\\circ}", ""), ("\\%", ""), ("\\$", "")):
        s = s.replace(old, new)
    s = re.sub(r"\s+", "", s)
    return s.rstrip(".")


def string_match(pred: str | None, gold: str) -> bool:
    """The naive check: equal after :func:`normalize_answer`."""
    return pred is not None and normalize_answer(pred) == normalize_answer(gold)


@lru_cache(maxsize=65536)
def _parse(answer: str, timeout: int) -> list:
    # Wrapping in $...$ tells math-verify the string is LaTeX; parse is cached because weighted
    # selection compares the same few answers many times.
    return parse(f"${answer}$", parsing_timeout=timeout)


def is_equivalent(pred: str | None, gold: str, timeout: int = 5) -> bool:
    """True when ``pred`` and ``gold`` are mathematically the same answer, per math-verify.

    A cheap textual match is tried first; math-verify (symbolic, with a time limit) decides the rest.
    """
    if pred is None or not pred.strip():
        return False
    if normalize_answer(pred) == normalize_answer(gold):
        return True
    gold_parsed, pred_parsed = _parse(gold, timeout), _parse(pred, timeout)
    if not gold_parsed or not pred_parsed:
        return False
    return bool(verify(gold_parsed, pred_parsed, timeout_seconds=timeout))


def grade(text: str, gold: str, timeout: int = 5) -> dict:
    """Extract and judge one solution: ``{"answer", "correct", "string_match"}``."""
    answer = extract_answer(text)
    return {
        "answer": answer,
        "correct": is_equivalent(answer, gold, timeout),
        "string_match": string_match(answer, gold),
    }
