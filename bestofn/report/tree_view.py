"""The search-tree viewer: ``report/search_tree.html``, one self-contained page per beam search or DVTS run.

Per problem, the tree of every step the search generated (``tree.jsonl``) with texts, rewards and marks, the final
pool and its answer groups, and the chosen answer against the gold one: JSON in ``templates/search_tree.html``,
whose few lines of JavaScript draw and filter it offline, with no server.
"""

from __future__ import annotations

import html
import json
from pathlib import Path
from typing import Any

from ..data import has_levels
from ..io import atomic_write_text, read_jsonl
from ..methods import RUN_METHOD_LABELS
from ..prm.formats import LINE, split_steps
from ..rundir import FILES
from . import analysis as A
from .render import reward_digits

PAGE = "search_tree.html"
DVTS = "dvts"  # its nodes carry the independent subtree they belong to
TEMPLATE = Path(__file__).resolve().parents[1] / "templates" / PAGE


def scored_steps(text: str, separator: str) -> list[str]:
    """The steps the PRM rewards in a partial solution: without trailing separators, which the search does not
    score (they would read as one more, empty, step; see docs/search.md)."""
    while separator and text.endswith(separator):
        text = text[: -len(separator)]
    return split_steps(text, separator) if text else []


def node_marks(nodes: list[dict], pool: set[int]) -> list[str]:
    """Each node's mark: ``pool`` (a final solution), ``finished`` (ended, not among the best N), ``kept``
    (expanded), ``duplicate`` (same text as a better-ranked beam, expanded in its stead), ``pruned``."""
    parents = {n["parent_id"] for n in nodes}
    rules = (("pool", lambda n: n["beam_id"] in pool), ("finished", lambda n: n["finish_reason"] != "delimiter"),
             ("duplicate", lambda n: n.get("duplicate_of") is not None), ("kept", lambda n: n["beam_id"] in parents))
    return [next((mark for mark, applies in rules if applies(n)), "pruned") for n in nodes]  # the first that applies


UNSET = {7: "", 8: [], 9: 0}  # no lookahead text, no lookahead rewards, subtree 0: left out of a node's row


def problem_nodes(nodes: list[dict], pool: dict[int, int], separator: str) -> list[list[Any]]:
    """The nodes of one problem as compact rows (index = beam_id): parent, iteration, text, the rewards of the
    steps the node completes, score, mark, duplicate_of, lookahead text and its rewards, subtree, pool index,
    and (only where the node completes other than one step, e.g. a blank line before it) those steps' texts."""
    by_id = {n["beam_id"]: n for n in nodes}
    if sorted(by_id) != list(range(len(nodes))):
        raise ValueError(f"tree.jsonl: the nodes of {nodes[0]['unique_id']} are not numbered 0..{len(nodes) - 1}")
    ordered = [by_id[i] for i in range(len(nodes))]
    prefix: dict[int, str] = {}
    for i, n in enumerate(ordered):  # a parent is always generated before its children
        prefix[i] = (prefix[n["parent_id"]] if n["parent_id"] is not None else "") + n["text"]
    rows = []
    for i, (n, mark) in enumerate(zip(ordered, node_marks(ordered, set(pool)))):
        before = len(scored_steps(prefix[n["parent_id"]], separator)) if n["parent_id"] is not None else 0
        steps = scored_steps(prefix[i], separator)
        rewards, own = n["step_rewards"], steps[before:]
        row = [n["parent_id"], n["iteration"], n["text"], rewards[before:len(steps)], n["score"], mark,
               n.get("duplicate_of"), n.get("lookahead_text", ""), rewards[len(steps):], n.get("subtree", 0),
               pool.get(i), None if len(own) == 1 and own[0] == n["text"].removesuffix(separator) else own]
        while len(row) > 7 and (row[-1] is None or row[-1] == UNSET.get(len(row) - 1)):  # the page's defaults
            row.pop()
        rows.append(row)
    return rows


def viewer_data(an: A.Analysis, method: str, rule: str) -> dict[str, Any]:
    """Everything the page shows, per problem in run order."""
    run_dir = an.run.run_dir
    separator = an.run.manifest.get("step_separator") or LINE
    tree: dict[str, list[dict]] = {}
    for node in read_jsonl(run_dir / FILES["tree"]):
        tree.setdefault(node["unique_id"], []).append(node)
    beams = {(r["unique_id"], r["sample_index"]): r["beam_id"] for r in read_jsonl(run_dir / FILES["samples"])}
    outcomes = {o.unique_id: o for o in an.outcomes}
    how = an.run.reward_aggregation
    problems = []
    for p in an.run.problems:
        out = outcomes[p.unique_id]
        rewards = p.rewards(how)
        pool = {beams[(p.unique_id, i)]: i for i in range(len(p.answers))}
        nodes = problem_nodes(tree.get(p.unique_id, []), pool, separator) if p.unique_id in tree else []
        chosen = {m: getattr(out, m).answer for m in A.SELECTION_METHODS}
        groups = [[g["answer"], g["count"], g["reward_sum"], g["correct"],
                   ", ".join(A.METHOD_LABELS[m].split(" ")[0] for m, a in chosen.items()
                             if a is not None and a in {p.answers[i] for i in g["indices"]})] for g in out.groups]
        values = [*rewards, *(g[2] for g in groups), *(x for n in nodes for x in (*n[3], n[4], *(n[8] if len(n) > 8 else ())))]
        problems.append({
            "id": p.unique_id, "level": p.level, "problem": p.problem, "gold": p.gold,
            "chosen": str(out.weighted_bon.answer), "correct": bool(out.weighted_bon.correct),
            "digits": reward_digits(values), "groups": groups, "nodes": nodes, "subtrees": method == DVTS,
            "pool": [[i, beam, p.answers[i], None if p.labels[i] < 0 else int(p.labels[i]), float(rewards[i]),
                      bool(p.correct[i])] for beam, i in sorted(pool.items(), key=lambda kv: kv[1])],
        })
    return {"rule": rule, "levels": has_levels(an.run.problems), "problems": problems}


def write_tree_view(an: A.Analysis, out_dir: str | Path, title: str, method: str, rule: str) -> Path:
    """Write ``search_tree.html`` into ``out_dir`` and return its path (``rule``: the label of the selection
    rule whose answer is shown as chosen)."""
    intro = (f"Every step the {RUN_METHOD_LABELS[method]} generated, per problem (open one to draw its tree). Marks: pool (one of "
             f"the final solutions), finished (ended, not among the best N), kept (expanded), pruned, duplicate (the "
             f"same partial solution as a better-ranked beam). A node's reward is its last step's; its score is what "
             f"ranked it. Filters keep problems whose chosen answer is right or wrong, and a level.")
    path = Path(out_dir) / PAGE
    atomic_write_text(path, page_html(title, intro, viewer_data(an, method, rule)))
    return path


def page_html(title: str, intro: str, data: dict[str, Any]) -> str:
    """The template with its title, introduction and data (JSON, with every ``<`` escaped so that no
    ``</script>`` or ``<!--`` in a solution can end the script element)."""
    text = json.dumps(data, ensure_ascii=False, separators=(",", ":")).replace("<", "\\u003c")
    return (TEMPLATE.read_text().replace("__TITLE__", html.escape(title)).replace("__INTRO__", html.escape(intro))
            .replace("__DATA__", text))
