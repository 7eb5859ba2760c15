"""Step 5: process reward models, one module per checkpoint format behind one interface.

Contract: a scorer has ``.score(problems, responses) -> list[list[float]]`` (one list of step rewards in
[0, 1] per pair, in input order) and ``.score_detailed`` (the same, with a flag for inputs that were cut at
the PRM's context). Each format reproduces its reference inference recipe exactly and loads without the
checkpoint's remote code.
"""

from __future__ import annotations

import torch

from .skywork import DEFAULT_BATCH_TOKENS, EncodedPair, PRMScore, SkyworkPRM

__all__ = ["DEFAULT_BATCH_TOKENS", "EncodedPair", "PRMScore", "SkyworkPRM", "load_prm"]


def load_prm(name_or_path: str, device: str = "cpu", dtype: torch.dtype | None = None, revision: str | None = None,
             format: str | None = None, batch_tokens: int | None = None, max_length: int | None = None) -> SkyworkPRM:
    """Load the PRM at ``name_or_path`` (Hub id or folder) as a scorer; ``format=None`` means Skywork's."""
    return SkyworkPRM.from_pretrained(name_or_path, device=device, dtype=dtype, revision=revision,
                                      batch_tokens=batch_tokens, max_length=max_length)
