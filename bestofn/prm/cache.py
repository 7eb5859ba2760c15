"""Incremental scoring: the PRM's KV cache of scored texts, reused by the texts that extend them.

A search scores a beam's whole prefix again at every step; every PRM format is a causal decoder, so the
keys and values of a prefix's tokens do not change when the text grows. :class:`PrefixCache` keeps them,
one entry per caller's key (a search: one per live beam), and :meth:`PRMScorer.score_detailed` with
``cache=`` runs only the tokens after what an entry already covers.

Exactness does not rest on how a format tokenizes: each text is encoded by its format's own recipe, whole,
and an entry serves only the **longest common token prefix** of its ids and the new ids (realignment):
wherever a prefix tokenizes differently inside the longer text (a merge across the step boundary, a chat
template's closing tokens), the cache is cut there and the rest runs. Causal attention makes a token's
keys, values and final state a function of the tokens up to it, so rewards equal a full rescoring up to
float rounding (float32: within 1e-5, tests/test_prm_cache.py).

Entries share memory like the beams share text: an entry holds the keys and values of its own new tokens
and points at the entry it extends (``base``), so siblings hold their parent's tokens once, and a pruned
beam's tokens are freed as soon as nothing live points at them (:meth:`PrefixCache.keep`). The cache holds
at most ``capacity`` tokens (default: the PRM's ``batch_tokens``); a text whose entry would not fit is
scored but not kept, and texts that name a missing parent share one pass over their common prefix instead.
"""

from __future__ import annotations

from collections.abc import Hashable, Iterable
from dataclasses import dataclass, field
from typing import Any


@dataclass(eq=False)
class CacheEntry:
    """The PRM's keys and values of one scored text: ``ids``' first ``base_len`` tokens from ``base``, the rest here."""

    ids: list[int]  # every token id the entry covers (its own and its base's)
    rewards: dict[int, float]  # the reward at each reward position among ``ids`` that was computed
    base: CacheEntry | None = None
    base_len: int = 0
    keys: list[Any] = field(default_factory=list)  # per layer: (kv_heads, own tokens, head_dim)
    values: list[Any] = field(default_factory=list)

    @property
    def own_len(self) -> int:
        return len(self.ids) - self.base_len

    def segments(self, length: int) -> list[tuple[CacheEntry, int]]:
        """(entry, tokens of its own segment) from the root, covering the first ``length`` tokens of ``ids``."""
        if self.base is not None and length <= self.base_len:
            return self.base.segments(length)
        head = self.base.segments(self.base_len) if self.base is not None else []
        return head + [(self, length - self.base_len)]


class PrefixCache:
    """Entries by key; :meth:`keep` frees the rest. Created by the caller (a search, per chunk), filled by the scorer."""

    def __init__(self, capacity: int | None = None):
        self.capacity = capacity  # None: the scorer's batch_tokens
        self.entries: dict[Hashable, CacheEntry] = {}

    def keep(self, keys: Iterable[Hashable]) -> None:
        """Drop every entry but those of ``keys``; tokens no kept entry builds on are freed with them."""
        wanted = set(keys)
        self.entries = {k: e for k, e in self.entries.items() if k in wanted}

    @property
    def tokens(self) -> int:
        """Tokens whose keys and values the cache holds, each counted once (shared bases included)."""
        seen: set[int] = set()
        total = 0
        for entry in self.entries.values():
            node: CacheEntry | None = entry
            while node is not None and id(node) not in seen:
                seen.add(id(node))
                total += node.own_len
                node = node.base
        return total

    def __len__(self) -> int:
        return len(self.entries)


def common_prefix(a: list[int], b: list[int]) -> int:
    """Length of the longest common prefix of two token lists."""
    n = min(len(a), len(b))
    for i in range(n):
        if a[i] != b[i]:
            return i
    return n
