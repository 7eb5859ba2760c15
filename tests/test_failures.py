"""Failures outside the happy path end with one ``bestofn: error:`` line that names the path and the fix (issue 22).

- ``report`` and ``compare`` take the run lock of a run directory they write into: a held lock stops them.
- Operating-system errors become one line in one place (``bestofn.cli.main``): a read-only run directory or
  output folder, an ``--output-dir`` that is a file (``report``, ``import``, ``compare``), a full disk.

The run directories are made by the real pipeline on scripted solutions (scripted_runs.py). Ctrl-C and SIGTERM
are tested in test_cli.py.
"""

from __future__ import annotations

import errno
import os
import shutil
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from bestofn import cli
from bestofn.cli import main
from bestofn.rundir import lock_run_dir
from scripted_runs import build_run, problem, sample

ROOT = Path(__file__).resolve().parents[1]
ENV = {**os.environ, "PYTHONPATH": str(ROOT), "HF_HUB_OFFLINE": "1", "TOKENIZERS_PARALLELISM": "false"}
FAST = ["--subsets", "5", "--bootstrap", "20"]


def one_error_line(capsys) -> str:
    """The command's stderr, which must be exactly one ``bestofn: error:`` line."""
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("bestofn: error: "), err
    return err[0]


@pytest.fixture(scope="module")
def finished_run(tmp_path_factory, tiny_generator_dir, tiny_prm_dir) -> Path:
    specs = [problem("a", "1", greedy="1", samples=[sample("1", 0.9), sample("2", 0.2)]),
             problem("b", "2", greedy="3", samples=[sample("2", 0.8), sample("5", 0.7)], level=2)]
    return build_run(tmp_path_factory.mktemp("failures") / "run", specs, (tiny_generator_dir, tiny_prm_dir))


@pytest.fixture(scope="module")
def second_run(finished_run: Path, tmp_path_factory) -> Path:
    """Another finished run (a copy): compare needs two (issue 28)."""
    return Path(shutil.copytree(finished_run, tmp_path_factory.mktemp("second") / "run"))


@pytest.fixture
def run(finished_run: Path, tmp_path: Path) -> Path:
    """A copy of the finished run that the test may lock, write into or make read-only."""
    return Path(shutil.copytree(finished_run, tmp_path / "run"))


# --- the run lock ----------------------------------------------------------------------------------------------------
def test_report_and_compare_stop_at_a_held_run_lock(run: Path, finished_run: Path, second_run: Path, capsys):
    with lock_run_dir(run):  # as `bestofn run` holds it while it writes
        assert main(["report", str(run), *FAST]) == 2
        line = one_error_line(capsys)
        assert f"{run} is in use by another" in line and f"PID {os.getpid()}" in line
        assert main(["compare", str(finished_run), str(second_run), "--output-dir", str(run), *FAST]) == 2
        assert f"{run} is in use by another" in one_error_line(capsys)
        assert main(["report", str(run), "--output-dir", str(run / "report"), *FAST]) == 2  # RUN_DIR/report, named
        assert f"{run} is in use by another" in one_error_line(capsys)
    assert not (run / "report").exists() and not list(run.glob("*.png")), "nothing was written"
    assert main(["report", str(run), *FAST, "--format", "md"]) == 0  # the lock released: the report is written
    assert (run / "report" / "report.md").is_file() and not (run / ".lock").exists()


# --- read-only folders ---------------------------------------------------------------------------------------------
@contextmanager
def read_only(folder: Path) -> Iterator[None]:
    """Make ``folder`` unwritable: without write permission, or (for root, whom permissions do not stop) immutable
    (``chattr +i``); skip where neither works."""
    folder.mkdir(exist_ok=True)
    mode = folder.stat().st_mode
    folder.chmod(0o555)
    immutable = False
    try:
        if os.access(folder, os.W_OK):  # root
            immutable = subprocess.run(["chattr", "+i", str(folder)], capture_output=True).returncode == 0
            if not immutable:
                pytest.skip("cannot make a folder read-only here (root, and no chattr +i)")
        yield
    finally:
        if immutable:
            subprocess.run(["chattr", "-i", str(folder)], check=True)
        folder.chmod(mode)


def test_report_and_compare_into_a_read_only_run_directory(run: Path, finished_run: Path, second_run: Path, capsys):
    with read_only(run):
        assert main(["report", str(run), *FAST]) == 2
        line = one_error_line(capsys)
        assert f"error: {run}: " in line and "choose another --output-dir" in line, line
        assert ("permission denied" in line or "operation not permitted" in line), line
        assert main(["compare", str(finished_run), str(second_run), "--output-dir", str(run), *FAST]) == 2
        assert f"error: {run}: " in one_error_line(capsys)
    assert not (run / "report").exists()


@pytest.mark.parametrize("command", ["report", "compare"])
def test_a_read_only_output_folder_is_one_line(finished_run: Path, second_run: Path, tmp_path: Path, capsys, command):
    """Not a run directory, so no lock is taken: the write itself fails, and main says so in one line."""
    out = tmp_path / "out"
    argv = [command, str(finished_run), *([str(second_run)] if command == "compare" else []), "--output-dir", str(out),
            *FAST]
    with read_only(out):
        assert main(argv) == 2
    line = one_error_line(capsys)
    assert f"error: {out}: " in line, line  # the folder, not the temporary file that could not be created in it
    assert "permission denied" in line or "operation not permitted" in line, line
    assert "or choose another --output-dir" in line


# --- an output folder that is a file -------------------------------------------------------------------------------------
@pytest.mark.parametrize("command", ["report", "compare", "import"])
def test_an_output_dir_that_is_a_file_is_one_line(finished_run: Path, second_run: Path, tmp_path: Path, capsys,
                                                  command):
    target = tmp_path / "taken.txt"
    target.write_text("not a folder")
    source = tmp_path / "completions.jsonl"
    source.write_text('{"problem": "What is 1 + 1?", "answer": "2", "completions": ["So $\\\\boxed{2}$."]}\n')
    argv = {"report": ["report", str(finished_run), "--output-dir", str(target), *FAST],
            "compare": ["compare", str(finished_run), str(second_run), "--output-dir", str(target), *FAST],
            "import": ["import", str(source), "--output-dir", str(target)]}[command]
    assert main(argv) == 2
    err = capsys.readouterr().err
    line = err.strip().splitlines()[-1]  # import: the datasets library's progress bars come first
    assert "Traceback" not in err and line.startswith("bestofn: error: ") and err.count("bestofn: error:") == 1, err
    assert f"{target}: " in line and "not a folder" in line and "--output-dir" in line, line
    assert target.read_text() == "not a folder"


# --- a full disk ---------------------------------------------------------------------------------------------------------
def test_a_write_error_without_a_file_name_names_the_output_folder():
    """A failed write() carries no file name (here a real ENOSPC from /dev/full): the line names the output folder."""
    if not Path("/dev/full").exists():
        pytest.skip("needs /dev/full (Linux)")
    with pytest.raises(OSError) as caught:
        with open("/dev/full", "w") as f:
            f.write("x")
    assert caught.value.errno == errno.ENOSPC and caught.value.filename is None
    assert cli.os_error_text(caught.value, ("--output-dir", "runs/x")) == (
        "writing into runs/x: no space left on the device; free some space (or choose another --output-dir) and "
        "rerun the same command: what was finished is kept")


def test_a_full_disk_is_one_line(finished_run: Path, tmp_path: Path):
    """`bestofn report` into a 64 KiB tmpfs, mounted in a private mount namespace (nothing outside sees it): the PNGs
    do not fit, the kernel says ENOSPC, and the command says it in one line."""
    out = tmp_path / "small"
    out.mkdir()
    unshare = ["unshare", "--mount"] + ([] if os.geteuid() == 0 else ["--map-root-user"])
    script = (f"mount -t tmpfs -o size=64k tmpfs {out} || exit 99; "
              f"{sys.executable} -m bestofn.cli report {finished_run} --output-dir {out}/report {' '.join(FAST)}")
    proc = subprocess.run([*unshare, "sh", "-c", script], env=ENV, capture_output=True, text=True, timeout=300)
    if proc.returncode == 99 or "unshare:" in proc.stderr:
        pytest.skip(f"cannot mount a private tmpfs here: {proc.stderr.strip()[:200]}")
    assert proc.returncode == 2, proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("bestofn: error: "), proc.stderr
    assert f"{out}/report" in lines[0] and "no space left on the device; free some space" in lines[0], lines[0]
