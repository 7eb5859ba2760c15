"""Step 5, format "math-shepherd": peiyi9979/math-shepherd-mistral-7b-prm.

The recipe of the model card, reproduced token for token:

    tagged = response.replace("\\n\\n", " ки\\n\\n") + (" ки" unless response ends with "\\n\\n")
    ids    = tokenizer.encode(problem + " " + tagged)          # with the tokenizer's own special tokens
    good, bad = tokenizer.encode("+ -")[1:];  tag = tokenizer.encode("ки")[-1]
    reward of step k = softmax(logits[good], logits[bad])[0] at the k-th position whose id is the tag

The model was trained to predict "+" or "-" in place of the step tag "ки", so the logits *at* the tag
position give the step's verdict. Every tag token in the input is a reward position, as in the card's
``input_id == step_tag_id``. Only the backbone and the two LM-head rows are loaded
(:mod:`bestofn.prm.two_token`).
"""

from __future__ import annotations

from collections.abc import Sequence

from torch import nn

from ..errors import BestOfNError
from .base import EncodedPair
from .formats import MATH_SHEPHERD, STEP_SEPARATORS
from .two_token import TwoTokenPRM

STEP_TAG = "ки"
CANDIDATES = "+ -"


class MathShepherdPRM(TwoTokenPRM):
    """A Mistral causal LM read through its "+"/"-" logits at the "ки" step tags."""

    format = MATH_SHEPHERD
    model_types = ("mistral", "llama")
    what = "Math-Shepherd PRM (a causal LM whose tokenizer has the step tag 'ки')"

    def __init__(self, backbone: nn.Module, head: nn.Linear, tokenizer, max_length: int | None = None,
                 batch_tokens: int | None = None, compile: bool = False):
        super().__init__(backbone, head, tokenizer, max_length=max_length, batch_tokens=batch_tokens, compile=compile)
        self.tag_id = tokenizer.encode(STEP_TAG)[-1]

    @classmethod
    def candidate_ids(cls, tokenizer) -> tuple[int, int]:
        good, bad = tokenizer.encode(CANDIDATES)[1:]
        return good, bad

    @classmethod
    def check_tokenizer(cls, tokenizer) -> None:
        """The tag must be one token, alone and after a space (as in the tagged text); "+ -" two after bos."""
        alone = tokenizer.encode(STEP_TAG, add_special_tokens=False)
        in_text = tokenizer.encode("x " + STEP_TAG, add_special_tokens=False)
        if len(alone) != 1 or in_text[-1] != alone[0]:
            raise BestOfNError(f"the PRM tokenizer has no token for the step tag {STEP_TAG!r} (it splits it into "
                               f"{len(alone)} tokens): it is not a Math-Shepherd tokenizer; check --prm and --prm-format")
        if len(tokenizer.encode(CANDIDATES)[1:]) != 2:
            raise BestOfNError(f"the PRM tokenizer does not encode {CANDIDATES!r} as bos + two tokens, as the "
                               "Math-Shepherd recipe expects; check --prm and --prm-format")

    def encode(self, problems: Sequence[str], responses: Sequence[str]) -> list[EncodedPair]:
        """The card's tagged text and every tag position."""
        if not problems:
            return []
        texts = [problem + " " + tag_steps(response) for problem, response in zip(problems, responses)]
        return [self.truncate(EncodedPair(list(ids), [j for j, t in enumerate(ids) if t == self.tag_id]))
                for ids in self.tokenizer(texts)["input_ids"]]


def tag_steps(response: str) -> str:
    """The card's tagging: " ки" before every step separator, and after the last step unless it ends with one."""
    separator = STEP_SEPARATORS[MATH_SHEPHERD]
    tagged = response.replace(separator, f" {STEP_TAG}{separator}")
    return tagged if response.endswith(separator) else tagged + f" {STEP_TAG}"
