"""PRM-guided search methods beside Best-of-N (Snell et al. 2024; huggingface/search-and-learn, corrected).

Contract: a method builds, for every problem, a tree of solution steps and returns a final pool of *finished*
solutions (finish reason ``stop`` or ``length``), which the pipeline then grades and selects from with the
same rules as Best-of-N. The search talks to a :class:`~bestofn.backends.GenerationBackend` (one step per
call, stopped at the PRM's step delimiter) and to a PRM (``score_detailed``) only, so tests can drive it
with fakes whose rules are known. The pipeline searches the problems in chunks planned from the config (the
same in one process and on Ray, so both write the same bytes); every iteration sends all active beams of a
chunk's problems in one backend call and all their prefixes in one PRM call. Each iteration is journaled in
this process, so a killed search resumes there (on Ray, at its last finished chunk).

- ``tree``         the step records (nodes), beam seeds, the per-problem search state
- ``beam_search``  keep the top n/M beams per problem, expand each into M continuations
- ``dvts``         n/M independent subtrees, each a greedy beam over M candidates per step
- ``search``       the batched loop shared by both (generate, look ahead, score, journal, resume)

Best-of-N itself stays the pipeline's ``samples`` stage.
"""

from __future__ import annotations

BEST_OF_N = "best_of_n"
RUN_METHODS = (BEST_OF_N, "beam_search", "dvts")  # the choices of ``--method`` (not selection.METHODS: how to pick)
SEARCH_METHODS = RUN_METHODS[1:]
RUN_METHOD_LABELS = {BEST_OF_N: "Best-of-N", "beam_search": "beam search", "dvts": "DVTS"}  # as reports name them

__all__ = ["BEST_OF_N", "RUN_METHODS", "RUN_METHOD_LABELS", "SEARCH_METHODS"]
