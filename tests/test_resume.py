"""Runs that cannot be silently wrong: chunks written whole, nothing damaged trusted, one writer per directory.

A run's work is chunks named by what they depend on (bestofn.rundir): a kill at any point resumes to the same
bytes, a torn or edited chunk is computed again, an edited file is rebuilt from the chunks and refused by
readers. These tests use scripted solutions (bestofn.testing.scripted), so "the same results as an
uninterrupted run" is an exact comparison. The lock tests run real ``bestofn run`` processes on the tiny models.
"""

from __future__ import annotations

import json
import logging
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from bestofn import pipeline
from bestofn.cli import main
from bestofn.config import BestOfNConfig
from bestofn.errors import BestOfNError
from bestofn.io import read_json, read_jsonl
from bestofn.report.loader import load_run
from bestofn.rundir import LOCK_FILE, lock_run_dir
from bestofn.testing import make_tokenizer
from bestofn.testing.scripted import Script, ScriptedBackend, ScriptedModels, ScriptedPRM, ScriptedProblem, Solution

from conftest import tiny_config

N = 8
FILES = ("problems.jsonl", "greedy.jsonl", "samples.jsonl", "results.json")  # timings.json holds wall times


class SimulatedKill(BaseException):
    """Stands for SIGKILL: a BaseException, so no `except Exception` in the code can swallow it."""


class DyingBackend(ScriptedBackend):
    """The scripted generator, killed at its ``die_at``-th call (counting from 0)."""

    def __init__(self, script: Script, die_at: int | None):
        super().__init__(script, make_tokenizer())
        self.die_at = die_at

    def generate(self, prompts, **kwargs):
        if self.die_at is not None and len(self.calls) >= self.die_at:
            raise SimulatedKill()
        return super().generate(prompts, **kwargs)


class DyingPRM(ScriptedPRM):
    """The scripted PRM, killed at its first call when ``dies``."""

    def __init__(self, script: Script, dies: bool):
        super().__init__(script)
        self.dies, self.calls = dies, 0

    def score_detailed(self, problems, responses, progress=False):
        self.calls += 1
        if self.dies:
            raise SimulatedKill()
        return super().score_detailed(problems, responses)


def _script(math500_path: Path, tmp_path: Path) -> tuple[Script, Path]:
    """Three level-1 problems with integer answers; N=8 scripted samples each, some right, some wrong."""
    rows = [json.loads(line) for line in math500_path.read_text().splitlines()]
    rows = [r for r in rows if r["level"] == 1 and r["answer"].isdigit()][:3]
    dataset = tmp_path / "three.jsonl"
    dataset.write_text("".join(json.dumps(r) + "\n" for r in rows))
    problems = []
    for k, row in enumerate(rows):
        gold, wrong = row["answer"], str(int(row["answer"]) + 1)
        samples = [Solution(gold if (i + k) % 3 == 0 else wrong, (0.5, round(0.1 + 0.1 * ((i * 7 + k) % 9), 2)))
                   for i in range(N)]
        problems.append(ScriptedProblem(row["problem"], Solution(gold if k != 1 else wrong), samples))
    return Script(problems), dataset


@pytest.fixture
def scripted(tmp_path, math500_path, tiny_generator_dir, tiny_prm_dir):
    """``config(name)``, ``models(die_at=None, prm_dies=False)`` and the directory of an uninterrupted run.

    Chunks of at most N solutions: greedy's chunk holds all three problems (one call), each problem's N samples
    are a chunk of their own (three calls); the 24 samples are one scoring chunk (one PRM call)."""
    script, dataset = _script(math500_path, tmp_path)

    def config(name: str):
        return tiny_config(tiny_generator_dir, tiny_prm_dir, dataset, tmp_path / name, num_problems=3, n=N)

    def models(die_at: int | None = None, prm_dies: bool = False) -> ScriptedModels:
        return ScriptedModels(DyingBackend(script, die_at), DyingPRM(script, prm_dies), chunk_sequences=N)

    pipeline.run(config("fresh"), models=models())
    return config, models, tmp_path / "fresh"


def _same_files(run: Path, reference: Path) -> None:
    for name in FILES:
        assert (run / name).read_bytes() == (reference / name).read_bytes(), name


# --- 1. a kill at any point resumes to the same bytes, without redoing finished chunks --------------------------
@pytest.mark.parametrize("die_at", [0, 1, 2, 3])  # greedy's call, then each problem's samples
def test_a_run_killed_at_any_generation_call_resumes_to_the_same_bytes(die_at, scripted):
    config, models, reference = scripted
    with pytest.raises(SimulatedKill):
        pipeline.run(config("run"), models=models(die_at=die_at))
    assert not (Path(config("run").output_dir) / "results.json").exists()
    resumed = models()
    pipeline.run(config("run"), models=resumed)
    assert len(resumed._generator.calls) == 4 - die_at, "finished chunks are not generated again"
    _same_files(Path(config("run").output_dir), reference)


def test_a_run_killed_while_scoring_resumes_without_generating(scripted):
    config, models, reference = scripted
    with pytest.raises(SimulatedKill):
        pipeline.run(config("run"), models=models(prm_dies=True))
    resumed = models()
    pipeline.run(config("run"), models=resumed)
    assert resumed._generator.calls == [] and resumed._prm.calls == 1
    _same_files(Path(config("run").output_dir), reference)


def test_a_finished_run_reruns_without_any_model_call(scripted):
    config, models, reference = scripted
    again = models()
    pipeline.run(config("fresh"), models=again)
    assert again._generator.calls == [] and again._prm.calls == 0
    _same_files(reference, reference.parent / "fresh")


# --- 2. nothing damaged is trusted: chunks are computed again, files rebuilt -----------------------------------
def _chunk(run: Path, stage: str) -> Path:
    return sorted((run / "chunks" / stage).glob("*.json"))[0]


def test_a_torn_chunk_is_computed_again(scripted, caplog):
    config, models, reference = scripted
    run = Path(config("run").output_dir)
    pipeline.run(config("run"), models=models())
    torn = _chunk(run, "samples")
    torn.write_bytes(torn.read_bytes()[: torn.stat().st_size // 2])  # e.g. a disk that lost the end of the file
    again = models()
    with caplog.at_level(logging.WARNING):
        pipeline.run(config("run"), models=again)
    assert len(again._generator.calls) == 1 and again._prm.calls == 0, "only that chunk is generated again"
    assert [r.getMessage() for r in caplog.records if torn.name in r.getMessage()] == [
        f"{torn} was damaged or edited after it was written: its work is done again"]
    _same_files(run, reference)


def test_an_edited_chunk_is_never_trusted(scripted):
    config, models, reference = scripted
    run = Path(config("run").output_dir)
    pipeline.run(config("run"), models=models())
    scores = _chunk(run, "scores")
    content = json.loads(scores.read_text())
    content["rows"][0]["step_rewards"] = [0.99, 0.99]  # a reward edited by hand
    scores.write_text(json.dumps(content))
    again = models()
    pipeline.run(config("run"), models=again)
    assert again._prm.calls == 1, "the edited chunk is scored again"
    _same_files(run, reference)


@pytest.mark.parametrize("damage", ["delete a line", "edit a reward"])
def test_an_edited_file_is_refused_by_readers_and_rebuilt_with_every_field(damage, scripted, caplog):
    config, models, reference = scripted
    run = Path(config("run").output_dir)
    pipeline.run(config("run"), models=models())
    lines = (run / "samples.jsonl").read_text().splitlines(keepends=True)
    if damage == "delete a line":
        del lines[5]
    else:
        row = json.loads(lines[5])
        lines[5] = json.dumps({**row, "step_rewards": [0.5, 0.99]}) + "\n"
    (run / "samples.jsonl").write_text("".join(lines))
    with pytest.raises(BestOfNError, match=r"samples.jsonl was changed after the run wrote it .*bestofn run --config "
                                           r".*config.yaml --output-dir .* to rebuild it from its chunks"):
        load_run(run)
    again = models()
    with caplog.at_level(logging.WARNING):
        pipeline.run(config("run"), models=again)
    assert again._generator.calls == [] and again._prm.calls == 0, "rebuilt from the chunks, nothing recomputed"
    assert any("samples.jsonl was changed" in r.getMessage() for r in caplog.records)
    _same_files(run, reference)  # every field of every row, e.g. prm_tokens, and results.json's compute
    rows = read_jsonl(run / "samples.jsonl")
    assert all("prm_tokens" in r and "step_rewards" in r for r in rows)
    load_run(run)


def test_a_failed_first_run_leaves_an_existing_folder_as_it_was(tmp_path, tiny_prm_dir, math500_path):
    out = tmp_path / "mine"
    (out / "sub").mkdir(parents=True)
    (out / "notes.txt").write_text("my notes")
    argv = ["run", "--generator", str(tmp_path / "no-such-model"), "--prm", str(tiny_prm_dir), "--dataset",
            str(math500_path), "--num-problems", "1", "--n", "1", "--device", "cpu", "--output-dir", str(out)]
    assert main(argv) == 2
    assert sorted(p.name for p in out.iterdir()) == ["notes.txt", "sub"], "no stray config.yaml or manifest"


# --- 3. one writer per run directory ---------------------------------------------------------------------------
def test_run_dir_lock_is_exclusive_and_released(tmp_path):
    with lock_run_dir(tmp_path / "run"):
        assert (tmp_path / "run" / LOCK_FILE).read_text().strip() == str(os.getpid())
        with pytest.raises(BestOfNError, match=rf"in use by another bestofn process \(PID {os.getpid()}\)"):
            with lock_run_dir(tmp_path / "run"):
                pass
    assert not (tmp_path / "run").exists(), "a run that wrote nothing leaves no directory behind"
    with lock_run_dir(tmp_path / "run"):  # released: the next writer gets it
        pass


REPO = Path(__file__).resolve().parents[1]


def _run_argv(generator: Path, prm: Path, dataset: Path, out: Path, *flags: str) -> list[str]:
    return ["run", "--generator", str(generator), "--prm", str(prm), "--dataset", str(dataset), "--device", "cpu",
            "--num-problems", "4", "--output-dir", str(out), *flags]


def _start_slow_run(argv: list[str], log: Path) -> subprocess.Popen:
    """A real `bestofn run` process that takes minutes (so a test can meet it while it holds the lock)."""
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    with open(log, "w") as f:
        return subprocess.Popen([sys.executable, "-m", "bestofn.cli", *argv, "--n", "16", "--max-new-tokens", "1024"],
                                stdout=f, stderr=subprocess.STDOUT, env=env, cwd=REPO)


def _wait_for_lock(proc: subprocess.Popen, out: Path, log: Path, timeout: float = 180) -> Path:
    """Poll until the lock file names ``proc``; the process must still be running."""
    lock = out / LOCK_FILE
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        assert proc.poll() is None, f"the first run ended early:\n{log.read_text()}"
        if lock.exists() and lock.read_text().strip() == str(proc.pid):
            return lock
        time.sleep(0.2)
    proc.kill()
    raise AssertionError(f"no lock file naming PID {proc.pid} after {timeout} s:\n{log.read_text()}")


def test_a_second_run_on_the_same_directory_stops_at_once(tmp_path, tiny_generator_dir, tiny_prm_dir, math500_path):
    out = tmp_path / "run"
    argv = _run_argv(tiny_generator_dir, tiny_prm_dir, math500_path, out)
    first = _start_slow_run(argv, tmp_path / "first.log")
    try:
        _wait_for_lock(first, out, tmp_path / "first.log")
        env = {**os.environ, "PYTHONPATH": str(REPO)}
        second = subprocess.run([sys.executable, "-m", "bestofn.cli", *argv, "--n", "2", "--max-new-tokens", "8",
                                 "--overwrite"],
                                capture_output=True, text=True, env=env, cwd=REPO, timeout=300)
        assert first.poll() is None, "the two runs overlapped"
        err = second.stderr.strip().splitlines()
        assert second.returncode == 2 and err[-1].startswith("bestofn: error: "), second.stderr
        assert f"PID {first.pid}" in err[-1] and "Traceback" not in second.stderr
        assert "n: 16" in (out / "config.yaml").read_text(), "the second run changed nothing"
    finally:
        first.kill()
        first.wait()


def test_a_stale_lock_from_a_killed_run_is_taken_over(tmp_path, tiny_generator_dir, tiny_prm_dir, math500_path, caplog):
    out = tmp_path / "run"
    argv = _run_argv(tiny_generator_dir, tiny_prm_dir, math500_path, out)
    first = _start_slow_run(argv, tmp_path / "first.log")
    try:
        lock = _wait_for_lock(first, out, tmp_path / "first.log")
    finally:
        os.kill(first.pid, signal.SIGKILL)
        first.wait()
    assert lock.read_text().strip() == str(first.pid), "the killed run left its lock file behind"

    with caplog.at_level(logging.INFO):
        assert main([*argv, "--n", "2", "--max-new-tokens", "8", "--overwrite"]) == 0
    assert read_json(out / "results.json")["n"] == 2
    assert any(f"PID {first.pid}" in r.getMessage() for r in caplog.records), "the takeover is said in the log"
    assert not lock.exists(), "a finished run releases its lock"


# --- settings that change, runs that fail --------------------------------------------------------------------------
def test_a_new_seed_samples_again_even_when_it_draws_the_same_problems(scripted):
    """All three problems are drawn whatever the seed: the seed still names the sample chunks (it seeds sampling)."""
    config, models, reference = scripted
    counted = models()
    changed = BestOfNConfig(**{**config("fresh").to_dict(), "seed": 1})
    pipeline.run(changed, overwrite=True, models=counted)
    calls = [c for c in counted._generator.calls if c["temperature"] > 0]
    assert len(calls) == 3 and all(c["seed"] != 0 for c in calls), "every problem's samples are drawn again"


def test_a_failed_rerun_leaves_the_finished_results_valid(scripted, capsys):
    config, models, reference = scripted
    before = {name: (reference / name).read_bytes() for name in (*FILES, "config.yaml")}
    typo = BestOfNConfig(**{**config("fresh").to_dict(), "prm": str(reference / "no-such-prm")})
    with pytest.raises(BestOfNError, match="no-such-prm"):
        pipeline.run(typo, overwrite=True)  # the real models: the PRM's folder does not exist
    assert {name: (reference / name).read_bytes() for name in before} == before
    load_run(reference)  # still a finished run, config.yaml included
    again = models()
    pipeline.run(config("fresh"), models=again)  # the original command: no "other settings" error
    assert again._generator.calls == []


def test_settings_may_change_freely_before_the_first_results(scripted):
    """A killed first run, rerun with fewer problems: no results were written, so nothing is refused (and the
    problems are not taken for an edited dataset)."""
    config, models, reference = scripted
    with pytest.raises(SimulatedKill):
        pipeline.run(config("run"), models=models(die_at=2))
    fewer = BestOfNConfig(**{**config("run").to_dict(), "num_problems": 2})
    results = pipeline.run(fewer, models=models())
    assert results["num_problems"] == 2
