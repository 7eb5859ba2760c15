"""When to stop sampling a problem: the stopping rules of adaptive Best-of-N, on answer groups.

Samples are drawn in rounds; after each round a rule looks at the answers drawn so far, grouped exactly as
selection groups them (:func:`bestofn.selection.group_answers`, as one label per sample with
:func:`~bestofn.selection.group_labels`; -1 = no answer), and says whether the problem needs more:

- ``beta`` (Adaptive-Consistency, Aggarwal et al. 2023): with v1 >= v2 the sizes of the two largest groups,
  stop when the posterior probability that the leader stays ahead, 1 - I_0.5(v1 + 1, v2 + 1) (I the
  regularised incomplete Beta function), reaches the confidence;
- ``esc`` (early-stopping self-consistency, Li et al. 2024): stop after a round whose answers all fall in one
  group (a sample without an answer breaks the agreement; with rounds of one sample, the first answer stops);
- ``prm`` (this project's): the Beta test on *reward-weighted* votes. With m the number of answered samples
  and W_g the summed reward (the run's aggregation of the PRM's step rewards) of group g, each group gets
  v_g = m * W_g / sum_h W_h votes: the same total as plain votes, shared by reward instead of by count. Stop
  when 1 - I_0.5(v1 + 1, v2 + 1) >= confidence, v1 >= v2 the two largest. A unanimous round is judged as
  ``beta`` judges it; a split one stops sooner when the PRM backs the leader (3 answers at reward 0.9
  against one at 0.1 weigh 3.86 to 0.14, nearly a unanimous 4) and later when the PRM doubts it. The
  leader is weighted Best-of-N's choice, the answer the rule protects. With every reward 0 it is ``beta``.

Every rule is written once, vectorised over any leading axes (the pipeline asks about one problem, the
report's stopping study about every prefix of many random orders at once), on per-group vote totals.
numpy and scipy are imported where they are used: the config (and so every CLI start) imports the rule names.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import numpy as np

OFF = "off"
RULES = ("beta", "esc", "prm")  # the choices of --adaptive besides "off"
RULE_LABELS = {"beta": "Beta (Adaptive-Consistency)", "esc": "ESC (window agreement)", "prm": "PRM-weighted Beta"}


def leader_stays_ahead(v1: np.ndarray | float, v2: np.ndarray | float) -> np.ndarray:
    """Adaptive-Consistency's confidence: 1 - I_0.5(v1 + 1, v2 + 1), the posterior probability (uniform
    prior) that the group with v1 votes is more likely than the one with v2. 0.5 when they are tied."""
    import numpy as np
    from scipy.special import betainc

    return 1.0 - betainc(np.asarray(v1, dtype=float) + 1.0, np.asarray(v2, dtype=float) + 1.0, 0.5)


def top_two(votes: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The largest and second largest vote total along the last axis (0 where there are fewer groups)."""
    import numpy as np

    votes = np.asarray(votes, dtype=float)
    padded = np.concatenate([np.zeros(votes.shape[:-1] + (2,)), votes], axis=-1)  # no answers: 0 against 0
    ranked = np.sort(padded, axis=-1)
    return ranked[..., -1], ranked[..., -2]


def reward_votes(counts: np.ndarray, reward_sums: np.ndarray) -> np.ndarray:
    """The ``prm`` rule's votes: the answered samples (sum of ``counts``) shared in proportion to the groups'
    summed rewards; plain counts where every reward is 0."""
    import numpy as np

    counts, reward_sums = np.asarray(counts, dtype=float), np.asarray(reward_sums, dtype=float)
    answered, weight = counts.sum(axis=-1, keepdims=True), reward_sums.sum(axis=-1, keepdims=True)
    shared = answered * reward_sums / np.where(weight > 0, weight, 1.0)
    return np.where(weight > 0, shared, counts)


def fires(rule: str, counts: np.ndarray, reward_sums: np.ndarray, round_agrees: np.ndarray,
          confidence: float) -> np.ndarray:
    """Whether ``rule`` stops, given per-group sizes and summed rewards (last axis: the groups) of the samples
    drawn so far, and whether the last round's answers all fell in one group (``esc``)."""
    import numpy as np

    if rule == "esc":
        return np.asarray(round_agrees, dtype=bool)
    if rule == "beta":
        v1, v2 = top_two(counts)
    elif rule == "prm":
        v1, v2 = top_two(reward_votes(counts, reward_sums))
    else:
        raise ValueError(f"unknown stopping rule {rule!r}; choose one of {RULES}")
    return leader_stays_ahead(v1, v2) >= confidence


def round_agrees(labels: Sequence[int] | np.ndarray) -> np.ndarray:
    """Whether all samples of a round (last axis) have an answer and it is one group's."""
    import numpy as np

    labels = np.asarray(labels)
    return (labels >= 0).all(axis=-1) & (labels == labels[..., :1]).all(axis=-1)


def group_totals(labels: Sequence[int], rewards: Sequence[float]) -> tuple[np.ndarray, np.ndarray]:
    """Per group (label 0..G-1), its size and its summed reward; samples labelled -1 (no answer) count in none."""
    import numpy as np

    labels, rewards = np.asarray(labels, dtype=int), np.asarray(rewards, dtype=float)
    num_groups = int(labels.max()) + 1 if labels.size else 0
    answered = labels >= 0
    counts = np.bincount(labels[answered], minlength=num_groups).astype(float)
    sums = np.zeros(num_groups)
    for label, reward in zip(labels[answered], rewards[answered]):  # in draw order: the same floats as selection
        sums[label] += reward
    return counts, sums


def should_stop(rule: str, labels: Sequence[int], rewards: Sequence[float], last_round: int, confidence: float) -> bool:
    """Whether a problem stops drawing after a round: ``labels`` and ``rewards`` of every sample drawn so far,
    in draw order, the last ``last_round`` of them drawn in the round just finished."""
    if len(labels) != len(rewards) or not 1 <= last_round <= len(labels):
        raise ValueError(f"{len(labels)} labels, {len(rewards)} rewards, last round of {last_round}: need one reward "
                         f"per sample and a last round of 1..{len(labels)} samples")
    counts, sums = group_totals(labels, rewards)
    return bool(fires(rule, counts, sums, round_agrees(list(labels)[-last_round:]), confidence))


def round_ends(n: int, batch: int) -> list[int]:
    """How many samples are drawn after each round: batch, 2 batch, ... up to n (the last round may be smaller)."""
    return [min(end, n) for end in range(batch, n + batch, batch)]


__all__ = ["OFF", "RULES", "RULE_LABELS", "fires", "group_totals", "leader_stays_ahead", "reward_votes",
           "round_agrees", "round_ends", "should_stop", "top_two"]
