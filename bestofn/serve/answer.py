"""One request's answer, by the method's own steps: render, solve (sample or search), grade, score, select.

Nothing here is a second implementation of the method. The chat prompt is the generator's chat template over
the request's messages (the server's system prompt, :func:`bestofn.prompts.system_prompt_for`, when the request
has none); the method is :func:`bestofn.methods.make_method` of the server's config with the request's settings
laid over it (so every setting a method reads flows through, and is checked by :class:`BestOfNConfig` as in a
run); answers are found by :func:`bestofn.grading.find_answer`; the PRM scores Best-of-N's solutions (a search
scored its own while searching); :mod:`bestofn.selection` groups equivalent answers and picks.
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from ..config import BestOfNConfig
from ..data import Problem
from ..errors import BestOfNError
from ..fields import field_types
from ..grading import find_answer
from ..methods import make_method
from ..prompts import system_prompt_for
from ..selection import aggregate, choose, group_answers, group_labels, shown
from .batching import Batcher, RequestModels, Ticket

# Settings a request may carry as top-level body fields, besides those the OpenAI API names (temperature, ...):
# the method's knobs. A key is accepted only when the server's config has it (e.g. another method's settings).
METHOD_KEYS = ("beam_width", "num_iterations", "lookahead", "filter_duplicates", "adaptive", "adaptive_confidence",
               "adaptive_batch", "prm_cache")


def request_keys() -> tuple[str, ...]:
    """The config keys a request may set by their own name (those of :data:`METHOD_KEYS` the config has)."""
    return tuple(k for k in METHOD_KEYS if k in field_types(BestOfNConfig))


class DeadlineExceeded(Exception):
    """The request's deadline passed before any solution finished."""


class BadRequest(Exception):
    """A request the server cannot serve as asked: the message names the fix, ``param`` the body field."""

    def __init__(self, message: str, param: str | None = None):
        super().__init__(message)
        self.param = param


@dataclass
class Usage:
    """What a request spent: its prompt, every token generated for it, every token the PRM read, and when."""

    prompt_tokens: int = 0
    completion_tokens: int = 0
    prm_tokens: int | None = 0  # None: the PRM cannot count what it reads
    generation_s: float = 0.0
    scoring_s: float = 0.0


@dataclass
class Answer:
    """The chosen solutions (``choices``: indices into ``candidates``) and everything the response reports."""

    candidates: list[dict[str, Any]]
    choices: list[int]
    answer: str | None
    answer_groups: list[dict[str, Any]]
    samples_used: int
    usage: Usage
    timings: dict[str, float] = field(default_factory=dict)
    finish_reasons: list[str] = field(default_factory=list)  # each candidate's ("stop", "length")


def request_config(base: BestOfNConfig, overrides: dict[str, Any], names: dict[str, str]) -> BestOfNConfig:
    """The server's config with the request's settings laid over it, checked as a run's config is.

    ``names`` maps config keys to the request fields they came from, so an error names the field to fix.
    """
    if not overrides:
        return base
    try:
        return BestOfNConfig.from_dict({**base.to_dict(), **overrides})
    except BestOfNError as e:
        message = str(e)
        lead = re.match(r"\w*", message).group(0)  # BestOfNConfig's messages start with the setting's name
        keys = sorted(overrides, key=len, reverse=True)  # else the most specific name it mentions
        key = lead if lead in overrides else next((k for k in keys if re.search(rf"\b{k}\b", message)), None)
        param = names.get(key, key) if key else None
        if lead in names:
            message = names[lead] + message[len(lead):]
        for k in overrides:  # flags spelled as request fields: "--beam-width 4" -> "beam_width 4"
            message = message.replace(f"--{k.replace('_', '-')} ", f"{names.get(k, k)} ")
        raise BadRequest(message, param) from None


def render(tokenizer: Any, messages: Sequence[dict[str, str]], config: BestOfNConfig, separator: str
           ) -> tuple[str, str]:
    """The chat prompt (the generator's template) and the question the PRM is shown (the last user message).

    The last user message goes through ``user_template`` as a run's problem does; the server's system prompt
    (its ``{step_format}`` asking for steps as the PRM splits them) is added when the request has none.
    """
    messages = [dict(m) for m in messages]
    last_user = max(i for i, m in enumerate(messages) if m["role"] == "user")
    question = messages[last_user]["content"]
    messages[last_user]["content"] = config.user_template.replace("{problem}", question)
    system = system_prompt_for(config.system_prompt, separator)
    if system and not any(m["role"] == "system" for m in messages):
        messages.insert(0, {"role": "system", "content": system})
    prompt = tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)
    return prompt, question


class MeteredModels(RequestModels):
    """The request's view of the batcher, counting what it spends (a method calls it as a backend and a PRM)."""

    def __init__(self, batcher: Batcher, ticket: Ticket, on_call: Callable[[str], None] | None = None):
        super().__init__(batcher, ticket, on_call)
        self.usage = Usage()

    def generate(self, prompts: list[str], **kwargs: Any) -> list[list[Any]]:
        start = time.perf_counter()
        outputs = super().generate(prompts, **kwargs)
        self.usage.generation_s += time.perf_counter() - start
        self.usage.completion_tokens += sum(c.num_tokens for group in outputs for c in group)
        return outputs

    def score_detailed(self, problems: Sequence[str], responses: Sequence[str], **cache: Any) -> list[Any]:
        start = time.perf_counter()
        scores = super().score_detailed(problems, responses, **cache)
        self.usage.scoring_s += time.perf_counter() - start
        counts = [getattr(s, "num_tokens", None) for s in scores]
        if self.usage.prm_tokens is not None:
            self.usage.prm_tokens = None if None in counts else self.usage.prm_tokens + sum(counts)
        return scores


def solve(config: BestOfNConfig, separator: str, selection: str, n_choices: int, prompt: str, question: str,
          models: MeteredModels) -> Answer:
    """Steps 3-6 for one request: the method's solutions, their answers and rewards, and the choice."""
    usage = models.usage
    usage.prompt_tokens = len(models.tokenizer(prompt, add_special_tokens=False)["input_ids"])
    method = make_method(config, separator)
    # 3. Sample (or search): the method's own code, its calls batched with other requests'.
    # The problem's id names the seeds of its samples (with the request's seed): the same for every request.
    problem = Problem(unique_id="request", problem=question, answer="", level=0)
    solved = method.solve([problem], [prompt], models)
    rows = solved.rows
    if models.ticket.deadline_hit:  # past the deadline only solutions that ended on their own count
        rows = [r for r in rows if r["finish_reason"] not in ("length",)]
        if not rows:
            raise DeadlineExceeded()
    # 5. Score (Best-of-N: the finished solutions; a search scored them while it searched).
    if not method.steered:
        scores = models.score_detailed([question] * len(rows), [r["text"] for r in rows])
        rows = [{**r, "step_rewards": list(s.step_rewards)} for r, s in zip(rows, scores)]
    start = time.perf_counter()
    answer = choose_answers(rows, config.aggregation, selection, n_choices, config.grading_timeout)  # 4 and 6
    answer.usage = usage
    answer.samples_used = len(rows)  # drawn (adaptive rounds stop early) and, past a deadline, finished
    answer.timings = {"generation": usage.generation_s, "scoring": usage.scoring_s,
                      "selection": time.perf_counter() - start}
    return answer


def choose_answers(rows: Sequence[dict[str, Any]], aggregation: str, selection: str, n_choices: int,
                   timeout: float = 5) -> Answer:
    """Grade and select: every row's answer and reward, answer groups, and the ``n_choices`` chosen solutions.

    The first choice is the selection rule's (:func:`bestofn.selection.choose`); further choices are the best
    solutions of the next answer groups in the rule's order (heavier group first; ties: the group that appears first).
    Without any answer, the one choice is the highest-reward solution.
    """
    import numpy as np

    answers = [find_answer(r["text"])[0] for r in rows]  # 4. the boxed answer, as grading finds it
    rewards = [aggregate(r["step_rewards"], aggregation) for r in rows]
    groups = group_answers(answers, timeout=timeout)  # equivalent answers are one group (math-verify)
    labels = group_labels(groups, len(rows))
    # 6. the rule's pick (selection.choose: the one dispatch), shown by its group's best-scored member
    picked = int(choose(selection, labels, np.asarray(rewards, dtype=float), np.arange(len(rows))[None, :])[0])

    def best(members: Sequence[int]) -> int:
        return max(members, key=lambda i: (rewards[i], -i))

    weight = {"majority": lambda g: float(len(g)), "weighted_bon": lambda g: sum(rewards[i] for i in g),
              "naive_bon": lambda g: max(rewards[i] for i in g)}[selection]
    ranked = sorted(groups, key=lambda g: (-weight(g), g[0]))
    if picked < 0:  # no solution has an answer
        choices = [best(range(len(rows)))] if rows else []
    else:
        first = groups[labels[picked]]
        choices = [shown(labels, rewards, picked)] + [best(g) for g in ranked if g is not first][: n_choices - 1]
    candidates = [{"text": r["text"], "answer": a, "reward": w, "step_rewards": list(r["step_rewards"]),
                   "chosen": i in choices} for i, (r, a, w) in enumerate(zip(rows, answers, rewards))]
    # weight: the group's summed reward, what weighted Best-of-N compares (majority compares count)
    answer_groups = [{"answer": answers[g[0]], "count": len(g), "weight": sum(rewards[i] for i in g)} for g in ranked]
    return Answer(candidates, choices, answers[choices[0]] if picked >= 0 else None, answer_groups, len(rows), Usage(),
                  finish_reasons=[r["finish_reason"] for r in rows])
