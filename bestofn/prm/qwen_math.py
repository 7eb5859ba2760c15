"""Step 5, format "qwen2.5-math-prm": Qwen2.5-Math-PRM-7B/72B, without its remote code.

The recipe of the model card (Qwen/Qwen2.5-Math-PRM-7B), reproduced token for token:

    messages = [system: "Please reason step by step, and put your final answer within \\boxed{}.",
                user: problem,
                assistant: response.replace("\\n\\n", "<extra_0>") + "<extra_0>"]
    text     = tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=False)
    ids      = tokenizer.encode(text)
    reward of step k = softmax(score(final hidden state at the k-th <extra_0>))[1]

``score`` is ``Sequential(Linear(h, h), ReLU, Linear(h, 2))`` on the ``Qwen2Model`` output (checkpoint
keys ``score.0.*`` and ``score.2.*``); label 1 means "this step is correct". The checkpoint's own code
(``Qwen2ForProcessRewardModel``, via ``auto_map``) needs ``trust_remote_code`` and breaks on recent
transformers; here the backbone is transformers' ``Qwen2Model`` and the head is read from the weights.
Every ``<extra_0>`` token in the input is a reward position, as in the card's ``input_ids == step_sep_id``.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

from ..errors import BestOfNError
from .base import EncodedPair, PRMScorer, load_backbone, load_config, load_tokenizer, read_tensors, resolve_checkpoint
from .formats import QWEN_MATH_PRM, STEP_SEPARATORS

SYSTEM_PROMPT = "Please reason step by step, and put your final answer within \\boxed{}."
STEP_TAG = "<extra_0>"
HEAD_KEYS = ("score.0.weight", "score.0.bias", "score.2.weight", "score.2.bias")
WHAT = "Qwen2.5-Math-PRM checkpoint"


class QwenMathPRM(PRMScorer):
    """Qwen2 backbone + two-label score head read at ``<extra_0>`` tokens."""

    format = QWEN_MATH_PRM

    def __init__(self, backbone: nn.Module, head: nn.Sequential, tokenizer, max_length: int | None = None,
                 batch_tokens: int | None = None, compile: bool = False):
        super().__init__(backbone, tokenizer, max_length=max_length, batch_tokens=batch_tokens, compile=compile)
        self.head = head  # float32: it runs on a few rows only
        self.tag_id = step_tag_id(tokenizer)

    @classmethod
    def from_pretrained(cls, name_or_path: str, device: str = "cpu", dtype: torch.dtype | None = None,
                        revision: str | None = None, batch_tokens: int | None = None,
                        max_length: int | None = None, compile: bool = False) -> QwenMathPRM:
        """Load from a folder or Hub id; ``dtype`` None means bf16 on GPU, float32 on CPU."""
        from ..backends.base import resolve_dtype

        dtype = dtype or resolve_dtype("auto", str(device))
        folder = resolve_checkpoint(name_or_path, revision)
        config = load_config(folder, ("qwen2",), WHAT)
        tokenizer = load_tokenizer(folder)
        step_tag_id(tokenizer)  # a wrong tokenizer fails before the weights are read
        head = _load_head(folder, config.hidden_size)
        backbone = load_backbone(folder, config, dtype, WHAT)
        return cls(backbone, head, tokenizer, max_length=max_length, batch_tokens=batch_tokens, compile=compile).to(device)

    def encode(self, problems: Sequence[str], responses: Sequence[str]) -> list[EncodedPair]:
        """The card's chat text with ``<extra_0>`` after every step; rewards at every ``<extra_0>``."""
        if not problems:
            return []
        texts = [self.tokenizer.apply_chat_template(messages(p, r), tokenize=False, add_generation_prompt=False)
                 for p, r in zip(problems, responses)]
        pairs = []
        for ids in self.tokenizer(texts)["input_ids"]:
            pairs.append(self.truncate(EncodedPair(list(ids), [j for j, t in enumerate(ids) if t == self.tag_id])))
        return pairs

    def rewards_at(self, states: torch.Tensor) -> torch.Tensor:
        """P(label 1 = "correct step") from the score head."""
        return torch.softmax(self.head(states), dim=-1)[:, 1]


def messages(problem: str, response: str) -> list[dict[str, str]]:
    """The card's conversation: fixed system prompt, the problem, the steps joined and ended by the tag."""
    steps = response.replace(STEP_SEPARATORS[QWEN_MATH_PRM], STEP_TAG) + STEP_TAG
    return [{"role": "system", "content": SYSTEM_PROMPT}, {"role": "user", "content": problem},
            {"role": "assistant", "content": steps}]


def step_tag_id(tokenizer) -> int:
    """The id of ``<extra_0>`` (the card's ``tokenizer.encode("<extra_0>")[0]``), or a one-line error."""
    ids = tokenizer.encode(STEP_TAG, add_special_tokens=False)
    if len(ids) != 1:
        raise BestOfNError(f"the PRM tokenizer has no {STEP_TAG} token (it splits it into {len(ids)} tokens): it is "
                           f"not a Qwen2.5-Math-PRM tokenizer; check --prm and --prm-format")
    return ids[0]


def _load_head(folder, hidden_size: int) -> nn.Sequential:
    """``score = Sequential(Linear(h, h), ReLU, Linear(h, 2))`` from ``score.0.*`` and ``score.2.*``."""
    tensors = read_tensors(folder, HEAD_KEYS)
    missing = [k for k in HEAD_KEYS if k not in tensors]
    if missing:
        raise BestOfNError(f"the checkpoint {folder} has no score head ({', '.join(missing)} missing): it is not a "
                           "Qwen2.5-Math-PRM checkpoint (e.g. Qwen/Qwen2.5-Math-PRM-7B)")
    head = nn.Sequential(nn.Linear(hidden_size, hidden_size), nn.ReLU(), nn.Linear(hidden_size, 2))
    expected = {"0.weight": (hidden_size, hidden_size), "0.bias": (hidden_size,), "2.weight": (2, hidden_size),
                "2.bias": (2,)}
    state = {k.removeprefix("score."): v.float() for k, v in tensors.items()}
    for k, shape in expected.items():
        if tuple(state[k].shape) != shape:
            raise BestOfNError(f"the score head weight score.{k} in {folder} has shape {tuple(state[k].shape)}, "
                               f"expected {shape}")
    head.load_state_dict(state)
    return head.eval()
