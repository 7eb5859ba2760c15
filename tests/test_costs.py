"""Cost accounting: every stage of every run in timings.json, resumed stages summed, the table and the report.

Scripted runs (known solutions, no model) check what is recorded and how parts add up; the tiny real run
checks the token counts against the artifacts and the prompts' own tokenization.
"""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest

from bestofn import costs, pipeline
from bestofn.backends import TransformersBackend
from bestofn.cli import main
from bestofn.config import BestOfNConfig
from bestofn.io import read_json, read_jsonl
from bestofn.prompts import render_prompt
from bestofn.testing import make_tokenizer
from bestofn.testing.scripted import Script, ScriptedProblem, Solution, patch_pipeline

from conftest import tiny_config

STAGES = ["problems", "greedy", "samples", "scores", "results"]
LOAD_S = 0.05  # the scripted generator's load time


class SimulatedKill(BaseException):
    """Stands for SIGKILL/Ctrl-C (a BaseException: nothing may swallow it)."""


def _dataset(math500_path: Path, tmp_path: Path, k: int = 3) -> tuple[Path, list[dict]]:
    rows = [json.loads(line) for line in math500_path.read_text().splitlines()]
    chosen = [r for r in rows if r["level"] == 1 and r["answer"].isdigit()][:k]
    path = tmp_path / "problems.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in chosen))
    return path, chosen


def _script(problems: list[dict]) -> Script:
    """P1: greedy right, samples 1 of 2 right; P2: greedy wrong, samples both right; P3: all wrong."""
    wrong = lambda gold: str(int(gold) + 1)  # noqa: E731
    p1, p2, p3 = problems
    return Script([
        ScriptedProblem(p1["problem"], Solution(p1["answer"]),
                        [Solution(p1["answer"], (0.3, 0.9)), Solution(wrong(p1["answer"]), (0.2,))]),
        ScriptedProblem(p2["problem"], Solution(wrong(p2["answer"]), (0.5, 0.5, 0.5)),
                        [Solution(p2["answer"]), Solution(p2["answer"], (0.1, 0.2, 0.3))]),
        ScriptedProblem(p3["problem"], Solution(None),
                        [Solution(wrong(p3["answer"])), Solution(None, (0.4,), "length")]),
    ])


@pytest.fixture
def scripted(tmp_path, monkeypatch, math500_path, tiny_generator_dir, tiny_prm_dir):
    """A scripted pipeline whose generator takes LOAD_S to load and is called one problem at a time."""
    dataset, problems = _dataset(math500_path, tmp_path)
    tokenizer = make_tokenizer()
    backend = patch_pipeline(monkeypatch, _script(problems), tokenizer)
    # one problem per generate call (chunks are planned from the backend's class): a kill can fall between chunks
    monkeypatch.setattr(TransformersBackend, "chunk_size", classmethod(lambda cls, config, n: 1))

    def slow_load(config):
        time.sleep(LOAD_S)
        return backend

    monkeypatch.setattr(pipeline, "make_backend", slow_load)
    config = tiny_config(tiny_generator_dir, tiny_prm_dir, dataset, tmp_path / "run", num_problems=3, n=2)
    return config, backend, tokenizer


def _prompt_tokens(tokenizer, config: BestOfNConfig, problems: list[dict]) -> int:
    prompts = [render_prompt(tokenizer, p["problem"], config.system_prompt, config.user_template) for p in problems]
    return sum(len(tokenizer(p, add_special_tokens=False)["input_ids"]) for p in prompts)


def test_every_stage_is_recorded_with_its_sequences_tokens_and_load_time(scripted):
    config, _, tokenizer = scripted
    pipeline.run(config)
    run = Path(config.output_dir)
    timings = read_json(run / costs.TIMINGS_FILE)["stages"]
    assert list(timings) == STAGES
    assert all(t["finished"] and t["fingerprint"] == config.fingerprint(s) and len(t["parts"]) == 1
               for s, t in timings.items())
    total = {s: t["total"] for s, t in timings.items()}
    greedy, samples = read_jsonl(run / "greedy.jsonl"), read_jsonl(run / "samples.jsonl")
    problems = read_jsonl(run / "problems.jsonl")
    assert (total["greedy"]["sequences"], total["samples"]["sequences"], total["scores"]["sequences"]) == (3, 6, 6)
    assert total["greedy"]["generated_tokens"] == sum(g["num_tokens"] for g in greedy)
    assert total["samples"]["generated_tokens"] == sum(s["num_tokens"] for s in samples)
    # Each prompt counted once, in the generator's tokens, whatever N is.
    assert total["greedy"]["prompt_tokens"] == total["samples"]["prompt_tokens"] == _prompt_tokens(tokenizer, config, problems)
    # The generator loads lazily, once, in the first stage that needs it.
    assert total["greedy"]["load_s"] >= LOAD_S and total["samples"]["load_s"] == 0
    for stage in ("greedy", "samples"):
        t = total[stage]
        assert 0 < t["model_s"] <= t["wall_s"] and t["tokens_per_s"] == pytest.approx(t["generated_tokens"] / t["model_s"])
        assert (t["backend"], t["dtype"], t["model"]) == ("transformers", "float32", config.generator)
        assert t["device"].startswith("cpu")
    assert total["problems"]["backend"] is None and total["problems"]["sequences"] == 0
    assert all(t["peak_memory_bytes"] > 2**20 and t["memory"] == "rss" for t in total.values())


def test_a_killed_stage_and_its_resumption_add_up(scripted, monkeypatch):
    config, backend, _ = scripted
    real = backend.generate
    calls = []

    def dying(prompts, **kwargs):  # greedy: calls 1-3; samples: 4-6; dies in the 5th (second samples chunk)
        calls.append(len(prompts))
        if len(calls) == 5:
            raise SimulatedKill()
        return real(prompts, **kwargs)

    monkeypatch.setattr(backend, "generate", dying)
    with pytest.raises(SimulatedKill):
        pipeline.run(config)
    run = Path(config.output_dir)
    killed = read_json(run / costs.TIMINGS_FILE)["stages"]
    assert killed["greedy"]["finished"] and not killed["samples"]["finished"] and "scores" not in killed
    assert killed["samples"]["total"]["sequences"] == 2  # the one chunk that finished before the kill

    monkeypatch.setattr(backend, "generate", real)
    pipeline.run(config)
    timings = read_json(run / costs.TIMINGS_FILE)["stages"]
    assert timings["greedy"] == killed["greedy"], "a finished stage is not measured again"
    samples = timings["samples"]
    assert samples["finished"] and [p["sequences"] for p in samples["parts"]] == [2, 4]
    total, parts = samples["total"], samples["parts"]
    assert total["sequences"] == 6
    assert total["generated_tokens"] == sum(s["num_tokens"] for s in read_jsonl(run / "samples.jsonl"))
    for key in ("wall_s", "model_s", "load_s", "prompt_tokens", "generated_tokens"):
        assert total[key] == pytest.approx(sum(p[key] for p in parts)), key
    assert total["peak_memory_bytes"] == max(p["peak_memory_bytes"] for p in parts)
    # The resumed run loaded the generator for the samples (greedy was done): that load is the samples' now.
    assert parts[0]["load_s"] == 0 and parts[1]["load_s"] >= LOAD_S

    # Recomputed with other settings (--overwrite): a fresh record, not a third part.
    changed = BestOfNConfig(**{**config.to_dict(), "n": 1})
    pipeline.run(changed, overwrite=True)
    redone = read_json(run / costs.TIMINGS_FILE)["stages"]["samples"]
    assert redone["fingerprint"] == changed.fingerprint("samples") and len(redone["parts"]) == 1
    assert redone["total"]["sequences"] == 3


def test_bestofn_run_prints_the_cost_table(scripted, capsys):
    config, _, _ = scripted
    argv = ["run", "--generator", config.generator, "--prm", config.prm, "--dataset", config.dataset,
            "--num-problems", "3", "--n", "2", "--max-new-tokens", "32", "--device", "cpu",
            "--output-dir", config.output_dir]
    assert main(argv) == 0
    out = capsys.readouterr().out.splitlines()
    header = next(i for i, line in enumerate(out) if line.startswith("stage "))
    assert out[header].split()[:4] == ["stage", "wall", "s", "load"]
    rows = {line.split()[0]: line.split() for line in out[header + 1 : header + 7]}
    assert list(rows) == [*STAGES, "total"]
    run = Path(config.output_dir)
    samples_tokens = sum(s["num_tokens"] for s in read_jsonl(run / "samples.jsonl"))
    # columns: stage, wall s, load s, model s, seqs, prompt tok, gen tok, tok/s, peak memory
    assert rows["samples"][4] == "6" and rows["samples"][6] == f"{samples_tokens:,}"
    assert rows["greedy"][4] == "3" and rows["scores"][4] == "6"
    assert any(line.startswith("greedy: transformers on cpu") for line in out)


def test_report_compute_section_has_accuracy_per_1k_tokens(scripted):
    from bestofn.report.compute import compute_markdown, generated_tokens, method_costs

    config, _, _ = scripted
    pipeline.run(config)
    run = Path(config.output_dir)
    greedy_tokens = sum(g["num_tokens"] for g in read_jsonl(run / "greedy.jsonl"))
    sample_tokens = sum(s["num_tokens"] for s in read_jsonl(run / "samples.jsonl"))
    results = read_json(run / "results.json")
    got = {c.method: (c.correct, c.generated_tokens, c.solved_per_1k_tokens)
           for c in method_costs(results, generated_tokens(results))}
    # Hand-worked from the script: greedy is right on P1 only; weighted Best-of-2 picks P1's right answer (0.9
    # against 0.2) and P2's (both samples right); pass@2 gets P1 and P2; P3 has no right sample.
    assert got["greedy"] == (1, greedy_tokens, pytest.approx(1000 / greedy_tokens))
    assert got["weighted_bon"] == (2, sample_tokens, pytest.approx(2000 / sample_tokens))
    assert got["pass_at_n"][:2] == (2, sample_tokens)
    md = compute_markdown(run)
    assert md.startswith("## Compute") and f"| greedy | 1/3 | {greedy_tokens / 3:,.0f} | {1000 / greedy_tokens:.3f} |" in md
    assert "| samples |" in md and "weighted Best-of-2" in md


def test_the_run_report_has_the_compute_section(scripted, tmp_path):
    from bestofn.report.run_report import write_report

    config, _, _ = scripted
    pipeline.run(config)
    write_report(config.output_dir, tmp_path / "report", subsets=4, bootstrap=20, formats=("md",))
    report = (tmp_path / "report" / "report.md").read_text()
    assert "## Compute" in report and "solved / 1k generated tokens" in report


def test_tiny_run_counts_real_tokens(tiny_run_dir):
    from transformers import AutoTokenizer

    config = BestOfNConfig.from_yaml(tiny_run_dir / "config.yaml")
    totals = costs.stage_totals(tiny_run_dir, config)
    assert list(totals) == STAGES
    greedy, samples = read_jsonl(tiny_run_dir / "greedy.jsonl"), read_jsonl(tiny_run_dir / "samples.jsonl")
    problems = read_jsonl(tiny_run_dir / "problems.jsonl")
    tokenizer = AutoTokenizer.from_pretrained(config.generator)
    assert totals["greedy"].generated_tokens == sum(g["num_tokens"] for g in greedy)
    assert totals["samples"].generated_tokens == sum(s["num_tokens"] for s in samples)
    assert totals["samples"].sequences == 16 and totals["greedy"].sequences == 4
    assert totals["greedy"].prompt_tokens == _prompt_tokens(tokenizer, config, problems)
    prm_tokenizer = AutoTokenizer.from_pretrained(config.prm)
    texts = [p["problem"] for p in problems for _ in range(4)] + [s["text"] for s in samples]
    # The PRM reports what it read (problem + solution, plus its own step-separator tokens and bos): the meter's
    # sum is the per-solution counts in samples.jsonl, and exceeds the plain tokenization by a few tokens a step.
    plain = sum(len(prm_tokenizer(t, add_special_tokens=False)["input_ids"]) for t in texts)
    separators = sum(len(s["step_rewards"]) + 2 for s in samples)
    assert totals["scores"].prompt_tokens == sum(s["prm_tokens"] for s in samples)
    assert plain <= totals["scores"].prompt_tokens <= plain + separators
    assert totals["scores"].sequences == 16 and totals["scores"].load_s > 0
    assert totals["greedy"].load_s > 0 and totals["greedy"].settings == {"decoding": "eager", "batch_tokens": 32768}
    table = costs.format_cost_table(totals)
    assert "greedy: transformers on cpu" in table and "float32" in table


class _Model:
    tokenizer = "its tokenizer"
    step_separator = "\n\n"


def test_the_search_wrappers_pass_through_and_survive_a_copy():
    """A search calls the backend and the PRM through these wrappers: every attribute but the metered call is
    the model's own, and copying or pickling a wrapper (which probes attributes before ``__init__``) works."""
    import copy
    import pickle

    for wrapper in (costs.MeteredGenerator(_Model()), costs.SteeringPRM(_Model())):
        assert (wrapper.tokenizer, wrapper.step_separator) == ("its tokenizer", "\n\n")
        assert copy.copy(wrapper).step_separator == pickle.loads(pickle.dumps(wrapper)).step_separator == "\n\n"
        with pytest.raises(AttributeError):
            wrapper.no_such_attribute
