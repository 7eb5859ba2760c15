"""Step 5, format "rlhflow": RLHFlow's Llama3.1-8B-PRM-{Deepseek,Mistral}-Data.

The recipe of RLHF-Reward-Modeling (``math-rm/prm_evaluate.py``) with search-and-learn's step-wise reading
(``RLHFFlow``), reproduced token for token:

    steps        = response.split("\\n\\n")
    conversation = [user: problem + " " + steps[0], assistant: "+",
                    user: steps[1],                  assistant: "+", ...]
    ids          = tokenizer.apply_chat_template(conversation)        # the tokenizer's own chat template
    reward of step k = softmax(logits["+"], logits["-"])[0] at the position that predicts the k-th
                       assistant "+"  (ids: tokenizer.encode("+")[-1], tokenizer.encode("-")[-1])

The model is trained to answer each step with "+" or "-", so the reward is the probability of "+" at the
token just before the assistant's "+". To find that token, the conversation is rendered once with a
one-character marker as the assistant's text; the marker's character offsets are where the "+"s go, and
the token that starts at each offset (checked to be the "+" token) gives the position. Only the
backbone and the two LM-head rows of "+" and "-" are loaded (:mod:`bestofn.prm.two_token`).
"""

from __future__ import annotations

from collections.abc import Sequence

from ..errors import BestOfNError
from .base import EncodedPair
from .formats import RLHFLOW, STEP_SEPARATORS, split_steps
from .two_token import TwoTokenPRM

GOOD, BAD = "+", "-"
# Private-use characters: one that no input contains stands in for the assistant's "+" while rendering.
_MARKERS = [chr(c) for c in range(0xE000, 0xE100)]


class RLHFlowPRM(TwoTokenPRM):
    """A Llama-3 (or other chat) causal LM read through its "+"/"-" logits, one chat turn per step."""

    format = RLHFLOW
    model_types = ("llama", "mistral", "qwen2")
    what = "RLHFlow-style PRM (a causal LM with a chat template)"

    @classmethod
    def candidate_ids(cls, tokenizer) -> tuple[int, int]:
        return tokenizer.encode(GOOD)[-1], tokenizer.encode(BAD)[-1]

    @classmethod
    def check_tokenizer(cls, tokenizer) -> None:
        if not getattr(tokenizer, "chat_template", None):
            raise BestOfNError("the PRM tokenizer has no chat template, which the rlhflow format needs: is it an "
                               "RLHFlow PRM (e.g. RLHFlow/Llama3.1-8B-PRM-Deepseek-Data)? check --prm and --prm-format")
        if not tokenizer.is_fast:
            raise BestOfNError("the rlhflow format needs a fast tokenizer (tokenizer.json) to find the reward positions")

    def encode(self, problems: Sequence[str], responses: Sequence[str]) -> list[EncodedPair]:
        """The chat ids of each conversation and the positions that predict each assistant "+"."""
        if not problems:
            return []
        marker = next((m for m in _MARKERS if not any(m in t for t in (*problems, *responses))), None)
        if marker is None:  # 256 private-use characters, all in the inputs: not text a model wrote
            raise ValueError("the inputs contain every private-use character U+E000-U+E0FF; cannot mark the reward tokens")
        texts, starts = [], []
        for problem, response in zip(problems, responses):
            rendered = self.tokenizer.apply_chat_template(conversation(problem, response, marker), tokenize=False)
            starts.append([i for i, ch in enumerate(rendered) if ch == marker])
            texts.append(rendered.replace(marker, GOOD))  # exactly the text the reference renders
        # apply_chat_template(tokenize=True) tokenizes its text without adding special tokens: so do we.
        encoded = self.tokenizer(texts, add_special_tokens=False, return_offsets_mapping=True)
        pairs = []
        for ids, offsets, plus_at in zip(encoded["input_ids"], encoded["offset_mapping"], starts):
            token_at = {start: j for j, (start, end) in enumerate(offsets) if end > start}
            positions = []
            for char in plus_at:
                j = token_at.get(char)
                if j is None or ids[j] != self.good_id or j == 0:
                    raise BestOfNError("the PRM chat template does not put the assistant's '+' on a token of its own, "
                                       "so the rlhflow recipe cannot read its logit; is --prm-format right?")
                positions.append(j - 1)  # the position whose next-token logits predict this "+"
            pairs.append(self.truncate(EncodedPair(list(ids), positions)))
        return pairs


def conversation(problem: str, response: str, assistant: str = GOOD) -> list[dict[str, str]]:
    """One user turn per step (the problem before the first), each answered by ``assistant``."""
    turns = []
    for k, step in enumerate(split_steps(response, STEP_SEPARATORS[RLHFLOW])):
        turns.append({"role": "user", "content": problem + " " + step if k == 0 else step})
        turns.append({"role": "assistant", "content": assistant})
    return turns
