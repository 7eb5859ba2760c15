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


def test_journal_commits_a_chunk_as_one_record(tmp_path):
    """A chunk's rows are one line: a cut anywhere in it loses the whole chunk, never part of it."""
    journal = Journal(tmp_path / "j.jsonl")
    journal.append([{"i": 0}, {"i": 1}])
    journal.append([{"i": 2}, {"i": 3}, {"i": 4}])
    data = journal.path.read_bytes()
    assert data.count(b"\n") == 2
    first_line = data.index(b"\n") + 1
    for cut in range(first_line + 1, len(data)):  # every way a kill can tear the second chunk
        journal.path.write_bytes(data[:cut])
        assert journal.read() == [{"i": 0}, {"i": 1}]
        assert journal.path.read_bytes() == data[:first_line], "the torn tail is cut off"


def test_journal_says_once_how_many_records_it_dropped(tmp_path, caplog):
    journal = Journal(tmp_path / "j.jsonl")
    journal.append([{"i": 0}])
    with open(journal.path, "a") as f:
        f.write('{"rows": [{"i": 1}]}\n{"rows": [{"i": 2}]}\n{"rows": [{"i"')
    with open(journal.path, "r+b") as f:  # damage the second record: it and everything after it is dropped
        f.seek(len('{"rows": [{"i": 0}]}\n') + 3)
        f.write(b"#")
    assert journal.read() == [{"i": 0}]
    said = [r for r in caplog.records if "j.jsonl" in r.getMessage()]
    assert len(said) == 1 and said[0].levelname == "WARNING" and "dropped 3 torn record" in said[0].getMessage()
    caplog.clear()
    assert journal.read() == [{"i": 0}] and not caplog.records, "said once: the journal was repaired"


def test_read_jsonl_names_the_damaged_line(tmp_path):
    import pytest

    from bestofn.errors import BestOfNError

    path = tmp_path / "a.jsonl"
    path.write_text('{"x": 1}\n{"x": 2}\n{"x": 3, "y"\n')
    with pytest.raises(BestOfNError, match=r"a.jsonl line 3 is not valid JSON"):
        read_jsonl(path)
    path.write_text('{"x": 1}\n{"x": 2}')  # parses, but the newline is missing: a cut-off write
    with pytest.raises(BestOfNError, match=r"line 2 is not valid JSON \(cut off"):
        read_jsonl(path)


def test_file_digest_counts_rows_and_hashes_the_bytes(tmp_path):
    import hashlib

    from bestofn.io import file_digest

    rows = [{"x": "é" * k} for k in range(3000)]  # about 9 MB: several read blocks
    write_jsonl(tmp_path / "a.jsonl", rows)
    data = (tmp_path / "a.jsonl").read_bytes()
    assert file_digest(tmp_path / "a.jsonl") == {"rows": 3000, "sha256": hashlib.sha256(data).hexdigest()}

