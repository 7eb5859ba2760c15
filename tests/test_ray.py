"""Scale-out on Ray (bestofn.executors): the same run directory as one process, resumable, failures retried.

One local cluster serves the whole module (``ray.init(num_cpus=2)``). Each map of chunks starts its own actor
pool, which takes seconds on 2 cores, so the runs are few and tiny: 4 problems, N=2, 8 new tokens, with
chunks small enough that every stage has several (greedy: 2 chunks of 2 problems, samples: 4 chunks of one
problem, scores: 3 chunks of at most 3 solutions; the chunk plan is made on the driver, so a test can shrink it).
Failing workers are injected through the run's models (``pipeline.Models``), which Ray pickles to its actors.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import ray
import ray.cloudpickle

from bestofn import pipeline, rundir
from bestofn.report import compute
from bestofn.cli import main
from bestofn.config import BestOfNConfig
from bestofn.errors import BestOfNError
from bestofn.executors import RayExecutor
from bestofn.io import read_jsonl

from conftest import tiny_config

ROOT = Path(__file__).resolve().parents[1]
COMPARED = ("greedy.jsonl", "samples.jsonl", "results.json")
TINY = dict(num_problems=4, n=2, max_new_tokens=8, temperature=1.0)
CHUNK_SEQUENCES = 2  # solutions per chunk of generation: one problem's samples, two problems' greedy solutions

# The failing workers below are defined here, so Ray's workers get them by value (pickled with the test).
ray.cloudpickle.register_pickle_by_value(sys.modules[__name__])


@pytest.fixture(scope="module", autouse=True)
def small_chunks():
    """Three PRM chunks instead of one, and small generation chunks (the driver plans the chunks, so this reaches
    the Ray workers too; the driver process of tests/ray_driver.py is told CHUNK_SEQUENCES)."""
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(pipeline, "SCORE_CHUNK_SOLUTIONS", 3)
        mp.setattr(pipeline.Models, "chunk_sequences", CHUNK_SEQUENCES)
        yield


@pytest.fixture(scope="module")
def cluster() -> str:
    """A local cluster for the module; returns its address (another process joins it with ``--ray ADDRESS``)."""
    ray.init(num_cpus=2, include_dashboard=False, configure_logging=False)
    yield ray.get_runtime_context().gcs_address
    ray.shutdown()


@pytest.fixture(scope="module")
def models(tiny_generator_dir, tiny_prm_dir, math500_path) -> dict:
    return {"generator": tiny_generator_dir, "prm": tiny_prm_dir, "dataset": math500_path}


def make_config(models: dict, output_dir: Path, **overrides) -> BestOfNConfig:
    return tiny_config(models["generator"], models["prm"], models["dataset"], output_dir, **{**TINY, **overrides})


@pytest.fixture(scope="module")
def single_process_run(tmp_path_factory, models) -> Path:
    """The reference: the same config without Ray."""
    config = make_config(models, tmp_path_factory.mktemp("local") / "run")
    pipeline.run(config)
    return Path(config.output_dir)


def assert_same_results(run: Path, reference: Path, names: tuple[str, ...] = COMPARED) -> None:
    for name in names:
        assert (run / name).read_bytes() == (reference / name).read_bytes(), f"{name} differs from the single-process run"
    # Ray settings name no chunk: a run with or without Ray is the same run, chunk for chunk.
    for stage in ("greedy", "samples", "scores"):
        assert chunk_names(run, stage) == chunk_names(reference, stage), stage


def chunk_names(run: Path, stage: str) -> set[str]:
    return {p.name for p in (run / "chunks" / stage).glob("*.json")}


class CountingMap:
    """Wraps RayExecutor.map: records how many chunks of each stage it was given (stages with none left to do
    are not listed)."""

    def __init__(self, monkeypatch):
        self.chunks: dict[str, int] = {}
        real = RayExecutor.map

        def counted(executor, worker, payloads):
            for payload in payloads:
                self.chunks[payload["stage"]] = self.chunks.get(payload["stage"], 0) + 1
            return real(executor, worker, payloads)

        monkeypatch.setattr(RayExecutor, "map", counted)


# --- same results ------------------------------------------------------------------------------------------------
def test_cli_run_on_two_ray_workers_writes_the_single_process_results(cluster, models, single_process_run, tmp_path,
                                                                      monkeypatch, capsys):
    recipe = tmp_path / "recipe.yaml"
    recipe.write_text(make_config(models, tmp_path / "unused").to_yaml())
    counter = CountingMap(monkeypatch)
    # --ray without a value would start a local cluster; the module's cluster is already running, so it joins it.
    assert main(["run", "--config", str(recipe), "--ray", "--workers", "2", "--output-dir", str(tmp_path / "run")]) == 0
    assert "weighted_bon" in capsys.readouterr().out
    assert counter.chunks == {"greedy": 2, "samples": 4, "scores": 3}
    saved = BestOfNConfig.from_yaml(tmp_path / "run" / "config.yaml")
    assert (saved.ray_address, saved.workers) == ("local", 2)
    assert_same_results(tmp_path / "run", single_process_run)
    # The workers' costs (measured in the Ray processes, returned with each chunk) reach timings.json.
    on_ray, local = compute.stage_totals(tmp_path / "run"), compute.stage_totals(single_process_run)
    for stage in ("greedy", "samples", "scores"):
        got, want = on_ray[stage], local[stage]
        assert got.sequences + got.prm_sequences > 0 and got.wall_s > 0 and got.peak_memory_bytes > 0, stage
        assert (got.sequences, got.prompt_tokens, got.generated_tokens, got.prm_sequences, got.prm_tokens) == \
            (want.sequences, want.prompt_tokens, want.generated_tokens, want.prm_sequences, want.prm_tokens), stage
    assert on_ray["greedy"].load_s > 0 and on_ray["scores"].load_s > 0


SEARCH = dict(num_problems=4, n=4, beam_width=2, num_iterations=2, max_new_tokens=24)
SEARCH_FILES = ("greedy.jsonl", "samples.jsonl", "tree.jsonl", "results.json")


@pytest.fixture(scope="module")
def single_process_search(tmp_path_factory, models) -> dict[str, Path]:
    """The references for the searches: beam search and DVTS without Ray."""
    runs = {}
    for method in ("beam_search", "dvts"):
        config = make_config(models, tmp_path_factory.mktemp(method) / "run", method=method, **SEARCH)
        pipeline.run(config)
        runs[method] = Path(config.output_dir)
    return runs


def test_beam_search_on_two_ray_workers_writes_the_single_process_results(cluster, models, single_process_search,
                                                                          tmp_path, monkeypatch):
    """A search on Ray searches the chunks of problems a run in one process searches (one problem each here:
    n=4 > CHUNK_SEQUENCES), so every candidate is generated and scored beside the same others and
    every file is byte for byte the same, PRM rewards included."""
    recipe = tmp_path / "recipe.yaml"
    recipe.write_text(make_config(models, tmp_path / "unused", method="beam_search", **SEARCH).to_yaml())
    counter = CountingMap(monkeypatch)
    assert main(["run", "--config", str(recipe), "--ray", "--workers", "2", "--output-dir", str(tmp_path / "run")]) == 0
    assert counter.chunks == {"greedy": 2, "samples": 4}
    assert_same_results(tmp_path / "run", single_process_search["beam_search"], SEARCH_FILES)
    # The workers' costs reach timings.json: the same calls as in one process, both models' shares.
    got, want = compute.stage_totals(tmp_path / "run")["samples"], compute.stage_totals(single_process_search["beam_search"])["samples"]
    assert got.load_s > 0 and got.prm_s > 0 and got.sequences > 0
    assert (got.sequences, got.prompt_tokens, got.generated_tokens, got.prm_tokens) == \
        (want.sequences, want.prompt_tokens, want.generated_tokens, want.prm_tokens)


# --- a killed driver resumes -------------------------------------------------------------------------------------
def kill_driver_while_sampling(config: BestOfNConfig, tmp_path: Path, reference: Path) -> dict[str, int]:
    """Run ``config`` in a real driver process that joins the module's cluster with one worker and whose generator
    never returns from the third problem's samples (tests/ray_driver.py); once it is stuck there, kill the driver
    (SIGKILL) and return how many chunks of each stage were saved."""
    recipe, blocked = tmp_path / "recipe.yaml", tmp_path / "blocked.txt"
    recipe.write_text(config.to_yaml())
    blocked.write_text(read_jsonl(reference / "problems.jsonl")[2]["problem"])  # the same problems, in the same order
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")])}
    driver = subprocess.Popen([sys.executable, str(ROOT / "tests" / "ray_driver.py"), str(recipe), str(blocked),
                               str(CHUNK_SEQUENCES)],
                              env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    run, reached = Path(config.output_dir), tmp_path / "blocked.txt.reached"
    try:
        deadline = time.monotonic() + 300
        while not reached.exists() and driver.poll() is None and time.monotonic() < deadline:
            time.sleep(0.05)
        assert reached.exists(), "the run never reached the blocked problem"
        time.sleep(1)  # the driver saves the chunks that finished before; nothing else can finish
    finally:
        driver.send_signal(signal.SIGKILL)
        driver.wait()
    assert not (run / "samples.jsonl").exists(), "the driver must be killed in the middle of the samples"
    return {stage: len(chunk_names(run, stage)) for stage in ("greedy", "samples")}


def left_to_do(done: dict[str, int], totals: dict[str, int]) -> dict[str, int]:
    return {stage: total - done.get(stage, 0) for stage, total in totals.items() if total - done.get(stage, 0)}


def test_killed_driver_resumes_where_it_stopped(cluster, models, single_process_run, tmp_path, monkeypatch):
    config = make_config(models, tmp_path / "run", ray_address=cluster, workers=1)
    done = kill_driver_while_sampling(config, tmp_path, single_process_run)
    assert done["samples"] < 4

    counter = CountingMap(monkeypatch)
    pipeline.run(config)
    assert counter.chunks == left_to_do(done, {"greedy": 2, "samples": 4, "scores": 3}), \
        "only the chunks that were not saved"
    assert_same_results(tmp_path / "run", single_process_run)


def test_killed_driver_of_a_search_resumes_at_its_last_finished_chunk(cluster, models, single_process_search,
                                                                      tmp_path, monkeypatch):
    config = make_config(models, tmp_path / "run", ray_address=cluster, workers=1, method="dvts", **SEARCH)
    done = kill_driver_while_sampling(config, tmp_path, single_process_search["dvts"])
    assert done["samples"] < 4
    counter = CountingMap(monkeypatch)
    pipeline.run(config)
    assert counter.chunks == left_to_do(done, {"greedy": 2, "samples": 4}), "only the chunks that were not saved"
    assert_same_results(tmp_path / "run", single_process_search["dvts"], SEARCH_FILES)


class DyingModels(pipeline.Models):
    """The real models; the generator dies (like a kill) when it is asked to sample ``problem`` (greedy passes)."""

    def __init__(self, problem: str):
        self.problem = problem

    def generator(self, config):
        backend = super().generator(config)
        real = backend.generate

        def generate(prompts, **kwargs):
            if kwargs["temperature"] > 0 and any(self.problem in p for p in prompts):
                raise KeyboardInterrupt("killed")
            return real(prompts, **kwargs)

        backend.generate = generate
        return backend


def test_a_search_killed_in_one_process_finishes_on_ray(cluster, models, single_process_search, tmp_path, monkeypatch):
    """A chunk is the same with or without Ray: a search killed in this process during its second chunk keeps
    its first one when it is rerun on Ray, and the files are those of a run never killed."""
    config = make_config(models, tmp_path / "run", method="beam_search", **SEARCH)
    second = read_jsonl(single_process_search["beam_search"] / "problems.jsonl")[1]["problem"]
    with pytest.raises(KeyboardInterrupt):
        pipeline.run(config, models=DyingModels(second))
    assert len(chunk_names(tmp_path / "run", "samples")) == 1
    counter = CountingMap(monkeypatch)
    pipeline.run(BestOfNConfig(**{**config.to_dict(), "ray_address": cluster, "workers": 2}))
    assert counter.chunks == {"samples": 3}, "the chunk searched in this process is kept"
    assert_same_results(tmp_path / "run", single_process_search["beam_search"], SEARCH_FILES)


# --- failing workers ---------------------------------------------------------------------------------------------
class FlakyModels(pipeline.Models):
    """The real models, whose PRM fails once in the whole run (a marker file, seen by every actor): by raising,
    or by killing its process."""

    def __init__(self, marker: str, how: str):
        self.marker, self.how = marker, how

    def prm(self, config, device, compile=False):
        return FlakyPRM(super().prm(config, device, compile), self.marker, self.how)


class FlakyPRM:
    def __init__(self, prm, marker: str, how: str):
        self.prm, self.marker, self.how = prm, marker, how

    def score_detailed(self, problems, responses):
        if not os.path.exists(self.marker):
            Path(self.marker).write_text("failed")
            if self.how == "raise":
                raise RuntimeError("flaky worker")
            os._exit(1)  # the actor's process dies, as on a lost node
        return self.prm.score_detailed(problems, responses)


class BrokenModels(pipeline.Models):
    """The real models, whose PRM always fails on a chunk that holds one given problem; logs each attempt."""

    def __init__(self, log: str, bad_problem: str):
        self.log, self.bad_problem = log, bad_problem

    def prm(self, config, device, compile=False):
        return BrokenPRM(super().prm(config, device, compile), self.log, self.bad_problem)


class BrokenPRM:
    def __init__(self, prm, log: str, bad_problem: str):
        self.prm, self.log, self.bad_problem = prm, log, bad_problem

    def score_detailed(self, problems, responses):
        if self.bad_problem in problems:
            with open(self.log, "a") as f:
                f.write("attempt\n")
            raise ValueError("this chunk breaks the PRM")
        return self.prm.score_detailed(problems, responses)


def scores_only_run(models: dict, source: Path, output_dir: Path) -> BestOfNConfig:
    """A Ray run whose greedy and sample chunks come from ``source``: only the PRM's chunks are left to do."""
    config = make_config(models, output_dir, ray_address="auto", workers=1)
    assert rundir.share_chunks(source, output_dir, "greedy") == 2 and rundir.share_chunks(source, output_dir, "samples") == 4
    return config


@pytest.mark.parametrize("how", ["raise", "exit"])
def test_worker_that_fails_once_is_retried(how, cluster, models, single_process_run, tmp_path):
    config = scores_only_run(models, single_process_run, tmp_path / "run")
    marker = tmp_path / "failed-once"
    pipeline.run(config, models=FlakyModels(str(marker), how))
    assert marker.exists(), "the worker must have failed once"
    assert_same_results(tmp_path / "run", single_process_run)


def test_chunk_that_fails_twice_stops_the_run_naming_its_problems(cluster, models, single_process_run, tmp_path):
    config = scores_only_run(models, single_process_run, tmp_path / "run")
    samples = read_jsonl(single_process_run / "samples.jsonl")
    problems = {p["unique_id"]: p["problem"] for p in read_jsonl(single_process_run / "problems.jsonl")}
    bad_chunk = [s["unique_id"] for s in samples[3:6]]  # the second chunk of three solutions: two problems
    attempts = tmp_path / "attempts"
    with pytest.raises(BestOfNError, match="failed twice") as error:
        pipeline.run(config, models=BrokenModels(str(attempts), problems[samples[5]["unique_id"]]))
    assert f"problems {', '.join(dict.fromkeys(bad_chunk))}:" in str(error.value)
    assert "ValueError: this chunk breaks the PRM" in str(error.value)
    assert attempts.read_text().count("attempt") == 2, "retried once, then the run stops"
    assert not (tmp_path / "run" / "results.json").exists()


def test_an_address_where_no_cluster_answers_fails_at_once(tmp_path, models, capsys):
    start = time.monotonic()
    config = make_config(models, tmp_path / "run", ray_address="127.0.0.1:9")
    recipe = tmp_path / "recipe.yaml"
    recipe.write_text(config.to_yaml())
    assert main(["run", "--config", str(recipe)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err[-1].startswith("bestofn: error: no Ray cluster answers at 127.0.0.1:9 (") and "ray start --head" in err[-1]
    assert time.monotonic() - start < 60
