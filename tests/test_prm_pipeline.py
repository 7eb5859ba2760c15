"""Every PRM format end to end: the prompt asks for the PRM's steps, the run records them, rescoring reuses them."""

from __future__ import annotations

import logging
import shutil

import pytest

from bestofn import pipeline
from bestofn.cli import main
from bestofn.config import STEP_FORMATS, BestOfNConfig
from bestofn.io import read_json, read_jsonl
from bestofn.prm import STEP_SEPARATORS
from bestofn.testing.models import make_tiny_math_shepherd_prm, make_tiny_qwen_math_prm, make_tiny_rlhflow_prm

from conftest import CountingModels, SimulatedKill, tiny_config

BUILDERS = {"qwen2.5-math-prm": make_tiny_qwen_math_prm, "rlhflow": make_tiny_rlhflow_prm,
            "math-shepherd": make_tiny_math_shepherd_prm}
MISMATCH = "were generated with steps separated by"


@pytest.fixture(scope="module")
def prm_dirs(tmp_path_factory, tiny_prm_dir):
    root = tmp_path_factory.mktemp("pipeline-prms")
    return {"skywork": tiny_prm_dir, **{fmt: build(root / fmt) for fmt, build in BUILDERS.items()}}


def expected_steps(fmt: str, text: str) -> int:
    """Steps the format's recipe scores in ``text``."""
    steps = len(text.split(STEP_SEPARATORS[fmt]))
    if fmt == "math-shepherd":  # a tag after each step, none after a trailing separator; any "ки" written counts
        steps += text.count("ки") - text.endswith("\n\n")
    return steps


@pytest.mark.parametrize("fmt", ["skywork", "qwen2.5-math-prm", "rlhflow", "math-shepherd"])
def test_run_end_to_end_with_each_format(fmt, prm_dirs, tiny_generator_dir, math500_path, tmp_path):
    recorder = CountingModels()
    # rlhflow and math-shepherd are plain causal LMs: their format must be named; the others are detected.
    config = tiny_config(tiny_generator_dir, prm_dirs[fmt], math500_path, tmp_path / "run", num_problems=2, n=2,
                         max_new_tokens=16, prm_format=fmt if fmt in ("rlhflow", "math-shepherd") else None)
    pipeline.run(config, models=recorder)
    separator = STEP_SEPARATORS[fmt]
    # The prompt asked for the PRM's steps, and the run directory says which separator that was.
    assert recorder.prompts and all(STEP_FORMATS[separator] in p for p in recorder.prompts)
    assert read_json(tmp_path / "run" / "manifest.json")["step_separator"] == separator
    samples = read_jsonl(tmp_path / "run" / "samples.jsonl")
    assert len(samples) == 4
    for s in samples:
        assert len(s["step_rewards"]) == expected_steps(fmt, s["text"])
        assert all(0 <= r <= 1 for r in s["step_rewards"])
    assert "weighted_bon" in read_json(tmp_path / "run" / "results.json")["accuracy"]


def test_rescoring_with_another_prm_keeps_the_solutions_and_says_so_once(prm_dirs, tiny_run_dir, tmp_path, caplog):
    run_dir = tmp_path / "rescored"
    shutil.copytree(tiny_run_dir, run_dir)
    before = read_jsonl(run_dir / "samples.jsonl")
    recorder = CountingModels()
    argv = ["run", "--config", str(run_dir / "config.yaml"), "--output-dir", str(run_dir), "--prm",
            str(prm_dirs["math-shepherd"]), "--prm-format", "math-shepherd", "--overwrite"]
    with caplog.at_level(logging.WARNING, logger="bestofn.pipeline"):
        assert main(argv, models=recorder) == 0
    assert recorder.prompts == [], "nothing is generated again"
    after = read_jsonl(run_dir / "samples.jsonl")
    assert [s["text"] for s in after] == [s["text"] for s in before]
    for s in after:
        assert len(s["step_rewards"]) == expected_steps("math-shepherd", s["text"])
    warnings = [r.getMessage() for r in caplog.records if MISMATCH in r.getMessage()]
    assert len(warnings) == 1 and "'\\n'" in warnings[0] and "math-shepherd" in warnings[0]
    assert BestOfNConfig.from_yaml(run_dir / "config.yaml").prm_format == "math-shepherd"
    assert read_json(run_dir / "manifest.json").get("step_separator", "\n") == "\n"  # still how they were written


def test_before_any_results_a_new_prm_gets_its_own_steps_in_greedy_and_samples(prm_dirs, tiny_generator_dir,
                                                                              math500_path, tmp_path):
    """A run generated for Skywork (one step per line) killed after greedy, rerun with a blank-line PRM before any
    results exist: greedy and the samples are both generated for the new PRM's steps (the separator names the
    chunks, so the two never mix), and the results record it."""
    config = tiny_config(tiny_generator_dir, prm_dirs["skywork"], math500_path, tmp_path / "run", num_problems=2, n=2,
                         max_new_tokens=8)
    with pytest.raises(SimulatedKill):
        pipeline.run(config, models=CountingModels(die_after=1))  # greedy generated, killed before the samples
    recorder = CountingModels()
    changed = tiny_config(tiny_generator_dir, prm_dirs["qwen2.5-math-prm"], math500_path, tmp_path / "run", num_problems=2,
                          n=2, max_new_tokens=8)
    pipeline.run(changed, models=recorder)
    assert recorder.calls == [2, 2] and all(STEP_FORMATS["\n\n"] in p for p in recorder.prompts)
    assert read_json(tmp_path / "run" / "manifest.json")["step_separator"] == "\n\n"


def test_a_new_generator_is_prompted_for_the_new_prms_steps(prm_dirs, tiny_generator_dir, peaked_generator_dir,
                                                            math500_path, tmp_path):
    """The recorded separator is kept only for solutions made with the same generation settings: a run redone
    with another generator and a blank-line PRM asks for blank lines."""
    config = tiny_config(tiny_generator_dir, prm_dirs["skywork"], math500_path, tmp_path / "run", num_problems=2, n=2,
                         max_new_tokens=8)
    pipeline.run(config)
    recorder = CountingModels()
    changed = tiny_config(peaked_generator_dir, prm_dirs["qwen2.5-math-prm"], math500_path, tmp_path / "run",
                          num_problems=2, n=2, max_new_tokens=8)
    pipeline.run(changed, overwrite=True, models=recorder)
    assert recorder.prompts and all(STEP_FORMATS["\n\n"] in p for p in recorder.prompts)
    assert read_json(tmp_path / "run" / "manifest.json")["step_separator"] == "\n\n"
