"""The whole method end to end on tiny local models: artifacts, resume after a kill, changed settings."""

from __future__ import annotations

import json

import pytest
import yaml

from bestofn import pipeline, rundir
from bestofn.cli import main
from bestofn.config import BestOfNConfig
from bestofn.errors import BestOfNError
from bestofn.backends import TransformersBackend
from bestofn.io import read_json, read_jsonl

from conftest import tiny_config


def test_run_directory_has_every_artifact(tiny_run_dir):
    files = {p.name for p in tiny_run_dir.iterdir()}
    assert {"config.yaml", "manifest.json", "problems.jsonl", "greedy.jsonl", "samples.jsonl", "results.json"} <= files
    assert not (tiny_run_dir / ".partial").exists(), "journals are removed once their stage is done"
    config = BestOfNConfig.from_yaml(tiny_run_dir / "config.yaml")
    assert read_json(tiny_run_dir / "manifest.json")["stages"] == {
        s: config.fingerprint(s) for s in ("problems", "greedy", "samples", "scores", "results")}

    problems = read_jsonl(tiny_run_dir / "problems.jsonl")
    assert len(problems) == 4 and all(1 <= p["level"] <= 3 for p in problems)
    ids = [p["unique_id"] for p in problems]

    greedy = read_jsonl(tiny_run_dir / "greedy.jsonl")
    assert [g["unique_id"] for g in greedy] == ids
    for g in greedy:
        assert set(g) == {"unique_id", "text", "num_tokens", "finish_reason", "answer", "correct", "string_match"}
        assert 1 <= g["num_tokens"] <= 32 and g["finish_reason"] in ("stop", "length")
        if g["finish_reason"] == "length":
            assert g["num_tokens"] == 32

    samples = read_jsonl(tiny_run_dir / "samples.jsonl")
    assert [(s["unique_id"], s["sample_index"]) for s in samples] == [(i, k) for i in ids for k in range(4)]
    for s in samples:
        # one reward per step: the PRM splits the text at newlines, and the reward is the last step's
        assert len(s["step_rewards"]) == s["text"].count("\n") + 1
        assert all(0 < r < 1 for r in s["step_rewards"]) and s["reward"] == s["step_rewards"][-1]
        assert s["prm_truncated"] is False
    assert len({s["text"] for s in samples}) > 1, "sampling must give different solutions"


def test_results_are_consistent_with_samples(tiny_run_dir):
    results = read_json(tiny_run_dir / "results.json")
    samples = read_jsonl(tiny_run_dir / "samples.jsonl")
    greedy = read_jsonl(tiny_run_dir / "greedy.jsonl")
    assert results["n"] == 4 and results["num_problems"] == 4
    assert results["accuracy"]["greedy"] == {
        "correct": sum(g["correct"] for g in greedy), "total": 4, "accuracy": sum(g["correct"] for g in greedy) / 4}
    assert sum(level["greedy"]["total"] for level in results["by_level"].values()) == 4
    assert results["tokens"]["samples"] == sum(s["num_tokens"] for s in samples)
    for row in results["per_problem"]:
        mine = [s for s in samples if s["unique_id"] == row["unique_id"]]
        assert row["pass_at_n"]["correct"] == any(s["correct"] for s in mine)
        assert sum(g["count"] for g in row["groups"]) == sum(s["answer"] is not None for s in mine)


def test_cli_end_to_end(tmp_path, tiny_generator_dir, tiny_prm_dir, math500_path, capsys):
    out = tmp_path / "run"
    argv = ["run", "--generator", str(tiny_generator_dir), "--prm", str(tiny_prm_dir), "--dataset", str(math500_path),
            "--levels", "1,2", "--num-problems", "3", "--n", "2", "--max-new-tokens", "8", "--temperature", "1.0",
            "--device", "cpu", "--output-dir", str(out)]
    assert main(argv) == 0
    assert "weighted_bon" in capsys.readouterr().out
    saved = yaml.safe_load((out / "config.yaml").read_text())
    assert saved["levels"] == [1, 2] and saved["n"] == 2 and saved["temperature"] == 1.0
    assert len(read_jsonl(out / "samples.jsonl")) == 6


REAL_GENERATE = TransformersBackend.generate


class SimulatedKill(BaseException):
    """Stands for SIGKILL/Ctrl-C: a BaseException, so no `except Exception` in the code can swallow it."""


class CountingGenerate:
    """Wraps TransformersBackend.generate: counts prompts, and can die after some calls like a killed run."""

    def __init__(self, die_after: int | None = None):
        self.calls: list[int] = []
        self.die_after = die_after

    def install(self, monkeypatch) -> CountingGenerate:
        def generate(backend, prompts, **kwargs):
            if self.die_after is not None and len(self.calls) >= self.die_after:
                raise SimulatedKill()
            self.calls.append(len(prompts))
            return REAL_GENERATE(backend, prompts, **kwargs)

        monkeypatch.setattr(TransformersBackend, "generate", generate)
        return self


def test_killed_run_resumes_without_redoing_work(tmp_path, monkeypatch, tiny_generator_dir, tiny_prm_dir, math500_path):
    # generation_batch_size=4 with n=4: one problem per generation call, so each problem is journaled alone.
    config = tiny_config(tiny_generator_dir, tiny_prm_dir, math500_path, tmp_path / "run", generation_batch_size=4)
    killer = CountingGenerate(die_after=3).install(monkeypatch)  # greedy (one call) + two sample calls
    with pytest.raises(SimulatedKill):
        pipeline.run(config)
    assert killer.calls == [4, 1, 1]  # greedy for all four problems, then two problems' samples
    assert (tmp_path / "run" / "greedy.jsonl").exists()
    assert not (tmp_path / "run" / "samples.jsonl").exists(), "an unfinished stage leaves no artifact"
    assert len(list((tmp_path / "run" / ".partial").glob("samples-*.jsonl"))) == 1

    resumed = CountingGenerate().install(monkeypatch)
    pipeline.run(config)
    assert resumed.calls == [1, 1], "only the two unfinished problems are generated again"

    # The resumed run gives exactly what an uninterrupted run gives.
    fresh = tiny_config(tiny_generator_dir, tiny_prm_dir, math500_path, tmp_path / "fresh", generation_batch_size=4)
    pipeline.run(fresh)
    assert read_jsonl(tmp_path / "run" / "samples.jsonl") == read_jsonl(tmp_path / "fresh" / "samples.jsonl")

    # A rerun with the same settings does nothing but recompute the cheap results.
    again = CountingGenerate().install(monkeypatch)
    pipeline.run(config)
    assert again.calls == []


def test_changed_settings_are_never_silently_reused(tmp_path, monkeypatch, tiny_generator_dir, tiny_prm_dir,
                                                    math500_path):
    config = tiny_config(tiny_generator_dir, tiny_prm_dir, math500_path, tmp_path / "run", n=2)
    pipeline.run(config)
    changed = tiny_config(tiny_generator_dir, tiny_prm_dir, math500_path, tmp_path / "run", n=3)
    with pytest.raises(BestOfNError, match=r"n: 2 -> 3.*--overwrite.*samples, scores, results"):
        pipeline.run(changed)

    counter = CountingGenerate().install(monkeypatch)
    results = pipeline.run(changed, overwrite=True)
    assert counter.calls == [4], "greedy is reused, the samples are drawn again (4 problems, one call)"
    assert results["n"] == 3 and len(read_jsonl(tmp_path / "run" / "samples.jsonl")) == 12

    # Speed-only settings may change freely.
    faster = tiny_config(tiny_generator_dir, tiny_prm_dir, math500_path, tmp_path / "run", n=3, prm_batch_tokens=256)
    pipeline.run(faster)
    assert counter.calls == [4]


def test_changing_the_prm_rescores_without_regenerating(tmp_path, monkeypatch, tiny_generator_dir, tiny_prm_dir,
                                                        math500_path, tmp_path_factory):
    from bestofn.testing import make_tiny_prm

    config = tiny_config(tiny_generator_dir, tiny_prm_dir, math500_path, tmp_path / "run")
    pipeline.run(config)
    before = read_jsonl(tmp_path / "run" / "samples.jsonl")
    other_prm = make_tiny_prm(tmp_path / "prm2", seed=7)
    counter = CountingGenerate().install(monkeypatch)
    pipeline.run(tiny_config(tiny_generator_dir, other_prm, math500_path, tmp_path / "run"), overwrite=True)
    after = read_jsonl(tmp_path / "run" / "samples.jsonl")
    assert counter.calls == []
    assert [s["text"] for s in after] == [s["text"] for s in before]
    assert [s["reward"] for s in after] != [s["reward"] for s in before]


def test_import_stages_shares_the_greedy_baseline(tmp_path, tiny_run_dir, monkeypatch):
    source = BestOfNConfig.from_yaml(tiny_run_dir / "config.yaml")
    hotter = BestOfNConfig.from_dict({**source.to_dict(), "temperature": 1.2, "output_dir": str(tmp_path / "hot")})
    assert rundir.import_stages(tiny_run_dir, hotter) == ["problems", "greedy"]
    counter = CountingGenerate().install(monkeypatch)
    pipeline.run(hotter)
    assert counter.calls == [4], "only the samples are generated"
    assert read_jsonl(tmp_path / "hot" / "greedy.jsonl") == read_jsonl(tiny_run_dir / "greedy.jsonl")


@pytest.mark.parametrize(
    "flags, message",
    [
        (["--generator", "no-such-org/no-such-model"], "cannot load the generator 'no-such-org/no-such-model'.*--generator DIR"),
        (["--prm", "no-such-org/no-such-prm"], "cannot load the PRM 'no-such-org/no-such-prm'.*--prm DIR"),
        (["--levels", "1,7"], "levels must be a non-empty subset of 1-5"),
        (["--levels", "one"], "--levels takes a list of integers, comma-separated, got 'one'"),
        (["--n", "0"], "n must be at least 1"),
        (["--num-problems", "999"], "asked for 999 problems but levels"),
        (["--output-dir", "/proc/bestofn-run"], "cannot write to output directory"),
    ],
)
def test_bad_input_is_one_clear_line(flags, message, tmp_path, tiny_generator_dir, tiny_prm_dir, math500_path, capsys):
    argv = ["run", "--generator", str(tiny_generator_dir), "--prm", str(tiny_prm_dir), "--dataset", str(math500_path),
            "--num-problems", "1", "--n", "1", "--max-new-tokens", "4", "--device", "cpu",
            "--output-dir", str(tmp_path / "run"), *flags]
    assert main(argv) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) >= 1 and err[-1].startswith("bestofn: error: ")
    import re

    assert re.search(message, err[-1]), err[-1]
    assert "Traceback" not in "\n".join(err)
    assert not (tmp_path / "run").exists(), "a failed first run leaves no run directory"


def test_dataset_with_missing_fields(tmp_path, tiny_generator_dir, tiny_prm_dir, capsys):
    bad = tmp_path / "bad.jsonl"
    bad.write_text(json.dumps({"problem": "1+1", "answer": "2", "unique_id": "a"}) + "\n")
    argv = ["run", "--generator", str(tiny_generator_dir), "--prm", str(tiny_prm_dir), "--dataset", str(bad),
            "--output-dir", str(tmp_path / "run")]
    assert main(argv) == 2
    assert "lacks required fields ['level']" in capsys.readouterr().err


def test_the_models_used_are_recorded(tiny_run_dir, tiny_generator_dir, tiny_prm_dir):
    models = read_json(tiny_run_dir / "manifest.json")["models"]
    assert models == {"generator": {"name": str(tiny_generator_dir), "commit": None},  # local folders: no commit
                      "prm": {"name": str(tiny_prm_dir), "commit": None}}


def test_hub_commit_comes_from_the_cache_path(tmp_path, monkeypatch):
    config_file = tmp_path / "models--org--prm" / "snapshots" / "c0ffee42" / "config.json"
    config_file.parent.mkdir(parents=True)
    config_file.write_text("{}")
    monkeypatch.setattr("huggingface_hub.hf_hub_download", lambda repo, name, revision=None: str(config_file))
    assert pipeline.check_model_reachable("org/prm", None, "PRM", "--prm") == "c0ffee42"
    with pytest.raises(BestOfNError, match="has no config.json"):
        pipeline.check_model_reachable(str(tmp_path), None, "PRM", "--prm")


def test_check_finished_accepts_a_finished_run_and_names_what_is_missing(tiny_run_dir, tmp_path):
    import shutil

    assert rundir.check_finished(tiny_run_dir) == BestOfNConfig.from_yaml(tiny_run_dir / "config.yaml")
    partial = tmp_path / "partial"
    shutil.copytree(tiny_run_dir, partial)
    (partial / "results.json").unlink()
    with pytest.raises(BestOfNError, match=r"lacks stages results \(missing files: results.json\); finish the run "
                                           r"with `bestofn run --config .*partial/config.yaml --output-dir"):
        rundir.check_finished(partial)
