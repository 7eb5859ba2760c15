"""Scripted solutions with known answers and known rewards, for tests that must see real answers.

A tiny random generator never writes a right answer, so selection, grading, reports and the Hub upload
cannot be tested on its runs: every answer is missing and every accuracy is 0 == 0. Here a test writes a
:class:`Script`: for each problem, the greedy solution and the N sampled ones, each given by its final
answer (any spelling, or None for no box), its step rewards and its finish reason. Then

- :class:`ScriptedBackend` is a real :class:`~bestofn.backends.GenerationBackend`: it finds the problem in
  the rendered prompt and writes that problem's solutions as text (steps separated by the PRM's separator,
  the answer in ``\\boxed{}``), so grading and selection run on them exactly as on a model's output;
- :class:`ScriptedPRM` scores exactly those texts with the step rewards the script gave them.

Expected accuracies can then be worked out by hand in the test. :class:`ScriptedModels` hands any such
doubles to :func:`bestofn.pipeline.run` (``run(config, models=ScriptedModels(backend, prm))``) and to the
``bestofn`` command (``bestofn.cli.main(argv, models=...)``).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from ..backends.base import Completion, GenerationBackend
from ..pipeline import Models
from ..prm.base import PRMScore
from ..prm.formats import split_steps


@dataclass(frozen=True)
class Solution:
    """One scripted solution: its final answer as written (None: no ``\\boxed{}``) and its step rewards.

    The text has one step per reward; its last step holds the boxed answer. ``finish_reason="length"``
    writes a solution cut off before its box closes (so it has no answer, whatever ``answer`` says).
    ``prm_truncated`` makes the PRM report that only the steps that fit its context were scored.
    """

    answer: str | None
    step_rewards: tuple[float, ...] = (0.5, 0.5)
    finish_reason: str = "stop"
    prm_truncated: bool = False

    def text(self, separator: str, tag: str) -> str:
        """The solution text; ``tag`` makes texts of different solutions differ (the PRM tells them apart),
        even when they give the same answer in the same number of steps."""
        steps = [f"Step {k + 1} of attempt {tag}: we simplify the expression." for k in range(len(self.step_rewards) - 1)]
        if self.finish_reason == "length":
            steps.append(f"Attempt {tag}: therefore, the final answer is $\\boxed{{{self.answer or ''}")
        elif self.answer is None:
            steps.append(f"Attempt {tag} ends without a final answer.")
        else:
            steps.append(f"Attempt {tag}: therefore, the final answer is $\\boxed{{{self.answer}}}$.")
        return separator.join(steps)


@dataclass
class ScriptedProblem:
    """What the scripted generator writes for one problem."""

    problem: str  # the problem text, found inside the rendered prompt
    greedy: Solution
    samples: list[Solution] = field(default_factory=list)


@dataclass
class Script:
    """The scripted solutions of every problem of a run, and the step separator their texts use."""

    problems: list[ScriptedProblem]
    separator: str = "\n"

    def solutions(self) -> dict[str, Solution]:
        """Every solution text the backend can write, with the solution that wrote it."""
        out: dict[str, Solution] = {}
        for k, sp in enumerate(self.problems):
            for tag, sol in [(f"{k}-greedy", sp.greedy), *((f"{k}-{i}", s) for i, s in enumerate(sp.samples))]:
                out[sol.text(self.separator, tag)] = sol
        return out

    def texts(self) -> dict[str, tuple[float, ...]]:
        """Every solution text the backend can write, with the step rewards the PRM gives it."""
        return {text: sol.step_rewards for text, sol in self.solutions().items()}


class ScriptedBackend(GenerationBackend):
    """A generation backend that writes the script's solutions (greedy at temperature 0, else the samples)."""

    def __init__(self, script: Script, tokenizer: Any):
        self.script = script
        self.tokenizer = tokenizer  # renders the chat prompt, as a real generator's tokenizer does
        self.calls: list[dict[str, Any]] = []  # what was asked for, for tests of the pipeline's calls

    def _find(self, prompt: str) -> tuple[int, ScriptedProblem]:
        # The longest problem text that the prompt contains (a problem may be a prefix of another).
        found = [(len(sp.problem), k, sp) for k, sp in enumerate(self.script.problems) if sp.problem in prompt]
        if not found:
            raise KeyError(f"no scripted problem in prompt {prompt[:200]!r}")
        _, k, sp = max(found)
        return k, sp

    def generate(self, prompts: list[str], *, n: int, temperature: float, top_p: float, max_new_tokens: int,
                 seed: int, stop: Sequence[str] | None = None, seeds: Sequence[int] | None = None,
                 first: int = 0) -> list[list[Completion]]:
        self.calls.append({"prompts": len(prompts), "n": n, "temperature": temperature, "seed": seed, "first": first,
                           "seeds": None if seeds is None else list(seeds)})
        out = []
        for prompt in prompts:
            k, sp = self._find(prompt)
            if temperature == 0:
                chosen = [(f"{k}-greedy", sp.greedy)]
            else:  # samples first..first+n-1, as a real backend numbers them
                if first + n > len(sp.samples):
                    raise ValueError(f"the script has {len(sp.samples)} samples for problem {k}, samples {first}.."
                                     f"{first + n - 1} were asked for")
                chosen = [(f"{k}-{i}", sp.samples[i]) for i in range(first, first + n)]
            out.append([self._completion(sol, tag, max_new_tokens) for tag, sol in chosen])
        return out

    def _completion(self, sol: Solution, tag: str, max_new_tokens: int) -> Completion:
        text = sol.text(self.script.separator, tag)
        num_tokens = min(len(self.tokenizer(text)["input_ids"]) + (sol.finish_reason == "stop"), max_new_tokens)
        return Completion(text=text, num_tokens=num_tokens, finish_reason=sol.finish_reason)


class ScriptedPRM:
    """A PRM that gives each scripted solution text the step rewards (and truncation flag) its script names."""

    format = "scripted"

    def __init__(self, script: Script):
        self.step_separator = script.separator
        self._solutions = script.solutions()

    def score_detailed(self, problems: Sequence[str], responses: Sequence[str], progress: bool = False) -> list[PRMScore]:
        if len(problems) != len(responses):
            raise ValueError(f"{len(problems)} problems but {len(responses)} responses")
        missing = [r for r in responses if r not in self._solutions]
        if missing:
            raise KeyError(f"the script has no solution {missing[0][:120]!r}")
        return [PRMScore(list(self._solutions[r].step_rewards), truncated=self._solutions[r].prm_truncated)
                for r in responses]

    def score(self, problems: Sequence[str], responses: Sequence[str]) -> list[list[float]]:
        return [s.step_rewards for s in self.score_detailed(problems, responses)]


# --- step level: search trees with known labels, for beam search and DVTS ------------------------------------------
_LABEL = re.compile(r"<step ([0-9.]+)>")


@dataclass
class TreeRules:
    """What the scripted tree writes and how its PRM scores it, per problem (its index) and step label.

    Step labels name a step's place in the tree: the first steps of a problem are ``0``, ``1``, ...; the
    children of step ``L`` are ``L.0``, ``L.1``, .... Within one backend call, sample ``j`` of the ``r``-th
    prompt that continues ``L`` is child ``r * n + j`` (so equal prompts get different children).

    ``reward(k, label)``: the PRM's reward of that step; ``end(k, label)``: None (the step goes on, stopped at
    the delimiter), ``"stop"`` (the solution ends there with a boxed answer), ``"length"`` (cut off, no answer)
    or ``"empty"`` (the step is only a delimiter); ``answer(k, label)``: the boxed answer of a solution that
    ends at ``label``. A call without a stop string (the unrestricted last call) ends every step it writes.
    """

    reward: Callable[[int, str], float] = lambda k, label: 0.5
    end: Callable[[int, str], str | None] = lambda k, label: None
    answer: Callable[[int, str], str | None] = lambda k, label: "0"


class ScriptedTreeBackend(GenerationBackend):
    """A backend that writes labelled steps (see :class:`TreeRules`); prompts may end in a partial solution."""

    def __init__(self, problems: Sequence[str], rules: TreeRules, tokenizer: Any, separator: str = "\n"):
        self.problems = list(problems)
        self.rules = rules
        self.tokenizer = tokenizer
        self.separator = separator
        self.calls: list[dict[str, Any]] = []  # every call's arguments, for tests of batching and seeds
        self.fail_at_call: int | None = None  # raise at this call index: a simulated kill

    def _problem(self, prompt: str) -> int:
        found = [(len(p), k) for k, p in enumerate(self.problems) if p in prompt]
        if not found:
            raise KeyError(f"no scripted problem in prompt {prompt[:200]!r}")
        return max(found)[1]

    def generate(self, prompts: list[str], *, n: int, temperature: float, top_p: float, max_new_tokens: int,
                 seed: int, stop: Sequence[str] | None = None, seeds: Sequence[int] | None = None,
                 first: int = 0) -> list[list[Completion]]:
        if self.fail_at_call is not None and len(self.calls) == self.fail_at_call:
            raise KeyboardInterrupt("simulated kill")
        self.calls.append({"prompts": list(prompts), "n": n, "temperature": temperature, "stop": stop,
                           "seeds": None if seeds is None else list(seeds), "max_new_tokens": max_new_tokens})
        copies: dict[tuple[int, str], int] = {}
        out = []
        for prompt in prompts:
            k = self._problem(prompt)
            labels = _LABEL.findall(prompt)
            parent = labels[-1] if labels else ""
            r = copies.get((k, parent), 0)
            copies[(k, parent)] = r + 1
            children = [f"{parent}.{r * n + j}" if parent else str(r * n + j) for j in range(n)]
            out.append([self._step(k, label, stop is not None) for label in children])
        return out

    def _step(self, k: int, label: str, restricted: bool) -> Completion:
        end = self.rules.end(k, label) or (None if restricted else "stop")
        if end is None:
            text, reason = f"<step {label}> we simplify.{self.separator}", "delimiter"
        elif end == "empty":
            text, reason = self.separator, "delimiter"
        elif end == "length":
            text, reason = f"<step {label}> the final answer is $\\boxed{{", "length"
        else:
            answer = self.rules.answer(k, label)
            box = f"$\\boxed{{{answer}}}$" if answer is not None else "no answer"
            text, reason = f"<step {label}> the final answer is {box}.", "stop"
        num_tokens = len(self.tokenizer(text, add_special_tokens=False)["input_ids"]) + (reason == "stop")
        return Completion(text=text, num_tokens=num_tokens, finish_reason=reason)


class ScriptedTreePRM:
    """A PRM that gives each labelled step ``rules.reward(k, label)`` (0.0 to a step without a label)."""

    format = "scripted"

    def __init__(self, problems: Sequence[str], rules: TreeRules, separator: str = "\n"):
        self.problems = list(problems)
        self.rules = rules
        self.step_separator = separator
        self.scored: list[list[str]] = []  # the responses of every call, for tests of batching

    def score_detailed(self, problems: Sequence[str], responses: Sequence[str], progress: bool = False) -> list[PRMScore]:
        self.scored.append(list(responses))
        out = []
        for problem, response in zip(problems, responses):
            k = self.problems.index(problem)
            rewards = []
            for step in split_steps(response, self.step_separator):
                labels = _LABEL.findall(step)
                rewards.append(self.rules.reward(k, labels[-1]) if labels else 0.0)
            out.append(PRMScore(rewards, truncated=False))
        return out


def scripted_models(script: Script, tokenizer: Any, *, check_models: bool = True) -> Any:
    """:class:`ScriptedModels` that generate the script's solutions and score them with its rewards."""
    return ScriptedModels(ScriptedBackend(script, tokenizer), ScriptedPRM(script), check_models=check_models)


class ScriptedModels(Models):
    """The run's models, replaced by ``generator`` and ``prm`` (any doubles) through the run's own seam.

    The run checks the models named in the config before any work, so they must be folders with a
    ``config.json`` (the tiny models); ``check_models=False`` skips that check, so a config may name the
    real Hub models (e.g. to test what a dataset card says about them) while nothing is downloaded.
    """

    def __init__(self, generator: GenerationBackend, prm: Any, *, check_models: bool = True,
                 chunk_sequences: int | None = None):
        self._generator, self._prm, self.check_models = generator, prm, check_models
        self.chunk_sequences = chunk_sequences  # at most this many solutions per chunk (Models.chunk_size)

    def generator(self, config: Any) -> Any:
        return self._generator

    def prm(self, config: Any, device: str, compile: bool = False) -> Any:
        return self._prm

    def step_separator(self, config: Any) -> str:
        return self._prm.step_separator  # the double reads steps at its own separator: the prompt asks for it

    def check(self, config: Any, role: str) -> str | None:
        return super().check(config, role) if self.check_models else None
