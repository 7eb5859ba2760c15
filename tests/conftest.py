"""Shared fixtures: tiny local models in the real architectures, MATH-500 (an excerpt, or all of it), a finished run.

Everything is built once per test session (building the models takes a few seconds) and never touches
the network.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from bestofn.config import BestOfNConfig
from bestofn.testing import make_tiny_generator, make_tiny_prm

os.environ.setdefault("HF_HUB_OFFLINE", "1")  # a test that tries the Hub fails fast instead of hanging
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

EXCERPT = Path(__file__).resolve().parent / "data" / "math500_excerpt.jsonl"  # 30 problems, levels 1-3
MATH500 = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "math500.jsonl"
MATH500_HUB = "HuggingFaceH4/MATH-500"


@pytest.fixture(scope="session")
def math500_path() -> Path:
    """A few real MATH-500 problems, shipped with the tests (see tests/data/README.md)."""
    return EXCERPT


@pytest.fixture(scope="session")
def math500_full() -> str:
    """All 500 problems: ``../shared/data/math500.jsonl`` when present, else the Hub dataset, else a skip."""
    if MATH500.is_file():
        return str(MATH500)
    from bestofn.data import load_math500
    from bestofn.errors import BestOfNError

    try:
        load_math500(MATH500_HUB)
    except BestOfNError as e:
        pytest.skip(f"needs all of MATH-500: neither {MATH500} exists nor can the Hub dataset {MATH500_HUB} be "
                    f"loaded ({e}); put math500.jsonl there or go online (HF_HUB_OFFLINE=0)")
    return MATH500_HUB


@pytest.fixture(scope="session")
def tiny_generator_dir(tmp_path_factory) -> Path:
    return make_tiny_generator(tmp_path_factory.mktemp("models") / "generator")


@pytest.fixture(scope="session")
def peaked_generator_dir(tiny_generator_dir, tmp_path_factory) -> Path:
    """The tiny generator with its weights redrawn at std 0.3 instead of 0.02.

    With the default small weights the logits are nearly flat and greedy decoding repeats one token ("\\n")
    for every prompt, so agreement between backends would prove nothing. Peaked logits give varied texts,
    of varied lengths, some ending on a stop token and some cut at the length limit.
    """
    import shutil

    import torch
    from transformers import AutoModelForCausalLM

    path = tmp_path_factory.mktemp("models") / "peaked-generator"
    shutil.copytree(tiny_generator_dir, path)
    model = AutoModelForCausalLM.from_pretrained(tiny_generator_dir)
    generator = torch.Generator().manual_seed(0)
    with torch.no_grad():
        for param in model.parameters():
            if param.dim() >= 2:  # matrices and embeddings; norms keep their ones
                param.copy_(torch.randn(param.shape, generator=generator) * 0.3)
    model.save_pretrained(path)
    return path


@pytest.fixture(scope="session")
def tiny_prm_dir(tmp_path_factory) -> Path:
    return make_tiny_prm(tmp_path_factory.mktemp("models") / "prm")


def tiny_config(generator: Path, prm: Path, dataset: Path, output_dir: Path, **overrides) -> BestOfNConfig:
    """The end-to-end test setting: 4 problems, N=4, 32 new tokens, CPU."""
    settings = dict(generator=str(generator), prm=str(prm), dataset=str(dataset), num_problems=4, n=4,
                    max_new_tokens=32, device="cpu", output_dir=str(output_dir))
    return BestOfNConfig(**{**settings, **overrides})


@pytest.fixture(scope="session")
def tiny_run_dir(tmp_path_factory, tiny_generator_dir, tiny_prm_dir, math500_path) -> Path:
    """A finished run directory (transformers backend), shared read-only by tests of later stages."""
    from bestofn.pipeline import run

    config = tiny_config(tiny_generator_dir, tiny_prm_dir, math500_path, tmp_path_factory.mktemp("run") / "run")
    run(config)
    return Path(config.output_dir)


@pytest.fixture(scope="session")
def synthetic_run_dir(tmp_path_factory, tiny_generator_dir, tiny_prm_dir) -> Path:
    """A realistic run made by the pipeline on scripted solutions (60 problems, N=16; see scripted_runs.py)."""
    from scripted_runs import build_run, synthetic_specs

    return build_run(tmp_path_factory.mktemp("synthetic") / "run", synthetic_specs(),
                     (tiny_generator_dir, tiny_prm_dir), dataset_name="synthetic-MATH")


def integer_problems(math500_path: Path, k: int, level: int = 1) -> list[dict]:
    """The first ``k`` MATH-500 problems of ``level`` whose gold answer is a plain integer (easy to misspell)."""
    import json

    rows = [json.loads(line) for line in math500_path.read_text().splitlines()]
    return [r for r in rows if r["level"] == level and r["answer"].isdigit()][:k]


def write_dataset(rows: list[dict], path: Path) -> Path:
    """A local MATH-500-style .jsonl file holding exactly ``rows``."""
    import json

    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


class SimulatedKill(BaseException):
    """Stands for SIGKILL/Ctrl-C: a BaseException, so no `except Exception` in the code can swallow it."""


def _counting_models():
    from bestofn.pipeline import Models

    class CountingModels(Models):
        """The real models, injected through the run's seam with the generator's calls recorded: ``calls`` (prompts
        per call) and ``prompts``; with ``die_after`` the generator dies like a killed run after that many calls;
        ``chunk_sequences``: at most this many solutions per chunk (Models.chunk_size)."""

        def __init__(self, die_after: int | None = None, chunk_sequences: int | None = None):
            self.calls: list[int] = []
            self.prompts: list[str] = []
            self.die_after = die_after
            self.chunk_sequences = chunk_sequences

        def generator(self, config):
            backend = super().generator(config)
            real = backend.generate

            def generate(prompts, **kwargs):
                if self.die_after is not None and len(self.calls) >= self.die_after:
                    raise SimulatedKill()
                self.calls.append(len(prompts))
                self.prompts += prompts
                return real(prompts, **kwargs)

            backend.generate = generate
            return backend

    return CountingModels


CountingModels = _counting_models()
