"""Tests of bestofn.sweep and the sweep report. The sweep's run function is replaced by one that runs the real
pipeline on scripted solutions (scripted_runs.build_run), so each temperature's run directory is a real one
with known answers."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import pytest
from PIL import Image

from bestofn import sweep as S
from bestofn.cli import main
from bestofn.config import BestOfNConfig
from bestofn.errors import BestOfNError
from bestofn.report import sweep_report as SR
from scripted_runs import build_run, problem, sample

# Two problems, N=4. At every temperature greedy is right on "a" only (one shared baseline). The samples get
# more diverse with temperature: T=0.4 gets both problems, T=0.8 only "a", T=1.2 neither (but pass@4 on "b").
SAMPLES = {
    0.4: ([sample("1", 0.9)] * 4, [sample("2", 0.8)] * 3 + [sample("5", 0.1)]),
    0.8: ([sample("1", 0.9)] * 3 + [sample("3", 0.2)], [sample("5", 0.7)] * 3 + [sample("2", 0.3)]),
    1.2: (
        [sample("4", 0.9)] * 3 + [sample("8", 0.2)],
        [sample("5", 0.6), sample("6", 0.7), sample("7", 0.8), sample("2", 0.1)],
    ),
}


@pytest.fixture(scope="module")
def models(tiny_generator_dir, tiny_prm_dir) -> tuple[Path, Path]:
    return tiny_generator_dir, tiny_prm_dir


def fake_pipeline(calls: list, models: tuple[Path, Path]):
    """A ``pipeline.run`` that records its calls and runs the real pipeline on the scripted solutions of
    :data:`SAMPLES` for the config's temperature (and the greedy chunks it found shared)."""

    def run(config: BestOfNConfig, overwrite: bool = False) -> dict:
        shared = sorted(p.name for p in (Path(config.output_dir) / "chunks" / "greedy").glob("*.json"))
        calls.append(("run", config.temperature, config.output_dir, overwrite, len(shared)))
        a, b = SAMPLES[config.temperature]
        specs = [problem("a", "1", greedy="1", samples=a), problem("b", "2", greedy="9", samples=b, level=2)]
        build_run(Path(config.output_dir), specs, models, temperature=config.temperature)
        return json.loads((Path(config.output_dir) / "results.json").read_text())

    return run


def read_bytes_of(path: Path) -> bytes:
    return path.read_bytes()


def test_parse_temperatures():
    assert S.parse_temperatures("0.4,0.8,1.2") == [0.4, 0.8, 1.2]
    for bad, msg in (("0.4,x", "numbers"), ("0,0.8", "positive"), ("", "numbers"), ("0.4,nan", "positive, finite"), ("0.4,,0.8", "numbers"), ("0.8,0.80", "duplicates")):
        with pytest.raises(BestOfNError, match=msg):
            S.parse_temperatures(bad)


def test_run_sweep_runs_each_temperature_and_shares_greedy(tmp_path: Path, models):
    calls: list = []
    run = fake_pipeline(calls, models)
    config = BestOfNConfig(output_dir=str(tmp_path / "sweep"), n=4, num_problems=2)
    dirs = S.run_sweep(config, [0.4, 0.8, 1.2], run_fn=run)
    first = tmp_path / "sweep" / "temperature-0.4"
    assert dirs == [first, tmp_path / "sweep" / "temperature-0.8", tmp_path / "sweep" / "temperature-1.2"]
    assert calls == [  # the first run finds no greedy chunk; the others find the first run's, copied before they run
        ("run", 0.4, str(first), False, 0),
        ("run", 0.8, str(dirs[1]), False, 1),
        ("run", 1.2, str(dirs[2]), False, 1),
    ]
    assert read_bytes_of(dirs[1] / "greedy.jsonl") == read_bytes_of(first / "greedy.jsonl")
    assert config.temperature == 0.8 and config.output_dir == str(
        tmp_path / "sweep"
    )  # the caller's config is untouched
    assert [t for t, _ in SR.find_temperature_runs(tmp_path / "sweep")] == [0.4, 0.8, 1.2]
    # the temperature is the one the run's config.yaml states, not the folder's spelling of it
    (tmp_path / "sweep" / "temperature-1.2").rename(tmp_path / "sweep" / "temperature-9")
    assert [t for t, _ in SR.find_temperature_runs(tmp_path / "sweep")] == [0.4, 0.8, 1.2]


@pytest.fixture(scope="module")
def sweep_dir(tmp_path_factory, models) -> Path:
    """Three temperatures, run in a shuffled order."""
    path = tmp_path_factory.mktemp("sw") / "sweep"
    S.run_sweep(BestOfNConfig(output_dir=str(path), n=4), [1.2, 0.4, 0.8], run_fn=fake_pipeline([], models))
    return path


def test_sweep_report_numbers_and_plots(sweep_dir: Path, tmp_path: Path):
    sw = SR.analyze_sweep(sweep_dir, subsets=20, bootstrap=100)
    assert sw.temperatures == [0.4, 0.8, 1.2]  # sorted, whatever the order they were run in
    assert [an.at_full_n("weighted_bon").value for an in sw.analyses] == [1.0, 0.5, 0.0]
    assert [an.at_full_n("pass_at_n").value for an in sw.analyses] == [1.0, 1.0, 0.5]
    assert sw.distinct_answers == [1.5, 2.0, 3.0]  # T=0.4: {1} and {2,5}; T=0.8: 2 and 2; T=1.2: 2 and 4
    assert sw.sample_accuracy == pytest.approx([(1 + 0.75) / 2, (0.75 + 0.25) / 2, (0 + 0.25) / 2])
    assert sw.greedy_shared and sw.best_vs_worst.difference.value == 1.0
    assert (sw.best_vs_worst.only_a, sw.best_vs_worst.only_b, sw.best_vs_worst.p_value) == (["a", "b"], [], 0.5)

    out = tmp_path / "report"
    written = SR.write_sweep_report(sweep_dir, output_dir=out, subsets=20, bootstrap=100, run_reports=False)
    assert {p.name for p in written} == {"report.md", "report.html", *SR.SWEEP_PLOTS}
    for name in SR.SWEEP_PLOTS:
        with Image.open(out / name) as img:
            img.verify()
    md = (out / "report.md").read_text()
    # the title names the temperatures, N, the dataset and the models (not the folder)
    assert md.startswith("# Temperature sweep (0.4, 0.8, 1.2) of Best-of-4 on temperature-0.4-problems (2 problems): "
                         "generator + prm\n")
    # Wilson intervals of 2/2 and 0/2: [34.2, 100.0] and [0.0, 65.8] (z = 1.96, worked by hand)
    assert "most accurate at T=0.4 (100.0% [34.2, 100.0]) and least at T=1.2 (0.0% [0.0, 65.8])" in md
    assert "T=1.2: 3.0 distinct answers per problem, 12.5% of samples right, pass@4 50.0%" in md
    assert ("2 informative problems (solved at only one of the two temperatures), 2 won, 0 lost; exact McNemar "
            "p = 0.5, not significant at 5%") in md  # 2-0: 2 / 2**2
    assert "| 0.8 | 50.0% [9.5, 90.5] |" in md  # greedy: "a" right, "b" wrong: 1/2
    assert "| 0.4 |" in md and "run report" in md and "](../temperature-" not in md  # no run reports, no links
    html = (out / "report.html").read_text()
    assert html.count("data:image/png;base64,") == len(SR.SWEEP_PLOTS) and "<h2>Summary</h2>" in html


def test_sweep_with_methods_at_0_and_100_percent(tmp_path: Path, models):
    """Three problems; greedy solves none; at T=0.4 every sample is right (3/3), at T=1.2 none (0/3). The sweep and
    its run reports are written (0/3 used to end with matplotlib's "'yerr' must not contain negative values")."""
    right, wrong = [sample("1", 0.9)] * 2, [sample("7", 0.9)] * 2

    def run(config: BestOfNConfig, overwrite: bool = False) -> dict:
        samples = right if config.temperature == 0.4 else wrong
        specs = [problem(f"p{k}", "1", greedy="5", samples=samples) for k in range(3)]
        return build_run(Path(config.output_dir), specs, models, temperature=config.temperature)

    config = BestOfNConfig(output_dir=str(tmp_path / "sweep"), n=2, num_problems=3)
    S.run_sweep(config, [0.4, 1.2], run_fn=run)
    written = SR.write_sweep_report(tmp_path / "sweep", subsets=5, bootstrap=50)
    assert {p.name for p in written} == {"report.md", "report.html", *SR.SWEEP_PLOTS}
    md = (tmp_path / "sweep" / "report" / "report.md").read_text()
    # Wilson 95% of 3/3 is [43.9%, 100%], of 0/3 [0%, 56.1%] (z = 1.96, worked by hand)
    assert "most accurate at T=0.4 (100.0% [43.9, 100.0]) and least at T=1.2 (0.0% [0.0, 56.1])" in md
    for t in ("0.4", "1.2"):
        assert (tmp_path / "sweep" / f"temperature-{t}" / "report" / "report.md").is_file()


def test_empty_sweep_dir_is_an_error(tmp_path: Path):
    with pytest.raises(BestOfNError, match=r"no temperature-<t> run directories.*bestofn sweep --temperatures"):
        SR.analyze_sweep(tmp_path)


def test_sweep_cli_runs_and_reports(tmp_path: Path, monkeypatch, capsys, models):
    """`bestofn sweep` with the real run flags of bestofn.cli (scripted runs), then `bestofn report SWEEP_DIR`."""
    calls: list = []
    run = fake_pipeline(calls, models)
    real_run_sweep = S.run_sweep
    monkeypatch.setattr(S, "run_sweep", lambda config, temps: real_run_sweep(config, temps, run_fn=run))
    assert main(
        [
            "sweep",
            "--temperatures",
            "0.4,1.2",
            "--output-dir",
            str(tmp_path / "sw"),
            "--n",
            "4",
            "--seed",
            "5",
            "--subsets",
            "10",
            "--report-seed",
            "3",
            "--bootstrap",
            "50",
        ]
    ) == 0
    assert [c[1] for c in calls if c[0] == "run"] == [0.4, 1.2]
    assert "report.md" in capsys.readouterr().out
    md = (tmp_path / "sw" / "report" / "report.md").read_text()
    assert "report settings: 10 subsets per point, seed 3, 50 bootstrap resamples" in md
    for t in ("0.4", "1.2"):  # each temperature got its own report, linked from the sweep's
        assert (tmp_path / "sw" / f"temperature-{t}" / "report" / "report.html").is_file()
        assert f"[md](../temperature-{t}/report/report.md) / [html](../temperature-{t}/report/report.html)" in md
    # `bestofn report SWEEP_DIR` rewrites the sweep's own report (not the runs'), with the new settings
    run_report = (tmp_path / "sw" / "temperature-0.4" / "report" / "report.md").stat().st_mtime_ns
    assert main(["report", str(tmp_path / "sw"), "--subsets", "9", "--bootstrap", "50", "--format", "md"]) == 0
    assert "report settings: 9 subsets per point" in (tmp_path / "sw" / "report" / "report.md").read_text()
    assert (tmp_path / "sw" / "temperature-0.4" / "report" / "report.md").stat().st_mtime_ns == run_report


def test_temperature_dir_names():
    assert S.temperature_dir("s", 0.8).name == "temperature-0.8"
    assert S.temperature_dir("s", 1.0).name == "temperature-1"
    assert S.temperature_dir("s", 0.1 + 0.7).name == "temperature-0.8"
    assert dataclasses.replace(BestOfNConfig(), temperature=1.2).temperature == 1.2


def test_real_sweep_shares_greedy_and_reuses_finished_runs(
    tmp_path: Path, monkeypatch, tiny_generator_dir, tiny_prm_dir, math500_path
):
    """The real pipeline on the tiny models: greedy is generated once for the whole sweep; a rerun generates nothing."""
    from bestofn.backends import TransformersBackend
    from bestofn.io import read_jsonl
    from conftest import tiny_config

    real_generate = TransformersBackend.generate
    calls: list[tuple[int, float]] = []

    def counting_generate(backend, prompts, **kwargs):
        calls.append((len(prompts), kwargs["temperature"]))
        return real_generate(backend, prompts, **kwargs)

    monkeypatch.setattr(TransformersBackend, "generate", counting_generate)
    config = tiny_config(tiny_generator_dir, tiny_prm_dir, math500_path, tmp_path / "sweep", num_problems=2, n=2)
    dirs = S.run_sweep(config, [0.5, 1.0])
    assert calls == [(2, 0.0), (2, 0.5), (2, 1.0)]  # greedy once (temperature 0), then the samples per temperature
    assert read_jsonl(dirs[0] / "greedy.jsonl") == read_jsonl(dirs[1] / "greedy.jsonl")
    S.run_sweep(config, [0.5, 1.0])
    assert len(calls) == 3, "a rerun reuses every finished stage"

    written = SR.write_sweep_report(tmp_path / "sweep", subsets=5, bootstrap=50, run_reports=False)
    sw_md = (tmp_path / "sweep" / "report" / "report.md").read_text()
    assert "temperatures: 0.5, 1" in sw_md and "**Greedy** is one shared baseline" in sw_md
    for path in written:
        if path.suffix == ".png":
            with Image.open(path) as img:
                img.verify()
