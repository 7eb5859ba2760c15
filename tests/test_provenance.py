"""bestofn.provenance: what a run directory can say about how its solutions were made (issue 22)."""

from __future__ import annotations

import json
from pathlib import Path

from bestofn.importer import import_completions
from bestofn.io import atomic_write_bytes, json_bytes, read_json
from bestofn.provenance import GENERATION_SETTINGS, Provenance


def write_json(path, obj) -> None:
    atomic_write_bytes(path, json_bytes(obj))


def test_an_import_knows_only_what_its_input_stated(tmp_path: Path):
    rows = [{"problem": "What is 1?", "answer": "1", "completions": ["So $\\boxed{1}$."], "scores": [[0.5]]}]
    source = tmp_path / "c.jsonl"
    source.write_text(json.dumps(rows[0]) + "\n")
    run = import_completions(str(source), tmp_path / "run", prm="org/prm", top_p=0.95)
    known = Provenance.read(run)
    assert known.is_imported and known.source == str(source)
    assert [k for k in GENERATION_SETTINGS if known.stated(k)] == ["prm", "top_p"]
    assert known.setting("top_p", 0.95) == "0.95" and known.setting("seed", 0) == "not stated"
    assert known.results_entry() == {
        "source": str(source), "split": "train", "subset": None, "stated": {"prm": "org/prm", "top_p": 0.95},
        "not_stated": ["generator", "temperature", "max_new_tokens", "seed", "backend", "system_prompt",
                       "user_template", "subset"]}
    # rescored by bestofn (`bestofn run ... --prm X --overwrite` records the PRM it loaded): the PRM is known
    manifest = read_json(run / "manifest.json")
    write_json(run / "manifest.json", {**manifest, "models": {"prm": {"name": "org/other-prm", "commit": None}}})
    assert Provenance.read(run).stated("prm") and Provenance.read(run).scored_by_bestofn


def test_a_run_of_bestofn_knows_everything(tmp_path: Path):
    known = Provenance.read(tmp_path)  # no imported_from
    assert not known.is_imported and known.not_stated() == [] and known.summary() == ""
    assert known.results_entry() is None and known.setting("seed", 3) == "3"
