"""Step 4: find the final answer and judge it against the reference.

Two judgements are recorded for every solution:

- ``correct``: symbolic equivalence with `math-verify` (``\\frac{1}{2}`` = ``0.5``, intervals, matrices, units),
  the grader the method's accuracy numbers use;
- ``string_match``: equality after light normalization, the simple check many codebases use, kept so users
  can see how many right answers it would miss.

How answers are compared depends on the benchmark (a problem's ``answer_kind``): ``expression`` (MATH,
Minerva Math, OlympiadBench) goes to math-verify, which also compares answer lists as sets (OlympiadBench's
several answers are all required) and intervals; ``integer`` (GSM8K, AIME, AMC) compares a numeric answer as
a number first (``1,600`` = ``1600``, ``025`` = ``25``, ``\\$18`` = ``18``, ``27.0`` = ``27``), and anything else
(``\\frac{54}{2}``) with math-verify.

Grading is bounded: extraction is one linear scan of the text, and one time limit (``grading_timeout``)
covers extraction and the math-verify comparison together, so no solution, however long or malformed,
can stall a run. ``answer_status`` says why a solution has no answer (see docs/artifacts.md).
"""

from __future__ import annotations

import logging
import re
import signal
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from decimal import Decimal, InvalidOperation
from functools import lru_cache

log = logging.getLogger(__name__)

_BOX_COMMANDS = ("\\boxed", "\\fbox")
LOG_CHARS = 200  # an answer quoted in a log message is cut to this many characters

# Why a solution has (no) answer: the ``answer_status`` field of every graded row.
ANSWER_STATUSES = ("ok", "no_box", "unclosed_box", "empty_box", "timeout")
# How a benchmark's answers are compared with its gold (a problem's ``answer_kind``).
EXPRESSION, INTEGER = "expression", "integer"
ANSWER_KINDS = (EXPRESSION, INTEGER)


class GradingTimeout(BaseException):
    """Grading one solution took longer than ``grading_timeout``.

    A BaseException, like math-verify's own timeout, so that no ``except Exception`` inside the parser
    swallows it and grading carries on past its limit.
    """


# --- extraction --------------------------------------------------------------------------------------------
def find_answer(text: str) -> tuple[str | None, str]:
    """The final ``\\boxed{...}`` (or ``\\fbox{...}``) answer of ``text`` and why it is what it is.

    Returns ``(answer, status)`` with status ``ok``, ``no_box`` (no box at all), ``unclosed_box`` (the last
    box never closes: the solution was cut off, or its braces are broken) or ``empty_box``. Only the *last*
    box counts: models box intermediate results before the final one, so when the last box is broken the
    answer is None rather than an earlier, intermediate box. One linear scan, whatever the text holds.
    """
    start = max(text.rfind(cmd) for cmd in _BOX_COMMANDS)
    if start == -1:
        return None, "no_box"
    answer = _box_content(text, start)
    if answer is None:
        return None, "unclosed_box"
    return (answer, "ok") if answer else (None, "empty_box")


def extract_answer(text: str) -> str | None:
    """Content of the last ``\\boxed{...}`` (or ``\\fbox{...}``) in ``text``, braces balanced; None if absent.

    A last box whose braces never close (a solution cut off by the token limit) yields None; see
    :func:`find_answer` for the reason.
    """
    return find_answer(text)[0]


def _box_content(text: str, start: int) -> str | None:
    """The argument of the box command at ``start``: ``{...}`` with nested braces, or ``\\boxed 5``."""
    cmd = "\\boxed" if text.startswith("\\boxed", start) else "\\fbox"
    i = start + len(cmd)
    while i < len(text) and text[i].isspace():
        i += 1
    if i == len(text) or text[i] != "{":
        m = re.compile(r"\s+([^\s$]+)").match(text, start + len(cmd))  # the brace-less form "\boxed 5"
        return m.group(1) if m else None
    open_at, depth = i, 0
    while i < len(text):
        c = text[i]
        if c == "\\":
            i += 2  # a control symbol: \{ and \} are literal braces (sets), \\ a line break; skip both chars
            continue
        if c == "{":
            depth += 1
        elif c == "}":
            depth -= 1
            if depth == 0:
                return text[open_at + 1 : i].strip()
        i += 1
    return None  # never closed: the solution was cut off


# --- comparison --------------------------------------------------------------------------------------------
def normalize_answer(answer: str) -> str:
    """Light, purely textual normalization: spacing, ``\\left``/``\\right``, ``\\dfrac``, ``\\text{}``, degrees."""
    s = answer.strip().strip("$").strip()
    s = re.sub(r"\\text\{([^{}]*)\}", lambda m: m.group(1).strip(), s)  # linear: no nested quantifiers
    for old, new in (("\\left", ""), ("\\right", ""), ("\\!", ""), ("\\,", ""), ("\\;", ""), ("\\dfrac", "\\frac"),
                     ("\\tfrac", "\\frac"), ("^\\circ", ""), ("^{\\circ}", ""), ("\\%", ""), ("\\$", "")):
        s = s.replace(old, new)
    s = re.sub(r"\s+", "", s)
    return s.rstrip(".")


def string_match(pred: str | None, gold: str) -> bool:
    """The naive check: equal after :func:`normalize_answer`."""
    return pred is not None and normalize_answer(pred) == normalize_answer(gold)


@contextmanager
def time_limit(seconds: float) -> Iterator[None]:
    """Raise :class:`GradingTimeout` in the block once ``seconds`` have passed (a SIGALRM timer).

    math-verify's own limits are per parse and per comparison, and each resets the process alarm, so they
    cannot bound a whole grading; this one does, and math-verify runs without its own timers inside it.
    Signals only reach the main thread: elsewhere (a worker thread) the block runs without a limit. Inside
    another running timer the earlier deadline wins, and the outer timer is re-armed with what it has left.
    """
    if seconds is None or seconds <= 0 or threading.current_thread() is not threading.main_thread():
        yield
        return
    outer_left = signal.getitimer(signal.ITIMER_REAL)[0]
    if outer_left and outer_left <= seconds:
        yield  # the outer deadline comes first: it bounds this block already
        return

    def expire(signum, frame):
        raise GradingTimeout(f"grading took longer than {seconds:g} s")

    started = time.monotonic()
    previous = signal.signal(signal.SIGALRM, expire)
    signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)
        if outer_left:
            signal.setitimer(signal.ITIMER_REAL, max(outer_left - (time.monotonic() - started), 1e-3))


def _short(text: str) -> str:
    return text if len(text) <= LOG_CHARS else f"{text[:LOG_CHARS]}... ({len(text)} characters)"


class _ShortMessages(logging.Filter):
    """Cut math-verify's log messages (it quotes whole expressions, thousands of characters) to one short line."""

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        if message.startswith("Timeout is disabled"):
            return False  # we disable its timers on purpose: :func:`time_limit` bounds the whole grading
        if len(message) > LOG_CHARS:
            record.msg, record.args = _short(message), None
        return True


def _math_verify():
    """Import math-verify on first use (it pulls in sympy: slow to import, needed only to grade)."""
    import math_verify

    for name in ("math_verify.parser", "math_verify.grader"):
        mv_log = logging.getLogger(name)
        if not any(isinstance(f, _ShortMessages) for f in mv_log.filters):
            mv_log.addFilter(_ShortMessages())
    return math_verify


# Scientific notation as programs write it (Minerva Math's gold ``4.5e33``), which LaTeX parsing misreads.
_E_NOTATION = re.compile(r"(?<![\w\\.])(\d+(?:\.\d+)?)[eE]([-+]?\d+)(?![\w.])")


@lru_cache(maxsize=65536)
def _parse(answer: str) -> list:
    # Wrapping in $...$ tells math-verify the string is LaTeX; parse is cached because weighted
    # selection compares the same few answers many times. No timer of its own: see time_limit.
    latex = _E_NOTATION.sub(lambda m: f"{m.group(1)}\\times 10^{{{m.group(2)}}}", answer)
    return _math_verify().parse(f"${latex}$", parsing_timeout=None)


_NUMBER = re.compile(r"[-+]?(?:\d+(?:\.\d*)?|\.\d+)")


def as_number(answer: str) -> Decimal | None:
    """A plain numeric answer as an exact number, or None: spacing, ``$``, ``\\text{}``, thousands separators
    (``1,600``), leading zeros, a trailing unit word (``18 \\text{ dollars}``) and ``%`` are allowed around it."""
    s = normalize_answer(answer).replace("{,}", ",")
    s = re.sub(r"(?<=\d),(?=\d{3}(?!\d))", "", s)
    s = re.sub(r"(?<=\d)(?:[a-zA-Z]+|%)$", "", s)
    if not _NUMBER.fullmatch(s):
        return None
    try:
        return Decimal(s)
    except InvalidOperation:
        return None


def _equivalent(pred: str, gold: str, kind: str = EXPRESSION) -> bool:
    if kind == INTEGER:
        pred_number, gold_number = as_number(pred), as_number(gold)
        if pred_number is not None and gold_number is not None:
            return pred_number == gold_number
    if normalize_answer(pred) == normalize_answer(gold):
        return True
    gold_parsed, pred_parsed = _parse(gold), _parse(pred)
    if not gold_parsed or not pred_parsed:
        return False
    return bool(_math_verify().verify(gold_parsed, pred_parsed, timeout_seconds=None))


def is_equivalent(pred: str | None, gold: str, timeout: float = 5, kind: str = EXPRESSION) -> bool:
    """True when ``pred`` and ``gold`` are mathematically the same answer, per math-verify (``kind``: see above).

    A cheap textual (or, for ``integer`` answers, numeric) match is tried first; math-verify (symbolic) decides the rest, within ``timeout``
    seconds in all; a comparison that runs out of time counts as not equivalent (and is logged).
    """
    if pred is None or not pred.strip():
        return False
    _math_verify()  # the first call imports sympy (seconds): not to be charged to this comparison's limit
    try:
        with time_limit(timeout):
            return _equivalent(pred, gold, kind)
    except GradingTimeout:
        log.warning("math-verify ran out of time (%gs) comparing %s with %s; counted as different",
                    timeout, _short(pred), _short(gold))
        return False


def grade(text: str, gold: str, timeout: float = 5, kind: str = EXPRESSION) -> dict:
    """Extract and judge one solution: ``{"answer", "answer_status", "correct", "string_match"}``.

    ``kind`` is the problem's ``answer_kind`` (how answers are compared; see the module docstring).
    ``timeout`` bounds the whole grading (extraction and comparison); a solution whose grading runs out of
    time gets ``answer_status`` ``timeout`` if no answer was found yet, and counts as wrong.
    """
    answer, status, correct = None, "timeout", False
    _math_verify()  # imported outside the limit, as in is_equivalent
    try:
        with time_limit(timeout):
            answer, status = find_answer(text)
            correct = answer is not None and _equivalent(answer, gold, kind)
    except GradingTimeout:
        log.warning("grading ran out of time (%gs) on answer %s; counted as wrong", timeout,
                    _short(answer) if answer is not None else "(not extracted yet)")
        correct = False
    return {"answer": answer, "answer_status": status, "correct": correct, "string_match": string_match(answer, gold)}
