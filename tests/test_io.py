"""Atomic artifacts and resumable journals."""

import os

from bestofn.io import Journal, atomic_write_text, read_jsonl, write_jsonl


def test_atomic_write_leaves_no_temporary_files(tmp_path):
    write_jsonl(tmp_path / "a.jsonl", [{"x": 1}, {"x": 2}])
    assert read_jsonl(tmp_path / "a.jsonl") == [{"x": 1}, {"x": 2}]
    assert os.listdir(tmp_path) == ["a.jsonl"]
    assert (tmp_path / "a.jsonl").stat().st_mode & 0o044  # readable by others like a normal file


def test_failed_write_keeps_the_old_file(tmp_path):
    path = tmp_path / "a.txt"
    atomic_write_text(path, "old")

    class Boom:
        def __str__(self):
            raise RuntimeError("killed")

    try:
        write_jsonl(path, [{"x": Boom()}])
    except TypeError:
        pass
    assert path.read_text() == "old" and os.listdir(tmp_path) == ["a.txt"]


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
