"""Every shipped recipe loads and plans a run on every backend (issue 26/28: ``num_problems: all`` crashed the
transformers backend, and every benchmark recipe sets it)."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import pytest

from bestofn.backends import TransformersBackend, backend_class
from bestofn.config import BestOfNConfig
from bestofn.data import Problem
from bestofn.pipeline import plan_generation

RECIPES = sorted((Path(__file__).resolve().parents[1] / "recipes").glob("*.yaml"))
PROBLEMS = [Problem(unique_id=f"p/{k}", problem=f"What is {k}+1?", answer=str(k + 1), level=1 + k % 5) for k in range(40)]


def test_there_are_recipes():
    assert len(RECIPES) >= 9 and any(BestOfNConfig.from_yaml(r).num_problems == "all" for r in RECIPES)


@pytest.mark.parametrize("backend", ["transformers", "vllm"])
@pytest.mark.parametrize("recipe", RECIPES, ids=[r.stem for r in RECIPES])
def test_a_recipe_loads_and_plans_on_every_backend(recipe, backend, tiny_generator_dir):
    config = BestOfNConfig.from_yaml(recipe, backend=backend, device="cpu")
    chunks = plan_generation(config, PROBLEMS, "\n")
    size = {stage: backend_class(config).chunk_size(config, n) for stage, n in (("greedy", 1), ("samples", config.n))}
    for stage in ("greedy", "samples"):  # every problem in exactly one chunk of each stage, chunks of the planned size
        planned = [c.payload["unique_ids"] for c in chunks if c.stage == stage]
        assert sum(planned, []) == [p.unique_id for p in PROBLEMS]
        assert all(len(ids) == size[stage] for ids in planned[:-1])
    if backend == "transformers":  # the generator loads with the recipe's settings, num_problems "all" included
        loaded = TransformersBackend.from_config(replace(config, generator=str(tiny_generator_dir), generator_revision=None))
        assert loaded.decoding == "eager"  # on CPU
        loaded.close()
