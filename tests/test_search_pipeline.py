"""Beam search and DVTS through the real pipeline: scripted trees with known answers, then the tiny models.

The scripted runs check the run directory (pool rows with their history, finish reasons, compute in
results.json, resume of a killed search, the models loaded once); the tiny-model runs check that both methods run end to end on the
transformers backend with a real PRM and a real tokenizer, stopping each step at the PRM's delimiter.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from bestofn import pipeline
from bestofn.report import compute
from bestofn.io import read_json, read_jsonl
from bestofn.testing import make_tokenizer
from bestofn.testing.scripted import ScriptedModels, ScriptedTreeBackend, ScriptedTreePRM, TreeRules

from conftest import tiny_config


def _two_problems(math500_path: Path, tmp_path: Path) -> tuple[Path, list[dict]]:
    rows = [json.loads(line) for line in math500_path.read_text().splitlines()]
    chosen = [r for r in rows if r["level"] == 1 and r["answer"].isdigit()][:2]
    path = tmp_path / "two.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in chosen))
    return path, chosen


class LoadCounting(ScriptedModels):
    """Scripted models that count how often the run asks for each."""

    def __init__(self, generator, prm):
        super().__init__(generator, prm)
        self.loads = {"generator": 0, "prm": 0}

    def generator(self, config):
        self.loads["generator"] += 1
        return super().generator(config)

    def prm(self, config, device, compile=False):
        self.loads["prm"] += 1
        return super().prm(config, device, compile)


def _tree(chosen: list[dict]) -> TreeRules:
    # First steps: 1 is the best (.9), the rest tie (.2); second steps finish, child 1 with the right answer
    # (reward .8), child 0 with a wrong one (.3).
    return TreeRules(reward=lambda k, label: (0.9 if label == "1" else 0.2) if "." not in label
                     else (0.8 if label.endswith("1") else 0.3),
                     end=lambda k, label: "stop" if label.count(".") == 1 else None,
                     answer=lambda k, label: chosen[k]["answer"] if label.endswith("1") else "12345")


@pytest.mark.parametrize("method", ["beam_search", "dvts"])
def test_search_run_directory(method, tmp_path, math500_path, tiny_generator_dir, tiny_prm_dir) -> None:
    dataset, chosen = _two_problems(math500_path, tmp_path)
    texts = [r["problem"] for r in chosen]
    backend = ScriptedTreeBackend(texts, _tree(chosen), make_tokenizer(), "\n")
    models = LoadCounting(backend, ScriptedTreePRM(texts, _tree(chosen), "\n"))
    config = tiny_config(tiny_generator_dir, tiny_prm_dir, dataset, tmp_path / "run", num_problems=2, method=method,
                         beam_width=2, num_iterations=3, max_new_tokens=256)
    results = pipeline.run(config, models=models)
    assert models.loads == {"generator": 1, "prm": 1}, "greedy and the search share the generator, loaded once"
    rows = read_jsonl(tmp_path / "run" / "samples.jsonl")
    assert len(rows) == 8 and {r["method"] for r in rows} == {method}
    assert all(r["finish_reason"] in ("stop", "length") for r in rows)
    for r in rows:  # the history rebuilds the text, and links parent to child
        assert "".join(s["text"] for s in r["steps"]) == r["text"]
        assert [s["parent_id"] for s in r["steps"]] == [None] + [s["beam_id"] for s in r["steps"][:-1]]
        assert r["beam_id"] == r["steps"][-1]["beam_id"] and r["iteration"] == r["steps"][-1]["iteration"]
        assert len(r["step_rewards"]) == 2 and "reward" not in r
    # Every finished solution is a second step: 2 right (.8 each) and 2 wrong (.3 each) per problem, whichever
    # first steps were kept, so weighted selection is right on both problems.
    assert results["accuracy"]["weighted_bon"]["correct"] == 2
    assert results["method"] == method
    tree = read_jsonl(tmp_path / "run" / "tree.jsonl")
    generated = sum(n["num_tokens"] + n["lookahead_tokens"] for n in tree)
    assert len(tree) == 2 * 8  # per problem: 4 first steps, then M=2 children of each of the 2 kept beams / subtrees
    assert results["compute"]["generated_tokens"] == generated
    assert results["compute"]["generated_tokens_per_problem"] == generated / 2
    # timings.json counts every backend call of the search: one sequence per node, each step's tokens (no
    # step was cut to a budget here, so the tree holds all that was generated).
    cost = compute.stage_totals(tmp_path / "run")["samples"]
    assert (cost.sequences, cost.generated_tokens) == (len(tree), generated)
    assert cost.prompt_tokens > 0 and cost.generator_s > 0 and cost.prm_s > 0
    assert results["compute"]["prm_tokens"] is None, "the scripted PRM counts no tokens: unknown, never 0"
    assert not (tmp_path / "run" / "chunks" / "scores").exists(), "a search scored its pools while searching"


def test_a_killed_search_run_keeps_its_finished_chunks(tmp_path, math500_path, tiny_generator_dir,
                                                       tiny_prm_dir) -> None:
    """Each problem is a chunk here (N=4 sequences per batch of 4), and each search takes three iterations
    (a solution stops at its third step). Backend calls: 0 the greedy baseline of both problems; 1-3 the
    iterations of the first problem's chunk; 4-6 the second's. The run dies in call 5, the second problem's
    second iteration: the rerun keeps the first chunk, searches the second again (a chunk is the unit of
    resume) and writes what a run that was never killed writes."""
    dataset, chosen = _two_problems(math500_path, tmp_path)
    texts = [r["problem"] for r in chosen]
    rules = TreeRules(reward=lambda k, label: 0.9 if label.startswith("1") else 0.2,
                      end=lambda k, label: "stop" if label.count(".") == 2 else None,
                      answer=lambda k, label: chosen[k]["answer"])
    config = dict(num_problems=2, method="beam_search", beam_width=2, num_iterations=4, max_new_tokens=256)

    def run(output_dir: Path, fail_at_call: int | None = None) -> ScriptedTreeBackend:
        backend = ScriptedTreeBackend(texts, rules, make_tokenizer(), "\n")
        backend.fail_at_call = fail_at_call
        pipeline.run(tiny_config(tiny_generator_dir, tiny_prm_dir, dataset, output_dir, **config),
                     models=ScriptedModels(backend, ScriptedTreePRM(texts, rules, "\n"), chunk_sequences=4))
        return backend

    with pytest.raises(KeyboardInterrupt):
        run(tmp_path / "run", fail_at_call=5)
    assert len(list((tmp_path / "run" / "chunks" / "samples").glob("*.json"))) == 1, "the first chunk is saved"
    resumed = run(tmp_path / "run")
    second = read_jsonl(tmp_path / "run" / "problems.jsonl")[1]["problem"]  # the run's order, not the file's
    assert [all(second in p for p in c["prompts"]) for c in resumed.calls] == [True, True, True]
    rows = read_jsonl(tmp_path / "run" / "samples.jsonl")
    assert {r["iteration"] for r in rows} == {2} and len(rows) == 8
    run(tmp_path / "never-killed")
    for name in ("samples.jsonl", "tree.jsonl", "results.json"):
        assert (tmp_path / "run" / name).read_bytes() == (tmp_path / "never-killed" / name).read_bytes(), name


@pytest.mark.parametrize("method", ["beam_search", "dvts"])
def test_search_end_to_end_on_tiny_models(method, tmp_path, math500_path, tiny_generator_dir, tiny_prm_dir) -> None:
    config = tiny_config(tiny_generator_dir, tiny_prm_dir, math500_path, tmp_path / "run", num_problems=2,
                         method=method, beam_width=2, num_iterations=3, max_new_tokens=24)
    results = pipeline.run(config)
    rows = read_jsonl(tmp_path / "run" / "samples.jsonl")
    assert len(rows) == 2 * 4 and all(r["finish_reason"] in ("stop", "length") for r in rows)
    assert all(r["num_tokens"] <= 24 for r in rows)
    tree = read_jsonl(tmp_path / "run" / "tree.jsonl")
    # Every step of an unfinished beam ends at the PRM's delimiter ("\n" for the Skywork format).
    assert all(n["text"].endswith("\n") for n in tree if n["finish_reason"] == "delimiter")
    assert results["compute"]["prm_tokens"] > 0 and results["compute"]["generated_tokens"] > 0
    cost = compute.stage_totals(tmp_path / "run")["samples"]  # the PRM's share of the search, apart
    assert cost.prm_tokens == results["compute"]["prm_tokens"] and cost.prm_s > 0
    # Tokens run through the PRM and tokens its prefix cache served, counted apart, node by node.
    assert cost.prm_tokens == sum(n["prm_tokens"] for n in tree)
    assert cost.prm_cached_tokens == results["compute"]["prm_cached_tokens"] == sum(n["prm_cached_tokens"] for n in tree)
    assert results["compute"]["prm_cached_tokens"] > 0
    assert cost.generated_tokens == results["compute"]["generated_tokens"]
    assert cost.generated_tokens == sum(n["num_tokens"] + n["lookahead_tokens"] for n in tree)
    assert list(compute.stage_totals(tmp_path / "run")) == ["greedy", "samples"]
    assert read_json(tmp_path / "run" / "results.json")["method"] == method


def test_prm_cache_off_rescores_every_prefix_and_grows_the_same_tree(tmp_path, math500_path, tiny_generator_dir,
                                                                     tiny_prm_dir) -> None:
    """``prm_cache: false`` (the reference path): the same tree and rewards (within 1e-5), more PRM tokens, none
    served from a cache."""
    runs = {}
    for flag in (True, False):
        config = tiny_config(tiny_generator_dir, tiny_prm_dir, math500_path, tmp_path / f"run-{flag}", num_problems=2,
                             method="beam_search", beam_width=2, num_iterations=3, max_new_tokens=24, prm_cache=flag)
        runs[flag] = (pipeline.run(config)["compute"], read_jsonl(tmp_path / f"run-{flag}" / "tree.jsonl"))
    (on, tree_on), (off, tree_off) = runs[True], runs[False]
    assert [n["text"] for n in tree_on] == [n["text"] for n in tree_off]
    for a, b in zip(tree_on, tree_off):
        assert a["step_rewards"] == pytest.approx(b["step_rewards"], abs=1e-5, rel=0)
    assert off["prm_cached_tokens"] == 0 and on["prm_cached_tokens"] > 0
    assert on["prm_tokens"] < off["prm_tokens"] and on["generated_tokens"] == off["generated_tokens"]


def test_a_damaged_search_file_is_rebuilt_from_its_chunks(tmp_path, math500_path, tiny_generator_dir,
                                                           tiny_prm_dir) -> None:
    """A search's samples.jsonl with a line deleted: the rerun writes the same file from its chunks, searching
    nothing again."""
    dataset, chosen = _two_problems(math500_path, tmp_path)
    texts = [r["problem"] for r in chosen]
    config = tiny_config(tiny_generator_dir, tiny_prm_dir, dataset, tmp_path / "run", num_problems=2, method="dvts",
                         beam_width=2, num_iterations=3, max_new_tokens=256)
    pipeline.run(config, models=ScriptedModels(ScriptedTreeBackend(texts, _tree(chosen), make_tokenizer(), "\n"),
                                               ScriptedTreePRM(texts, _tree(chosen), "\n")))
    samples = tmp_path / "run" / "samples.jsonl"
    whole = samples.read_bytes()
    samples.write_bytes(b"".join(whole.splitlines(keepends=True)[1:]))
    again = ScriptedTreeBackend(texts, _tree(chosen), make_tokenizer(), "\n")
    pipeline.run(config, models=ScriptedModels(again, ScriptedTreePRM(texts, _tree(chosen), "\n")))
    assert again.calls == [] and samples.read_bytes() == whole


def test_a_search_rerun_as_best_of_n_leaves_no_stale_tree(tmp_path, math500_path, tiny_generator_dir, tiny_prm_dir):
    """Only the files a run writes stay: a search's tree.jsonl goes when the directory is rerun as Best-of-N."""
    import dataclasses

    from bestofn.report.loader import load_run

    dataset, chosen = _two_problems(math500_path, tmp_path)
    texts = [r["problem"] for r in chosen]

    def models():
        return ScriptedModels(ScriptedTreeBackend(texts, _tree(chosen), make_tokenizer(), "\n"),
                              ScriptedTreePRM(texts, _tree(chosen), "\n"))

    config = tiny_config(tiny_generator_dir, tiny_prm_dir, dataset, tmp_path / "run", num_problems=2, method="dvts",
                         beam_width=2, num_iterations=3, max_new_tokens=256)
    pipeline.run(config, models=models())
    assert (tmp_path / "run" / "tree.jsonl").is_file()
    pipeline.run(dataclasses.replace(config, method="best_of_n"), overwrite=True, models=models())
    assert not (tmp_path / "run" / "tree.jsonl").exists()
    assert load_run(tmp_path / "run").config.method == "best_of_n"
