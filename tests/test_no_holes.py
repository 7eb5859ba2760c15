"""The run directory holds no hole (issue 28): every file sealed, a user's files never deleted, every value
checked before any work, a layout taken for no benchmark, and each error naming the fix that works.

Each case is reproduced through the command line (``cli.main(argv, models=...)``) on scripted solutions
(bestofn.testing.scripted), with models that count their loads and calls: a rebuild that must not call a model
is checked to call none.
"""

from __future__ import annotations

import errno
import json
import logging
import os
import sys
from pathlib import Path

import pytest

from bestofn import cli, rundir
from bestofn.bench.processbench import BenchSettings, run_prm_bench
from bestofn.cli import main
from bestofn.config import BestOfNConfig
from bestofn.errors import BestOfNError
from bestofn.importer import import_completions
from bestofn.report.loader import load_run
from bestofn.provenance import Provenance
from bestofn.sweep import run_sweep
from bestofn.testing import make_tokenizer
from bestofn.testing.scripted import Script, ScriptedBackend, ScriptedModels, ScriptedPRM, ScriptedProblem, Solution

from test_prmbench import SCRIPTED, ScriptedScorer, bench_config, scripted_rows, write_rows

FAST = ["--subsets", "5", "--bootstrap", "20", "--format", "md"]
READ = ("problems.jsonl", "greedy.jsonl", "samples.jsonl", "results.json", "timings.json", "config.yaml")


def one_error_line(capsys) -> str:
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("bestofn: error: "), err
    return err[0]


# --- scripted runs, with models that count what they are asked ------------------------------------------------------
class CountingModels(ScriptedModels):
    """Scripted models that count every load and every call: a rebuild must make none."""

    def __init__(self, script: Script, separator_of_prm: str | None = None):
        super().__init__(ScriptedBackend(script, make_tokenizer()), ScriptedPRM(script))
        self.loads = 0
        self.separator_of_prm = separator_of_prm

    def generator(self, config):
        self.loads += 1
        return super().generator(config)

    def prm(self, config, device, compile=False):
        self.loads += 1
        return super().prm(config, device, compile)

    def step_separator(self, config):
        return self.separator_of_prm or super().step_separator(config)

    @property
    def calls(self) -> int:
        return self.loads + len(self._generator.calls)


def _problems(tmp_path: Path, levels: tuple[int, ...] = (1, 1)) -> tuple[Path, Script]:
    rows = [{"unique_id": f"p{k}", "problem": f"Problem {k}: what is {k} + 1?", "answer": str(k + 1), "level": lvl,
             "subject": "Algebra"} for k, lvl in enumerate(levels)]
    path = tmp_path / "problems-data.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    script = Script([ScriptedProblem(r["problem"], Solution(r["answer"]),
                                     [Solution(r["answer"], (0.5, 0.9)), Solution("0", (0.5, 0.2))]) for r in rows])
    return path, script


def _argv(dataset: Path, out: Path, tiny: tuple[Path, Path], *extra: str, levels: str = "1") -> list[str]:
    generator, prm = tiny
    return ["run", "--dataset", str(dataset), "--generator", str(generator), "--prm", str(prm), "--levels", levels,
            "--num-problems", "2", "--n", "2", "--max-new-tokens", "64", "--device", "cpu", "--output-dir", str(out),
            *extra]


@pytest.fixture
def tiny(tiny_generator_dir: Path, tiny_prm_dir: Path) -> tuple[Path, Path]:
    return tiny_generator_dir, tiny_prm_dir


@pytest.fixture
def finished(tmp_path: Path, tiny) -> tuple[Path, list[str], Script]:
    """A finished scripted run: its folder, the argv that made it, its script."""
    dataset, script = _problems(tmp_path)
    argv = _argv(dataset, tmp_path / "run", tiny)
    assert main(argv, models=CountingModels(script)) == 0
    return tmp_path / "run", argv, script


def _contents(run: Path) -> dict[str, bytes]:
    return {name: (run / name).read_bytes() for name in READ}


# --- 1. every file a reader trusts is sealed -------------------------------------------------------------------------
@pytest.mark.parametrize("name", ["samples.jsonl", "timings.json", "config.yaml"])
def test_a_file_whose_record_was_removed_from_the_manifest_is_refused_like_an_edited_one(finished, capsys, name):
    run, argv, script = finished
    path = run / name
    path.write_bytes(path.read_bytes().replace(b"0.9", b"0.1") if name != "config.yaml" else
                     path.read_bytes() + b"# edited\n")
    manifest = json.loads((run / "manifest.json").read_text())
    del manifest["files"][name]  # the edit's trace removed with it
    (run / "manifest.json").write_text(json.dumps(manifest))
    capsys.readouterr()
    assert main(["report", str(run), *FAST]) == 2
    assert f"{path} was changed after the run wrote it" in one_error_line(capsys)
    assert not (run / "report").exists()
    models = CountingModels(script)
    assert main(argv, models=models) == 0  # the command the error names rebuilds it from the chunks
    assert models.calls == 0 and "0.9" in (run / "samples.jsonl").read_text()
    load_run(run)


def test_a_damaged_manifest_is_rebuilt_by_the_command_its_error_names_without_a_model_call(finished, capsys):
    run, argv, script = finished
    before = _contents(run)
    torn = (run / "manifest.json").read_bytes()[:40]
    for command, damage in ((["report", str(run), *FAST], torn), (["report", str(run), *FAST], b"[1, 2]"),
                            (["report", str(run), *FAST], b'{"files": "all"}'), (argv, torn), (argv, b"[]"),
                            ([*argv, "--overwrite"], torn)):
        (run / "manifest.json").write_bytes(damage)
        if command[0] == "report":
            capsys.readouterr()
            assert main(command) == 2
            line = one_error_line(capsys)
            assert f"{run / 'manifest.json'} is damaged" in line
            assert f"`bestofn run --config {run / 'config.yaml'} --output-dir {run}`" in line
            continue
        models = CountingModels(script)
        assert main(command, models=models) == 0
        assert models.calls == 0, "every chunk is intact: nothing is generated or scored again"
        assert _contents(run) == before, "every file as it was"
        manifest = json.loads((run / "manifest.json").read_text())
        assert set(manifest["files"]) == set(READ) and "rebuilt" not in manifest
    (run / "manifest.json").write_bytes(torn)  # a damaged manifest does not hide the finished results' settings
    capsys.readouterr()
    assert main([*argv, "--aggregation", "min"], models=CountingModels(script)) == 2
    assert "holds results made with other settings (aggregation: 'last' -> 'min')" in one_error_line(capsys)
    assert _contents(run) == before
    named = ["run", "--config", str(run / "config.yaml"), "--output-dir", str(run)]  # exactly as the error says
    (run / "manifest.json").write_bytes(torn)
    models = CountingModels(script)
    assert main(named, models=models) == 0 and models.calls == 0 and _contents(run) == before
    assert main(["report", str(run), *FAST]) == 0


def test_a_rebuilt_manifest_finds_the_separator_the_samples_were_generated_with(finished):
    """Samples generated for a one-line PRM, rescored by a blank-line PRM: the chunks are named by the separator
    they were generated with, and the rebuild finds it instead of generating again."""
    run, argv, script = finished
    rescorer = CountingModels(script, separator_of_prm="\n\n")
    assert main([*argv, "--prm-max-length", "2048", "--overwrite"], models=rescorer) == 0
    assert len(rescorer._generator.calls) == 0, "a new PRM rescores the same samples"
    before = _contents(run)
    (run / "manifest.json").write_text("{")
    models = CountingModels(script, separator_of_prm="\n\n")
    assert main([*argv, "--prm-max-length", "2048"], models=models) == 0
    assert models.calls == 0 and _contents(run) == before


def test_a_damaged_manifest_of_an_import_is_rebuilt_from_its_chunks(tmp_path, capsys):
    source = tmp_path / "completions.jsonl"
    source.write_text("".join(json.dumps({"problem": f"What is {k}?", "answer": str(k), "unique_id": f"q{k}",
                                          "completions": [f"It is $\\boxed{{{k}}}$.", "It is $\\boxed{7}$."],
                                          "scores": [[0.9], [0.3]]}) + "\n" for k in range(2)))
    out = tmp_path / "imported"
    assert main(["import", str(source), "--output-dir", str(out), "--prm", "some/prm"]) == 0
    before, imported = _contents(out), json.loads((out / "manifest.json").read_text())["imported_from"]
    (out / "manifest.json").write_text("not json")
    models = CountingModels(Script([]))
    assert main(["run", "--config", str(out / "config.yaml"), "--output-dir", str(out)], models=models) == 0
    assert models.calls == 0 and _contents(out) == before
    assert json.loads((out / "manifest.json").read_text())["imported_from"] == imported
    assert Provenance.read(out).is_imported


# --- 2. bestofn deletes only what it wrote -----------------------------------------------------------------------
def test_run_overwrite_keeps_the_users_files_in_report(finished, capsys):
    run, argv, script = finished
    assert main(["report", str(run), *FAST]) == 0
    written = sorted(p.name for p in (run / "report").iterdir() if p.name != rundir.RECORD)
    assert "report.md" in written and any(name.endswith(".png") for name in written)
    (run / "report" / "notes.md").write_text("mine")
    assert main([*argv, "--aggregation", "min", "--overwrite"], models=CountingModels(script)) == 0
    assert sorted(p.name for p in (run / "report").iterdir()) == ["notes.md"]


def test_import_overwrite_keeps_the_users_files_in_report(tmp_path, capsys):
    source = tmp_path / "completions.jsonl"
    source.write_text(json.dumps({"problem": "What is 1?", "answer": "1", "completions": ["$\\boxed{1}$", "2"],
                                  "scores": [0.9, 0.1]}) + "\n")
    out = tmp_path / "imported"
    assert main(["import", str(source), "--output-dir", str(out)]) == 0
    assert main(["report", str(out), *FAST]) == 0
    (out / "report" / "mine.txt").write_text("the user's")
    (out / "notes.md").write_text("the user's too")
    assert main(["import", str(source), "--output-dir", str(out), "--overwrite"]) == 0
    assert (out / "report" / "mine.txt").read_text() == "the user's" and (out / "notes.md").is_file()
    assert sorted(p.name for p in (out / "report").iterdir()) == ["mine.txt"]


def test_a_run_nested_at_report_survives_the_outer_overwrite_and_no_run_is_made_inside_a_run(tmp_path, tiny, capsys):
    dataset, script = _problems(tmp_path)
    outer = tmp_path / "outer"
    assert main(_argv(dataset, outer / "report", tiny), models=CountingModels(script)) == 0  # made first
    inner = _contents(outer / "report")
    assert main(_argv(dataset, outer, tiny), models=CountingModels(script)) == 0
    assert main(_argv(dataset, outer, tiny, "--aggregation", "min", "--overwrite"), models=CountingModels(script)) == 0
    assert _contents(outer / "report") == inner, "the nested run directory is not bestofn's report"
    models = CountingModels(script)
    capsys.readouterr()
    assert main(_argv(dataset, outer / "sub" / "run", tiny), models=models) == 2
    assert f"{outer / 'sub' / 'run'} is inside the run directory {outer}" in one_error_line(capsys)
    assert not (outer / "sub").exists() and models.calls == 0


@pytest.mark.parametrize("where, said", [("", "--output-dir is empty"), ("~", "--output-dir ~ is your home folder")])
def test_an_output_dir_that_is_empty_or_home_is_refused(tmp_path, tiny, capsys, monkeypatch, where, said):
    """(The filesystem root is refused by the same check, test_config.py: a test that ran a command there would
    write into / wherever the check is missing.)"""
    dataset, script = _problems(tmp_path)
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("HOME", str(tmp_path / "home"))  # where the check is missing, `~` is never the real home
    before = sorted(os.listdir(tmp_path))
    models = CountingModels(script)
    argv = _argv(dataset, tmp_path, tiny)
    argv[-1] = where
    assert main(argv, models=models) == 2
    assert said in one_error_line(capsys)
    assert sorted(os.listdir(tmp_path)) == before and models.calls == 0
    source = tmp_path / "c.jsonl"
    source.write_text(json.dumps({"problem": "x", "answer": "1", "completions": ["1"]}) + "\n")
    assert main(["import", str(source), "--output-dir", where]) == 2
    assert said in one_error_line(capsys)


# --- 3. every value checked where it is parsed, before any work --------------------------------------------------
@pytest.mark.parametrize("flags, said", [
    (["--prm-max-length", "0"], "--prm-max-length must be at least 1, got 0; e.g. --prm-max-length 4096"),
    (["--prm-batch-tokens", "0"], "--prm-batch-tokens must be at least 1, got 0"),
    (["--generation-batch-size", "0"], "--generation-batch-size must be at least 1, got 0"),
    (["--workers", "0"], "--workers must be at least 1, got 0"),
    (["--device", "gpu"], "device must be auto, cpu, cuda or cuda:N (a GPU's index, e.g. cuda:1), got 'gpu'"),
    (["--levels", "1,,2"], "--levels takes a list of integers, comma-separated, got '1,,2'"),
    (["--levels", "1,"], "--levels takes a list of integers, comma-separated, got '1,'"),
])
def test_a_value_that_means_nothing_is_one_line_before_any_work(tmp_path, tiny, capsys, flags, said):
    dataset, script = _problems(tmp_path)
    models = CountingModels(script)
    assert main(_argv(dataset, tmp_path / "run", tiny, *flags), models=models) == 2
    assert said in one_error_line(capsys)
    assert models.calls == 0 and not (tmp_path / "run").exists()


def test_a_config_file_that_is_not_utf8_or_repeats_a_key_is_one_line(tmp_path, tiny, capsys):
    dataset, script = _problems(tmp_path)
    bad = tmp_path / "latin1.yaml"
    bad.write_bytes("n: 2\n# r\xe9sum\xe9\n".encode("latin-1"))
    assert main(["run", "--config", str(bad), "--output-dir", str(tmp_path / "run")]) == 2
    assert f"config file {bad} is not UTF-8 text (byte 0xe9 on line 2); save it as UTF-8" in one_error_line(capsys)
    twice = tmp_path / "twice.yaml"
    twice.write_text("n: 2\ntemperature: 0.8\nn: 4\n")
    assert main(["run", "--config", str(twice), "--output-dir", str(tmp_path / "run")]) == 2
    assert f"config file {twice}: key 'n' is given twice (lines 1 and 3); keep one of them" in one_error_line(capsys)
    assert not (tmp_path / "run").exists()


@pytest.mark.parametrize("temperatures", ["0.4,nan", "0.4,inf", "0.4,-1", "0.4,,0.8"])
def test_every_temperature_of_a_sweep_is_checked_before_any_run(tmp_path, tiny, capsys, temperatures):
    dataset, script = _problems(tmp_path)
    argv = _argv(dataset, tmp_path / "sweep", tiny)
    models = CountingModels(script)
    assert main(["sweep", "--temperatures", temperatures, *argv[1:]], models=models) == 2
    assert "--temperatures must be" in one_error_line(capsys)
    assert models.calls == 0 and not (tmp_path / "sweep").exists()
    ran = []
    with pytest.raises(BestOfNError, match="--temperatures must be positive, finite numbers"):  # from Python too
        run_sweep(BestOfNConfig(output_dir=str(tmp_path / "sweep")), [0.4, float("nan")],
                  run_fn=lambda cfg, overwrite: ran.append(cfg))
    assert ran == []


@pytest.mark.parametrize("threshold", ["1.5", "-0.1", "nan"])
def test_prm_bench_thresholds_are_in_0_1(tmp_path, capsys, threshold):
    assert main(["prm-bench", "--prm", "x/y", "--threshold", threshold, "--output-dir", str(tmp_path / "b")]) == 2
    assert "--threshold must be a number in [0, 1]" in one_error_line(capsys)


def test_a_processbench_id_must_name_a_declared_subset(tmp_path, capsys):
    rows = scripted_rows()
    rows[2]["id"] = "foo-3"
    data = write_rows(tmp_path / "pb.jsonl", rows)
    assert main(["prm-bench", "--prm", "x/y", "--data", str(data), "--output-dir", str(tmp_path / "b")]) == 2
    line = one_error_line(capsys)
    assert "line 3: field 'id' is 'foo-3', whose subset 'foo' is not one of gsm8k, math, olympiadbench, omnimath" in line
    assert not (tmp_path / "b").exists()


# --- 4. a layout is not a benchmark ------------------------------------------------------------------------------
def test_a_dataset_format_reads_columns_and_names_no_benchmark(tmp_path, tiny):
    amc = tmp_path / "amc.jsonl"
    amc.write_text("".join(json.dumps({"id": k, "problem": f"Problem {k}: what is {k} + 1?", "answer": float(k + 1)})
                           + "\n" for k in range(2)))
    dataset, script = _problems(tmp_path)
    argv = _argv(amc, tmp_path / "run", tiny, "--dataset-format", "aime24")
    assert main(argv, models=CountingModels(script)) == 0
    results = json.loads((tmp_path / "run" / "results.json").read_text())
    assert results["dataset"] == {"source": str(amc), "title": "amc"}
    assert sorted(p["unique_id"] for p in results["per_problem"]) == ["amc/0", "amc/1"]


def test_the_card_of_a_leveled_import_claims_no_benchmark(tmp_path):
    from bestofn import hub

    source = tmp_path / "mine.jsonl"
    source.write_text("".join(json.dumps({"problem": f"What is {k}?", "answer": str(k), "level": k + 1,
                                          "unique_id": f"q{k}", "completions": [f"$\\boxed{{{k}}}$", "7"],
                                          "scores": [0.9, 0.2]}) + "\n" for k in range(2)))
    out = import_completions(str(source), tmp_path / "run")
    files = hub.save_dataset_folder(out, tmp_path / "card", "me/mine")
    card = next(p for p in files if p.name == "README.md").read_text()
    claims = card.replace("MATH-500's path in MATH", "")  # the column's description names MATH-500's ids as an example
    assert "MATH-500" not in claims and "license: other" in card and "MIT" not in card
    assert "whose license this card does not know" in card


# --- 5. each error names the fix that works ------------------------------------------------------------------------
def test_an_unreadable_file_asks_for_read_permission(tmp_path):
    chunk = tmp_path / "chunk.json"
    chunk.write_text("{}")
    chunk.chmod(0o000)
    try:
        text = cli.os_error_text(PermissionError(errno.EACCES, "Permission denied", str(chunk)))
    finally:
        chunk.chmod(0o644)
    assert text == f"{chunk}: permission denied: this user cannot read it; give it read permission (chmod u+r {chunk})"
    folder = tmp_path / "ro"  # a place that cannot be written: still the writable fix
    folder.mkdir()
    assert "make it writable" in cli.os_error_text(PermissionError(errno.EACCES, "Permission denied", str(folder / "x")))


def test_a_chunk_replaced_by_a_folder_names_its_real_path(finished, capsys):
    run, argv, script = finished
    chunk = next((run / "chunks" / "samples").glob("*.json"))
    chunk.unlink()
    chunk.mkdir()
    (chunk / "keep.txt").write_text("a user's folder")
    models = CountingModels(script)
    capsys.readouterr()
    assert main(argv, models=models) == 2
    line = one_error_line(capsys)
    assert f"{chunk} is a folder, but bestofn keeps a file there; move the folder away" in line
    assert ".tmp" not in line and "pass a file" not in line
    assert models.calls == 0 and (chunk / "keep.txt").is_file()


def test_a_full_standard_output_is_named_as_such(finished, capsys, monkeypatch):
    run, argv, script = finished
    if not Path("/dev/full").exists():
        pytest.skip("no /dev/full here")
    with open("/dev/full", "w") as full:
        capsys.readouterr()
        monkeypatch.setattr(sys, "stdout", full)
        assert main(argv, models=CountingModels(script)) == 2
    err = capsys.readouterr().err.strip().splitlines()  # the run's progress bars, then one error line
    line = err[-1]
    assert [x for x in err if x.startswith("bestofn:")] == [line]
    assert "cannot write this command's output to standard output (no space left on the device)" in line
    assert f"writing into {run}" not in line
    load_run(run)  # the run itself is complete


def test_compare_refuses_one_run_and_the_same_run_twice(finished, capsys, monkeypatch):
    run, argv, script = finished
    monkeypatch.chdir(run.parent)
    capsys.readouterr()
    for given in (["run"], ["run", "./run/"], ["run", str(run)]):
        assert main(["compare", *given, "--output-dir", "cmp", *FAST]) == 2
        line = one_error_line(capsys)
        assert ("at least two run directories, got 1" in line if len(given) == 1 else
                f"the same run directory twice (run and {given[1]})" in line)
    assert not (run.parent / "cmp").exists()


# --- 6. the smaller items ------------------------------------------------------------------------------------------
def test_a_level_with_one_problem_is_singular(tmp_path, tiny):
    from bestofn.report import analysis, run_report

    dataset, script = _problems(tmp_path, levels=(1, 2))
    assert main(_argv(dataset, tmp_path / "run", tiny, levels="1,2"), models=CountingModels(script)) == 0
    text = " ".join(run_report.written_analysis(analysis.analyze(tmp_path / "run", subsets=5, bootstrap=20)))
    assert "level 1 (1 problem)" in text.lower() and "(1 problems)" not in text


def test_prm_bench_into_another_prms_results_needs_overwrite(tmp_path):
    data = write_rows(tmp_path / "pb.jsonl", scripted_rows())
    scorer = ScriptedScorer({rid: r for rid, (_, r) in SCRIPTED.items()})
    run_prm_bench(BenchSettings(data=str(data)), bench_config(tmp_path), scorer=scorer)
    before = (tmp_path / "bench" / "results.json").read_bytes()
    run_prm_bench(BenchSettings(data=str(data)), bench_config(tmp_path), scorer=scorer)  # the same PRM: resumes
    other = bench_config(tmp_path, prm="another/prm")
    with pytest.raises(BestOfNError, match=r"holds the ProcessBench results of another PRM \(prm: 'scripted/prm' -> "
                                           r"'another/prm'\); use a new --output-dir, or pass --overwrite"):
        run_prm_bench(BenchSettings(data=str(data)), other, scorer=scorer)
    assert (tmp_path / "bench" / "results.json").read_bytes() == before
    results = run_prm_bench(BenchSettings(data=str(data)), other, scorer=scorer, overwrite=True)
    assert results["prm"] == "another/prm"


def test_every_solution_unscored_is_said(tmp_path, tiny, caplog):
    dataset, _ = _problems(tmp_path)
    rows = [json.loads(line) for line in dataset.read_text().splitlines()]
    script = Script([ScriptedProblem(r["problem"], Solution(r["answer"]),
                                     [Solution(r["answer"], (), prm_truncated=True)] * 2) for r in rows])
    with caplog.at_level(logging.WARNING):
        assert main(_argv(dataset, tmp_path / "run", tiny), models=CountingModels(script)) == 0
    assert "no solution was scored" in caplog.text
