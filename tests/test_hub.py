"""Tests of ``bestofn push``: the dataset folder, the card, and the safety checks of the push path.

No machine here reaches the Hub, so everything up to the upload is tested for real (the dry run's files are
loaded back with ``datasets.load_dataset``), and the push path's control flow is tested with ``HfApi``'s
methods replaced by recorders.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

from types import SimpleNamespace

import pytest
from datasets import Features, load_dataset
from huggingface_hub import DatasetCard, DatasetCardData, HfApi
from huggingface_hub.errors import HfHubHTTPError
from huggingface_hub.errors import HTTPError as HubHTTPError

from bestofn import hub
from bestofn.config import STAGES, BestOfNConfig
from bestofn.errors import BestOfNError
from bestofn.rundir import check_finished
from bestofn.io import read_json, write_json, write_jsonl
from bestofn.selection import answer_groups, majority_vote, naive_best_of_n, weighted_best_of_n

DATA_FILES = {"README.md", "problems/test-00000-of-00001.parquet", "samples/test-00000-of-00001.parquet"}

# (unique_id, level, gold, greedy answer, [(sample answer, reward), ...]) -- N = 4
_PROBLEMS = [
    ("test/algebra/1.json", 1, "5", "5", [("5", 0.9), ("4", 0.95), ("5", 0.8), (None, 0.1)]),
    ("test/geometry/2.json", 2, "\\frac{1}{2}", "1", [("0.5", 0.7), ("3", 0.2), ("3", 0.3), ("\\frac{1}{2}", 0.6)]),
    ("test/prealgebra/3.json", 3, "12", None, [("11", 0.4), ("11", 0.45), ("13", 0.99), ("11", 0.3)]),
]


def _acc(flags: list[bool]) -> dict[str, Any]:
    return {"correct": sum(flags), "total": len(flags), "accuracy": sum(flags) / len(flags) if flags else 0.0}


def make_run_dir(root: Path, **config_overrides: Any) -> Path:
    """A finished run directory in the schema of docs/artifacts.md, with results computed by bestofn.selection."""
    run_dir = root / "run"
    cfg = BestOfNConfig(n=4, num_problems=3, output_dir=str(run_dir), **config_overrides)
    run_dir.mkdir(parents=True)
    (run_dir / "config.yaml").write_text(cfg.to_yaml(), encoding="utf-8")
    write_json(run_dir / "manifest.json", {"bestofn_version": "0.1.0", "stages": {s: cfg.fingerprint(s) for s in STAGES}})
    problems, greedy, samples, per_problem = [], [], [], []
    for uid, level, gold, g_ans, draws in _PROBLEMS:
        problems.append({"unique_id": uid, "problem": f"Problem {uid}?", "answer": gold, "level": level,
                         "subject": uid.split("/")[1].title(), "solution": f"Reference for {uid}."})
        correct = lambda a, gold=gold: a is not None and a in {gold, "0.5" if gold == "\\frac{1}{2}" else gold}  # noqa: E731
        greedy.append({"unique_id": uid, "text": f"Step 1\nSo $\\boxed{{{g_ans}}}$.", "num_tokens": 12,
                       "finish_reason": "stop" if g_ans else "length", "answer": g_ans, "correct": correct(g_ans),
                       "string_match": g_ans == gold})
        answers, rewards = [a for a, _ in draws], [r for _, r in draws]
        for i, (a, r) in enumerate(draws):
            samples.append({"unique_id": uid, "sample_index": i, "text": f"Sample {i} of {uid}\n$\\boxed{{{a}}}$",
                            "num_tokens": 20 + i, "finish_reason": "stop", "answer": a, "correct": correct(a),
                            "string_match": a == gold, "step_rewards": [0.5, r], "reward": r, "prm_truncated": i == 3})
        groups = answer_groups(answers, rewards)
        w_ans, n_ans = weighted_best_of_n(answers, rewards), naive_best_of_n(answers, rewards)
        w_group = next(g for g in groups if g["answer"] == w_ans)
        per_problem.append({
            "unique_id": uid, "level": level, "subject": problems[-1]["subject"], "gold": gold,
            "greedy": {"answer": g_ans, "correct": correct(g_ans)},
            "majority": {"answer": majority_vote(answers), "correct": correct(majority_vote(answers))},
            "naive_bon": {"answer": n_ans, "correct": correct(n_ans), "sample_index": max(range(4), key=lambda i: rewards[i])},
            "weighted_bon": {"answer": w_ans, "correct": correct(w_ans),
                             "sample_index": max(w_group["indices"], key=lambda i: rewards[i])},
            "pass_at_n": {"correct": any(correct(a) for a in answers)},
            "groups": groups,
        })
    methods = ["greedy", "majority", "naive_bon", "weighted_bon", "pass_at_n"]
    flags = {m: [p[m]["correct"] for p in per_problem] for m in methods}
    by_level = {str(lvl): {m: _acc([p[m]["correct"] for p in per_problem if p["level"] == lvl]) for m in methods} for lvl in (1, 2, 3)}
    results = {"n": 4, "num_problems": 3, "methods": methods,
               "reward_aggregation": cfg.aggregation, "accuracy": {m: _acc(flags[m]) for m in methods}, "by_level": by_level,
               "string_match": {"greedy": _acc([g["string_match"] for g in greedy]),
                                "samples": _acc([s["string_match"] for s in samples])},
               "tokens": {"greedy": 36, "samples": 258}, "per_problem": per_problem}
    write_jsonl(run_dir / "problems.jsonl", problems)
    write_jsonl(run_dir / "greedy.jsonl", greedy)
    write_jsonl(run_dir / "samples.jsonl", samples)
    write_json(run_dir / "results.json", results)
    return run_dir


@pytest.fixture
def run_dir(tmp_path: Path) -> Path:
    return make_run_dir(tmp_path, generator_revision="abc123")


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
    _check_card(out / "README.md", results)


def test_dry_run_files_load_back_with_declared_configs_and_features(run_dir: Path, tmp_path: Path) -> None:
    _check_dry_run(run_dir, tmp_path)
    problems = _load(tmp_path / "out", "problems", tmp_path)["test"]
    first = problems[0]
    # Problem 1: answers 5 (0.9 + 0.8) vs 4 (0.95): weighted picks 5, via its best sample 0; naive picks 4.
    assert (first["weighted_bon_answer"], first["weighted_bon_sample_index"], first["naive_bon_answer"]) == ("5", 0, "4")
    assert first["greedy_answer"] == "5" and first["greedy_correct"] and first["reference_solution"].startswith("Reference")
    assert problems[2]["greedy_answer"] is None  # nulls survive the round trip


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
    for key in ("license", "language", "task_categories", "tags", "source_datasets", "size_categories", "configs", "pretty_name"):
        assert data.get(key), f"card metadata lacks {key}"
    assert data["license"] == "mit"
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
    assert [r[0] for r in rows] == [hub.METHOD_LABELS[m] for m in results["methods"]]
    for row, method in zip(rows, results["methods"], strict=True):
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
    assert cfg.system_prompt in text and "Therefore, the final answer is $\\boxed{ANSWER}$." in text
    assert "[Qwen/Qwen2.5-1.5B-Instruct](https://huggingface.co/Qwen/Qwen2.5-1.5B-Instruct) | `abc123` | Apache-2.0" in text
    assert "Skywork-o1-Open-PRM-Qwen-2.5-1.5B) | not pinned" in text and "see the model card" in text
    assert "| Temperature | 0.8 |" in text and "| Samples per problem (N) | 4 |" in text
    assert "is the score of its **last** step." in text and "The `reward` column holds" not in text
    for arxiv in ("2103.03874", "2305.20050", "2408.03314", "2312.08935", "2412.15115"):
        assert arxiv in text
    assert "Skywork o1 Team" in text
    assert 'load_dataset("someone/bestofn-test", "problems", split="test")' in text
    assert "0 of 12 samples hit the 2048-token limit, 1 have no extracted answer, and 3 were longer" in text
    meta = DatasetCard.load(tmp_path / "out" / "README.md").data
    assert meta.source_datasets == ["HuggingFaceH4/MATH-500"] and meta.size_categories == ["n<1K"]


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


def test_card_hides_local_paths_and_cites_only_used_models(tmp_path: Path) -> None:
    run = make_run_dir(tmp_path, generator="/home/alice/models/tiny-gen", prm="/home/alice/models/tiny-prm",
                       dataset="/home/alice/data/math500.jsonl")
    hub.save_dataset_folder(run, tmp_path / "out", "someone/x")
    text = (tmp_path / "out" / "README.md").read_text(encoding="utf-8")
    assert "/home/alice" not in text and "`tiny-gen` (a local model folder)" in text
    assert "2412.15115" not in text and "Skywork o1 Team" not in text  # models not used: not cited
    assert "2408.03314" in text


def test_card_names_another_aggregation(tmp_path: Path) -> None:
    run = make_run_dir(tmp_path, aggregation="min")
    hub.save_dataset_folder(run, tmp_path / "out", "someone/x")
    text = (tmp_path / "out" / "README.md").read_text(encoding="utf-8")
    assert "is the **minimum** of its step scores." in text and "The `reward` column holds" in text


# --- bad input ---------------------------------------------------------------------------------------------
def test_missing_stages_are_named_with_the_command(run_dir: Path, tmp_path: Path) -> None:
    (run_dir / "results.json").unlink()
    manifest = read_json(run_dir / "manifest.json")
    del manifest["stages"]["scores"], manifest["stages"]["results"]
    write_json(run_dir / "manifest.json", manifest)
    with pytest.raises(BestOfNError, match=r"lacks stages scores, results \(missing files: results.json\).*bestofn run --config .*config.yaml --output-dir"):
        hub.save_dataset_folder(run_dir, tmp_path / "out", "a/b")
    assert not (tmp_path / "out").exists()


def test_unscored_samples_without_manifest_name_scores(run_dir: Path, tmp_path: Path) -> None:
    (run_dir / "manifest.json").unlink()
    rows = [r for r in hub.read_jsonl(run_dir / "samples.jsonl")]
    write_jsonl(run_dir / "samples.jsonl", [{k: v for k, v in r.items() if k not in ("step_rewards", "reward")} for r in rows])
    with pytest.raises(BestOfNError, match="lacks stages scores;"):
        check_finished(run_dir)


def test_stale_stages_are_refused(run_dir: Path) -> None:
    cfg = BestOfNConfig.from_yaml(run_dir / "config.yaml", temperature=0.5)
    (run_dir / "config.yaml").write_text(cfg.to_yaml(), encoding="utf-8")
    with pytest.raises(BestOfNError, match="stages samples, scores, results of .* other settings"):
        check_finished(run_dir)


def test_missing_run_dir_and_inconsistent_samples(run_dir: Path, tmp_path: Path) -> None:
    with pytest.raises(BestOfNError, match="does not exist"):
        check_finished(tmp_path / "nope")
    rows = hub.read_jsonl(run_dir / "samples.jsonl")
    write_jsonl(run_dir / "samples.jsonl", rows[1:])
    with pytest.raises(BestOfNError, match=r"samples \[1, 2, 3\] for problem 'test/algebra/1.json', expected 0..3"):
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
    with pytest.raises(BestOfNError, match="lacks stages samples, scores"):
        hub.push(run_dir, "someone/ds")
    assert not {"create_repo", "upload_folder"} & set(fake.names())
