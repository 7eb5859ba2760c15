"""The run machinery checked where other tests did not reach (each test kills a mutant of the mutation test):
chunk names that include everything a chunk depends on, the worker's model loading, plan sizes, seeds.

Scripted solutions (bestofn.testing.scripted) injected through ``pipeline.run(models=...)``; every expected
value is worked out by hand from the script.
"""

from __future__ import annotations

import hashlib
import json
import logging
import re
import time
from dataclasses import replace
from pathlib import Path

import pytest

from bestofn import pipeline, rundir
from bestofn.config import BestOfNConfig
from bestofn.costs import Cost, add_up
from bestofn.data import Problem
from bestofn.errors import BestOfNError
from bestofn.importer import import_completions
from bestofn.io import read_json, read_jsonl
from bestofn.methods.best_of_n import BestOfN
from bestofn.report.loader import load_run
from bestofn.testing import make_tokenizer
from bestofn.testing.scripted import (Script, ScriptedBackend, ScriptedModels, ScriptedPRM, ScriptedProblem,
                                      ScriptedTreeBackend, ScriptedTreePRM, Solution, TreeRules)

from conftest import tiny_config


def _dataset(math500_path: Path, tmp_path: Path, k: int = 2) -> tuple[Path, list[dict]]:
    """``k`` level-1 problems with integer answers, as a dataset file."""
    rows = [json.loads(line) for line in math500_path.read_text().splitlines()]
    chosen = [r for r in rows if r["level"] == 1 and r["answer"].isdigit()][:k]
    path = tmp_path / "problems.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in chosen))
    return path, chosen


def _script(problems: list[dict], separator: str = "\n") -> Script:
    """Greedy right; two samples per problem: the first right (0.9), the second wrong (0.2)."""
    return Script([ScriptedProblem(p["problem"], Solution(p["answer"]),
                                   [Solution(p["answer"], (0.5, 0.9)), Solution(str(int(p["answer"]) + 1), (0.5, 0.2))])
                   for p in problems], separator)


# --- chunk names ------------------------------------------------------------------------------------------------
def test_greedy_chunks_made_with_another_step_separator_are_not_reused(tmp_path, math500_path, tiny_generator_dir,
                                                                      tiny_prm_dir):
    """A sweep shares greedy chunks between run directories; the prompt asks for the PRM's step separator, so a
    chunk generated for a one-line-per-step PRM must not stand in for a blank-line PRM's greedy solutions."""
    dataset, problems = _dataset(math500_path, tmp_path)
    line, blank = _script(problems, "\n"), _script(problems, "\n\n")
    first = tiny_config(tiny_generator_dir, tiny_prm_dir, dataset, tmp_path / "line", num_problems=2, n=2)
    pipeline.run(first, models=ScriptedModels(ScriptedBackend(line, make_tokenizer()), ScriptedPRM(line)))
    second = replace(first, output_dir=str(tmp_path / "blank"))
    assert rundir.share_chunks(first.output_dir, second.output_dir, "greedy") == 1
    backend = ScriptedBackend(blank, make_tokenizer())
    pipeline.run(second, models=ScriptedModels(backend, ScriptedPRM(blank)))
    assert [c["temperature"] for c in backend.calls].count(0.0) == 1, "greedy is generated again, for '\\n\\n'"
    greedy = read_jsonl(tmp_path / "blank" / "greedy.jsonl")
    assert len(greedy) == 2 and all("\n\n" in g["text"] for g in greedy)


def test_a_chunk_saved_under_another_name_is_not_trusted(tiny_generator_dir, tiny_prm_dir, tmp_path):
    """A chunk is intact only under its own name: one copied over another's file is deleted, not read."""
    run = rundir.RunDir(tmp_path / "run", tiny_config(tiny_generator_dir, tiny_prm_dir, tmp_path / "d.jsonl", tmp_path))
    run.save_chunk("samples", "aaaa", [{"unique_id": "p", "text": "A"}])
    run.save_chunk("samples", "bbbb", [{"unique_id": "p", "text": "B"}])
    assert run.load_chunk("samples", "aaaa")["rows"] == [{"unique_id": "p", "text": "A"}]
    run.chunk_path("samples", "bbbb").write_bytes(run.chunk_path("samples", "aaaa").read_bytes())
    assert run.load_chunk("samples", "bbbb") is None
    assert not run.chunk_path("samples", "bbbb").exists(), "it is deleted, to be computed again"
    assert run.load_chunk("samples", "aaaa") is not None


# --- plans -------------------------------------------------------------------------------------------------------
def test_scoring_chunks_hold_256_solutions_each_and_every_solution_once(tiny_generator_dir, tiny_prm_dir, tmp_path):
    config = tiny_config(tiny_generator_dir, tiny_prm_dir, tmp_path / "d.jsonl", tmp_path / "run")
    problems = [Problem(unique_id="a", problem="What is 1+1?", answer="2", level=1, subject="x"),
                Problem(unique_id="b", problem="What is 2+2?", answer="4", level=1, subject="x")]
    rows = [{"unique_id": "a" if i < 200 else "b", "text": f"solution {i}", "num_tokens": 1} for i in range(257)]
    chunks = pipeline.plan_scores(config, problems, rows)
    assert [len(c.payload["texts"]) for c in chunks] == [256, 1]
    assert [t for c in chunks for t in c.payload["texts"]] == [f"solution {i}" for i in range(257)]
    assert chunks[1].payload["problems"] == ["What is 2+2?"] and chunks[0].payload["problems"][199] == "What is 1+1?"
    assert all(c.payload["stage_tokens"] == 257 for c in chunks), "every chunk knows the stage's 257 tokens"


# --- seeds -------------------------------------------------------------------------------------------------------
class _Recorder:
    """A generator that records each call's per-prompt seeds and first index and answers n completions per prompt."""

    def __init__(self):
        self.seeds: list[list[int]] = []
        self.first: list[int] = []

    def generate(self, prompts, *, n, seed, seeds, first=0, **kwargs):
        from bestofn.backends.base import Completion

        self.seeds.append(list(seeds))
        self.first.append(first)
        return [[Completion(f"s{i}", 1, "stop") for i in range(n)] for _ in prompts]


def test_best_of_n_seeds_each_problem_from_the_run_seed_and_its_id():
    """seeds.py's rule: each prompt's seed is the first 8 hex digits of sha256("<seed>:<unique_id>"), whatever
    else shares the call; the backend seeds sample i of it from that seed and i."""
    def problem(uid):
        return Problem(unique_id=uid, problem=f"problem {uid}", answer="1", level=1, subject="x")

    method, fake = BestOfN(2, 0.8, 1.0, 16, seed=7), _Recorder()
    out = method.solve([problem("p/1"), problem("p/2")], ["x", "y"], fake)
    method.solve([problem("p/2")], ["y"], fake)
    expected = [int(hashlib.sha256(b"7:p/1").hexdigest()[:8], 16), int(hashlib.sha256(b"7:p/2").hexdigest()[:8], 16)]
    assert fake.seeds == [expected, expected[1:]] and expected[0] != expected[1] and fake.first == [0, 0]
    assert [(r["unique_id"], r["sample_index"]) for r in out.rows] == [("p/1", 0), ("p/1", 1), ("p/2", 0), ("p/2", 1)]


# --- the worker: each model loaded once, the generator freed before the PRM loads ----------------------------------
class _ClosingBackend(ScriptedBackend):
    """The scripted generator, writing into ``events`` when it is closed."""

    def __init__(self, script: Script, events: list[str]):
        super().__init__(script, make_tokenizer())
        self.events = events

    def close(self) -> None:
        self.events.append("close generator")


class _LoggingModels(ScriptedModels):
    """The scripted models, writing each load into ``events``."""

    def __init__(self, script: Script):
        self.events: list[str] = []
        super().__init__(_ClosingBackend(script, self.events), ScriptedPRM(script))

    def generator(self, config):
        time.sleep(0.01)  # a load takes time: its seconds are charged to one chunk
        self.events.append("load generator")
        return super().generator(config)

    def prm(self, config, device, compile=False):
        time.sleep(0.01)
        self.events.append("load prm")
        return super().prm(config, device, compile)


def test_the_worker_loads_each_model_once_and_frees_the_generator_before_the_prm(tmp_path, math500_path,
                                                                                 tiny_generator_dir, tiny_prm_dir):
    """3 problems, n=2, chunks of 2 solutions: greedy in 2 chunks, samples in 3, scores in 1 (6 chunks)."""
    dataset, problems = _dataset(math500_path, tmp_path, k=3)
    models = _LoggingModels(_script(problems))
    models.chunk_sequences = 2
    config = tiny_config(tiny_generator_dir, tiny_prm_dir, dataset, tmp_path / "run", num_problems=3, n=2)
    pipeline.run(config, models=models)
    assert models.events == ["load generator", "close generator", "load prm"]
    costs = [json.loads(p.read_text())["cost"] for stage in ("greedy", "samples", "scores")
             for p in (tmp_path / "run" / "chunks" / stage).glob("*.json")]
    assert len(costs) == 6
    assert sum(c["load_s"] > 0 for c in costs) == 2, "each load is charged once: to the first chunk after it"


# --- the files users read ----------------------------------------------------------------------------------------
def _finished(tmp_path: Path, math500_path: Path, tiny_generator_dir: Path, tiny_prm_dir: Path, **overrides):
    """A finished scripted run of 2 problems, n=2 (see _script); its config."""
    dataset, problems = _dataset(math500_path, tmp_path)
    script = _script(problems)
    config = tiny_config(tiny_generator_dir, tiny_prm_dir, dataset, tmp_path / "run", num_problems=2, n=2, **overrides)
    pipeline.run(config, models=ScriptedModels(ScriptedBackend(script, make_tokenizer()), ScriptedPRM(script)))
    return config, script


def test_a_deleted_file_of_the_manifest_is_refused_by_readers(tmp_path, math500_path, tiny_generator_dir, tiny_prm_dir):
    """timings.json is not among the files load_run requires by name: the manifest's sha256 list catches it."""
    _finished(tmp_path, math500_path, tiny_generator_dir, tiny_prm_dir)
    (tmp_path / "run" / "timings.json").unlink()
    with pytest.raises(BestOfNError, match=r"timings.json was changed after the run wrote it"):
        load_run(tmp_path / "run")


@pytest.mark.parametrize("change, said", [({"aggregation": "min"}, "aggregation: 'last' -> 'min'"),
                                          ({"prm_max_length": 1024}, "prm_max_length: ")])
def test_a_rerun_with_another_prm_setting_or_aggregation_needs_overwrite(change, said, tmp_path, math500_path,
                                                                         tiny_generator_dir, tiny_prm_dir):
    """results.json's verdicts depend on the PRM and on the aggregation, though the samples do not."""
    config, script = _finished(tmp_path, math500_path, tiny_generator_dir, tiny_prm_dir)
    models = ScriptedModels(ScriptedBackend(script, make_tokenizer()), ScriptedPRM(script))
    with pytest.raises(BestOfNError, match=re.escape(said) + ".*pass --overwrite"):
        pipeline.run(replace(config, **change), models=models)


def test_a_report_is_removed_only_when_the_settings_change(tmp_path, math500_path, tiny_generator_dir, tiny_prm_dir):
    config, script = _finished(tmp_path, math500_path, tiny_generator_dir, tiny_prm_dir)
    report = tmp_path / "run" / "report"
    report.mkdir()
    for name in ("report.md", "curve.png"):  # as bestofn.report.render.write_page writes and records them
        (report / name).write_text("accuracy with aggregation=last")
    rundir.record_written(report, ["report.md", "curve.png"])
    (report / "my-notes.md").write_text("the user's own file")
    models = ScriptedModels(ScriptedBackend(script, make_tokenizer()), ScriptedPRM(script))
    pipeline.run(config, models=models)
    assert (report / "report.md").is_file(), "the same settings: the report still describes the results"
    pipeline.run(replace(config, aggregation="min"), overwrite=True, models=models)
    assert sorted(p.name for p in report.iterdir()) == ["my-notes.md"], "bestofn's files described the old aggregation"
    (report / "my-notes.md").unlink()
    rundir.record_written(report, ["report.md"])
    (report / "report.md").write_text("accuracy with aggregation=min")
    pipeline.run(replace(config, aggregation="mean"), overwrite=True, models=models)
    assert not report.exists(), "nothing of the user's in it: the folder goes too"


# --- costs -------------------------------------------------------------------------------------------------------
def test_a_stages_peak_memory_is_its_largest_chunks_and_gpu_wins_over_rss():
    rss = [Cost(peak_memory_bytes=b, memory="rss", device="cpu") for b in (100, 300, 200)]
    total = add_up(rss)
    assert (total.peak_memory_bytes, total.memory, total.device) == (300, "rss", "cpu")
    mixed = add_up([Cost(peak_memory_bytes=500, memory="rss"), Cost(peak_memory_bytes=50, memory="gpu"),
                    Cost(peak_memory_bytes=40, memory="gpu")])
    assert (mixed.peak_memory_bytes, mixed.memory) == (50, "gpu")


def test_greedy_rows_have_no_sample_index(tmp_path, math500_path, tiny_generator_dir, tiny_prm_dir):
    """greedy.jsonl: one solution per problem, not a sample; samples.jsonl: indices 0 and 1 of each problem."""
    _finished(tmp_path, math500_path, tiny_generator_dir, tiny_prm_dir)
    greedy = read_jsonl(tmp_path / "run" / "greedy.jsonl")
    assert len(greedy) == 2 and not any("sample_index" in g for g in greedy)
    assert [s["sample_index"] for s in read_jsonl(tmp_path / "run" / "samples.jsonl")] == [0, 1, 0, 1]


# --- the run lock's cleanup -----------------------------------------------------------------------------------------
class _FailingModels(ScriptedModels):
    """Models whose generator cannot load: the run fails before any chunk is written."""

    def generator(self, config):
        raise BestOfNError("the generator cannot load")


def test_a_failed_first_run_keeps_user_files_named_like_bestofn_files(tmp_path, math500_path, tiny_generator_dir,
                                                                      tiny_prm_dir):
    dataset, problems = _dataset(math500_path, tmp_path)
    out = tmp_path / "mine"
    (out / "report").mkdir(parents=True)
    (out / "report" / "draft.md").write_text("my own report")
    (out / "results.json").write_text('{"mine": true}')
    script = _script(problems)
    config = tiny_config(tiny_generator_dir, tiny_prm_dir, dataset, out, num_problems=2, n=2)
    with pytest.raises(BestOfNError, match="the generator cannot load"):
        pipeline.run(config, models=_FailingModels(ScriptedBackend(script, make_tokenizer()), ScriptedPRM(script)))
    assert sorted(p.name for p in out.iterdir()) == ["report", "results.json"], "what the run wrote is removed"
    assert (out / "report" / "draft.md").read_text() == "my own report"
    assert (out / "results.json").read_text() == '{"mine": true}'


# --- a search's pool ---------------------------------------------------------------------------------------------
@pytest.mark.parametrize("method", ["beam_search", "dvts"])
def test_a_search_pool_is_listed_best_scored_first(method, tmp_path, math500_path, tiny_generator_dir, tiny_prm_dir):
    """First steps: label 1 scores .9, the others .2; every second step finishes: child 1 (right, .8) or child 0
    (wrong, .3). With n=4, M=2 each problem's pool is 2 right and 2 wrong solutions, generated wrong first; the
    pool lists them best-scored first: sample_index 0 and 1 are the right ones."""
    dataset, chosen = _dataset(math500_path, tmp_path)
    rules = TreeRules(reward=lambda k, label: (0.9 if label == "1" else 0.2) if "." not in label
                      else (0.8 if label.endswith("1") else 0.3),
                      end=lambda k, label: "stop" if label.count(".") == 1 else None,
                      answer=lambda k, label: chosen[k]["answer"] if label.endswith("1") else "12345")
    texts = [r["problem"] for r in chosen]
    config = tiny_config(tiny_generator_dir, tiny_prm_dir, dataset, tmp_path / "run", num_problems=2, method=method,
                         beam_width=2, num_iterations=3, max_new_tokens=256)
    pipeline.run(config, models=ScriptedModels(ScriptedTreeBackend(texts, rules, make_tokenizer(), "\n"),
                                               ScriptedTreePRM(texts, rules, "\n")))
    rows = read_jsonl(tmp_path / "run" / "samples.jsonl")
    for problem in chosen:
        mine = sorted((r for r in rows if r["unique_id"] == problem["unique_id"]), key=lambda r: r["sample_index"])
        assert [r["step_rewards"][-1] for r in mine] == [0.8, 0.8, 0.3, 0.3]
        assert [r["correct"] for r in mine] == [True, True, False, False]


# --- the step separator of a run ------------------------------------------------------------------------------------
def test_a_new_prm_with_another_separator_rescores_the_same_samples(tmp_path, math500_path, tiny_generator_dir,
                                                                    tiny_prm_dir, caplog):
    """The manifest keeps the separator the solutions were generated with: a PRM reading "\\n\\n" rescores them
    (with a warning) instead of generating everything again for its own separator."""
    config, script = _finished(tmp_path, math500_path, tiny_generator_dir, tiny_prm_dir)
    backend, prm = ScriptedBackend(script, make_tokenizer()), ScriptedPRM(script)
    prm.step_separator = "\n\n"  # a PRM that splits steps at blank lines (it still knows the texts' rewards)
    with caplog.at_level(logging.WARNING):
        pipeline.run(replace(config, prm_max_length=1024), overwrite=True, models=ScriptedModels(backend, prm))
    assert backend.calls == [], "nothing is generated again"
    assert read_json(tmp_path / "run" / "manifest.json")["step_separator"] == "\n"
    assert any("generated with steps separated by '\\n'" in r.getMessage() for r in caplog.records)
    assert read_json(tmp_path / "run" / "results.json")["accuracy"]["naive_bon"]["correct"] == 2


# --- imported completions ------------------------------------------------------------------------------------------
def test_a_lost_chunk_of_imported_completions_is_one_clear_line(tmp_path):
    """Imported completions cannot be generated again: a missing chunk says how to import them again."""
    rows = [{"problem": "What is 2+2?", "answer": "4", "completions": ["So $\\boxed{4}$.", "So $\\boxed{5}$."],
             "scores": [0.9, 0.2]}]
    source = tmp_path / "sal.jsonl"
    source.write_text("".join(json.dumps(r) + "\n" for r in rows))
    run = import_completions(str(source), tmp_path / "run")
    assert read_json(run / "results.json")["accuracy"]["naive_bon"]["correct"] == 1  # the .9 one, "4": right
    for chunk in (run / "chunks" / "samples").glob("*.json"):
        chunk.unlink()
    with pytest.raises(BestOfNError, match=r"chunks/samples/\w+\.json of the imported completions is missing or "
                                           r"damaged; import them again with `bestofn import .*--overwrite`"):
        pipeline.run(BestOfNConfig.from_yaml(run / "config.yaml"))
