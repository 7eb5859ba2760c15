"""Step 5: process reward models, one module per checkpoint format behind one interface.

Contract: :func:`load_prm` returns a scorer with ``.score(problems, responses) -> list[list[float]]`` (one
list of step rewards in [0, 1] per pair, in input order), ``.score_detailed`` (the same, with a flag for
inputs that were cut at the PRM's context; with a :class:`~bestofn.prm.cache.PrefixCache`, only the tokens no
cached prefix covers run, as a search's beams grow), ``.format`` (its format name) and ``.step_separator`` (how
it splits a response into steps). Each format reproduces its reference inference recipe exactly (float32,
within 1e-5) and loads without the checkpoint's remote code:

    skywork            skywork.py        Skywork-o1-Open-PRM-Qwen-2.5-{1.5B,7B}
    qwen2.5-math-prm   qwen_math.py      Qwen/Qwen2.5-Math-PRM-{7B,72B}
    rlhflow            rlhflow.py        RLHFlow/Llama3.1-8B-PRM-{Deepseek,Mistral}-Data
    math-shepherd      math_shepherd.py  peiyi9979/math-shepherd-mistral-7b-prm

Format names, separators and detection (``formats``) import no torch, so the config and the prompt can
use them cheaply; the scorers are imported on first use.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from .formats import FORMATS, MATH_SHEPHERD, QWEN_MATH_PRM, RLHFLOW, SKYWORK, STEP_SEPARATORS, detect_format, step_separator

if TYPE_CHECKING:
    import torch

    from .base import PRMScorer

__all__ = ["DEFAULT_BATCH_TOKENS", "EncodedPair", "FORMATS", "MathShepherdPRM", "PRMScore", "PRMScorer", "QwenMathPRM",
           "RLHFlowPRM", "STEP_SEPARATORS", "SkyworkPRM", "detect_format", "load_prm", "scorer_class", "step_separator"]

# Public name -> module that defines it; imported on first access (PEP 562), since they need torch.
_LAZY = {"DEFAULT_BATCH_TOKENS": "base", "EncodedPair": "base", "PRMScore": "base", "PRMScorer": "base",
         "SkyworkPRM": "skywork", "QwenMathPRM": "qwen_math", "RLHFlowPRM": "rlhflow", "MathShepherdPRM": "math_shepherd"}
_SCORERS = {SKYWORK: "SkyworkPRM", QWEN_MATH_PRM: "QwenMathPRM", RLHFLOW: "RLHFlowPRM", MATH_SHEPHERD: "MathShepherdPRM"}


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        import importlib

        return getattr(importlib.import_module(f".{_LAZY[name]}", __name__), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def scorer_class(format: str) -> type[PRMScorer]:
    """The scorer class of a format name."""
    return __getattr__(_SCORERS[format])


def load_prm(name_or_path: str, device: str = "cpu", dtype: torch.dtype | None = None, revision: str | None = None,
             format: str | None = None, batch_tokens: int | None = None, max_length: int | None = None,
             compile: bool = False) -> PRMScorer:
    """Load the PRM at ``name_or_path`` (Hub id or folder) as a scorer.

    ``format=None`` detects the format from the checkpoint's config.json (``architectures``) or its known
    Hub id; a plain causal LM that is not a known id needs ``format`` (a one-line error says so).
    ``compile`` compiles the backbone with ``torch.compile`` (worth it only for big runs on GPU: see
    :func:`bestofn.prm.base.compile_enabled`).
    """
    from .base import read_config_dict, resolve_checkpoint
    from .formats import format_from_config

    folder = resolve_checkpoint(name_or_path, revision)
    # The Hub id (not the download folder) is what a known-id lookup needs.
    fmt = format_from_config(name_or_path, read_config_dict(folder), format)
    return scorer_class(fmt).from_pretrained(str(folder), device=device, dtype=dtype, batch_tokens=batch_tokens,
                                             max_length=max_length, compile=compile)

