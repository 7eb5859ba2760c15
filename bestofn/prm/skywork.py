"""Step 5, format "skywork": score every step of every solution with the Skywork process reward model (PRM).

How the Skywork PRM reads a solution (its reference inference code, reproduced token for token):

    input  = tokens(bos + problem + "\\n")
             + for each piece of response.split("\\n"):  tokens(piece) + [newline token]
    reward of step k = sigmoid(value_head(final hidden state at the newline token that ends piece k))

Empty pieces (from blank lines, or after a trailing newline) count as steps too, because the reference
scores them. The value head is one linear layer (``v_head.summary``) on the backbone's final, normed hidden
state (the reference's ``hidden_states[-1]``, which transformers defines as the output of the final norm);
its output is a logit, so the sigmoid turns it into the PRM's estimate of P(this step is correct). The
solution's reward is its last step's reward (chosen in ``selection.aggregate``): the DeepMind paper
(Appendix E) found the last-step score, which sees the whole solution, a better judge than the min or
product over steps.

The lean machinery (backbone only, head at step positions, token-budget batches without a mask) is
shared by every format: see :mod:`bestofn.prm.base`, docs/prm.md and benchmarks/prm_throughput.py.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence

import torch
from torch import nn

from ..errors import BestOfNError
from .base import (DEFAULT_BATCH_TOKENS, EncodedPair, PRMScore, PRMScorer, load_backbone, load_config, load_tokenizer,
                   read_tensors, resolve_checkpoint)
from .formats import SKYWORK, STEP_SEPARATORS, split_steps

__all__ = ["DEFAULT_BATCH_TOKENS", "EncodedPair", "PRMScore", "STEP_SEPARATOR", "SkyworkPRM"]

log = logging.getLogger(__name__)

STEP_SEPARATOR = STEP_SEPARATORS[SKYWORK]
VALUE_HEAD_KEYS = ("v_head.summary.weight", "v_head.summary.bias")
WHAT = "Qwen2-based Skywork PRM"


class SkyworkPRM(PRMScorer):
    """Qwen2 backbone + scalar value head, loaded from a Skywork-format PRM checkpoint."""

    format = SKYWORK

    def __init__(self, backbone: nn.Module, value_head: nn.Linear, tokenizer, max_length: int | None = None,
                 batch_tokens: int | None = None, compile: bool = False):
        super().__init__(backbone, tokenizer, max_length=max_length, batch_tokens=batch_tokens, compile=compile)
        self.value_head = value_head  # kept in float32: it is tiny and the rewards need the precision
        self.newline_id = tokenizer.encode(STEP_SEPARATOR)[-1]  # the reference's step token id
        if tokenizer.bos_token is None:
            # The reference recipe prepends bos_token (and would fail without one); the closest reading is
            # to prepend nothing. Said once per model, not once per solution.
            log.warning("the PRM tokenizer has no bos token: PRM inputs start directly with the problem")

    # --- loading ------------------------------------------------------------------------------------------
    @classmethod
    def from_pretrained(cls, name_or_path: str, device: str = "cpu", dtype: torch.dtype | None = None,
                        revision: str | None = None, batch_tokens: int | None = None,
                        max_length: int | None = None, compile: bool = False) -> SkyworkPRM:
        """Load a Skywork-format PRM from a local folder or a Hub id.

        ``dtype`` defaults to bfloat16 on GPU (float16 on GPUs without bf16, such as the T4) and float32
        on CPU (bf16 matmuls are slow on most CPUs).
        The checkpoint's ``auto_map`` (custom code) is ignored on purpose: the architecture is a plain
        Qwen2 backbone plus ``v_head.summary``, which this class builds itself, so ``trust_remote_code``
        is never needed. Problems the user can fix are raised as one-line :class:`BestOfNError`.
        """
        from ..backends.base import resolve_dtype

        if dtype is None:
            dtype = resolve_dtype("auto", str(device))
        folder = resolve_checkpoint(name_or_path, revision)
        config = load_config(folder, ("qwen2",), WHAT)
        value_head = _load_value_head(folder, config.hidden_size)  # first: a wrong checkpoint fails fast
        backbone = load_backbone(folder, config, dtype, WHAT)
        tokenizer = load_tokenizer(folder)
        model = cls(backbone, value_head, tokenizer, max_length=max_length, batch_tokens=batch_tokens, compile=compile)
        return model.to(device)

    # --- the reference recipe -------------------------------------------------------------------------------
    def encode(self, problems: Sequence[str], responses: Sequence[str]) -> list[EncodedPair]:
        """Token ids and step positions of each pair, exactly as the reference builds them.

        All prompts and step pieces are tokenized in two batched calls (fast tokenizers parallelize
        them); tokenizing each piece separately, not the whole response, is what the reference does, and
        it changes the tokens wherever a piece would otherwise merge with the newline after it.
        """
        if not problems:
            return []
        bos = self.tokenizer.bos_token or ""
        prompt_ids = self.tokenizer([bos + p + STEP_SEPARATOR for p in problems])["input_ids"]
        pieces = [split_steps(r, STEP_SEPARATOR) for r in responses]
        flat = [piece for ps in pieces for piece in ps]
        flat_ids = iter(self.tokenizer(flat)["input_ids"])
        pairs = []
        for prompt, ps in zip(prompt_ids, pieces):
            ids, positions = list(prompt), []
            for piece in ps:
                piece_ids = next(flat_ids)
                ids.extend(piece_ids if piece else [])  # an empty piece contributes only its newline
                ids.append(self.newline_id)
                positions.append(len(ids) - 1)
            pairs.append(self.truncate(EncodedPair(ids, positions)))
        return pairs

    def rewards_at(self, states: torch.Tensor) -> torch.Tensor:
        """sigmoid(value head): the PRM's estimate of P(the solution is still right at this step)."""
        return torch.sigmoid(self.value_head(states).squeeze(-1))


def _load_value_head(folder, hidden_size: int) -> nn.Linear:
    """Read just ``v_head.summary.{weight,bias}`` from the checkpoint (safetensors or .bin, sharded or not)."""
    tensors = read_tensors(folder, VALUE_HEAD_KEYS)
    missing = [k for k in VALUE_HEAD_KEYS if k not in tensors]
    if missing:
        raise BestOfNError(f"the checkpoint {folder} has no value head ({', '.join(missing)} missing): "
                           "it is not a Skywork-format PRM (e.g. Skywork/Skywork-o1-Open-PRM-Qwen-2.5-1.5B)")
    weight, bias = tensors[VALUE_HEAD_KEYS[0]], tensors[VALUE_HEAD_KEYS[1]]
    if tuple(weight.shape) != (1, hidden_size) or bias.numel() != 1:
        raise BestOfNError(f"the value head in {folder} has shape {tuple(weight.shape)}, expected (1, {hidden_size})")
    head = nn.Linear(hidden_size, 1)
    head.load_state_dict({"weight": weight.float(), "bias": bias.float().reshape(1)})
    return head.eval()
