"""Best-of-N with a process reward model, on one page.

This is the seed experiment of ``bestofn`` (Snell et al., 2024: weighted Best-of-N on MATH-500) written top to
bottom with the library's own step functions, for a reader who wants the method rather than the tool:

    1 data        load MATH-500 and draw a stratified subset of levels 1-3
    2 prompts     a chain-of-thought chat prompt: one reasoning step per line, the answer in \\boxed{}
    3 backends    one greedy solution per problem (the baseline) and N sampled ones
    4 grading     extract each solution's last \\boxed{} answer and judge it with math-verify
    5 prm         score every step of every sampled solution with the process reward model
    6 selection   majority vote, naive and weighted Best-of-N; pass@N as the oracle

``bestofn run`` does the same work in a run directory that survives kills, reruns and changed settings;
here everything stays in memory and nothing is written. Run it (a GPU makes the defaults take minutes):

    python examples/best_of_n.py --num-problems 20 --n 16

It reads MATH-500 from the Hub (``HuggingFaceH4/MATH-500``); offline, pass a local copy with ``--dataset FILE.jsonl``
(e.g. the 30-problem excerpt ``tests/data/math500_excerpt.jsonl``). A problem it can name (a missing file, an
unknown model) ends with one ``best_of_n.py: error: ...`` line, as ``bestofn`` does.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from bestofn.backends import make_backend, resolve_device, resolve_dtype
from bestofn.config import BestOfNConfig
from bestofn.data import load_math500, select_subset
from bestofn.errors import BestOfNError
from bestofn.grading import grade
from bestofn.prm import load_prm, step_separator
from bestofn.prompts import render_prompt
from bestofn.seeds import derived_seed
from bestofn.selection import METHOD_LABELS, METHODS, aggregate, choose_majority, choose_naive, choose_weighted, group_answers


def parse_args(argv: Sequence[str] | None = None) -> BestOfNConfig:
    """The flags of this page; every other setting keeps the library's default (the paper's baseline)."""
    defaults = BestOfNConfig()
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--generator", default=defaults.generator, help="policy model: Hub id or local folder")
    p.add_argument("--prm", default=defaults.prm, help="process reward model: Hub id or local folder")
    p.add_argument("--dataset", default=defaults.dataset, help="MATH-500: Hub id or local .jsonl/.parquet")
    p.add_argument("--num-problems", type=int, default=defaults.num_problems, help="problems in the subset")
    p.add_argument("--n", type=int, default=defaults.n, help="sampled solutions per problem (the N of Best-of-N)")
    p.add_argument("--max-new-tokens", type=int, default=defaults.max_new_tokens, help="longest solution, in tokens")
    p.add_argument("--device", default=defaults.device, help="cpu, cuda, ... (auto: cuda if available)")
    args = p.parse_args(argv)
    return BestOfNConfig(generator=args.generator, prm=args.prm, dataset=args.dataset, num_problems=args.num_problems,
                         n=args.n, max_new_tokens=args.max_new_tokens, device=args.device)


def main(argv: Sequence[str] | None = None) -> dict[str, list[bool]]:
    """Run the experiment and print the accuracy table; return each method's right/wrong per problem."""
    cfg = parse_args(argv)

    # --- Step 1: data. MATH-500, levels 1-3, a subset stratified by level. The draw ranks problems by a
    # hash of (seed, unique_id), so every machine draws the same problems for the same seed.
    problems = select_subset(load_math500(cfg.dataset, cfg.dataset_split), cfg.levels, cfg.num_problems, cfg.seed)
    print(f"{len(problems)} problems at levels {cfg.levels}; N={cfg.n}")

    # --- Step 2: prompts. The wording comes from the config; the chat template is the generator's own,
    # so the model sees the format it was tuned on. The PRM finds steps at its own separator (a newline
    # for Skywork, a blank line for the other formats), and the system prompt asks for exactly that; the
    # separator is read from the PRM's config.json alone, before any model is loaded.
    separator = step_separator(cfg.prm, cfg.prm_format, cfg.prm_revision)
    generator = make_backend(cfg)
    prompts = [render_prompt(generator.tokenizer, p.problem, cfg.system_prompt, cfg.user_template, separator)
               for p in problems]

    # --- Step 3: generation. Greedy decoding is the baseline Best-of-N must beat; the N samples are drawn
    # at the config's temperature (0.8) with nothing else shaping the distribution (top_p 1.0).
    greedy = generator.generate(prompts, n=1, temperature=0.0, top_p=1.0, max_new_tokens=cfg.max_new_tokens,
                                seed=derived_seed(cfg.seed, "greedy"))
    samples = generator.generate(prompts, n=cfg.n, temperature=cfg.temperature, top_p=cfg.top_p,
                                 max_new_tokens=cfg.max_new_tokens, seed=derived_seed(cfg.seed, "samples"))
    generator.close()  # free its memory: the PRM comes next, on the same device

    # --- Step 4: grading. Every solution's answer is the content of its last \boxed{}; math-verify judges it
    # against the reference (so 0.5 = \frac{1}{2}). Selection never sees these verdicts: they only score it.
    greedy_graded = [grade(c[0].text, p.answer, cfg.grading_timeout) for p, c in zip(problems, greedy)]
    graded = [[grade(c.text, p.answer, cfg.grading_timeout) for c in cs] for p, cs in zip(problems, samples)]

    # --- Step 5: PRM scores. One reward per step; a solution's reward is its last step's score by default
    # (``aggregation: last``): that score has read the whole solution.
    device = resolve_device(cfg.device)
    prm = load_prm(cfg.prm, device=device, dtype=resolve_dtype(cfg.dtype, device), format=cfg.prm_format)
    flat = prm.score([p.problem for p in problems for _ in range(cfg.n)], [c.text for cs in samples for c in cs])
    rewards = [[aggregate(steps, cfg.aggregation) for steps in flat[k * cfg.n : (k + 1) * cfg.n]]
               for k in range(len(problems))]

    # --- Step 6: selection. Answers are grouped by mathematical equivalence once per problem; then
    #   majority vote  = the largest group (self-consistency, no PRM),
    #   naive Best-of-N = the single highest-reward solution,
    #   weighted Best-of-N = the group with the largest summed reward (the paper's rule),
    # and each rule names the solution it chose, whose own grade is the verdict.
    solved: dict[str, list[bool]] = {m: [] for m in METHODS}
    for k, p in enumerate(problems):
        answers = [g["answer"] for g in graded[k]]
        groups = group_answers(answers, timeout=cfg.grading_timeout)
        choices = {"majority": choose_majority(answers, rewards[k], groups=groups),
                   "naive_bon": choose_naive(answers, rewards[k], groups=groups),
                   "weighted_bon": choose_weighted(answers, rewards[k], groups=groups)}
        solved["greedy"].append(greedy_graded[k]["correct"])
        for method, choice in choices.items():
            solved[method].append(choice is not None and graded[k][choice.sample_index]["correct"])
        solved["pass_at_n"].append(any(g["correct"] for g in graded[k]))  # the oracle: the ceiling of every rule

    # --- The table: accuracy of each method over the subset.
    print(f"{'method':<22} {'accuracy':>8}  solved")
    for method in METHODS:
        right = sum(solved[method])
        print(f"{METHOD_LABELS[method]:<22} {right / len(problems):>8.1%}  {right}/{len(problems)}")
    return solved


def cli(argv: Sequence[str] | None = None) -> int:
    """:func:`main` as a command: a problem the user can fix is one line on stderr (exit code 2), not a traceback."""
    try:
        main(argv)
    except BestOfNError as e:
        print(f"best_of_n.py: error: {' '.join(str(e).splitlines())}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(cli())
