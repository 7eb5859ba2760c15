"""The one list of what changes a result (``bestofn.config.RESULT_SETTINGS``) and everything derived from it.

The walk below changes every setting of ``BestOfNConfig`` in turn and plans the chunks of a run: a setting on
the list must change the names of exactly the chunks this file expects (written here by hand, not read from
the list), a setting off it none. Then compare's check, prm-bench's PRM identity and docs/artifacts.md's table
are checked against the list.
"""

from __future__ import annotations

import re
from dataclasses import fields
from pathlib import Path

import pytest

from bestofn.bench.processbench import PRMIdentity
from bestofn.config import RESULT_SETTINGS, STAGES, BestOfNConfig, chunk_keys, stage_keys
from bestofn.data import Problem
from bestofn.errors import BestOfNError
from bestofn.methods import BEST_OF_N
from bestofn.pipeline import plan_generation, plan_scores
from bestofn.report.compare import COMPARED_SETTINGS

G, S, P = "greedy", "samples", "scores"
# setting: (another valid value, chunks it names in Best-of-N, in adaptive Best-of-N (rule beta), in a search,
# on the list); None: that combination is refused (adaptive sampling is for Best-of-N only)
EXPECTED: dict[str, tuple[object, set | None, set | None, set | None, bool]] = {
    "dataset": ("other.jsonl", set(), set(), set(), True),  # it draws other problems; the problems name the chunks
    "dataset_split": ("train", set(), set(), set(), True),
    "dataset_format": ("gsm8k", set(), set(), set(), True),
    "levels": ([1, 2], set(), set(), set(), True),
    "num_problems": (7, set(), set(), set(), True),
    "seed": (1, {G, S}, {G, S}, {G, S}, True),
    "system_prompt": ("Be brief.", {G, S}, {G, S}, {G, S}, True),
    "user_template": ("Q: {problem}", {G, S}, {G, S}, {G, S}, True),
    "generator": ("other/generator", {G, S}, {G, S}, {G, S}, True),
    "generator_revision": ("v2", {G, S}, {G, S}, {G, S}, True),
    "backend": ("vllm", {G, S}, {G, S}, {G, S}, True),
    "n": (8, {S}, {S}, {S}, True),
    "temperature": (1.1, {S}, {S}, {S}, True),
    "top_p": (0.9, {S}, {S}, {S}, True),
    "max_new_tokens": (1000, {G, S}, {G, S}, {G, S}, True),
    "dtype": ("bfloat16", {G, S, P}, {G, S}, {G, S}, True),
    "method": ("dvts", {S}, None, {S}, True),  # best_of_n to dvts, beam_search to dvts (adaptive: refused)
    "beam_width": (2, set(), set(), {S}, True),
    "num_iterations": (7, set(), set(), {S}, True),
    "lookahead": (1, set(), set(), {S}, True),
    "filter_duplicates": (False, set(), set(), {S}, True),
    "adaptive": ("esc", {S}, {S}, None, True),  # off -> esc in a fixed run, beta -> esc in an adaptive one
    "adaptive_batch": (2, set(), {S}, set(), True),  # only an adaptive run draws in rounds
    "adaptive_confidence": (0.9, set(), {S}, set(), True),
    "prm": ("other/prm", {P}, {S}, {S}, True),
    "prm_revision": ("v2", {P}, {S}, {S}, True),
    "prm_format": ("skywork", {P}, {S}, {S}, True),
    "prm_max_length": (512, {P}, {S}, {S}, True),
    "aggregation": ("min", set(), {S}, {S}, True),  # Best-of-N: selection only (results.json)
    # speed, memory, where it runs: never a chunk's name
    "generation_batch_tokens": (1000, set(), set(), set(), False),
    "generation_batch_size": (1, set(), set(), set(), False),
    "compile_generation": ("on", set(), set(), set(), False),
    "gpu_memory_utilization": (0.9, set(), set(), set(), False),
    "max_model_len": (4096, set(), set(), set(), False),
    "tensor_parallel_size": (2, set(), set(), set(), False),
    "enforce_eager": (True, set(), set(), set(), False),
    "prm_compile": ("off", set(), set(), set(), False),
    "prm_batch_tokens": (1024, set(), set(), set(), False),
    "prm_cache": (False, set(), set(), set(), False),  # a search reads each prefix once or again: the same rewards
    "device": ("cpu:0", set(), set(), set(), False),  # a device of the same kind (the base config runs on "cpu")
    "ray_address": ("auto", set(), set(), set(), False),
    "workers": (3, set(), set(), set(), False),
    "grading_timeout": (9, set(), set(), set(), False),
    "output_dir": ("elsewhere", set(), set(), set(), False),
}

PROBLEMS = [Problem(unique_id=f"p/{k}", problem=f"What is {k}+1?", answer=str(k + 1), level=1) for k in range(3)]
ROWS = [{"unique_id": p.unique_id, "text": f"{k} step", "num_tokens": 2} for k, p in enumerate(PROBLEMS)]


def chunk_names(config: BestOfNConfig, scores: bool) -> dict[str, list[str]]:
    """The names of the chunks a run of ``config`` plans for fixed problems and (``scores``) fixed solutions."""
    names: dict[str, list[str]] = {G: [], S: []}
    for chunk in plan_generation(config, PROBLEMS, "\n"):
        names[chunk.stage].append(chunk.key)
    if scores:  # only Best-of-N scores its solutions after generating them
        names[P] = [c.key for c in plan_scores(config, PROBLEMS, ROWS)]
    return names


def test_every_setting_is_in_this_table():
    assert set(EXPECTED) == {f.name for f in fields(BestOfNConfig)}


@pytest.mark.parametrize("method", ["best_of_n", "adaptive", "beam_search"])
@pytest.mark.parametrize("key", sorted(EXPECTED))
def test_a_setting_changes_exactly_the_chunks_it_should(key, method):
    other, bon, adaptive, search, _ = EXPECTED[key]
    base = (BestOfNConfig(adaptive="beta", device="cpu") if method == "adaptive"
            else BestOfNConfig(method=method, device="cpu"))
    want = {BEST_OF_N: bon, "adaptive": adaptive}.get(method, search)
    if want is None:
        with pytest.raises(BestOfNError, match="adaptive sampling is for best_of_n"):
            BestOfNConfig(**{**base.to_dict(), key: other})
        return
    changed = BestOfNConfig(**{**base.to_dict(), key: other})
    scores = method == BEST_OF_N  # an adaptive run scores each round as it draws it: no scores chunks
    before, after = chunk_names(base, scores), chunk_names(changed, scores)
    assert {stage for stage in before if before[stage] != after[stage]} == want


def test_the_list_holds_exactly_the_settings_that_change_a_result():
    assert set(RESULT_SETTINGS) == {k for k, (*_, on) in EXPECTED.items() if on}
    assert set(STAGES) >= {s.stage for s in RESULT_SETTINGS.values()}
    # a rerun with another value of a listed setting is a change of the run's settings (rundir asks for --overwrite)
    assert (stage_keys("results", "beam_search") | stage_keys("results") | stage_keys("results", BEST_OF_N, "beta")
            == set(RESULT_SETTINGS))


def test_compare_requires_what_the_list_says_and_never_what_a_comparison_varies():
    assert set(COMPARED_SETTINGS) == {k for k, s in RESULT_SETTINGS.items() if s.compared}
    # issue 26: these four were missing
    assert {"aggregation", "backend", "seed", "prm_max_length", "dtype"} <= set(COMPARED_SETTINGS)
    assert not {"method", "n", "beam_width", "num_iterations", "lookahead", "filter_duplicates", "num_problems",
                "levels", "adaptive", "adaptive_batch", "adaptive_confidence"} & set(COMPARED_SETTINGS)


def test_prm_bench_names_its_chunks_by_the_scores_settings():
    config = BestOfNConfig(prm="some/prm", prm_max_length=512, dtype="bfloat16", n=3, temperature=1.2)
    identity = dict(PRMIdentity.from_config(config, "skywork").settings)
    assert identity == {"prm": "some/prm", "prm_revision": None, "prm_format": "skywork", "prm_max_length": 512,
                        "dtype": "bfloat16"}
    assert set(identity) == chunk_keys("scores")


# --- docs/artifacts.md's table ---------------------------------------------------------------------------------------
DOCS = Path(__file__).resolve().parents[1] / "docs" / "artifacts.md"


def _cell(key: str, method: str, adaptive: str = "off") -> str:
    """How the docs describe what ``key`` changes in a run of ``method`` (adaptive or not)."""
    setting = RESULT_SETTINGS[key]
    if (setting.search_only and method == BEST_OF_N) or (setting.adaptive_only and adaptive == "off"):
        return "-"
    planned = (G, S, P) if method == BEST_OF_N and adaptive == "off" else (G, S)  # only fixed Best-of-N scores after
    stages = [s for s in planned if key in chunk_keys(s, method, adaptive)]
    if stages:
        return ", ".join(stages)
    return "the problems drawn" if setting.draws else "selection only"


def test_the_docs_table_is_the_list():
    text = DOCS.read_text()
    header = ("| setting | Best-of-N: chunks it names | adaptive Best-of-N: chunks it names | beam search, DVTS: chunks it "
              "names | compare requires it equal |")
    assert header in text
    body = text.split(header, 1)[1].split("\n\n", 1)[0].strip().splitlines()[1:]  # after the | --- | line
    rows = {}
    for line in body:
        cells = [c.strip() for c in line.strip("|").split("|")]
        rows[re.fullmatch(r"`(\w+)`", cells[0]).group(1)] = cells[1:]
    assert list(rows) == list(RESULT_SETTINGS)  # every setting, in the list's order
    for key, cells in rows.items():
        want = [_cell(key, BEST_OF_N), _cell(key, BEST_OF_N, "beta"), _cell(key, "beam_search"),
                "yes" if RESULT_SETTINGS[key].compared else "no"]
        assert cells == want, key


def test_a_rerun_with_another_dtype_is_refused_with_one_line(tmp_path, tiny_generator_dir, tiny_prm_dir, math500_path):
    """dtype changes results (bf16 and fp32 sample differently): a finished run refuses it without --overwrite,
    and with --overwrite it computes chunks of its own name."""
    import json

    from bestofn import pipeline
    from bestofn.testing import make_tokenizer
    from bestofn.testing.scripted import Script, ScriptedProblem, Solution, scripted_models

    from conftest import tiny_config

    rows = [json.loads(line) for line in math500_path.read_text().splitlines()[:2]]
    dataset = tmp_path / "two.jsonl"
    dataset.write_text("".join(json.dumps(r) + "\n" for r in rows))
    script = Script([ScriptedProblem(r["problem"], Solution(r["answer"]), [Solution(r["answer"])] * 2) for r in rows])
    config = tiny_config(tiny_generator_dir, tiny_prm_dir, dataset, tmp_path / "run", num_problems=2, n=2,
                         levels=[1, 2, 3, 4, 5])
    pipeline.run(config, models=scripted_models(script, make_tokenizer()))
    before = {p.name for p in (tmp_path / "run" / "chunks").glob("*/*.json")}
    other = BestOfNConfig(**{**config.to_dict(), "dtype": "bfloat16"})
    with pytest.raises(BestOfNError, match=r"holds results made with other settings \(dtype: 'auto' -> 'bfloat16'\)"):
        pipeline.run(other, models=scripted_models(script, make_tokenizer()))
    pipeline.run(other, overwrite=True, models=scripted_models(script, make_tokenizer()))
    after = {p.name for p in (tmp_path / "run" / "chunks").glob("*/*.json")}
    assert before and not before & after  # greedy, samples and scores: every chunk named anew
