"""prm_compile: when it turns on, the few shapes a compiled scorer runs, and that they change no reward.

A real ``torch.compile`` of even the tiny 2-layer PRM takes about 160 s per shape on this project's 2-core
CPU machine (inductor compiles C++), which the test suite cannot afford. So the shape logic (length
buckets, pad rows) is tested here with ``torch.compile`` replaced by a recorder that runs the backbone
eagerly, and the real compile is an opt-in test (``BESTOFN_TEST_COMPILE=1``) and a benchmark option.
"""

from __future__ import annotations

import os

import pytest
import torch

from bestofn.config import BestOfNConfig
from bestofn.errors import BestOfNError
from bestofn.prm import load_prm
from bestofn.prm.base import COMPILE_MIN_TOKENS, bucket_width, compile_enabled
from bestofn.testing.models import make_tiny_rlhflow_prm

PROBLEMS = [f"What is ${k} + {k}$?" for k in range(9)]
RESPONSES = ["We add.\n\nSo the sum is even.\n\nThe answer is $\\boxed{2}$." * (1 + k % 4) for k in range(9)]


@pytest.fixture(scope="module")
def prm_dir(tmp_path_factory):
    return make_tiny_rlhflow_prm(tmp_path_factory.mktemp("compile") / "rlhflow")


def test_auto_compiles_only_big_runs_on_gpu():
    assert not compile_enabled("auto", "cpu", 10 * COMPILE_MIN_TOKENS)
    assert not compile_enabled("auto", "cuda", COMPILE_MIN_TOKENS - 1)
    assert compile_enabled("auto", "cuda:0", COMPILE_MIN_TOKENS)
    assert compile_enabled("on", "cpu", 1) and not compile_enabled("off", "cuda", 10 * COMPILE_MIN_TOKENS)
    with pytest.raises(BestOfNError, match="prm_compile must be"):
        BestOfNConfig(prm_compile="yes")


def test_buckets_are_few_and_tight():
    widths = {bucket_width(n) for n in range(1, 4097)}
    assert len(widths) == 1 + 4 * 6  # 64, then 4 per octave up to 4096
    for n in range(65, 4097):
        assert n <= bucket_width(n) < 1.25 * n + 1


def test_a_compiled_scorer_runs_few_shapes_and_gives_the_eager_rewards(prm_dir, monkeypatch):
    eager = load_prm(str(prm_dir), format="rlhflow", batch_tokens=1024)
    shapes: set[tuple[int, ...]] = set()

    def recorder(module, dynamic=None):  # stands in for torch.compile: records the shapes it would compile
        def run(**kwargs):
            shapes.add(tuple(kwargs["input_ids"].shape))
            return module(**kwargs)
        return run

    monkeypatch.setattr(torch, "compile", recorder)
    compiled = load_prm(str(prm_dir), format="rlhflow", batch_tokens=1024, compile=True)
    pairs = compiled.encode(PROBLEMS, RESPONSES)
    rewards = compiled.score(PROBLEMS, RESPONSES)
    for got, want in zip(rewards, eager.score(PROBLEMS, RESPONSES)):
        assert got == pytest.approx(want, abs=1e-5)
    # Every batch is (budget // bucket, bucket): one shape per bucket, however many lengths there are.
    assert all(w == bucket_width(w) and rows == 1024 // w for rows, w in shapes)
    assert len(shapes) < len({len(p.input_ids) for p in pairs})


@pytest.mark.skipif(os.environ.get("BESTOFN_TEST_COMPILE") != "1",
                    reason="a real torch.compile takes ~160 s per shape on a 2-core CPU; set BESTOFN_TEST_COMPILE=1")
def test_real_compile_gives_the_eager_rewards(prm_dir):
    eager = load_prm(str(prm_dir), format="rlhflow")
    compiled = load_prm(str(prm_dir), format="rlhflow", compile=True)
    for got, want in zip(compiled.score(PROBLEMS[:3], RESPONSES[:3]), eager.score(PROBLEMS[:3], RESPONSES[:3])):
        assert got == pytest.approx(want, abs=1e-5)
