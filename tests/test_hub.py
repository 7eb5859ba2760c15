"""Tests of ``bestofn push``: the dataset folder, the card, and the safety checks of the push path.

No machine here reaches the Hub, so everything up to the upload is tested for real (the dry run's files are
loaded back with ``datasets.load_dataset``), and the push path's control flow is tested with ``HfApi``'s
methods replaced by recorders.
"""

from __future__ import annotations

import hashlib
import re
import shutil
from pathlib import Path
from typing import Any

from types import SimpleNamespace

import pytest
from datasets import Features, load_dataset
from huggingface_hub import DatasetCard, DatasetCardData, HfApi
from huggingface_hub.errors import HfHubHTTPError
from huggingface_hub.errors import HTTPError as HubHTTPError

from bestofn import hub, pipeline
from bestofn.config import BestOfNConfig
from bestofn.errors import BestOfNError
from bestofn.io import atomic_write_bytes, json_bytes, jsonl_bytes, read_json, read_jsonl
from bestofn.provenance import Provenance
from bestofn.report.loader import load_run
from bestofn.testing import make_tokenizer
from bestofn.testing.scripted import Script, ScriptedProblem, Solution, scripted_models

from conftest import integer_problems, write_dataset

DATA_FILES = {"README.md", "problems/test-00000-of-00001.parquet", "samples/test-00000-of-00001.parquet"}


def write_jsonl(path, rows) -> None:
    atomic_write_bytes(path, jsonl_bytes(rows))


def write_json(path, obj) -> None:
    atomic_write_bytes(path, json_bytes(obj))


def _script(rows: list[dict]) -> Script:
    """Three problems (levels 1, 2, 3), N=4, built through the pipeline; rewards are the last step's.

    | problem | greedy | samples (answer: reward)                            | majority  | naive      | weighted   | pass@4 |
    | ------- | ------ | --------------------------------------------------- | --------- | ---------- | ---------- | ------ |
    | P1 (L1) | right  | g: .9, w: .95, g.0: .8, cut off (no answer): .1     | right #0  | wrong #1   | right #0   | right  |
    | P2 (L2) | wrong  | w2: .2, \\frac{2g}{2}: .7, w2: .3, \\dfrac{2g}{2}: .75 | wrong #2  | right #3   | right #3   | right  |
    |         |        |                                                     | (tie: first group)     | (\\dfrac)  |        |
    | P3 (L3) | none   | w: .4, w: .45, w2: .99, w: .3                         | wrong #1  | wrong #2   | wrong #1   | wrong  |

    Totals: greedy 1/3, majority 1/3, naive 1/3, weighted 2/3, pass@4 2/3. P2's #1 and P3's #3 were longer
    than the PRM's context; P1's #3 hit the token limit (1 of 12 samples cut off, 1 without an answer).
    """
    g = [int(r["answer"]) for r in rows]
    return Script([
        ScriptedProblem(rows[0]["problem"], Solution(str(g[0])),
                        [Solution(str(g[0]), (0.5, 0.9)), Solution(str(g[0] + 1), (0.95,)),
                         Solution(f"{g[0]}.0", (0.8,)), Solution(None, (0.1,), "length")]),
        ScriptedProblem(rows[1]["problem"], Solution(str(g[1] + 1)),
                        [Solution(str(g[1] + 2), (0.2,)), Solution(f"\\frac{{{2 * g[1]}}}{{2}}", (0.7,), prm_truncated=True),
                         Solution(str(g[1] + 2), (0.3,)), Solution(f"\\dfrac{{{2 * g[1]}}}{{2}}", (0.75,))]),
        ScriptedProblem(rows[2]["problem"], Solution(None),
                        [Solution(str(g[2] + 1), (0.4,)), Solution(str(g[2] + 1), (0.45,)),
                         Solution(str(g[2] + 2), (0.99,)), Solution(str(g[2] + 1), (0.3,), prm_truncated=True)]),
    ])


EXPECTED_ACCURACY = {"greedy": (1, 3), "majority": (1, 3), "naive_bon": (1, 3), "weighted_bon": (2, 3), "pass_at_n": (2, 3)}


def _three_problems(math500_path: Path) -> list[dict]:
    return [integer_problems(math500_path, 1, level=lvl)[0] for lvl in (1, 2, 3)]


def make_run_dir(root: Path, math500_path: Path, dataset_name: str = "math500.jsonl", **config_overrides: Any) -> Path:
    """A finished run directory made by ``bestofn.pipeline.run`` on the scripted solutions of :func:`_script`.

    The config names the real Hub models by default (the card describes them); nothing is downloaded.
    """
    rows = _three_problems(math500_path)
    dataset = root / dataset_name
    dataset.parent.mkdir(parents=True, exist_ok=True)
    write_dataset(rows, dataset)
    cfg = BestOfNConfig(**{"n": 4, "num_problems": 3, "dataset": str(dataset), "device": "cpu",
                           "output_dir": str(root / "run"), **config_overrides})
    results = pipeline.run(cfg, models=scripted_models(_script(rows), make_tokenizer(), check_models=False))
    assert {m: (a["correct"], a["total"]) for m, a in results["accuracy"].items()} == EXPECTED_ACCURACY
    return root / "run"


@pytest.fixture(scope="module")
def _template_run(tmp_path_factory: pytest.TempPathFactory, math500_path: Path) -> Path:
    return make_run_dir(tmp_path_factory.mktemp("hub-run"), math500_path, generator_revision="abc123")


@pytest.fixture
def run_dir(_template_run: Path, tmp_path: Path) -> Path:
    """A private copy of the scripted run (tests edit their run directory)."""
    return Path(shutil.copytree(_template_run, tmp_path / "run"))


def _files(folder: Path) -> set[str]:
    return {p.relative_to(folder).as_posix() for p in folder.rglob("*") if p.is_file()}


def _load(folder: Path, name: str | None, tmp_path: Path):
    return load_dataset(str(folder), name, cache_dir=str(tmp_path / "hf-cache"))


# --- the dry run's files -----------------------------------------------------------------------------------------
def _check_dry_run(run: Path, tmp_path: Path) -> None:
    """The shared dry-run check: exact files, declared configs and features, rows matching the run."""
    out = tmp_path / "out"
    written = hub.save_dataset_folder(run, out, "someone/bestofn-test")
    assert _files(out) == DATA_FILES == {p.relative_to(out).as_posix() for p in written}
    problems, samples = _load(out, "problems", tmp_path), _load(out, "samples", tmp_path)
    assert list(problems) == list(samples) == ["test"]
    assert problems["test"].features == hub.PROBLEM_FEATURES
    assert samples["test"].features == hub.SAMPLE_FEATURES
    default = _load(out, None, tmp_path)  # the default configuration is `problems`
    assert default["test"].features == hub.PROBLEM_FEATURES

    results = read_json(run / "results.json")
    n = BestOfNConfig.from_yaml(run / "config.yaml").n
    assert len(problems["test"]) == len(results["per_problem"]) and len(samples["test"]) == n * len(problems["test"])
    texts = {(s["unique_id"], s["sample_index"]): s["solution"] for s in samples["test"]}
    for row, res in zip(problems["test"], results["per_problem"], strict=True):
        assert row["unique_id"] == res["unique_id"]
        assert (row["weighted_bon_answer"], row["weighted_bon_correct"]) == (res["weighted_bon"]["answer"], res["weighted_bon"]["correct"])
        assert (row["majority_answer"], row["naive_bon_answer"]) == (res["majority"]["answer"], res["naive_bon"]["answer"])
        assert row["pass_at_n"] == res["pass_at_n"]["correct"]
        if res["weighted_bon"]["sample_index"] is not None:
            assert row["weighted_bon_solution"] == texts[(row["unique_id"], res["weighted_bon"]["sample_index"])]
        assert [(g["answer"], g["count"], g["sample_indices"]) for g in row["answer_groups"]] == [
            (g["answer"], g["count"], g["indices"]) for g in res["groups"]
        ]
        assert [g["reward_sum"] for g in row["answer_groups"]] == pytest.approx([g["reward_sum"] for g in res["groups"]])
    # `reward` is the last step's score (what selection uses with `last`), null without a scored step
    assert samples["test"]["reward"] == [r[-1] if r else None for r in samples["test"]["step_rewards"]]
    _check_card(out / "README.md", results)


def test_dry_run_files_load_back_with_declared_configs_and_features(run_dir: Path, tmp_path: Path, math500_path: Path) -> None:
    _check_dry_run(run_dir, tmp_path)
    problems = _load(tmp_path / "out", "problems", tmp_path)["test"]
    rows = _three_problems(math500_path)
    assert [p["unique_id"] for p in problems] == [r["unique_id"] for r in rows]
    g1, g2 = rows[0]["answer"], int(rows[1]["answer"])
    first, second, third = problems
    # P1: g (0.9 + 0.8) vs g+1 (0.95): weighted picks g via its best sample #0; naive picks g+1.
    assert (first["weighted_bon_answer"], first["weighted_bon_sample_index"], first["naive_bon_answer"]) == (
        g1, 0, str(int(g1) + 1))
    assert first["greedy_answer"] == g1 and first["greedy_correct"] and first["reference_solution"] == rows[0]["solution"]
    # P2: both Best-of-N rules show sample #3 spelled as it spelled it; the majority tie goes to the first group.
    assert (second["weighted_bon_answer"], second["weighted_bon_sample_index"], second["weighted_bon_correct"]) == (
        f"\\dfrac{{{2 * g2}}}{{2}}", 3, True)
    assert (second["majority_answer"], second["majority_correct"]) == (str(g2 + 2), False)
    assert third["greedy_answer"] is None and not third["pass_at_n"]  # nulls survive the round trip
    flags = {m: [p[f"{m}_correct"] for p in problems] for m in ("greedy", "majority", "naive_bon", "weighted_bon")}
    assert flags == {"greedy": [True, False, False], "majority": [True, False, False],
                     "naive_bon": [False, True, False], "weighted_bon": [True, True, False]}
    # Why a sample has no answer: P1's #3 was cut off inside its box; every other sample boxed one.
    samples = _load(tmp_path / "out", "samples", tmp_path)["test"]
    status = {(s["unique_id"], s["sample_index"]): s["answer_status"] for s in samples}
    assert status.pop((rows[0]["unique_id"], 3)) == "unclosed_box" and set(status.values()) == {"ok"}


def test_dry_run_on_tiny_model_run(request: pytest.FixtureRequest, tmp_path: Path) -> None:
    """The same checks on a real run directory from the tiny models (fixture in tests/conftest.py)."""
    try:
        tiny = request.getfixturevalue("tiny_run_dir")
    except pytest.FixtureLookupError:
        pytest.skip("tests/conftest.py has no tiny_run_dir fixture yet")
    _check_dry_run(Path(tiny), tmp_path)


# --- the card ----------------------------------------------------------------------------------------------
def _table_after(text: str, heading: str) -> list[list[str]]:
    """Cells of the first markdown table after ``heading``, header and separator rows excluded."""
    lines = text.split(heading, 1)[1].splitlines()
    start = next(i for i, ln in enumerate(lines) if ln.startswith("|"))
    end = next((i for i in range(start, len(lines)) if not lines[i].startswith("|")), len(lines))
    return [[c.strip() for c in ln.strip("|").split("|")] for ln in lines[start + 2 : end]]


def _check_card(readme: Path, results: dict[str, Any]) -> None:
    card = DatasetCard.load(readme)  # strict: raises on malformed metadata
    assert isinstance(card.data, DatasetCardData)
    data = card.data.to_dict()
    for key in ("license", "language", "task_categories", "tags", "size_categories", "configs", "pretty_name"):
        assert data.get(key), f"card metadata lacks {key}"
    # The problems are a local file in MATH's layout: no benchmark, source or license is claimed for them (issue 28).
    assert data["license"] == "other" and not data.get("source_datasets")
    configs = {c["config_name"]: c for c in data["configs"]}
    assert configs["problems"]["default"] is True and "default" not in configs["samples"]
    for name in ("problems", "samples"):
        assert configs[name]["data_files"] == [{"split": "test", "path": f"{name}/test-00000-of-00001.parquet"}]
    infos = {i["config_name"]: i for i in data["dataset_info"]}
    assert Features._from_yaml_list(infos["problems"]["features"]) == hub.PROBLEM_FEATURES
    assert Features._from_yaml_list(infos["samples"]["features"]) == hub.SAMPLE_FEATURES

    # Results table: one row per method, every cell equal to results.json.
    rows = _table_after(card.text, "## Results")
    levels = sorted(results["by_level"], key=int)
    assert [r[0] for r in rows] == [hub.METHOD_LABELS[m] for m in results["accuracy"]]
    for row, method in zip(rows, results["accuracy"], strict=True):
        expected = [results["accuracy"][method]] + [results["by_level"][lvl][method] for lvl in levels]
        assert len(row) == 2 + len(levels)
        for cell, acc in zip(row[1:], expected, strict=True):
            pct, correct, total = re.fullmatch(r"([\d.]+)% \((\d+)/(\d+)\)", cell).groups()
            assert (int(correct), int(total)) == (acc["correct"], acc["total"])
            assert float(pct) == pytest.approx(100 * acc["accuracy"], abs=0.05)
    # Every column is documented in the fields tables.
    for name, feats in hub.FEATURES.items():
        documented = [r[0].strip("`") for r in _table_after(card.text, f"### `{name}`")]
        assert documented == list(feats)


def test_card_describes_the_run(run_dir: Path, tmp_path: Path) -> None:
    hub.save_dataset_folder(run_dir, tmp_path / "out", "someone/bestofn-test")
    text = (tmp_path / "out" / "README.md").read_text(encoding="utf-8")
    cfg = BestOfNConfig.from_yaml(run_dir / "config.yaml")
    # The system prompt as the generator saw it: the step instruction filled in for this run's separator ("\n").
    assert cfg.system_prompt.split("{step_format}")[0] in text and "{step_format}" not in text
    assert "Write exactly one reasoning step per line" in text
    assert "Therefore, the final answer is $\\boxed{ANSWER}$." in text
    assert "[Qwen/Qwen2.5-1.5B-Instruct](https://huggingface.co/Qwen/Qwen2.5-1.5B-Instruct) | `abc123` | Apache-2.0" in text
    assert "Skywork-o1-Open-PRM-Qwen-2.5-1.5B) | not pinned" in text and "see the model card" in text
    assert "| Temperature | 0.8 |" in text and "| Samples per problem (N) | 4 |" in text
    assert "is the score of its **last** step." in text and "The `reward` column holds" not in text
    for arxiv in ("2103.03874", "2305.20050", "2408.03314", "2312.08935", "2412.15115"):
        assert arxiv in text
    assert "Skywork o1 Team" in text
    assert 'load_dataset("someone/bestofn-test", "problems", split="test")' in text
    assert "one Best-of-N experiment on\nthe local file `math500.jsonl`, levels 1, 2, 3: the Best-of-N baseline" in text
    assert "1 of 12 samples hit the 2048-token limit, 1 have no extracted answer, and 2 were longer" in text
    meta = DatasetCard.load(tmp_path / "out" / "README.md").data
    assert not meta.source_datasets and meta.size_categories == ["n<1K"]  # a local file: no source claimed


def test_card_names_the_commits_the_run_used(run_dir: Path, tmp_path: Path) -> None:
    manifest = read_json(run_dir / "manifest.json")
    manifest["models"] = {"generator": {"name": "Qwen/Qwen2.5-1.5B-Instruct", "commit": "0123abcd"},
                          "prm": {"name": "Skywork/Skywork-o1-Open-PRM-Qwen-2.5-1.5B", "commit": "feedbeef"}}
    write_json(run_dir / "manifest.json", manifest)
    hub.save_dataset_folder(run_dir, tmp_path / "out", "someone/bestofn-test")
    text = (tmp_path / "out" / "README.md").read_text(encoding="utf-8")
    assert "| `abc123` (commit `0123abcd`) |" in text  # the pinned branch/tag and what it resolved to
    assert "Skywork-o1-Open-PRM-Qwen-2.5-1.5B) | `feedbeef` |" in text
    assert "Both models are identified by the revisions above" in text


def test_card_hides_local_paths_and_cites_only_used_models(tmp_path: Path, math500_path: Path) -> None:
    run = make_run_dir(tmp_path, math500_path, dataset_name="home/alice/data/math500.jsonl",
                       generator="/home/alice/models/tiny-gen", prm="/home/alice/models/tiny-prm")
    hub.save_dataset_folder(run, tmp_path / "out", "someone/x")
    text = (tmp_path / "out" / "README.md").read_text(encoding="utf-8")
    assert "/home/alice" not in text and str(tmp_path) not in text and "`tiny-gen` (a local model folder)" in text
    assert "2412.15115" not in text and "Skywork o1 Team" not in text  # models not used: not cited
    assert "2408.03314" in text


def test_card_names_another_aggregation(tmp_path: Path, math500_path: Path) -> None:
    run = make_run_dir(tmp_path, math500_path, aggregation="min")
    hub.save_dataset_folder(run, tmp_path / "out", "someone/x")
    text = (tmp_path / "out" / "README.md").read_text(encoding="utf-8")
    assert "is the **minimum** of its step scores." in text and "The `reward` column holds" in text


# --- bad input ---------------------------------------------------------------------------------------------
def test_missing_files_are_named_with_the_command(run_dir: Path, tmp_path: Path) -> None:
    (run_dir / "results.json").unlink()
    with pytest.raises(BestOfNError, match=r"not a finished run directory \(missing results.json\).*bestofn run "
                                           r"--config .*config.yaml --output-dir"):
        hub.save_dataset_folder(run_dir, tmp_path / "out", "a/b")
    assert not (tmp_path / "out").exists()


def test_edited_files_are_refused(run_dir: Path) -> None:
    cfg = BestOfNConfig.from_yaml(run_dir / "config.yaml", temperature=0.5)
    (run_dir / "config.yaml").write_text(cfg.to_yaml(), encoding="utf-8")
    with pytest.raises(BestOfNError, match=r"config.yaml was changed after the run wrote it.*rebuild it"):
        load_run(run_dir)


def test_missing_run_dir_and_inconsistent_samples(run_dir: Path, tmp_path: Path) -> None:
    with pytest.raises(BestOfNError, match="does not exist"):
        load_run(tmp_path / "nope")
    rows = read_jsonl(run_dir / "samples.jsonl")
    write_jsonl(run_dir / "samples.jsonl", rows[1:])
    with pytest.raises(BestOfNError, match=r"samples.jsonl was changed after the run wrote it"):
        hub.load_run(run_dir)  # the manifest's sha256 catches it first
    manifest = read_json(run_dir / "manifest.json")
    del manifest["files"]["samples.jsonl"]  # a record removed is no seal (issue 28)
    write_json(run_dir / "manifest.json", manifest)
    with pytest.raises(BestOfNError, match=r"samples.jsonl was changed after the run wrote it"):
        hub.load_run(run_dir)
    # were the manifest forged to match, the rows themselves are checked
    manifest["files"]["samples.jsonl"] = hashlib.sha256((run_dir / "samples.jsonl").read_bytes()).hexdigest()
    write_json(run_dir / "manifest.json", manifest)
    with pytest.raises(BestOfNError, match=rf"lacks scored samples 0..3 \(samples_used .* of problem '{re.escape(rows[0]['unique_id'])}'"):
        hub.load_run(run_dir)


def test_save_dir_must_be_empty_or_a_previous_output(run_dir: Path, tmp_path: Path) -> None:
    out = tmp_path / "out"
    hub.save_dataset_folder(run_dir, out, "a/b")
    (out / "problems" / "old-shard.parquet").write_bytes(b"stale")
    hub.save_dataset_folder(run_dir, out, "a/b")  # a rerun replaces the previous output...
    assert _files(out) == DATA_FILES  # ...stale shards included
    (out / "notes.txt").write_text("mine")
    with pytest.raises(BestOfNError, match=r"holds other files \(notes.txt\)"):
        hub.save_dataset_folder(run_dir, out, "a/b")
    assert (out / "notes.txt").exists()


@pytest.mark.parametrize("repo_id", ["no-owner", "a/b/c", "bad id/x"])
def test_repo_id_needs_owner_and_name(run_dir: Path, tmp_path: Path, repo_id: str) -> None:
    with pytest.raises(BestOfNError, match="repo id|OWNER/NAME"):
        hub.save_dataset_folder(run_dir, tmp_path / "out", repo_id)


# --- the push path, with HfApi mocked ------------------------------------------------------------------------
class FakeHub:
    """Records HfApi calls; ``exists``/``branches``/``role``/... set what the fake Hub answers."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch, *, token: str | None = "hf_test", exists: bool = False,
                 branches: tuple[str, ...] = ("main",), role: str = "write", user: str = "someone",
                 whoami_error: Exception | None = None, auth_status: int | None = None):
        self.calls: list[tuple[str, dict[str, Any]]] = []
        self.uploaded: dict[str, bytes] = {}
        fake = self

        def record(name, result=None, effect=None):
            def method(self_api, *args, **kwargs):
                fake.calls.append((name, {"args": args, **kwargs}))
                if effect:
                    return effect(*args, **kwargs)
                return result
            monkeypatch.setattr(HfApi, name, method)

        def whoami(*a, **k):
            if whoami_error:
                raise whoami_error
            return {"name": user, "orgs": [{"name": "my-org"}], "auth": {"accessToken": {"role": role}}}

        def auth_check(*a, **k):
            if auth_status:
                raise _http_error(auth_status)

        def upload_folder(**kwargs):
            folder = Path(kwargs["folder_path"])  # a temporary folder: read it while it exists
            fake.uploaded = {p.relative_to(folder).as_posix(): p.read_bytes() for p in folder.rglob("*") if p.is_file()}
            return type("CommitInfo", (), {"commit_url": "https://huggingface.co/datasets/x/commit/1"})()

        monkeypatch.setattr(hub, "get_token", lambda: token)
        record("whoami", effect=whoami)
        record("repo_exists", exists)
        record("auth_check", effect=auth_check)
        record("list_repo_refs", type("Refs", (), {"branches": [type("B", (), {"name": b})() for b in branches]})())
        record("create_repo")
        record("create_branch")
        record("upload_folder", effect=upload_folder)
        monkeypatch.setattr(hub.DatasetCard, "validate", lambda self, repo_type=None: fake.calls.append(("validate", {})))

    def names(self) -> list[str]:
        return [name for name, _ in self.calls]

    def kwargs(self, name: str) -> dict[str, Any]:
        return next(k for n, k in self.calls if n == name)


def _http_error(status: int) -> HfHubHTTPError:
    """What huggingface_hub raises when the Hub answers ``status`` (HfHubHTTPError reads only these fields)."""
    return HfHubHTTPError(f"{status} error", response=SimpleNamespace(status_code=status, headers={}, request=None))


def test_push_without_token_fails_before_any_work(monkeypatch: pytest.MonkeyPatch, run_dir: Path) -> None:
    fake = FakeHub(monkeypatch, token=None)
    monkeypatch.setattr(hub, "load_run", lambda *a: pytest.fail("the run was read before the token check"))
    with pytest.raises(BestOfNError, match="no Hugging Face token.*hf auth login.*--dry-run"):
        hub.push(run_dir, "someone/ds")
    assert fake.names() == []


@pytest.mark.parametrize(
    ("kwargs", "repo_id", "message"),
    [
        ({"role": "read"}, "someone/ds", "read-only"),
        ({}, "other-user/ds", "belongs to someone, who cannot write to other-user/"),
        ({"whoami_error": _http_error(401)}, "someone/ds", "invalid or expired"),
        ({"whoami_error": HubHTTPError("[Errno -2] Name or service not known")}, "someone/ds", "cannot reach the Hugging Face Hub"),
    ],
)
def test_push_refuses_tokens_that_cannot_write(
    monkeypatch: pytest.MonkeyPatch, run_dir: Path, kwargs: dict[str, Any], repo_id: str, message: str
) -> None:
    fake = FakeHub(monkeypatch, **kwargs)
    with pytest.raises(BestOfNError, match=re.escape(message)):
        hub.push(run_dir, repo_id)
    assert fake.names() == ["whoami"]  # nothing after the token check


def test_push_new_repo_uploads_exactly_the_dry_run_files(monkeypatch: pytest.MonkeyPatch, run_dir: Path, tmp_path: Path) -> None:
    fake = FakeHub(monkeypatch, exists=False)
    url = hub.push(run_dir, "my-org/ds", private=True)
    assert url.startswith("https://huggingface.co/datasets/")
    assert fake.names() == ["whoami", "repo_exists", "validate", "create_repo", "upload_folder"]
    assert fake.kwargs("create_repo") == {"args": ("my-org/ds",), "repo_type": "dataset", "private": True}
    upload = fake.kwargs("upload_folder")
    assert (upload["repo_id"], upload["repo_type"], upload["revision"]) == ("my-org/ds", "dataset", None)
    dry = hub.save_dataset_folder(run_dir, tmp_path / "dry", "my-org/ds")
    assert {p.relative_to(tmp_path / "dry").as_posix(): p.read_bytes() for p in dry} == fake.uploaded


def test_push_refuses_an_existing_repo_without_revision_or_overwrite(monkeypatch: pytest.MonkeyPatch, run_dir: Path) -> None:
    fake = FakeHub(monkeypatch, exists=True)
    with pytest.raises(BestOfNError, match="already exists; pass --revision BRANCH .* or --overwrite"):
        hub.push(run_dir, "someone/ds")
    assert not {"create_repo", "create_branch", "upload_folder"} & set(fake.names())


def test_push_existing_repo_to_a_new_branch(monkeypatch: pytest.MonkeyPatch, run_dir: Path) -> None:
    fake = FakeHub(monkeypatch, exists=True, branches=("main",))
    hub.push(run_dir, "someone/ds", revision="run-2")
    assert "create_repo" not in fake.names()
    assert fake.kwargs("auth_check")["write"] is True
    assert fake.kwargs("create_branch")["branch"] == "run-2"
    assert fake.kwargs("upload_folder")["revision"] == "run-2"


def test_push_refuses_an_existing_branch_without_overwrite(monkeypatch: pytest.MonkeyPatch, run_dir: Path) -> None:
    fake = FakeHub(monkeypatch, exists=True, branches=("main", "run-2"))
    with pytest.raises(BestOfNError, match="branch 'run-2' .* already exists; pass another --revision, or --overwrite"):
        hub.push(run_dir, "someone/ds", revision="run-2")
    assert "upload_folder" not in fake.names()


def test_push_overwrite_replaces_main_and_stale_shards(monkeypatch: pytest.MonkeyPatch, run_dir: Path) -> None:
    fake = FakeHub(monkeypatch, exists=True)
    hub.push(run_dir, "someone/ds", overwrite=True)
    upload = fake.kwargs("upload_folder")
    assert upload["revision"] is None and upload["delete_patterns"] == ["problems/*", "samples/*"]
    assert "create_repo" not in fake.names()


def test_push_without_write_access_to_existing_repo(monkeypatch: pytest.MonkeyPatch, run_dir: Path) -> None:
    fake = FakeHub(monkeypatch, exists=True, auth_status=403)
    with pytest.raises(BestOfNError, match="cannot write to the dataset repo someone/ds"):
        hub.push(run_dir, "someone/ds", overwrite=True)
    assert "upload_folder" not in fake.names()


def test_push_incomplete_run_creates_nothing(monkeypatch: pytest.MonkeyPatch, run_dir: Path) -> None:
    fake = FakeHub(monkeypatch, exists=False)
    (run_dir / "samples.jsonl").unlink()
    with pytest.raises(BestOfNError, match=r"not a finished run directory \(missing samples.jsonl\)"):
        hub.push(run_dir, "someone/ds")
    assert not {"create_repo", "upload_folder"} & set(fake.names())


# --- imported runs: the card states only what the input stated ----------------------------------------------------
def test_imported_run_card_says_what_was_imported_and_what_is_not_stated(tmp_path: Path, capsys) -> None:
    """Completions imported with a generator and a temperature named, and nothing else: no greedy solutions, no token
    counts. The dry run works (it was a KeyError), and the card invents nothing: top-p, max new tokens, seed, backend,
    prompt and the subset draw are "not stated"; the source is named as imported."""
    import json

    from bestofn.cli import main
    from bestofn.importer import import_completions

    rows = [{"problem": f"What is {k} + 1?", "answer": str(k + 1), "unique_id": f"p{k}", "level": 2,
             "completions": [f"Add one.\n\nSo $\\boxed{{{k + 1}}}$.", "Guess.\n\nSo $\\boxed{0}$."],
             "scores": [[0.4, 0.9], [0.5, 0.2]]} for k in range(2)]
    source = tmp_path / "elsewhere.jsonl"
    source.write_text("".join(json.dumps(r) + "\n" for r in rows))
    run = import_completions(str(source), tmp_path / "run", generator="org/writer", temperature=0.7)
    out = tmp_path / "out"
    assert main(["push", str(run), "--repo-id", "someone/x", "--dry-run", "--save-dir", str(out)]) == 0
    printed = capsys.readouterr().out
    assert f"imported with `bestofn import` from {source}: 2 problems x 2 completions, no greedy solutions" in printed
    assert ("not stated: reward model, top-p, max new tokens, seed, backend, system prompt, user prompt, the problem "
            "subset") in printed
    text = (out / "README.md").read_text(encoding="utf-8")
    for setting in ("Top-p", "Max new tokens", "Seed", "Backend"):
        assert f"| {setting} | not stated |" in text, setting
    assert "| Temperature | 0.7 |" in text and "| Samples per problem (N) | 2 |" in text
    assert "imported with `bestofn import` from `elsewhere.jsonl`, 2 solutions (no greedy solution)" in text
    assert "written by [org/writer](https://huggingface.co/org/writer)" in text
    assert "a model the imported input does not name (not stated) gave a score per step" in text
    assert "as the imported input gave them (how they were chosen: not stated)" in text
    assert "drawn by `bestofn`" not in text and "Produced with" not in text and "MATH-500 is the" not in text
    assert BestOfNConfig().system_prompt.split("{step_format}")[0] not in text  # the project's prompt: not claimed
    assert "2048" not in text and "transformers" not in text  # the config's defaults are not facts about an import
    assert "Whether any of the 4 samples hit a token limit is not stated" in text
    assert "Tokens generated: no greedy solutions, not stated (samples)." in text  # no token counts: never 0
    assert "| [org/writer](https://huggingface.co/org/writer) | not stated | see the model card |" in text
    assert "The prompt the imported solutions were generated with is not stated." in text and "(split `" not in text
    assert "are the imported input's own; how\nthey were computed is not stated" in text
    meta = DatasetCard.load(out / "README.md").data
    assert meta.source_datasets is None and meta.pretty_name == "Best-of-2 on imported completions (elsewhere.jsonl): writer"
    problems = load_dataset("parquet", data_files=str(out / hub.data_file("problems")), split="train")
    assert problems["greedy_solution"] == [None, None] and problems["greedy_correct"] == [None, None]
    assert problems["weighted_bon_correct"] == [True, True]  # "k + 1" weighs 0.9 against 0.2


def test_imported_run_with_greedy_solutions_says_it_has_them(tmp_path: Path) -> None:
    """An import that carries greedy solutions: the card says they came from the input (it said there were none)."""
    import json

    from bestofn.cli import main
    from bestofn.importer import import_completions

    rows = [{"problem": f"What is {k} + 1?", "answer": str(k + 1), "unique_id": f"p{k}",
             "completions": [f"So $\\boxed{{{k + 1}}}$.", "So $\\boxed{0}$."], "scores": [0.9, 0.2],
             "greedy": f"So $\\boxed{{{k + 1}}}$."} for k in range(2)]
    source = tmp_path / "with_greedy.jsonl"
    source.write_text("".join(json.dumps(r) + "\n" for r in rows))
    run = import_completions(str(source), tmp_path / "run")
    out = tmp_path / "out"
    assert main(["push", str(run), "--repo-id", "someone/x", "--dry-run", "--save-dir", str(out)]) == 0
    text = " ".join((out / "README.md").read_text(encoding="utf-8").split())
    assert "The greedy solutions (`greedy_*` columns) come from the imported input" in text
    assert "The imported input has no greedy solutions" not in text


# --- the card names the benchmark the problems come from (docs/datasets.md) ----------------------------------------
KNOWN = Provenance()  # a run made by `bestofn run`: every setting known


def _stub_run(dataset: str, levels: list[int], dataset_format: str | None = None):
    """Just what the card's benchmark helpers read: the config and the problems' levels."""
    from types import SimpleNamespace

    return SimpleNamespace(config=BestOfNConfig(dataset=dataset, dataset_format=dataset_format, n=4, seed=0),
                           problems=[{"level": lvl} for lvl in levels])


@pytest.mark.parametrize("dataset, fmt, levels, title, ids, license_, source", [
    ("gsm8k", None, [0, 0], "GSM8K", ["openai/gsm8k"], "mit",
     "GSM8K ([openai/gsm8k](https://huggingface.co/datasets/openai/gsm8k))"),
    # a layout names no benchmark, and levels make no file MATH-500 (issue 28)
    ("data/aime.jsonl", "aime24", [0], "aime", [], "other", "the local file `aime.jsonl`"),
    ("olympiadbench", None, [0], "OlympiadBench", ["Hothan/OlympiadBench"], "apache-2.0",
     "OlympiadBench ([Hothan/OlympiadBench](https://huggingface.co/datasets/Hothan/OlympiadBench))"),
    ("data/math.jsonl", None, [1, 2], "math", [], "other", "the local file `math.jsonl`"),
    ("HuggingFaceH4/MATH-500", None, [1, 2], "MATH-500", ["HuggingFaceH4/MATH-500"], "mit",
     "MATH-500 ([HuggingFaceH4/MATH-500](https://huggingface.co/datasets/HuggingFaceH4/MATH-500))"),
    ("data/mine.jsonl", None, [0], "mine", [], "other", "the local file `mine.jsonl`"),
])
def test_card_names_the_benchmark(dataset, fmt, levels, title, ids, license_, source):
    run = _stub_run(dataset, levels, fmt)
    assert hub._title(run) == title and hub._source_dataset_ids(run, KNOWN) == ids and hub._source_text(run, KNOWN) == source
    assert (hub._benchmark(run).hub_license if hub._benchmark(run) else "other") == license_
    leveled = any(levels)
    assert hub._pretty_name(run, KNOWN).startswith(f"Best-of-4 on {title}{' levels 1, 2, 3' if leveled else ''}: ")
    text = hub._problems_text(run, KNOWN)
    assert f"problems of {source}" in text
    assert ("stratified by level" in text) is leveled and ("has no difficulty levels" in text) is not leveled
