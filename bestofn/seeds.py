"""The one seed rule: a stable 32-bit number from a run's seed and a name (a problem id, a position).

Python's ``hash`` changes between processes and ``random``'s algorithms may change between versions, so
everything that must be reproducible on any machine (the problem subset of step 1, the sampling seed of each
solution in step 3) derives its randomness from ``sha256(f"{seed}:{name}")``.

A sampled solution is a function of (run seed, problem, sample index) and the generation settings alone:
:func:`sample_seed` is its seed, whichever batch, chunk, worker or round draws it. The backends apply it as
``derived_seed(prompt seed, index)`` with ``prompt seed = problem_seed(run seed, problem)``.
"""

from __future__ import annotations

import hashlib


def seed_hash(seed: int, name: str | int) -> str:
    """Hex digest of ``seed:name``: the order key of the stratified subset (step 1)."""
    return hashlib.sha256(f"{seed}:{name}".encode()).hexdigest()


def derived_seed(seed: int, name: str | int) -> int:
    """A 32-bit seed derived from ``seed`` and ``name``, e.g. one per problem or per sample (step 3)."""
    return int(seed_hash(seed, name)[:8], 16)


def problem_seed(run_seed: int, unique_id: str) -> int:
    """The seed of a problem's prompt: its samples' seeds derive from it (:func:`sample_seed`)."""
    return derived_seed(run_seed, unique_id)


def sample_seed(run_seed: int, unique_id: str, sample_index: int) -> int:
    """The seed of sample ``sample_index`` of problem ``unique_id`` in a run seeded ``run_seed``.

    Hashed per sample (not ``problem seed + index``): neighbouring problems never share a random stream.
    """
    return derived_seed(problem_seed(run_seed, unique_id), sample_index)
