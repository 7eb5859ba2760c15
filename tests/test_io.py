"""Atomic writes, and one clear line for a file that cannot be read."""

import os

import pytest

from bestofn.io import atomic_write_bytes, jsonl_bytes, read_jsonl


def write_jsonl(path, rows) -> None:
    atomic_write_bytes(path, jsonl_bytes(rows))


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


def test_read_jsonl_names_the_damaged_line(tmp_path):
    import pytest

    from bestofn.errors import BestOfNError

    path = tmp_path / "a.jsonl"
    path.write_text('{"x": 1}\n{"x": 2}\n{"x": 3, "y"\n')
    with pytest.raises(BestOfNError, match=r"a.jsonl line 3 is not valid JSON"):
        read_jsonl(path)
    path.write_text('{"x": 1}\n[2]\n')
    with pytest.raises(BestOfNError, match=r"a.jsonl line 2 is a JSON list, not an object"):
        read_jsonl(path)
