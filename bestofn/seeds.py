"""The one seed rule: a stable 32-bit number from a run's seed and a name (a problem id, a position).

Python's ``hash`` changes between processes and ``random``'s algorithms may change between versions, so
everything that must be reproducible on any machine (the problem subset of step 1, the sampling seed of each
generation call in step 3) derives its randomness from ``sha256(f"{seed}:{name}")``.
"""

from __future__ import annotations

import hashlib


def seed_hash(seed: int, name: str | int) -> str:
    """Hex digest of ``seed:name``: the order key of the stratified subset (step 1)."""
    return hashlib.sha256(f"{seed}:{name}".encode()).hexdigest()


def derived_seed(seed: int, name: str | int) -> int:
    """A 32-bit seed derived from ``seed`` and ``name``, e.g. one per generation call or per prompt (step 3)."""
    return int(seed_hash(seed, name)[:8], 16)
