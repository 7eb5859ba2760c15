"""The ``bestofn`` command: flags generated from the config, one-line errors, fast help, layers, Ctrl-C."""

from __future__ import annotations

import ast
import dataclasses
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from bestofn import cli
from bestofn.cli import _OPTIONAL_VALUE_FLAGS, build_parser, config_from_args, main
from bestofn.config import BestOfNConfig
from bestofn.errors import looks_local
from bestofn.io import atomic_write_bytes, json_bytes, read_json

ROOT = Path(__file__).resolve().parents[1]
ENV = {**os.environ, "PYTHONPATH": str(ROOT), "HF_HUB_OFFLINE": "1", "TOKENIZERS_PARALLELISM": "false"}


def write_json(path, obj) -> None:
    atomic_write_bytes(path, json_bytes(obj))


def parse(*argv: str):
    return build_parser().parse_args(list(argv))


def one_error_line(capsys) -> str:
    """The command's stderr, which must be exactly one ``bestofn: error:`` line."""
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("bestofn: error: "), err
    return err[0]


# --- flags generated from BestOfNConfig ---------------------------------------------------------------------------
def test_every_setting_has_a_flag_with_its_help_and_default(capsys):
    with pytest.raises(SystemExit):
        main(["run", "--help"])
    text = " ".join(capsys.readouterr().out.split())  # argparse wraps lines: compare word sequences
    squeezed = "".join(text.split())  # ... and may break a line after a hyphen
    for f in dataclasses.fields(BestOfNConfig):
        flag = _OPTIONAL_VALUE_FLAGS.get(f.name, ("--" + f.name.replace("_", "-"),))[0]  # ray_address: --ray
        assert flag in text, flag
        assert "".join(f.metadata["help"].split()) in squeezed, f.name
    assert "--n INT Sampled solutions per problem (the N of Best-of-N). (default: 16)" in text
    assert ("--levels INT,INT,... Difficulty levels to keep (1-5; only MATH has levels, elsewhere every problem is "
            "eligible). (default: 1,2,3)") in text
    assert "--num-problems INT Problems in the subset, stratified by level; all: every eligible problem. (default: 20)" in text
    assert "--enforce-eager, --no-enforce-eager" in text and "--backend {transformers,vllm}" in text
    assert "--max-model-len INT" in text and "(default: none)" in text


def test_flags_are_typed_by_the_field_annotations():
    args = parse("run", "--n", "4", "--levels", "3,2", "--temperature", "1", "--enforce-eager", "--max-model-len",
                 "512", "--prm-revision", "none", "--backend", "vllm", "--dtype", "float32")
    config = config_from_args(args)
    assert (config.n, config.levels, config.temperature, config.enforce_eager) == (4, [2, 3], 1.0, True)
    assert type(config.temperature) is float and config.max_model_len == 512 and config.prm_revision is None
    assert (config.backend, config.dtype) == ("vllm", "float32")
    assert config_from_args(parse("run", "--no-enforce-eager")).enforce_eager is False
    assert config_from_args(parse("run")) == BestOfNConfig()  # no flag: every default
    # --ray takes an optional value: alone it starts a local cluster (docs/scale-out.md)
    assert config_from_args(parse("run", "--ray")).ray_address == "local"
    assert config_from_args(parse("run", "--ray", "auto", "--workers", "2")).workers == 2


def test_flags_override_the_recipe_and_only_given_flags_do(tmp_path):
    recipe = tmp_path / "r.yaml"
    recipe.write_text("n: 8\nmax_model_len: 4096\nenforce_eager: true\nlevels: [1]\n")
    config = config_from_args(parse("run", "--config", str(recipe), "--max-model-len", "none", "--n", "2"))
    assert (config.n, config.max_model_len, config.enforce_eager, config.levels) == (2, None, True, [1])


def test_a_new_config_field_gets_its_flag_without_any_change_to_the_cli(monkeypatch):
    @dataclasses.dataclass
    class Grown(BestOfNConfig):  # what other engineers add: typed fields with help (and choices)
        method: str = dataclasses.field(default="best_of_n", metadata={"help": "Search method.",
                                                                       "choices": ("best_of_n", "beam_search")})
        beam_width: int | None = dataclasses.field(default=None, metadata={"help": "Beams kept."})
        prm_compile: bool = dataclasses.field(default=False, metadata={"help": "torch.compile the PRM."})
        lookahead: float = dataclasses.field(default=0.0, metadata={"help": "Lookahead."})

    monkeypatch.setattr(cli, "BestOfNConfig", Grown)
    args = parse("run", "--method", "beam_search", "--beam-width", "4", "--prm-compile", "--lookahead", "2")
    assert (args.method, args.beam_width, args.prm_compile, args.lookahead) == ("beam_search", 4, True, 2.0)
    with pytest.raises(SystemExit):
        parse("run", "--method", "dvts")  # choices come from the metadata


# --- every user error is one line, exit 2, before any directory is created ---------------------------------------
BAD_RECIPES = [
    ("n: four\n", r"n must be an integer, got 'four'; e\.g\. n: 16"),
    ('temperature: "0.8"\n', r"temperature must be a finite number, got '0\.8' \(a string: write it without quotes\); "
                             r"e\.g\. temperature: 0\.8"),
    ("levels: 2\n", r"levels must be a list of integers, got 2; e\.g\. levels: \[1, 2, 3\]"),
    ("n: 4.7\n", r"n must be an integer, got 4\.7; e\.g\. n: 16"),
    ("temperature: .nan\n", r"temperature must be a finite number, got nan; e\.g\. temperature: 0\.8"),
    ("enforce_eager: 2\n", r"enforce_eager must be true or false, got 2; e\.g\. enforce_eager: false"),
    ("backend: tgi\n", r"backend must be one of transformers, vllm, got 'tgi'; e\.g\. backend: transformers"),
    ("n: 4\n  temperature: 1\n", r"is not valid YAML at line 2, column 14: mapping values are not allowed here"),
    ("- n\n- 4\n", r"must hold a mapping of keys to values"),
]


@pytest.mark.parametrize("recipe, message", BAD_RECIPES)
def test_bad_recipe_values_are_one_line_before_any_directory(tmp_path, capsys, recipe, message):
    import re

    path = tmp_path / "recipe.yaml"
    path.write_text(recipe)
    out = tmp_path / "run"
    assert main(["run", "--config", str(path), "--output-dir", str(out)]) == 2
    line = one_error_line(capsys)
    assert re.search(message, line), line
    assert "recipe.yaml" in line and not out.exists()


@pytest.mark.parametrize(
    "flags, message",
    [
        (["--temperature", "nan"], "--temperature takes a finite number, got 'nan'; e.g. --temperature 0.8"),
        (["--temperature", "inf"], "--temperature takes a finite number, got 'inf'"),
        (["--n", "4.7"], "--n takes an integer, got '4.7'; e.g. --n 16"),
        (["--levels", "1,x"], "--levels takes a list of integers, comma-separated, got '1,x'; e.g. --levels 1,2,3"),
        (["--max-model-len", "big"], "--max-model-len takes an integer or none, got 'big'; e.g. --max-model-len 4096"),
        (["--top-p", "2"], "top_p must be in (0, 1], got 2.0"),  # the range check of validate()
        (["--grading-timeout", "0"], "--grading-timeout must be at least 1, got 0; e.g. --grading-timeout 5"),
        (["--grading-timeout", "-1"], "--grading-timeout must be at least 1, got -1"),
    ],
)
def test_bad_flags_are_one_line_before_any_directory(tmp_path, capsys, flags, message):
    out = tmp_path / "run"
    assert main(["run", *flags, "--output-dir", str(out)]) == 2
    assert message in one_error_line(capsys)
    assert not out.exists()


@pytest.mark.parametrize("temperatures, message", [("0,1", "--temperatures must be positive"),
                                                   ("0.4,x", "--temperatures must be numbers")])
def test_sweep_temperatures_error_is_one_line(tmp_path, capsys, temperatures, message):
    # The BestOfNError is raised inside argparse's type= call: it used to escape main as a traceback.
    assert main(["sweep", "--temperatures", temperatures, "--output-dir", str(tmp_path / "sw")]) == 2
    assert message in one_error_line(capsys)


def test_argparse_usage_errors_stay_argparses(capsys):
    for argv in (["run", "--backend", "tgi"], ["run", "--n"], ["push", "RUN"]):
        with pytest.raises(SystemExit) as exit_info:
            main(argv)
        assert exit_info.value.code == 2
        assert "usage: bestofn" in capsys.readouterr().err


@pytest.mark.parametrize("argv, message", [
    (["run", "--temp", "0.7"], "unrecognized argument for `bestofn run`: --temp (did you mean --temperature?)"),
    (["run", "--temperatur", "0.7"], "--temperatur (did you mean --temperature?)"),
    (["report", "RUN", "--bootstrp", "5"], "for `bestofn report`: --bootstrp (did you mean --bootstrap?)"),
    (["run", "--top_p", "0.9", "--max_new_tokens", "9"],
     "arguments for `bestofn run`: --top_p (did you mean --top-p?), --max_new_tokens (did you mean --max-new-tokens?)"),
    (["compare", "a", "--output-dir", "o", "--selectoin", "majority"], "--selectoin (did you mean --selection?)"),
    (["run", "--no-such-flag"], "--no-such-flag (see `bestofn run --help`)"),
    (["run", "--hepl"], "--hepl (did you mean --help?)"),
    (["sweep", "--temperatures", "0.4", "--temp", "0.7"], "--temp (did you mean --temperatures?)"),  # not the hidden one
])
def test_an_unknown_flag_is_one_line_with_the_closest_real_ones(capsys, argv, message):
    """Issue 29: not the top-level usage, but one line suggesting the command's own flags (never a hidden one),
    each once."""
    assert main(argv) == 2
    line = one_error_line(capsys)
    assert message in line and "--help or" not in line


def test_a_file_given_for_a_run_directory_is_named_as_a_file(tmp_path, capsys):
    (tmp_path / "samples.jsonl").write_text("{}\n")
    assert main(["report", str(tmp_path / "samples.jsonl")]) == 2
    assert (f"{tmp_path / 'samples.jsonl'} is a file, not a run directory; pass the folder that holds it: {tmp_path}"
            in one_error_line(capsys))


def test_sweep_takes_the_run_flags_but_not_temperature():
    args = parse("sweep", "--temperatures", "0.4,1.2", "--n", "4", "--seed", "5", "--report-seed", "3")
    assert (args.temperatures, args.n, args.seed, args.report_seed) == ([0.4, 1.2], 4, 5, 3)
    assert config_from_args(args).temperature == BestOfNConfig().temperature  # each run replaces it

def test_sweep_explains_that_it_takes_temperatures(tmp_path, capsys):
    assert main(["sweep", "--temperatures", "0.4", "--temperature", "0.8", "--output-dir", str(tmp_path / "sw")]) == 2
    assert "sweep takes --temperatures T1,T2,..." in one_error_line(capsys)
    with pytest.raises(SystemExit):
        parse("run", "--temp", "0.8")  # no abbreviations: a new setting must not change what a flag means


# --- model paths ----------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("name", ["/abs/model", "./model", "../model", "~/model", "models/qwen/1.5b", "C:\\models\\q"])
def test_paths_look_local(name):
    assert looks_local(name)


@pytest.mark.parametrize("name", ["Qwen/Qwen2.5-1.5B-Instruct", "gpt2", "Skywork/Skywork-o1-Open-PRM-Qwen-2.5-1.5B"])
def test_hub_ids_do_not_look_local(name):
    assert not looks_local(name)


def test_a_partly_existing_path_looks_local(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "models").mkdir()
    assert looks_local("models/qwen") and not looks_local("other/qwen")


@pytest.mark.parametrize("flag, role", [("--generator", "generator"), ("--prm", "PRM")])
def test_a_missing_model_folder_is_named_as_such(tmp_path, capsys, tiny_generator_dir, tiny_prm_dir, math500_path,
                                                  flag, role):
    missing = str(tmp_path / "models" / "no-such-model")
    argv = ["run", "--generator", str(tiny_generator_dir), "--prm", str(tiny_prm_dir), "--dataset", str(math500_path),
            "--device", "cpu", "--output-dir", str(tmp_path / "run"), flag, missing]
    assert main(argv) == 2
    line = one_error_line(capsys)
    assert f"the {role} folder {missing} does not exist" in line and f"with {flag}" in line
    assert "Repo id" not in line and "hf download" not in line
    assert not (tmp_path / "run").exists()


def test_the_prm_loader_uses_the_same_rule(tmp_path):
    from bestofn.errors import BestOfNError
    from bestofn.prm import load_prm

    with pytest.raises(BestOfNError, match=r"the PRM folder \./no/such/prm does not exist .*with --prm"):
        load_prm("./no/such/prm")


def test_a_backend_reports_a_missing_folder_the_same_way(tmp_path):
    from bestofn.backends import make_backend
    from bestofn.errors import BestOfNError

    config = BestOfNConfig(generator=str(tmp_path / "gone"), device="cpu")
    with pytest.raises(BestOfNError, match=r"the generator folder .*gone does not exist .*with --generator"):
        make_backend(config)


# --- failed runs leave nothing behind; --overwrite leaves no stale report ---------------------------------------------
def test_a_failed_first_run_leaves_no_directory(tmp_path, capsys, tiny_generator_dir, tiny_prm_dir, math500_path):
    rows = [json.loads(line) for line in math500_path.read_text().splitlines()]
    del rows[29]["answer"]
    bad = tmp_path / "bad.jsonl"
    bad.write_text("".join(json.dumps(r) + "\n" for r in rows))
    out = tmp_path / "new" / "nested" / "run"
    argv = ["run", "--generator", str(tiny_generator_dir), "--prm", str(tiny_prm_dir), "--device", "cpu",
            "--output-dir", str(out)]
    assert main([*argv, "--dataset", str(bad)]) == 2
    assert "line 30 (unique_id" in one_error_line(capsys)
    assert not (tmp_path / "new").exists(), "the folders the run created are removed"
    assert main([*argv, "--dataset", str(math500_path), "--generator", "no-such-org/no-such-model"]) == 2
    assert "cannot load the generator 'no-such-org/no-such-model'" in one_error_line(capsys)
    assert not (tmp_path / "new").exists()


def test_a_failed_run_keeps_a_directory_it_did_not_create(tmp_path, capsys, math500_path):
    out = tmp_path / "mine"
    out.mkdir()
    (out / "notes.txt").write_text("keep me")
    assert main(["run", "--dataset", str(math500_path), "--generator", "./no/such/model", "--output-dir", str(out)]) == 2
    assert (out / "notes.txt").read_text() == "keep me"


def test_overwrite_removes_the_stale_report(tmp_path, capsys):
    from bestofn.errors import BestOfNError
    from bestofn.rundir import open_run_dir

    old = BestOfNConfig(n=2, output_dir=str(tmp_path / "run"))
    open_run_dir(old, overwrite=False).publish({"results.json": b"{}"})  # a finished run of the old settings
    (tmp_path / "run" / "report").mkdir()
    (tmp_path / "run" / "report" / "report.md").write_text("N=2")
    new = dataclasses.replace(old, n=4)
    with pytest.raises(BestOfNError, match=r"other settings \(n: 2 -> 4\).*--overwrite"):
        open_run_dir(new, overwrite=False)
    assert (tmp_path / "run" / "report" / "report.md").exists(), "without --overwrite nothing changes"
    assert BestOfNConfig.from_yaml(tmp_path / "run" / "config.yaml").n == 2
    open_run_dir(new, overwrite=True).publish({"results.json": b"{}"})  # the rerun finished
    assert not (tmp_path / "run" / "report").exists()
    assert BestOfNConfig.from_yaml(tmp_path / "run" / "config.yaml").n == 4, "written with the new results"
    write_json(tmp_path / "run" / "unrelated.json", {})  # a rerun with the same settings removes nothing
    (tmp_path / "run" / "report").mkdir()
    open_run_dir(new, overwrite=True)
    assert (tmp_path / "run" / "report").is_dir() and (tmp_path / "run" / "unrelated.json").is_file()


# --- the run summary ---------------------------------------------------------------------------------------------
@pytest.mark.parametrize("method, label", [("best_of_n", "Best-of-N"), ("beam_search", "beam search"), ("dvts", "DVTS")])
def test_the_run_summary_names_the_method(method, label):
    acc = {"accuracy": 0.5, "correct": 1, "total": 2}
    results = {"num_problems": 2, "n": 4, "method": method, "accuracy": {"greedy": acc, "weighted_bon": acc}}
    lines = cli.format_summary(results, "runs/x").splitlines()
    assert lines[0] == f"{label} (--method {method}): 2 problems, N=4  (run directory: runs/x)"
    assert lines[1].split() == ["greedy", "50.0%", "(1/2)"] and len(lines) == 3


# --- report, sweep and push commands --------------------------------------------------------------------------------
def test_report_command(tiny_run_dir, tmp_path, capsys):
    out = tmp_path / "out"
    argv = ["report", str(tiny_run_dir), "--subsets", "7", "--seed", "3", "--bootstrap", "40", "--output-dir", str(out),
            "--format", "html"]
    assert main(argv) == 0
    assert "report.html" in capsys.readouterr().out
    assert "report.html" in {p.name for p in out.iterdir()} and "report.md" not in {p.name for p in out.iterdir()}
    assert "report settings: 7 subsets per point, seed 3, 40 bootstrap resamples" in (out / "report.html").read_text()
    (tmp_path / "empty").mkdir()
    assert main(["report", str(tmp_path / "empty")]) == 2
    assert "is not a finished run directory" in one_error_line(capsys)


def test_report_help_shows_the_analysis_defaults(capsys):
    from bestofn.report import analysis as A

    with pytest.raises(SystemExit):
        main(["report", "--help"])
    text = " ".join(capsys.readouterr().out.split())
    assert f"(default: {A.DEFAULT_SUBSETS})" in text and f"(default: {A.DEFAULT_BOOTSTRAP})" in text


def test_push_dry_run_and_options(tiny_run_dir, tmp_path, capsys, monkeypatch):
    from bestofn import hub

    out = tmp_path / "out"
    assert main(["push", str(tiny_run_dir), "--repo-id", "a/b", "--dry-run", "--save-dir", str(out)]) == 0
    assert "nothing uploaded" in capsys.readouterr().out and (out / "README.md").is_file()
    seen = {}
    monkeypatch.setattr(hub, "push", lambda *a, **k: seen.update(args=a, **k) or "url")
    assert main(["push", str(tiny_run_dir), "--repo-id", "a/b", "--private", "--revision", "r", "--overwrite"]) == 0
    assert (seen["revision"], seen["private"], seen["overwrite"], seen["save_dir"]) == ("r", True, True, None)
    assert main(["push", str(tiny_run_dir), "--repo-id", "a/b", "--dry-run"]) == 2
    assert "--dry-run needs --save-dir" in one_error_line(capsys)


def test_push_with_a_token_while_offline_is_one_line(tiny_run_dir):
    env = {**ENV, "HF_TOKEN": "hf_not_a_real_token", "HF_HUB_OFFLINE": "1"}
    proc = subprocess.run([sys.executable, "-m", "bestofn.cli", "push", str(tiny_run_dir), "--repo-id", "me/ds"],
                          env=env, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2, proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert lines == [lines[-1]] and lines[-1].startswith("bestofn: error: offline mode is on"), proc.stderr
    assert "--dry-run --save-dir DIR" in lines[-1]


# --- one-way layers and a fast command line ----------------------------------------------------------------------------
def test_only_the_cli_parses_arguments_and_nothing_imports_it():
    for path in sorted((ROOT / "bestofn").rglob("*.py")):
        if path.name == "cli.py":
            continue
        tree = ast.parse(path.read_text(encoding="utf-8"))
        for node in ast.walk(tree):
            if isinstance(node, ast.ImportFrom):
                names = {node.module or ""} | {f"{node.module or ''}.{a.name}".lstrip(".") for a in node.names}
            elif isinstance(node, ast.Import):
                names = {a.name for a in node.names}
            else:
                continue
            assert not any(n == "argparse" or n.endswith("cli") for n in names), f"{path.name} imports {names}"


HEAVY = ("torch", "transformers", "datasets", "matplotlib", "math_verify", "numpy", "vllm", "huggingface_hub")


def test_importing_the_cli_and_building_its_parser_imports_nothing_heavy():
    code = ("import sys; from bestofn.cli import build_parser; build_parser(); "
            f"print(sorted(m for m in {HEAVY!r} if m in sys.modules))")
    proc = subprocess.run([sys.executable, "-c", code], env=ENV, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == "[]"


@pytest.mark.parametrize("argv", [["--help"], ["run", "--help"]])
def test_help_is_fast(argv):
    # The target is < 1 s (benchmarks/cli_latency.py measures it); 5 s leaves room for a loaded CI machine,
    # and still fails when the heavy libraries come back (7-8 s before).
    start = time.perf_counter()
    proc = subprocess.run([sys.executable, "-m", "bestofn.cli", *argv], env=ENV, capture_output=True, text=True,
                          timeout=120)
    assert proc.returncode == 0 and "usage: bestofn" in proc.stdout
    assert time.perf_counter() - start < 5


# --- Ctrl-C and SIGTERM ----------------------------------------------------------------------------------------------
SIGNAL_RUN = ROOT / "tests" / "signal_run.py"


@pytest.mark.parametrize("sig, code, line", [(signal.SIGINT, 130, cli.INTERRUPTED), (signal.SIGTERM, 143, cli.TERMINATED)],
                         ids=["ctrl-c", "sigterm"])
def test_ctrl_c_and_sigterm_stop_with_one_line_and_the_rerun_resumes(tmp_path, tiny_generator_dir, tiny_prm_dir,
                                                                      sig, code, line):
    """A signal in the middle of greedy generation: one line, exit 130 (Ctrl-C) or 143 (SIGTERM: 128 + 15), the
    chunk of the finished problem kept; the same command resumes. The scripted generator (tests/signal_run.py)
    prints a line and then waits inside problem 1's greedy generation: the signal is sent after that line is read,
    so it always lands in that state (problem 0's chunk saved, greedy unfinished), whatever the machine's speed."""
    out = tmp_path / "run"
    args = [str(tmp_path / "three.jsonl"), str(tiny_generator_dir), str(tiny_prm_dir), "--output-dir", str(out)]
    proc = subprocess.Popen([sys.executable, str(SIGNAL_RUN), "1", *args], env=ENV, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
    assert proc.stdout.readline() == "blocked at problem 1\n", proc.communicate(timeout=120)[1]
    proc.send_signal(sig)
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == code, err
    assert err.rstrip().splitlines()[-1] == f"bestofn: {line}"
    assert "Traceback" not in err and "KeyboardInterrupt" not in err
    chunks = list((out / "chunks" / "greedy").glob("*.json"))
    assert not (out / "greedy.jsonl").exists() and len(chunks) == 1, "greedy unfinished, its finished chunk kept"
    assert [r["unique_id"] for r in json.loads(chunks[0].read_text())["rows"]] == ["p0"]

    again = subprocess.run([sys.executable, str(SIGNAL_RUN), "none", *args], env=ENV, capture_output=True, text=True,
                           timeout=600)
    assert again.returncode == 0, again.stderr
    assert "generation: resuming, 1 of 6 chunks already done" in again.stderr
    results = read_json(out / "results.json")
    assert results["num_problems"] == 3 and results["accuracy"]["greedy"]["correct"] == 3
