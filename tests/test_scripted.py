"""The pipeline on scripted solutions with known answers: accuracies worked out by hand.

Three problems, N=4 (rewards are the last step's, the default aggregation):

| problem | greedy | samples (answer: reward)                       | majority | naive | weighted | pass@4 |
| ------- | ------ | ---------------------------------------------- | -------- | ----- | -------- | ------ |
| P1      | wrong  | w: .1, w: .1, w: .1, right: .9                 | wrong    | right | right    | right  |
| P2      | right  | right: .6, right: .6, w: .95, no answer: .99   | right    | wrong | right    | right  |
| P3      | none   | w1: .5, w2: .4, w1: .3, cut off (no box): .9   | wrong    | wrong | wrong    | wrong  |

so greedy 1/3, majority 1/3, naive 1/3, weighted 2/3, pass@4 2/3.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from bestofn import pipeline
from bestofn.io import read_jsonl
from bestofn.testing import make_tokenizer
from bestofn.testing.scripted import Script, ScriptedProblem, Solution, scripted_models

from conftest import tiny_config


def _problems(math500_path: Path, k: int) -> list[dict]:
    """The first ``k`` level-1 problems of MATH-500 whose gold answer is a plain integer."""
    rows = [json.loads(line) for line in math500_path.read_text().splitlines()]
    return [r for r in rows if r["level"] == 1 and r["answer"].isdigit()][:k]


def test_scripted_run_accuracies_match_the_hand_worked_table(tmp_path, monkeypatch, math500_path,
                                                             tiny_generator_dir, tiny_prm_dir) -> None:
    p1, p2, p3 = _problems(math500_path, 3)
    dataset = tmp_path / "three.jsonl"
    dataset.write_text("".join(json.dumps(r) + "\n" for r in (p1, p2, p3)))
    wrong = lambda gold: str(int(gold) + 1)  # noqa: E731 - an integer answer that is surely wrong
    script = Script([
        ScriptedProblem(p1["problem"], Solution(wrong(p1["answer"])),
                        [Solution(wrong(p1["answer"]), (0.8, 0.1))] * 3 + [Solution(p1["answer"], (0.2, 0.9))]),
        ScriptedProblem(p2["problem"], Solution(p2["answer"]),
                        [Solution(p2["answer"], (0.6,)), Solution(p2["answer"], (0.3, 0.6)),
                         Solution(wrong(p2["answer"]), (0.95,)), Solution(None, (0.99,))]),
        ScriptedProblem(p3["problem"], Solution(None),
                        [Solution(wrong(p3["answer"]), (0.5,)), Solution(wrong(wrong(p3["answer"])), (0.4,)),
                         Solution(wrong(p3["answer"]), (0.3,)), Solution(p3["answer"], (0.9,), "length")]),
    ])
    config = tiny_config(tiny_generator_dir, tiny_prm_dir, dataset, tmp_path / "run", num_problems=3)

    results = pipeline.run(config, models=scripted_models(script, make_tokenizer()))

    got = {m: (a["correct"], a["total"]) for m, a in results["accuracy"].items()}
    assert got == {"greedy": (1, 3), "majority": (1, 3), "naive_bon": (1, 3), "weighted_bon": (2, 3),
                   "pass_at_n": (2, 3)}
    rows = read_jsonl(tmp_path / "run" / "samples.jsonl")
    assert [r["step_rewards"][-1] for r in rows if r["unique_id"] == p1["unique_id"]] == [0.1, 0.1, 0.1, 0.9]
    cut = [r for r in rows if r["unique_id"] == p3["unique_id"] and r["finish_reason"] == "length"]
    assert len(cut) == 1 and cut[0]["answer"] is None


def test_scripted_backend_refuses_an_unknown_prompt() -> None:
    from bestofn.testing.scripted import ScriptedBackend

    backend = ScriptedBackend(Script([ScriptedProblem("What is 1+1?", Solution("2"))]), make_tokenizer())
    with pytest.raises(KeyError, match="no scripted problem"):
        backend.generate(["What is 2+2?"], n=1, temperature=0.0, top_p=1.0, max_new_tokens=16, seed=0)


def test_every_scripted_solution_has_its_own_text_and_rewards() -> None:
    # Two one-step solutions with the same answer must stay two solutions for the PRM (distinct rewards).
    from bestofn.testing.scripted import ScriptedPRM

    script = Script([ScriptedProblem("What is 1+1?", Solution("2"), [Solution("2", (0.2,)), Solution("2", (0.7,), prm_truncated=True)])])
    texts = list(script.solutions())
    assert len(texts) == 3
    scores = ScriptedPRM(script).score_detailed(["What is 1+1?"] * 2, texts[1:])
    assert [(s.step_rewards, s.truncated) for s in scores] == [([0.2], False), ([0.7], True)]
