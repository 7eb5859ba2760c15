"""Cost accounting: each chunk's cost saved with its rows, stages summed from their chunks, the table, the report.

Scripted runs (known solutions, no model) check what is recorded and how chunks add up; the tiny real run
checks the token counts against the files and the prompts' own tokenization.
"""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest

from bestofn import costs, pipeline
from bestofn.report import compute
from bestofn.cli import main
from bestofn.config import BestOfNConfig
from bestofn.io import read_json, read_jsonl
from bestofn.prompts import render_prompt
from bestofn.testing import make_tokenizer
from bestofn.testing.scripted import Script, ScriptedBackend, ScriptedModels, ScriptedPRM, ScriptedProblem, Solution

from conftest import tiny_config

STAGES = ["greedy", "samples", "scores"]  # the stages that run a model
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


class SlowModels(ScriptedModels):
    """The scripted models; the generator takes LOAD_S to load and can die at its ``die_at``-th call."""

    def __init__(self, script: Script, die_at: int | None = None):
        super().__init__(ScriptedBackend(script, make_tokenizer()), ScriptedPRM(script), chunk_sequences=2)
        self.die_at = die_at

    def generator(self, config):
        time.sleep(LOAD_S)
        backend = self._generator
        if self.die_at is not None:
            real = backend.generate

            def generate(prompts, **kwargs):
                if len(backend.calls) >= self.die_at:
                    raise SimulatedKill()
                return real(prompts, **kwargs)

            backend.generate = generate
        return backend


@pytest.fixture
def scripted(tmp_path, math500_path, tiny_generator_dir, tiny_prm_dir):
    """``config``, a factory of the scripted models, and the tokenizer. Chunks of 2 solutions with n=2: each
    problem's samples are a chunk of their own (3 calls); greedy's chunks hold two problems, then one (2 calls)."""
    dataset, problems = _dataset(math500_path, tmp_path)
    script = _script(problems)
    config = tiny_config(tiny_generator_dir, tiny_prm_dir, dataset, tmp_path / "run", num_problems=3, n=2)
    return config, lambda die_at=None: SlowModels(script, die_at), make_tokenizer()


def _prompt_tokens(tokenizer, config: BestOfNConfig, problems: list[dict]) -> int:
    prompts = [render_prompt(tokenizer, p["problem"], config.system_prompt, config.user_template) for p in problems]
    return sum(len(tokenizer(p, add_special_tokens=False)["input_ids"]) for p in prompts)


def _chunk_costs(run: Path, stage: str) -> list[dict]:
    return [read_json(p)["cost"] for p in sorted((run / "chunks" / stage).glob("*.json"))]


def test_every_stage_is_recorded_with_its_sequences_tokens_and_load_time(scripted):
    config, models, tokenizer = scripted
    pipeline.run(config, models=models())
    run = Path(config.output_dir)
    total = read_json(run / costs.TIMINGS_FILE)["stages"]
    assert list(total) == STAGES
    greedy, samples = read_jsonl(run / "greedy.jsonl"), read_jsonl(run / "samples.jsonl")
    problems = read_jsonl(run / "problems.jsonl")
    assert (total["greedy"]["sequences"], total["samples"]["sequences"], total["scores"]["prm_sequences"]) == (3, 6, 6)
    assert total["scores"]["sequences"] == 0 and total["greedy"]["prm_sequences"] == 0
    assert total["greedy"]["generated_tokens"] == sum(g["num_tokens"] for g in greedy)
    assert total["samples"]["generated_tokens"] == sum(s["num_tokens"] for s in samples)
    # Each prompt counted once, in the generator's tokens, whatever N is.
    assert total["greedy"]["prompt_tokens"] == total["samples"]["prompt_tokens"] == _prompt_tokens(tokenizer, config, problems)
    # The generator loads once for the run, in the first chunk that needs it; the scripted PRM counts no tokens.
    assert total["greedy"]["load_s"] >= LOAD_S and total["samples"]["load_s"] == 0
    assert total["scores"]["prm_tokens"] is None, "unknown, never 0"
    for stage in ("greedy", "samples"):
        t = total[stage]
        assert 0 < t["generator_s"] <= t["wall_s"] and t["device"].startswith("cpu")
        assert sum(c["wall_s"] for c in _chunk_costs(run, stage)) == pytest.approx(t["wall_s"])
    assert all(t["peak_memory_bytes"] > 2**20 and t["memory"] == "rss" for t in total.values())
    assert read_json(run / "results.json")["compute"] == {
        "generated_tokens": total["samples"]["generated_tokens"], "prm_tokens": None,
        "generated_tokens_per_problem": total["samples"]["generated_tokens"] / 3, "prm_tokens_per_problem": None,
        "prm_cached_tokens": 0, "prm_cached_tokens_per_problem": 0.0}  # Best-of-N: every token scored runs


def test_a_killed_run_and_its_resumption_add_up(scripted):
    config, models, _ = scripted
    with pytest.raises(SimulatedKill):
        pipeline.run(config, models=models(die_at=3))  # greedy: calls 0-1; samples: 2-4, dies in the second
    run = Path(config.output_dir)
    killed = {stage: _chunk_costs(run, stage) for stage in ("greedy", "samples")}
    assert [c["sequences"] for c in killed["greedy"]] != [] and len(killed["samples"]) == 1
    assert not (run / costs.TIMINGS_FILE).exists(), "the stages' totals are written with the results"

    pipeline.run(config, models=models())
    timings = read_json(run / costs.TIMINGS_FILE)["stages"]
    parts = _chunk_costs(run, "samples")
    assert sorted(c["sequences"] for c in parts) == [2, 2, 2] and timings["samples"]["sequences"] == 6
    for key in ("wall_s", "generator_s", "load_s", "prompt_tokens", "generated_tokens"):
        assert timings["samples"][key] == pytest.approx(sum(c[key] for c in parts)), key
        assert timings["greedy"][key] == pytest.approx(sum(c[key] for c in killed["greedy"])), key
    assert timings["samples"]["peak_memory_bytes"] == max(c["peak_memory_bytes"] for c in parts)
    # The killed run's load is greedy's; the resumed run loaded the generator again for the samples (greedy was
    # done), charged to the first chunk it ran.
    assert timings["greedy"]["load_s"] >= LOAD_S
    assert sum(c["load_s"] > 0 for c in parts) == 1 and timings["samples"]["load_s"] >= LOAD_S


def test_bestofn_run_prints_the_cost_table(scripted, capsys):
    config, models, _ = scripted
    argv = ["run", "--generator", config.generator, "--prm", config.prm, "--dataset", config.dataset,
            "--num-problems", "3", "--n", "2", "--max-new-tokens", "32", "--device", "cpu", "--generation-batch-size",
            "2", "--output-dir", config.output_dir]
    assert main(argv, models=models()) == 0
    out = capsys.readouterr().out.splitlines()
    header = next(i for i, line in enumerate(out) if line.startswith("stage "))
    assert out[header].split() == ["stage", "wall", "s", "load", "s", "generator", "s", "PRM", "s", "seqs", "prompt",
                                   "tok", "gen", "tok", "PRM", "tok", "peak", "memory"]
    rows = {line.split()[0]: line.split() for line in out[header + 1 : header + 5]}
    assert list(rows) == [*STAGES, "total"]
    run = Path(config.output_dir)
    samples_tokens = sum(s["num_tokens"] for s in read_jsonl(run / "samples.jsonl"))
    # columns: stage, wall s, load s, generator s, PRM s, seqs, prompt tok, gen tok, PRM tok, peak memory
    assert rows["samples"][5] == "6" and rows["samples"][7] == f"{samples_tokens:,}" and rows["samples"][4] == "-"
    assert rows["greedy"][5] == "3" and rows["scores"][5] == "6" and rows["scores"][3] == "-"
    assert rows["scores"][8] == "-", "the scripted PRM counts no tokens: unknown, shown as -"
    assert any(line.startswith("greedy: cpu") for line in out)


def test_report_compute_section_counts_what_the_method_spent(scripted):
    from bestofn.report.compute import compute_markdown, method_costs

    config, models, _ = scripted
    pipeline.run(config, models=models())
    run = Path(config.output_dir)
    greedy_tokens = sum(g["num_tokens"] for g in read_jsonl(run / "greedy.jsonl"))
    sample_tokens = sum(s["num_tokens"] for s in read_jsonl(run / "samples.jsonl"))
    results = read_json(run / "results.json")
    got = {c.method: (c.correct, c.generated_tokens, c.prm_tokens, c.solved_per_1k_tokens) for c in method_costs(results)}
    # Hand-worked from the script: greedy is right on P1 only; weighted Best-of-2 picks P1's right answer (0.9
    # against 0.2) and P2's (both samples right); pass@2 gets P1 and P2; P3 has no right sample.
    assert got["greedy"] == (1, greedy_tokens, 0, pytest.approx(1000 / greedy_tokens))
    assert got["weighted_bon"] == (2, sample_tokens, None, pytest.approx(2000 / sample_tokens))
    assert got["pass_at_n"][:3] == (2, sample_tokens, None)
    md = compute_markdown(run)
    assert md.startswith("## Compute")
    assert f"| greedy | 1/3 | {greedy_tokens / 3:,.0f} | 0 | {1000 / greedy_tokens:.3f} |" in md
    assert f"| weighted Best-of-2 | 2/3 | {sample_tokens / 3:,.0f} | unavailable | {2000 / sample_tokens:.3f} |" in md
    assert "| samples |" in md


def test_the_run_report_has_the_compute_section(scripted, tmp_path):
    from bestofn.report.run_report import write_report

    config, models, _ = scripted
    pipeline.run(config, models=models())
    write_report(config.output_dir, tmp_path / "report", subsets=4, bootstrap=20, formats=("md",))
    report = (tmp_path / "report" / "report.md").read_text()
    assert "## Compute" in report and "solved / 1k generated tokens" in report


def test_tiny_run_counts_real_tokens(tiny_run_dir):
    from transformers import AutoTokenizer

    config = BestOfNConfig.from_yaml(tiny_run_dir / "config.yaml")
    totals = compute.stage_totals(tiny_run_dir)
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
    # The PRM reports what it read (problem + solution, plus its own step-separator tokens and bos): the chunks'
    # sum is the per-solution counts in samples.jsonl, and exceeds the plain tokenization by a few tokens a step.
    plain = sum(len(prm_tokenizer(t, add_special_tokens=False)["input_ids"]) for t in texts)
    separators = sum(len(s["step_rewards"]) + 2 for s in samples)
    assert totals["scores"].prm_tokens == sum(s["prm_tokens"] for s in samples)
    assert plain <= totals["scores"].prm_tokens <= plain + separators
    assert read_json(tiny_run_dir / "results.json")["compute"]["prm_tokens"] == totals["scores"].prm_tokens
    assert totals["scores"].prm_sequences == 16 and totals["scores"].load_s > 0
    assert totals["greedy"].load_s > 0 and totals["samples"].load_s == 0, "the generator loads once for the run"
    assert totals["greedy"].settings == {"decoding": "eager", "batch_tokens": 32768}
    assert "greedy: cpu" in compute.format_cost_table(totals)


class _Completion:
    def __init__(self, num_tokens: int):
        self.num_tokens = num_tokens


class _Generator:
    tokenizer = make_tokenizer()
    settings = {"decoding": "fake"}

    def generate(self, prompts, **kwargs):
        return [[_Completion(3), _Completion(4)] for _ in prompts]


class _PRM:
    def __init__(self, counts):
        self.counts = counts

    def score_detailed(self, problems, responses):
        from bestofn.prm.base import PRMScore

        return [PRMScore([0.5], False, c) for c in self.counts]


def test_the_meter_counts_every_call_by_hand():
    prompts = ["one two", "three"]
    lengths = [len(_Generator.tokenizer(p, add_special_tokens=False)["input_ids"]) for p in prompts]
    meter = costs.Meter(_Generator(), _PRM([10, 12]), "cpu", load_s=0.25)
    meter.generate(prompts, n=2)
    meter.generate(prompts[:1], n=2)
    meter.score_detailed(["p", "p"], ["a", "b"])
    cost = meter.finish()
    assert (cost.sequences, cost.generated_tokens) == (6, 3 * (3 + 4))
    assert cost.prompt_tokens == sum(lengths) + lengths[0]
    assert (cost.prm_sequences, cost.prm_tokens, cost.load_s) == (2, 22, 0.25) and cost.wall_s >= 0.25
    assert cost.settings == {"decoding": "fake"}
    unknown = costs.Meter(_Generator(), _PRM([10, None]), "cpu")
    unknown.score_detailed(["p", "p"], ["a", "b"])
    assert unknown.finish().prm_tokens is None, "a count the PRM cannot give is unknown, never a partial sum"
    total = costs.add_up([cost, unknown.finish()])
    assert total.prm_tokens is None and total.prm_sequences == 4 and total.load_s == 0.25


def test_cost_rows_name_the_memory_kind_and_hardware_lists_the_stages_with_a_device():
    gpu = costs.Cost(wall_s=1.0, peak_memory_bytes=2**31, memory="gpu", device="cuda:0 (H100)", settings={"dtype": "bf16"})
    rss = costs.Cost(wall_s=2.0, peak_memory_bytes=2**30, memory="rss")
    rows = compute.cost_rows({"samples": gpu, "scores": rss})
    assert [r[-1] for r in rows] == ["2.00 GiB GPU", "1.00 GiB RSS", "2.00 GiB GPU"]  # the total: the largest peak
    assert compute.hardware_lines({"samples": gpu, "scores": rss}) == ["samples: cuda:0 (H100) (dtype bf16)"]
