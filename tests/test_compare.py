"""``bestofn compare`` on three scripted runs (Best-of-N, beam search, DVTS) with answers worked out by hand.

Two problems (a level-1 and a level-2 one), N=4, beam width 2. The scripted tree: first steps ``0``-``3``
(reward .9 for ``1``, .2 for the others), second steps ``x.y`` finish (reward .8 for ``y=1``, else .3). A
Best-of-N sample is a first step that runs to its end. Right answers are on these labels (else wrong):

    problem 0 (level 1): 2, 1.1, 0.1, 2.1        problem 1 (level 2): 1.1, 0.1, 0.0

- Best-of-N pools {0, 1, 2, 3}: only 2 is right (.2) against 1.3 for the wrong answer -> wrong on both.
- Beam search keeps 1 (.9) and 0 (the earliest of the .2 ties); pools {1.0, 1.1, 0.0, 0.1}: problem 0 right
  1.6 vs .6; problem 1 right .8 + .3 + .8 vs .3 -> right on both.
- DVTS follows 1 in subtree {0, 1} and 2 (earliest tie) in subtree {2, 3}; pools {1.0, 1.1, 2.0, 2.1}:
  problem 0 right 1.6 vs .6; problem 1 right .8 vs 1.4 wrong -> right on problem 0 only.

So at N=4 (weighted Best-of-N selection): Best-of-N 0%, beam search 100%, DVTS 50%; level 1: 0, 100, 100;
level 2: 0, 100, 0. Best-of-N at n=1: problem 0 is right on 1 of 4 samples -> 12.5% over both problems.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from bestofn import cli, pipeline
from bestofn.io import read_jsonl
from bestofn.report.compare import compare_runs, write_compare_report
from bestofn.testing import make_tokenizer
from bestofn.testing.scripted import ScriptedTreeBackend, ScriptedTreePRM, TreeRules, patch_models

from conftest import tiny_config

RIGHT = [{"2", "1.1", "0.1", "2.1"}, {"1.1", "0.1", "0.0"}]


@pytest.fixture(scope="module")
def three_runs(tmp_path_factory, math500_path, tiny_generator_dir, tiny_prm_dir) -> list[Path]:
    rows = [json.loads(line) for line in math500_path.read_text().splitlines()]
    chosen = [next(r for r in rows if r["level"] == lvl and r["answer"].isdigit()) for lvl in (1, 2)]
    base = tmp_path_factory.mktemp("compare")
    dataset = base / "two.jsonl"
    dataset.write_text("".join(json.dumps(r) + "\n" for r in chosen))
    texts = [r["problem"] for r in chosen]
    rules = TreeRules(
        reward=lambda k, label: (0.9 if label == "1" else 0.2) if "." not in label else (0.8 if label.endswith("1") else 0.3),
        end=lambda k, label: "stop" if label.count(".") == 1 else None,
        answer=lambda k, label: chosen[k]["answer"] if label in RIGHT[k] else "12345")
    tokenizer = make_tokenizer()
    out = []
    with pytest.MonkeyPatch.context() as mp:
        for method in ("best_of_n", "beam_search", "dvts"):
            patch_models(mp, ScriptedTreeBackend(texts, rules, tokenizer, "\n"), ScriptedTreePRM(texts, rules, "\n"))
            config = tiny_config(tiny_generator_dir, tiny_prm_dir, dataset, base / method, num_problems=2,
                                 levels=[1, 2], method=method, beam_width=2, num_iterations=3, max_new_tokens=256)
            pipeline.run(config)
            out.append(base / method)
    return out


def test_compare_numbers_match_the_hand_worked_runs(three_runs) -> None:
    cmp = compare_runs(three_runs, bootstrap=200)
    acc = {(m, n, lvl): e.value for (m, n, lvl), e in cmp.accuracy.items()}
    assert acc[("best_of_n", 4, None)] == 0.0 and acc[("best_of_n", 1, None)] == 0.125
    assert acc[("beam_search", 4, None)] == 1.0 and acc[("dvts", 4, None)] == 0.5
    assert [acc[(m, 4, 1)] for m in ("best_of_n", "beam_search", "dvts")] == [0.0, 1.0, 1.0]
    assert [acc[(m, 4, 2)] for m in ("best_of_n", "beam_search", "dvts")] == [0.0, 1.0, 0.0]
    # Search points: one per run, at its N; Best-of-N: n = 1, 2, 4 from its subsets.
    assert sorted((p.method, p.n) for p in cmp.points) == [("beam_search", 4), ("best_of_n", 1), ("best_of_n", 2),
                                                           ("best_of_n", 4), ("dvts", 4)]
    # Cost: a search spends every node it generated (pruned ones too), read back from its tree.
    tree = read_jsonl(three_runs[1] / "tree.jsonl")
    beam = next(p for p in cmp.points if p.method == "beam_search")
    assert beam.tokens.sum() == sum(n["num_tokens"] + n["lookahead_tokens"] for n in tree)
    overall = next(v for v in cmp.verdicts if v.level is None and v.n == 4)
    assert [m for m, _ in overall.ranking] == ["beam_search", "dvts", "best_of_n"]
    assert not overall.clear  # two problems: a 50-point lead is still within the noise


def test_compare_command_writes_the_report(three_runs, tmp_path) -> None:
    out = tmp_path / "cmp"
    assert cli.main(["compare", *map(str, three_runs), "--output-dir", str(out), "--bootstrap", "200"]) == 0
    assert {p.name for p in out.iterdir()} == {"report.md", "report.html", "compare_accuracy.png", "compare_by_level.png"}
    md = (out / "report.md").read_text()
    assert "| beam search | 4 |" in md and "| DVTS | 4 |" in md and "| Best-of-N | 1 |" in md
    assert "Compute-optimal choice per level" in md and "Level 2: N=4: beam search" in md
    assert "data:image/png;base64," in (out / "report.html").read_text()


def test_compare_refuses_an_unknown_selection_rule(three_runs, tmp_path) -> None:
    from bestofn.errors import BestOfNError

    with pytest.raises(BestOfNError, match="selection must be"):
        write_compare_report(three_runs, tmp_path, selection="pass_at_n")
