"""What the two-token formats (RLHFlow, Math-Shepherd) share: a causal LM read through two of its logits.

These PRMs are plain causal LMs trained to predict a "good" or a "bad" token after each step; the step
reward is ``softmax(logit_good, logit_bad)[0]``. Their reference code computes the whole vocabulary's logits
at every position and keeps two numbers. Here the backbone (transformers' base model class, e.g.
``LlamaModel``, ``MistralModel``) runs alone, and only the two LM-head rows of those tokens are read from
the checkpoint (sliced from the file, never the whole head), so the "head" is a (2, hidden) matrix
applied at the reward positions only: the same two logits, without the other 128k.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import ClassVar

import torch
from torch import nn

from ..errors import BestOfNError
from .base import PRMScorer, load_backbone, load_config, load_tokenizer, read_tensors, resolve_checkpoint

LM_HEAD, EMBEDDINGS = "lm_head.weight", "model.embed_tokens.weight"


class TwoTokenPRM(PRMScorer):
    """Backbone + the LM-head rows of the (good, bad) tokens; reward = softmax over the two, index 0."""

    model_types: ClassVar[tuple[str, ...]]  # backbones the format is known to come in
    what: ClassVar[str]  # the format in words, for errors

    def __init__(self, backbone: nn.Module, head: nn.Linear, tokenizer, max_length: int | None = None,
                 batch_tokens: int | None = None, compile: bool = False):
        super().__init__(backbone, tokenizer, max_length=max_length, batch_tokens=batch_tokens, compile=compile)
        self.head = head  # (2, hidden), float32, rows (good, bad), no bias: an LM head has none
        self.good_id, self.bad_id = self.candidate_ids(tokenizer)

    @classmethod
    def candidate_ids(cls, tokenizer) -> tuple[int, int]:
        """The (good, bad) token ids, derived through the tokenizer exactly as the reference does."""
        raise NotImplementedError

    @classmethod
    def check_tokenizer(cls, tokenizer) -> None:
        """Refuse (one line) a tokenizer the recipe cannot work with; called before any weight is read."""

    @classmethod
    def from_pretrained(cls, name_or_path: str, device: str = "cpu", dtype: torch.dtype | None = None,
                        revision: str | None = None, batch_tokens: int | None = None,
                        max_length: int | None = None, compile: bool = False) -> TwoTokenPRM:
        """Load from a folder or Hub id; ``dtype`` None means bf16 on GPU, float32 on CPU."""
        from ..backends.base import resolve_dtype

        dtype = dtype or resolve_dtype("auto", str(device))
        folder = resolve_checkpoint(name_or_path, revision)
        config = load_config(folder, cls.model_types, cls.what)
        tokenizer = load_tokenizer(folder)
        cls.check_tokenizer(tokenizer)
        head = load_token_rows(folder, config, cls.candidate_ids(tokenizer))
        backbone = load_backbone(folder, config, dtype, cls.what)
        return cls(backbone, head, tokenizer, max_length=max_length, batch_tokens=batch_tokens, compile=compile).to(device)

    def rewards_at(self, states: torch.Tensor) -> torch.Tensor:
        """softmax over the (good, bad) logits, index 0: P(good)."""
        return torch.softmax(self.head(states), dim=-1)[:, 0]


def load_token_rows(folder: Path, config, token_ids: Sequence[int]) -> nn.Linear:
    """A bias-free Linear(hidden, len(token_ids)) holding just those rows of the LM head.

    The rows come from ``lm_head.weight``, or, for a model with tied embeddings that stores no LM head,
    from the input embeddings (what the tied head is).
    """
    ids = list(token_ids)
    tensors = read_tensors(folder, [LM_HEAD, EMBEDDINGS], rows=ids)
    if LM_HEAD in tensors:
        rows = tensors[LM_HEAD]
    elif getattr(config, "tie_word_embeddings", False) and EMBEDDINGS in tensors:
        rows = tensors[EMBEDDINGS]
    else:
        raise BestOfNError(f"the checkpoint {folder} has no {LM_HEAD} (and its embeddings are not tied): the "
                           "reward tokens' logits cannot be computed; is it a complete causal LM?")
    if tuple(rows.shape) != (len(ids), config.hidden_size):
        raise BestOfNError(f"the LM head rows in {folder} have shape {tuple(rows.shape)}, expected "
                           f"({len(ids)}, {config.hidden_size})")
    head = nn.Linear(config.hidden_size, len(ids), bias=False)
    head.load_state_dict({"weight": rows.float()})
    return head.eval()
