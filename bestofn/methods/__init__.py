"""PRM-guided search methods beside Best-of-N (Snell et al. 2024; huggingface/search-and-learn, corrected).

Contract: a method builds, for every problem, a tree of solution steps and returns a final pool of *finished*
solutions (finish reason ``stop`` or ``length``), which the pipeline then grades and selects from with the
same rules as Best-of-N. The search talks to a :class:`~bestofn.backends.GenerationBackend` (one step per
call, stopped at the PRM's step delimiter) and to a PRM (``score_detailed``) only, so tests can drive it
with fakes whose rules are known. Every iteration sends all active beams of all problems in one backend call
and all prefixes in one PRM call; each iteration is journaled, so a killed search resumes there (on Ray,
the pipeline searches chunks of problems on workers and resumes per chunk).

- ``tree``         the step records (nodes), beam seeds, the per-problem search state
- ``beam_search``  keep the top n/M beams per problem, expand each into M continuations
- ``dvts``         n/M independent subtrees, each a greedy beam over M candidates per step
- ``search``       the batched loop shared by both (generate, look ahead, score, journal, resume)

Best-of-N itself stays the pipeline's ``samples`` stage.
"""

from __future__ import annotations

METHODS = ("best_of_n", "beam_search", "dvts")
SEARCH_METHODS = METHODS[1:]

__all__ = ["METHODS", "SEARCH_METHODS"]
