"""examples/best_of_n.py: the method on one page runs, and its table says what a hand-worked case says."""

from __future__ import annotations

import importlib.util
import re
from pathlib import Path

import pytest

from bestofn.selection import METHOD_LABELS, METHODS
from bestofn.testing import make_tokenizer
from bestofn.testing.scripted import Script, ScriptedBackend, ScriptedPRM, ScriptedProblem, Solution

from conftest import integer_problems, write_dataset

EXAMPLE = Path(__file__).resolve().parents[1] / "examples" / "best_of_n.py"


@pytest.fixture
def example():
    spec = importlib.util.spec_from_file_location("best_of_n_example", EXAMPLE)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _table(printed: str) -> dict[str, tuple[int, int]]:
    """The printed table as {method: (solved, total)}, in the order printed."""
    rows = {}
    for label in (METHOD_LABELS[m] for m in METHODS):
        m = re.search(rf"^{re.escape(label)}\s+[\d.]+%\s+(\d+)/(\d+)$", printed, re.M)
        assert m, f"no row for {label!r} in\n{printed}"
        rows[label] = (int(m.group(1)), int(m.group(2)))
    return rows


def test_example_needs_no_file_outside_the_repository():
    """The example and the recipes read MATH-500 from the Hub by default; a user's clone has no ../shared/."""
    root = EXAMPLE.parents[1]
    for path in [EXAMPLE, *sorted((root / "recipes").glob("*.yaml"))]:
        assert "shared/data" not in path.read_text(), path


def test_example_error_is_one_line(tmp_path):
    import os
    import subprocess
    import sys

    env = {**os.environ, "PYTHONPATH": str(EXAMPLE.parents[1]), "HF_HUB_OFFLINE": "1"}
    proc = subprocess.run([sys.executable, str(EXAMPLE), "--dataset", str(tmp_path / "missing.jsonl")], env=env,
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 2, proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("best_of_n.py: error: ") and "missing.jsonl" in lines[0], lines


def test_example_runs_on_the_tiny_models(example, capsys, math500_path, tiny_generator_dir, tiny_prm_dir):
    solved = example.main(["--generator", str(tiny_generator_dir), "--prm", str(tiny_prm_dir), "--dataset",
                           str(math500_path), "--num-problems", "3", "--n", "2", "--max-new-tokens", "8",
                           "--device", "cpu"])
    printed = capsys.readouterr().out
    assert "3 problems at levels [1, 2, 3]; N=2" in printed
    table = _table(printed)
    assert table == {METHOD_LABELS[m]: (sum(solved[m]), 3) for m in METHODS}
    for m in ("majority", "naive_bon", "weighted_bon"):  # the oracle bounds every rule, problem by problem
        assert all(o or not s for s, o in zip(solved[m], solved["pass_at_n"]))


def test_example_table_matches_the_hand_worked_case(example, capsys, monkeypatch, math500_path, tmp_path,
                                                    tiny_generator_dir, tiny_prm_dir):
    """Three problems, N=4, scripted solutions (rewards = last step's):

    | problem | greedy | samples (answer: reward)               | majority | naive | weighted | pass@4 |
    | ------- | ------ | -------------------------------------- | -------- | ----- | -------- | ------ |
    | P1      | wrong  | w: .2, w: .2, g: .6, g.0: .7           | wrong    | right | right    | right  |
    | P2      | right  | g: .6, w: .95, g: .5, no answer: .99   | right    | wrong | right    | right  |
    | P3      | wrong  | g: .1, g: .1, g: .1, w: .9             | right    | wrong | wrong    | right  |

    greedy 1/3, majority 2/3, naive 1/3, weighted 2/3, pass@4 3/3.
    """
    rows = integer_problems(math500_path, 3)
    g = [r["answer"] for r in rows]
    w = [str(int(a) + 1) for a in g]
    script = Script([
        ScriptedProblem(rows[0]["problem"], Solution(w[0]), [Solution(w[0], (0.2,)), Solution(w[0], (0.9, 0.2)),
                                                             Solution(g[0], (0.6,)), Solution(f"{g[0]}.0", (0.7,))]),
        ScriptedProblem(rows[1]["problem"], Solution(g[1]), [Solution(g[1], (0.6,)), Solution(w[1], (0.95,)),
                                                             Solution(g[1], (0.5,)), Solution(None, (0.99,))]),
        ScriptedProblem(rows[2]["problem"], Solution(w[2]), [Solution(g[2], (0.1,)), Solution(g[2], (0.1,)),
                                                             Solution(g[2], (0.1,)), Solution(w[2], (0.9,))]),
    ])
    backend = ScriptedBackend(script, make_tokenizer())
    monkeypatch.setattr(example, "make_backend", lambda cfg: backend)
    monkeypatch.setattr(example, "load_prm", lambda *args, **kwargs: ScriptedPRM(script))
    dataset = write_dataset(rows, tmp_path / "three.jsonl")

    solved = example.main(["--generator", str(tiny_generator_dir), "--prm", str(tiny_prm_dir), "--dataset",
                           str(dataset), "--num-problems", "3", "--n", "4", "--device", "cpu"])

    assert _table(capsys.readouterr().out) == {
        "greedy": (1, 3), "majority vote": (2, 3), "naive Best-of-N": (1, 3), "weighted Best-of-N": (2, 3),
        "pass@N (oracle)": (3, 3)}
    order = sorted(range(3), key=lambda i: rows[i]["unique_id"])  # the subset is sorted by level, then unique_id
    assert solved["weighted_bon"] == [[True, True, False][i] for i in order]
    assert solved["majority"] == [[False, True, True][i] for i in order]
    assert [c["n"] for c in backend.calls] == [1, 4]  # one greedy call, one call for the N samples
