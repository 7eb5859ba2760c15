"""Runs that cannot be silently wrong (issue 9): whole chunks, verified artifacts, one writer per directory.

The resume and repair tests use scripted solutions (bestofn.testing.scripted): known texts make "the same
results as an uninterrupted run" an exact comparison. The lock tests run real ``bestofn run`` processes on
the tiny models.
"""

from __future__ import annotations

import json
import logging
import os
import re
import shlex
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from bestofn import pipeline, rundir
from bestofn.backends import TransformersBackend
from bestofn.cli import main
from bestofn.errors import BestOfNError
from bestofn.io import Journal, read_json, read_jsonl
from bestofn.rundir import LOCK_FILE, lock_run_dir
from bestofn.testing import make_tokenizer
from bestofn.testing.scripted import Script, ScriptedProblem, Solution, patch_pipeline

from conftest import tiny_config

N = 8


class SimulatedKill(BaseException):
    """Stands for SIGKILL: a BaseException, so no `except Exception` in the code can swallow it."""


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
def scripted(tmp_path, monkeypatch, math500_path, tiny_generator_dir, tiny_prm_dir):
    """A scripted pipeline, one problem per generation call, and the results of an uninterrupted run."""
    script, dataset = _script(math500_path, tmp_path)
    backend = patch_pipeline(monkeypatch, script, make_tokenizer())
    # each problem is journaled as its own chunk (chunks are planned from the backend's class)
    monkeypatch.setattr(TransformersBackend, "chunk_size", classmethod(lambda cls, config, n: 1))

    def config(name: str):
        return tiny_config(tiny_generator_dir, tiny_prm_dir, dataset, tmp_path / name, num_problems=3, n=N)

    reference = pipeline.run(config("fresh"))
    backend.calls.clear()
    return backend, config, reference


def _die_at_call(backend, call: int) -> None:
    """Make the backend's ``call``-th generate call (counting from 0) die like a killed process."""
    real = type(backend).generate

    def generate(prompts, **kwargs):
        if len(backend.calls) >= call:
            raise SimulatedKill()
        return real(backend, prompts, **kwargs)

    backend.generate = generate


def _per_problem(rows: list[dict]) -> dict[str, int]:
    counts: dict[str, int] = {}
    for r in rows:
        counts[r["unique_id"]] = counts.get(r["unique_id"], 0) + 1
    return counts


# --- 1. chunks commit whole ----------------------------------------------------------------------------------
def test_torn_last_chunk_is_dropped_and_redone(scripted, monkeypatch, caplog):
    """The issue's reproduction: the last chunk of .partial/samples-*.jsonl cut in half by a kill."""
    backend, config, reference = scripted
    sizes: list[int] = []
    real_append = Journal.append

    def append(journal, rows):
        real_append(journal, rows)
        sizes.append(journal.path.stat().st_size)

    monkeypatch.setattr(Journal, "append", append)
    _die_at_call(backend, 3 + 2)  # three greedy calls, then the samples of two problems
    with pytest.raises(SimulatedKill):
        pipeline.run(config("run"))
    [journal] = (Path(config("run").output_dir) / ".partial").glob("samples-*.jsonl")
    os.truncate(journal, (sizes[-2] + sizes[-1]) // 2)  # the second problem's chunk, cut in the middle

    del backend.generate
    backend.calls.clear()
    with caplog.at_level(logging.INFO):
        results = pipeline.run(config("run"))
    samples = read_jsonl(Path(config("run").output_dir) / "samples.jsonl")
    assert set(_per_problem(samples).values()) == {N}, "every problem has its N samples"
    assert [c["prompts"] for c in backend.calls] == [1, 1], "the torn problem and the unstarted one are generated"
    assert results == reference
    said = [r.getMessage() for r in caplog.records if journal.name in r.getMessage()]
    assert len(said) == 1 and re.search(r"\b1 (torn |incomplete )?record", said[0]), said


def test_a_problem_with_missing_rows_in_the_journal_is_redone(scripted, caplog):
    """A journal whose records are whole but hold 7 of a problem's 8 samples: that problem is not done."""
    backend, config, reference = scripted
    _die_at_call(backend, 3 + 2)
    with pytest.raises(SimulatedKill):
        pipeline.run(config("run"))
    [path] = (Path(config("run").output_dir) / ".partial").glob("samples-*.jsonl")
    journal = Journal(path)
    rows = journal.read()
    journal.remove()
    journal.append(rows[:N])
    journal.append(rows[N:-1])  # the second problem without its last sample

    del backend.generate
    backend.calls.clear()
    with caplog.at_level(logging.INFO):
        results = pipeline.run(config("run"))
    assert [c["prompts"] for c in backend.calls] == [1, 1]
    assert results == reference
    assert any("7 of 8" in r.getMessage() for r in caplog.records), [r.getMessage() for r in caplog.records]


# --- 2. artifacts verified on reuse ----------------------------------------------------------------------------
def _delete_line(path: Path, index: int) -> None:
    lines = path.read_bytes().splitlines(keepends=True)
    path.write_bytes(b"".join(lines[:index] + lines[index + 1:]))


def _cut_last_line(path: Path) -> None:
    data = path.read_bytes()
    last = data.rstrip(b"\n").rfind(b"\n") + 1
    path.write_bytes(data[: last + (len(data) - last) // 2])


@pytest.mark.parametrize("file, damage, redo, said", [
    ("samples.jsonl", lambda p: _delete_line(p, N + 1), {"n": N, "temperature": 0.8}, r"23 rows, manifest.json says 24"),
    ("samples.jsonl", _cut_last_line, {"n": N, "temperature": 0.8}, r"line 24 is not valid JSON"),
    ("greedy.jsonl", lambda p: _delete_line(p, 1), {"n": 1, "temperature": 0.0}, r"2 rows, manifest.json says 3"),
])
def test_damaged_artifact_stops_the_rerun_and_repair_redoes_only_its_missing_rows(file, damage, redo, said, scripted,
                                                                                  capsys):
    backend, config, reference = scripted
    run_dir = Path(config("run").output_dir)
    pipeline.run(config("run"))
    backend.calls.clear()
    damage(run_dir / file)
    capsys.readouterr()

    for argv in (["run", "--config", str(run_dir / "config.yaml"), "--output-dir", str(run_dir)],
                 ["report", str(run_dir)],
                 ["push", str(run_dir), "--repo-id", "me/run", "--dry-run", "--save-dir", str(run_dir.parent / "hub")]):
        assert main(argv) == 2
        err = capsys.readouterr().err.strip().splitlines()
        assert len(err) == 1 and err[0].startswith("bestofn: error: "), err
        assert file in err[0] and re.search(said, err[0]), err[0]
        assert "--overwrite" in err[0]
    assert backend.calls == [], "nothing was generated from a damaged artifact"

    fix = re.search(r"`(bestofn run [^`]*--repair)`", err[0]).group(1)
    assert main(shlex.split(fix)[1:]) == 0
    assert read_json(run_dir / "results.json") == reference
    assert [{k: c[k] for k in redo} | {"prompts": c["prompts"]} for c in backend.calls] == [{**redo, "prompts": 1}], \
        "only the problem that lost a row is generated again"
    assert rundir.check_finished(run_dir) == config("run")


def test_overwrite_recomputes_a_damaged_stage(scripted, capsys):
    backend, config, reference = scripted
    run_dir = Path(config("run").output_dir)
    pipeline.run(config("run"))
    backend.calls.clear()
    _delete_line(run_dir / "samples.jsonl", 0)
    assert main(["run", "--config", str(run_dir / "config.yaml"), "--output-dir", str(run_dir)]) == 2
    fix = re.search(r"`(bestofn run [^`]*--overwrite)`", capsys.readouterr().err).group(1)
    assert main(shlex.split(fix)[1:]) == 0
    assert [c["temperature"] for c in backend.calls] == [0.8] * 3, "the samples stage is recomputed whole"
    assert read_json(run_dir / "results.json") == reference


def test_a_kill_between_writing_a_file_and_recording_it_is_not_damage(scripted, monkeypatch, capsys):
    """The scores stage rewrites samples.jsonl, which the finished samples stage recorded. A kill after the
    new file is in place but before the manifest records the scores stage must read as "scores not done",
    not as a damaged samples.jsonl: the rerun scores again from its journal and generates nothing."""
    backend, config, reference = scripted
    run_dir = Path(config("run").output_dir)
    real = rundir.RunDir.mark_done

    def killed_when_scores_are_recorded(self, stage):
        if stage == "scores":
            raise SimulatedKill()
        real(self, stage)

    monkeypatch.setattr(rundir.RunDir, "mark_done", killed_when_scores_are_recorded)
    with pytest.raises(SimulatedKill):
        pipeline.run(config("run"))
    assert all("step_rewards" in r for r in read_jsonl(run_dir / "samples.jsonl")), "the new file was in place"
    monkeypatch.setattr(rundir.RunDir, "mark_done", real)
    backend.calls.clear()
    assert main(["run", "--config", str(run_dir / "config.yaml"), "--output-dir", str(run_dir)]) == 0
    assert backend.calls == [] and read_json(run_dir / "results.json") == reference
    assert rundir.check_finished(run_dir) == config("run")
    assert not read_json(run_dir / "manifest.json")["pending"]  # recorded: nothing is pending any more


# --- 3. one writer per run directory ---------------------------------------------------------------------------
def test_run_dir_lock_is_exclusive_and_released(tmp_path):
    with lock_run_dir(tmp_path / "run"):
        assert (tmp_path / "run" / LOCK_FILE).read_text().strip() == str(os.getpid())
        with pytest.raises(BestOfNError, match=rf"in use by another `bestofn run` \(PID {os.getpid()}\)"):
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
