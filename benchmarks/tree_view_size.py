"""The size of the search-tree viewer (``report/search_tree.html``) for MATH-500 x N=16 beam search.

Builds a synthetic ``tree.jsonl`` in the shape a real beam search writes (N=16 beams, beam width M=4: 16
candidates per iteration, a finished beam leaves the search, solutions of 8-30 steps of 20-160 characters
with LaTeX, "\\n" steps as with Skywork, rewards as floats), turns it into the page's data with the viewer's
own code (:func:`bestofn.report.tree_view.problem_nodes`, :func:`~bestofn.report.tree_view.page_html`) and
prints the page's size. Target (issue 29): under 20 MB.

    python benchmarks/tree_view_size.py [--problems 500] [--n 16] [--beam-width 4] [--out page.html]
"""

from __future__ import annotations

import argparse
import random
from pathlib import Path

from bestofn.report.tree_view import page_html, problem_nodes

WORDS = ("we", "have", "so", "the", "of", "is", "and", "then", "\\frac{1}{2}", "x^2", "=", "+", "$", "\\cdot",
         "therefore", "sum", "\\sqrt{3}", "(a+b)", "gives", "solve", "for", "value", "2", "7", "13")


def step_text(rng: random.Random) -> str:
    """One line of a solution: 20-160 characters of words and LaTeX, ended by the step separator."""
    out: list[str] = []
    target = rng.randint(20, 160)
    while sum(len(w) + 1 for w in out) < target:
        out.append(rng.choice(WORDS))
    return " ".join(out) + "\n"


def problem_tree(uid: str, n: int, width: int, rng: random.Random, iterations: int = 40) -> tuple[list[dict], list[int]]:
    """Beam search's nodes for one problem and the final pool (beam_ids): keep n/M beams, M children each."""
    nodes: list[dict] = []
    lengths = {}  # beam_id -> steps in its solution
    frontier: list[int | None] = [None] * n  # the first iteration samples n first steps
    pool: list[int] = []
    for it in range(iterations):
        born = []
        for parent in frontier:
            for _ in range(1 if parent is None else width):
                depth = 1 + (lengths[parent] if parent is not None else 0)
                ends = depth >= rng.randint(8, 30) or it == iterations - 1
                text = step_text(rng) if not ends else step_text(rng).rstrip("\n") + " $\\boxed{" + str(rng.randint(1, 9)) + "}$."
                rewards = [round(rng.random(), 6) for _ in range(depth)]
                node = {"unique_id": uid, "beam_id": len(nodes), "parent_id": parent, "iteration": it, "text": text,
                        "finish_reason": "stop" if ends else "delimiter", "step_rewards": rewards,
                        "score": rewards[-1], "lookahead_text": "", "duplicate_of": None, "subtree": 0}
                lengths[node["beam_id"]] = depth
                nodes.append(node)
                born.append(node)
        pool += [b["beam_id"] for b in born if b["finish_reason"] != "delimiter"]
        going = sorted((b for b in born if b["finish_reason"] == "delimiter"), key=lambda b: -b["score"])
        if len(pool) >= n or not going:
            break
        frontier = [b["beam_id"] for b in going[: n // width]]
    return nodes, sorted(pool, key=lambda i: -nodes[i]["score"])[:n]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--problems", type=int, default=500)
    parser.add_argument("--n", type=int, default=16)
    parser.add_argument("--beam-width", type=int, default=4)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", type=Path, default=None, help="also write the page here")
    args = parser.parse_args()
    rng = random.Random(args.seed)
    problems, total_nodes = [], 0
    for k in range(args.problems):
        uid = f"test/algebra/{k}.json"
        nodes, pool = problem_tree(uid, args.n, args.beam_width, rng)
        total_nodes += len(nodes)
        rows = problem_nodes(nodes, {beam: i for i, beam in enumerate(pool)}, "\n")
        problems.append({"id": uid, "level": 1 + k % 5, "problem": "A problem statement of a few lines. " * 6,
                         "gold": "7", "chosen": "7", "correct": bool(k % 2), "digits": 6, "subtrees": False,
                         "groups": [[str(a), 4, 2.5, a == 7, ""] for a in range(1, 5)],
                         "pool": [[i, beam, "7", 0, nodes[beam]["score"], True] for i, beam in enumerate(pool)],
                         "nodes": rows})
    page = page_html("Search tree: synthetic MATH-500", "synthetic", {"rule": "weighted", "levels": True,
                                                                       "problems": problems})
    size = len(page.encode("utf-8"))
    print(f"{args.problems} problems x N={args.n} (beam width {args.beam_width}): {total_nodes:,} nodes "
          f"({total_nodes / args.problems:.0f} per problem), page {size / 1e6:.1f} MB")
    if args.out:
        args.out.write_text(page)


if __name__ == "__main__":
    main()
