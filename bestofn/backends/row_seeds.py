"""Per-row seeded sampling for ``transformers`` ``generate``: a sequence's tokens depend on its own seed only.

``model.generate`` draws every row of a batch from the one global torch generator, so a sequence's sample
depends on which other sequences share its batch. Every sample must be the same whatever batch it lands in
(resume, a different number of problems, another batch size, free memory: ``bestofn.seeds``), so this module
samples each row itself, from a ``torch.Generator`` seeded for that row, and hands ``generate`` logits that
make greedy decoding pick exactly that token.

What is guaranteed: the random numbers a row consumes come from its own stream, one draw per decoding step,
so a row's sample is a function of its seed and its logits. The logits themselves are computed in a padded
batch, and floating-point sums can differ in the last bits with the padding; on CPU in float32 this does
not change the tokens of the tiny test models (tested), on GPU in bf16 a near-tie could flip a token.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch


class RowSeededSampler:
    """A ``LogitsProcessor``: samples row ``i`` from softmax(logits / temperature), top-p filtered, with its own
    generator, and returns logits that are 0 at the sampled token and -inf elsewhere (greedy then picks it)."""

    def __init__(self, seeds: Sequence[int], temperature: float, top_p: float, device: torch.device):
        self.generators = [torch.Generator(device=device).manual_seed(s) for s in seeds]
        self.temperature = temperature
        self.top_p = top_p

    def __call__(self, input_ids: torch.LongTensor, scores: torch.FloatTensor) -> torch.FloatTensor:
        if scores.shape[0] != len(self.generators):
            raise ValueError(f"{scores.shape[0]} rows but {len(self.generators)} seeds")
        probs = torch.softmax(scores.float() / self.temperature, dim=-1)
        if self.top_p < 1.0:
            probs = _top_p(probs, self.top_p)
        chosen = torch.stack([torch.multinomial(p, 1, generator=g) for p, g in zip(probs, self.generators)])
        out = torch.full_like(scores, float("-inf"))
        return out.scatter_(1, chosen, 0.0)


def _top_p(probs: torch.Tensor, top_p: float) -> torch.Tensor:
    """Keep the smallest set of most likely tokens whose mass reaches ``top_p`` (at least one), renormalized."""
    sorted_probs, order = probs.sort(dim=-1, descending=True)
    before = sorted_probs.cumsum(dim=-1) - sorted_probs  # mass of the tokens ranked above each one
    sorted_probs = sorted_probs.masked_fill(before >= top_p, 0.0)
    kept = torch.zeros_like(probs).scatter_(-1, order, sorted_probs)
    return kept / kept.sum(dim=-1, keepdim=True)
