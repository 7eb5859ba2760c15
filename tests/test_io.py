"""Atomic artifacts and resumable journals."""

import os

import pytest

from bestofn.io import Journal, read_jsonl, write_jsonl


def test_atomic_write_leaves_no_temporary_files(tmp_path):
    write_jsonl(tmp_path / "a.jsonl", [{"x": 1}, {"x": 2}])
    assert read_jsonl(tmp_path / "a.jsonl") == [{"x": 1}, {"x": 2}]
    assert os.listdir(tmp_path) == ["a.jsonl"]
    assert (tmp_path / "a.jsonl").stat().st_mode & 0o044  # readable by others like a normal file


class SimulatedKill(BaseException):
    """Stands for a kill in the middle of a write: a BaseException, as no `except Exception` may swallow it."""


def _rows_then_kill():
    """A data source that dies half-way: the first rows are produced, then the process is 'killed'."""
    yield {"x": "new 1"}
    yield {"x": "new 2"}
    raise SimulatedKill()


def _old_file(tmp_path):
    path = tmp_path / "a.jsonl"
    write_jsonl(path, [{"x": "old"}])
    return path


def test_a_source_dying_mid_write_keeps_the_old_file(tmp_path):
    path = _old_file(tmp_path)
    with pytest.raises(SimulatedKill):
        write_jsonl(path, _rows_then_kill())
    assert read_jsonl(path) == [{"x": "old"}] and os.listdir(tmp_path) == ["a.jsonl"]


@pytest.mark.parametrize("step", ["fsync", "replace"])
def test_a_kill_inside_the_write_keeps_the_old_file(tmp_path, monkeypatch, step):
    """The bytes are on disk (or about to be renamed) when the process dies: readers still see the old file."""
    path = _old_file(tmp_path)

    def die(*args, **kwargs):
        raise SimulatedKill()

    monkeypatch.setattr(os, step, die)
    with pytest.raises(SimulatedKill):
        write_jsonl(path, [{"x": "new 1"}, {"x": "new 2"}])
    monkeypatch.undo()
    assert read_jsonl(path) == [{"x": "old"}]
    assert os.listdir(tmp_path) == ["a.jsonl"], "the temporary file is removed"
    write_jsonl(path, [{"x": "new"}])  # and the next write works
    assert read_jsonl(path) == [{"x": "new"}]


def test_journal_drops_a_torn_tail_and_keeps_appending(tmp_path):
    journal = Journal(tmp_path / ".partial" / "j.jsonl")
    journal.append([{"i": 0}, {"i": 1}])
    with open(journal.path, "a") as f:
        f.write('{"i": 2, "te')  # a kill in the middle of a write
    assert journal.read() == [{"i": 0}, {"i": 1}]
    journal.append([{"i": 2}])
    assert journal.read() == [{"i": 0}, {"i": 1}, {"i": 2}]
    journal.remove()
    assert journal.read() == [] and not any(tmp_path.iterdir())
