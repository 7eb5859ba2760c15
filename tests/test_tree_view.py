"""The report of a search run, and its search-tree viewer read back in a real headless Chromium.

The runs are real beam searches and DVTS runs of the pipeline on a scripted tree (bestofn.testing.scripted):
first steps 0-3 (step 3 ends at once with a wrong answer, 2 is pruned), step 1's children finish (1.0 wrong,
1.1.x later, 1.1.1 right), and step 0's children are blank lines (the step delimiter alone): on problem 0 both
are blank (so one is a duplicate of the other), elsewhere the second finishes right after the blank line, whose
empty step the PRM then scores. Expected texts, rewards and marks are read from tree.jsonl and samples.jsonl
by plain code in the test.

The browser is Debian's chromium driven by playwright (the Makefile installs it). Without it these tests are
skipped, with the reason, unless ``BESTOFN_REQUIRE_BROWSER=1`` (``make test`` sets it): then they fail.
"""

from __future__ import annotations

import json
import os
import re
from pathlib import Path

import pytest

from bestofn import pipeline
from bestofn.io import read_json, read_jsonl
from bestofn.report import run_report as R
from bestofn.rundir import RECORD
from bestofn.testing import make_tokenizer
from bestofn.testing.scripted import ScriptedModels, ScriptedTreeBackend, ScriptedTreePRM, TreeRules

from conftest import tiny_config

CHROMIUM = os.environ.get("BESTOFN_CHROMIUM", "/usr/bin/chromium")
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
                 "--disable-sync"]


def _rules(chosen: list[dict]) -> TreeRules:
    def reward(k: int, label: str) -> float:
        base = 0.9 if label.endswith("1") else 0.6 if label.endswith("0") else 0.2
        return round(base - 0.01 * k - 0.001 * label.count("."), 4)

    def end(k: int, label: str) -> str | None:
        depth = label.count(".")
        if depth == 0:
            return "stop" if label == "3" else None
        if depth == 1 and label.startswith("0."):
            return "empty" if (k == 0 or label == "0.0") else "stop"
        return ("stop" if label.endswith("0") else None) if depth == 1 else "stop"

    return TreeRules(reward=reward, end=end, answer=lambda k, label: chosen[k]["answer"] if label.endswith("1") else "12345")


def search_run(math500_path: Path, out: Path, models: tuple[Path, Path], method: str) -> Path:
    rows = [json.loads(line) for line in math500_path.read_text().splitlines()]
    chosen = [r for r in rows if r["answer"].isdigit()][:3]  # levels 2 and 3
    dataset = out.parent / "search-problems.jsonl"
    dataset.write_text("".join(json.dumps(r) + "\n" for r in chosen))
    texts = [r["problem"] for r in chosen]
    scripted = ScriptedModels(ScriptedTreeBackend(texts, _rules(chosen), make_tokenizer(), "\n"),
                              ScriptedTreePRM(texts, _rules(chosen), "\n"))
    config = tiny_config(*models, dataset, out, num_problems=3, method=method, beam_width=2, num_iterations=4,
                         max_new_tokens=256)
    pipeline.run(config, models=scripted)
    return out


@pytest.fixture(scope="module", params=["beam_search", "dvts"])
def search_report(request, tmp_path_factory, math500_path, tiny_generator_dir, tiny_prm_dir) -> Path:
    run = search_run(math500_path, tmp_path_factory.mktemp(request.param) / "run", (tiny_generator_dir, tiny_prm_dir),
                     request.param)
    written = R.write_report(run, subsets=20, bootstrap=50)
    assert run / "report" / "search_tree.html" in written  # the viewer is among the files written
    return run


def test_search_report_says_what_the_run_did(search_report: Path):
    """Title, setup and summary name the search and its settings; nothing is drawn from subsets of its pool."""
    method = read_json(search_report / "results.json")["method"]
    label = {"beam_search": "Beam search", "dvts": "DVTS"}[method]
    md = (search_report / "report" / "report.md").read_text()
    assert md.startswith(f"# {label} (N=4, beam width 2, at most 4 iterations, lookahead 0) on search-problems (3 "
                         f"problems)")
    assert f"- method: {label[0].lower() + label[1:] if method != 'dvts' else label} (N=4, beam width 2" in md
    assert "Best-of-4" not in md and "weighted Best-of" not in md and "N-subsets" not in md and "subsets per" not in md
    assert "Going from N=" not in md and "## Accuracy vs N" not in md and "## Accuracy at N=4" in md
    assert "bestofn compare RUN_DIR... --output-dir OUT" in md
    files = {p.name for p in (search_report / "report").iterdir()}
    assert not files & {"accuracy_vs_n.png", "aggregation.png", "compute.png"}
    assert "search_tree.html" in files and "[search_tree.html](search_tree.html)" in md
    # every file the report wrote is recorded, so `--overwrite` removes it and nothing of the user's (issue 28)
    assert set(json.loads((search_report / "report" / RECORD).read_text())) == files - {RECORD}
    assert 'href="search_tree.html"' in (search_report / "report" / "report.html").read_text()
    # the cost is every step the search generated (results.json's compute), not the pool's length
    per_problem = read_json(search_report / "results.json")["compute"]["generated_tokens_per_problem"]
    assert f"generated {per_problem:,.0f} tokens per problem on average (every step it made" in md
    assert "stratified by level" in md and "no difficulty levels" not in md  # MATH-500 has levels


# --------------------------------------------------------------------------------------------------------
# The viewer, in a real browser
# --------------------------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def browser():
    """Headless Chromium (Debian's), or a skip (a failure under BESTOFN_REQUIRE_BROWSER=1) saying what is missing."""
    try:
        from playwright.sync_api import sync_playwright
    except ImportError as e:
        reason = f"playwright is not importable ({e}); `pip install -e '.[dev]'`"
    else:
        reason = None if Path(CHROMIUM).is_file() else (f"no Chromium at {CHROMIUM}; `make install` (apt-get install "
                                                         f"chromium) or set BESTOFN_CHROMIUM")
    if reason:
        if os.environ.get("BESTOFN_REQUIRE_BROWSER") == "1":
            pytest.fail(reason)
        pytest.skip(reason)
    with sync_playwright() as p:
        chromium = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        yield chromium
        chromium.close()


def expected_nodes(tree: list[dict], uid: str, pool: dict[int, int]) -> dict[int, dict]:
    """Per node of problem ``uid``: its text, the rewards of the steps it completes (worked out plainly: the
    steps of its solution text, trailing newlines dropped, after those of its parent's) and its mark."""
    nodes = {n["beam_id"]: n for n in tree if n["unique_id"] == uid}
    parents = {n["parent_id"] for n in nodes.values()}

    def text(i):
        return "" if i is None else text(nodes[i]["parent_id"]) + nodes[i]["text"]

    def count(i):
        body = text(i).rstrip("\n")
        return len(body.split("\n")) if body else 0

    out = {}
    for i, n in nodes.items():
        if i in pool:
            mark = f"pool #{pool[i]}"
        elif n["finish_reason"] != "delimiter":
            mark = "finished"
        elif n["duplicate_of"] is not None:
            mark = f"duplicate of #{n['duplicate_of']}"
        else:
            mark = "kept" if i in parents else "pruned"
        out[i] = {"text": n["text"], "rewards": n["step_rewards"][count(n["parent_id"]):count(i)], "mark": mark}
    return out


def close_to(shown: str, value: float) -> bool:
    """A reward as shown equals ``value`` to the decimals shown (at least 3)."""
    decimals = len(shown.split(".")[1]) if "." in shown else 0
    return decimals >= 3 and abs(float(shown) - value) <= 0.5 * 10 ** -decimals + 1e-12


def test_tree_viewer_shows_every_step_with_its_reward(search_report: Path, browser):
    """Open the page from disk, expand a problem and every node, and read each node's text, rewards and mark
    back against tree.jsonl; the pool, the answer groups and the chosen answer against results.json."""
    tree = read_jsonl(search_report / "tree.jsonl")
    samples = read_jsonl(search_report / "samples.jsonl")
    results = read_json(search_report / "results.json")
    page = browser.new_page()
    requests: list[str] = []
    page.on("request", lambda r: requests.append(r.url))
    errors: list[str] = []
    page.on("pageerror", lambda e: errors.append(str(e)))
    page.goto((search_report / "report" / "search_tree.html").resolve().as_uri())
    problems = page.locator("details.problem")
    assert problems.count() == 3 and page.locator("details.problem[open]").count() == 0  # collapsed by default
    assert page.locator("details.node").count() == 0  # nothing drawn before it is opened
    checked_blank = checked_duplicate = False
    for k, per in enumerate(results["per_problem"]):
        uid = per["unique_id"]
        box = page.locator(f'details.problem[data-id="{uid}"]')
        box.locator("summary").first.click()
        page.wait_for_function("() => !document.querySelector('details[open]:not([data-drawn])')")
        pool = {s["beam_id"]: s["sample_index"] for s in samples if s["unique_id"] == uid}
        want = expected_nodes(tree, uid, pool)
        while box.locator("details.node:not([open])").count():  # open every node (children appear when opened)
            box.locator("details.node:not([open]) > summary").first.click()
            page.wait_for_function("() => !document.querySelector('details[open]:not([data-drawn])')")
        seen = box.evaluate("""b => [...b.querySelectorAll('details.node')].map(d => ({
            id: +d.dataset.node, mark: d.querySelector(':scope > summary .mark').textContent,
            reward: d.querySelector(':scope > summary .reward').textContent,
            text: d.querySelector(':scope > pre.text').textContent,
            rewards: [...d.querySelectorAll(':scope > .rewards .step-reward')].map(s => s.textContent)}))""")
        assert sorted(s["id"] for s in seen) == sorted(want), "every node of tree.jsonl is in the tree, once"
        for s in seen:
            node = want[s["id"]]
            assert s["mark"] == node["mark"], s
            assert s["text"] == (node["text"] if node["text"].strip() else "(blank line)"), s
            assert len(s["rewards"]) == len(node["rewards"]), s
            for shown, value in zip(s["rewards"], node["rewards"]):
                assert close_to(shown.rsplit(": ", 1)[-1], value), (shown, value)
            assert s["reward"] == "-" if not node["rewards"] else close_to(s["reward"], node["rewards"][-1]), s
            if len(node["rewards"]) == 2:  # a step after a blank line: the blank line's reward is shown as its own
                assert s["rewards"][0].startswith("(blank line): ")
                checked_blank = True
            checked_duplicate |= s["mark"].startswith("duplicate of #")
        # the final pool, the answer groups and the chosen answer
        rows = box.evaluate("""b => [...b.querySelectorAll('table')].map(t => [...t.rows].slice(1).map(
            r => [...r.cells].map(c => c.textContent)))""")
        groups, pool_rows = rows
        mine = sorted((s for s in samples if s["unique_id"] == uid), key=lambda s: s["sample_index"])
        assert [(int(r[0]), r[1], r[2], r[5]) for r in pool_rows] == [
            (s["sample_index"], f"#{s['beam_id']}", str(s["answer"]), "right" if s["correct"] else "wrong") for s in mine]
        assert [(g[0], int(g[1])) for g in groups] == [(g["answer"], g["count"]) for g in per["groups"]]
        summary = box.locator("summary").first.text_content()
        assert f"gold {per['gold']}, chosen {per['weighted_bon']['answer']} " in summary
        assert summary.endswith("right" if per["weighted_bon"]["correct"] else "wrong")
    if results["method"] == "beam_search":  # the scripted beam search has both (DVTS keeps one beam per subtree)
        assert checked_blank and checked_duplicate
    # filters: by the chosen answer's correctness and by level
    wrong = sum(not p["weighted_bon"]["correct"] for p in results["per_problem"])
    page.select_option("#filter-correct", "wrong")
    assert page.locator("details.problem:visible").count() == wrong
    assert page.locator("#shown").text_content() == f"{wrong} of 3 problems shown"
    page.select_option("#filter-correct", "all")
    page.select_option("#filter-level", "3")
    assert page.locator("details.problem:visible").count() == sum(p["level"] == 3 for p in results["per_problem"])
    assert not errors and all(u.startswith("file://") for u in requests), (errors, requests)
    page.close()


def test_tree_viewer_keeps_a_script_tag_in_a_step_inert(tmp_path: Path, browser):
    """A step that writes ``</script>`` or ``<!--`` is shown as text and does not end the page's data."""
    from bestofn.report.tree_view import page_html, problem_nodes

    nodes = [{"unique_id": "u", "beam_id": 0, "parent_id": None, "iteration": 0, "text": "a </script><!-- <b>x</b>\n",
              "finish_reason": "stop", "step_rewards": [0.25], "score": 0.25}]
    data = {"rule": "weighted", "levels": False, "problems": [{
        "id": "u", "level": 0, "problem": "p", "gold": "1", "chosen": "1", "correct": True, "digits": 3,
        "subtrees": False, "groups": [], "pool": [], "nodes": problem_nodes(nodes, {}, "\n")}]}
    path = tmp_path / "page.html"
    path.write_text(page_html("t", "i", data))
    page = browser.new_page()
    page.goto(path.as_uri())
    assert not page.locator("#level-filter").is_visible()  # no levels: no level filter
    page.locator("details.problem > summary").click()
    page.locator("details.node > summary").click()
    assert page.locator("details.node > pre.text").text_content() == nodes[0]["text"]
    assert re.fullmatch(r"0\.250", page.locator("details.node .reward").text_content())
    page.close()
