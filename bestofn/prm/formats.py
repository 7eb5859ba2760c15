"""The PRM formats: their names, step separators, and how a checkpoint's format is told.

This module is light on purpose (no torch): the config, the prompt and the pipeline read the separator
before any model is loaded, so that the generator writes its steps the way the PRM will read them.

A format is told, without loading any weights, from (in this order) the explicit ``format``, the
``architectures`` in the checkpoint's config.json, or a known Hub id. A plain causal LM (RLHFlow,
Math-Shepherd) has nothing in its config that says it is a PRM, so a local copy or a fine-tune of one
needs the format named.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

from ..errors import BestOfNError, first_line, model_load_error

SKYWORK = "skywork"
QWEN_MATH_PRM = "qwen2.5-math-prm"
RLHFLOW = "rlhflow"
MATH_SHEPHERD = "math-shepherd"

LINE = "\n"  # one step per line
BLANK_LINE = "\n\n"  # steps separated by a blank line
# How each format finds the steps of a solution (each format's module splits responses with this).
STEP_SEPARATORS: dict[str, str] = {SKYWORK: LINE, QWEN_MATH_PRM: BLANK_LINE, RLHFLOW: BLANK_LINE, MATH_SHEPHERD: BLANK_LINE}
FORMATS: tuple[str, ...] = tuple(STEP_SEPARATORS)


def split_steps(response: str, separator: str) -> list[str]:
    """The steps a PRM reads in ``response``, in order: one reward each (the one splitter of scoring and views).

    Every piece between separators is a step, empty ones included: Skywork's reference scores a blank line
    (an empty piece) like any other line, and Qwen's ``<extra_0>`` tags one per separator plus one at the end.
    (Math-Shepherd tags no step after a trailing separator: its last, empty, piece then has no reward.)
    """
    return response.split(separator)

# config.json "architectures" of checkpoints that ship their own (remote) modelling code.
ARCHITECTURES: dict[str, str] = {"Qwen2ForPrmModel": SKYWORK, "Qwen2ForProcessRewardModel": QWEN_MATH_PRM}
# Plain causal LMs whose config says nothing about being a PRM: known by their Hub id.
KNOWN_HUB_IDS: dict[str, str] = {
    "RLHFlow/Llama3.1-8B-PRM-Deepseek-Data": RLHFLOW,
    "RLHFlow/Llama3.1-8B-PRM-Mistral-Data": RLHFLOW,
    "peiyi9979/math-shepherd-mistral-7b-prm": MATH_SHEPHERD,
}


def check_format(format: str) -> str:
    """``format`` if it is a known format name, else a one-line error listing them."""
    if format not in STEP_SEPARATORS:
        raise BestOfNError(f"unknown PRM format {format!r}; choose one of {', '.join(FORMATS)} (--prm-format)")
    return format


def _known_id(name_or_path: str) -> str | None:
    """The format of a known Hub id, also for a local copy in the Hub cache (``models--owner--name``)."""
    lowered = {k.lower(): v for k, v in KNOWN_HUB_IDS.items()}
    if name_or_path.lower() in lowered:
        return lowered[name_or_path.lower()]
    for part in Path(name_or_path).parts:
        if part.startswith("models--") and part[len("models--"):].replace("--", "/", 1).lower() in lowered:
            return lowered[part[len("models--"):].replace("--", "/", 1).lower()]
    return None


def format_from_config(name_or_path: str, config: dict, format: str | None = None) -> str:
    """The format of a checkpoint whose config.json holds ``config``; ``format`` (if given) is checked.

    An explicit format that contradicts the checkpoint's architectures (e.g. ``rlhflow`` for a Skywork
    checkpoint) is refused: its rewards would be read from the wrong place and mean nothing.
    """
    by_arch = next((ARCHITECTURES[a] for a in config.get("architectures") or [] if a in ARCHITECTURES), None)
    if format is not None:
        check_format(format)
        if by_arch is not None and by_arch != format:
            raise BestOfNError(f"the PRM {name_or_path} is a {by_arch!r} checkpoint (config.json architectures "
                               f"{config['architectures']}), not {format!r}: drop --prm-format or pass {by_arch}")
        return format
    found = by_arch or _known_id(name_or_path)
    if found is None:
        archs = config.get("architectures")
        raise BestOfNError(f"cannot tell the PRM format of {name_or_path} (config.json architectures {archs}); "
                           f"pass --prm-format, one of: {', '.join(FORMATS)}")
    return found


def read_config(name_or_path: str, revision: str | None = None) -> dict:
    """The checkpoint's config.json as a dict: read from a folder, or fetched alone from the Hub."""
    local = Path(os.path.expanduser(name_or_path))
    if local.is_dir():
        path = local / "config.json"
    else:
        from huggingface_hub import hf_hub_download

        try:
            path = Path(hf_hub_download(name_or_path, "config.json", revision=revision))
        except Exception as e:  # noqa: BLE001 - offline, unknown repo, gated: the user's to fix
            raise model_load_error("PRM", name_or_path, "--prm", e) from None
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError) as e:
        raise BestOfNError(f"cannot read the PRM config {path}: {first_line(e)}") from None


def detect_format(name_or_path: str, format: str | None = None, revision: str | None = None) -> str:
    """The checkpoint's format, from its config.json alone (no weights are read)."""
    if format is not None:
        check_format(format)  # a typo is told before any download
    elif _known_id(name_or_path) is not None:
        return _known_id(name_or_path)  # no config needed (and none fetched) for a known Hub id
    return format_from_config(name_or_path, read_config(name_or_path, revision), format)


def step_separator(name_or_path: str, format: str | None = None, revision: str | None = None) -> str:
    """The step separator of the PRM ``name_or_path``: what the generation prompt must ask for."""
    return STEP_SEPARATORS[detect_format(name_or_path, format, revision)]
