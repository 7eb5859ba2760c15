"""Scripted solutions with known answers and known rewards, for tests that must see real answers.

A tiny random generator never writes a right answer, so selection, grading, reports and the Hub upload
cannot be tested on its runs: every answer is missing and every accuracy is 0 == 0. Here a test writes a
:class:`Script`: for each problem, the greedy solution and the N sampled ones, each given by its final
answer (any spelling, or None for no box), its step rewards and its finish reason. Then

- :class:`ScriptedBackend` is a real :class:`~bestofn.backends.GenerationBackend`: it finds the problem in
  the rendered prompt and writes that problem's solutions as text (steps separated by the PRM's separator,
  the answer in ``\\boxed{}``), so grading and selection run on them exactly as on a model's output;
- :class:`ScriptedPRM` scores exactly those texts with the step rewards the script gave them.

Expected accuracies can then be worked out by hand in the test. :func:`patch_pipeline` makes
:func:`bestofn.pipeline.run` (and so the ``bestofn`` command) use both.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from ..backends.base import Completion, GenerationBackend
from ..prm.base import PRMScore


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
                 seed: int) -> list[list[Completion]]:
        self.calls.append({"prompts": len(prompts), "n": n, "temperature": temperature, "seed": seed})
        out = []
        for prompt in prompts:
            k, sp = self._find(prompt)
            if temperature == 0:
                chosen = [(f"{k}-greedy", sp.greedy)]
            else:
                if n > len(sp.samples):
                    raise ValueError(f"the script has {len(sp.samples)} samples for problem {k}, {n} were asked for")
                chosen = [(f"{k}-{i}", s) for i, s in enumerate(sp.samples[:n])]
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


def patch_pipeline(monkeypatch: Any, script: Script, tokenizer: Any, *, any_model_name: bool = False) -> ScriptedBackend:
    """Make :func:`bestofn.pipeline.run` generate with the script and score with its rewards.

    ``monkeypatch`` is pytest's fixture. The pipeline checks the models named in the config before any work,
    so they must be folders with a ``config.json`` (the tiny models); with ``any_model_name`` that check is
    skipped too, so a config may name the real Hub models (e.g. to test what a dataset card says about
    them) while nothing is downloaded; their commits are then recorded as unknown.
    """
    from .. import pipeline

    backend = ScriptedBackend(script, tokenizer)
    if any_model_name:
        monkeypatch.setattr(pipeline, "check_model_reachable", lambda name, revision, role, flag: None)
    monkeypatch.setattr(pipeline, "make_backend", lambda config: backend)
    monkeypatch.setattr(pipeline, "load_prm", lambda *args, **kwargs: ScriptedPRM(script))
    return backend

