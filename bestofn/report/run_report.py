"""``bestofn report RUN_DIR``: plots and a written analysis of what Best-of-N (or a search) buys over greedy.

Every figure and sentence is computed from the run directory (:mod:`bestofn.report.analysis`), written as Markdown
and saved as ``report.md`` with its PNGs and as one self-contained ``report.html``.
"""

from __future__ import annotations

import html
from collections.abc import Callable, Sequence
from pathlib import Path

from matplotlib.figure import Figure

from ..provenance import NOT_STATED, SUBSET, Provenance
from ..data import dataset_title, has_levels, subset_note
from ..methods import BEST_OF_N, RUN_METHOD_LABELS, SEARCH_METHODS
from ..prm.formats import LINE, split_steps
from ..rundir import record_written
from ..selection import AGGREGATIONS
from . import adaptive as stopping
from . import analysis as A
from . import plots as P
from .compute import add_compute_section
from .tree_view import PAGE as TREE_PAGE, write_tree_view
from .render import Page, bullets, code, details, fenced, output_lock, reward_digits, table, write_page

SOLUTION_CHARS = 6000  # longer solutions are cut in the report (the full text is in samples.jsonl)
STEP_VIEWER_PROBLEMS = 6  # problems shown in the step-reward viewer
STEP_CHARS = 400  # longer steps are cut in the viewer


# --- Numbers and names as text ----------------------------------------------------------------------------------------
def pct(x: float) -> str:
    return f"{100 * x:.1f}%"


def with_ci(e: A.Estimate) -> str:
    """``55.0% [40.0, 70.0]``: accuracy with its 95% interval, in percent."""
    return f"{100 * e.value:.1f}% [{100 * e.low:.1f}, {100 * e.high:.1f}]"


def points(e: A.Estimate) -> str:
    """A difference of accuracies in percentage points, with its interval: ``+10.0 points (95% CI -5.0 to +25.0)``."""
    return f"{100 * e.value:+.1f} points (paired bootstrap 95% CI {100 * e.low:+.1f} to {100 * e.high:+.1f})"


def tokens_text(value: float | None) -> str:
    """A token count, or "unavailable" when the run does not know it (never 0 or nan)."""
    return "unavailable" if value is None else f"{value:,.0f}"


def cap(text: str) -> str:
    """The first letter upper-cased (the rest kept: ``DVTS``, ``Best-of-16``)."""
    return text[:1].upper() + text[1:]


def plural(count: int, noun: str) -> str:
    """``1 problem``, ``3 problems``."""
    return f"{count} {noun}{'' if count == 1 else 's'}"


def id_list(ids: Sequence[str], limit: int = 8) -> str:
    shown = ", ".join(code(P.short_id(i)) for i in ids[:limit])
    return shown + (f" and {len(ids) - limit} more" if len(ids) > limit else "")


def level_count(an: A.Analysis, level: int) -> int:
    return sum(o.level == level for o in an.outcomes)


def reward_format(values: Sequence[float]) -> Callable[[float], str]:
    """Rewards written with enough decimals to rank them (:func:`~bestofn.report.render.reward_digits`)."""
    digits = reward_digits(values)
    return lambda v: f"{v:.{digits}f}"


def run_method(an: A.Analysis) -> str:
    """How the run made its solutions (``results.json``'s ``method``): ``best_of_n``, ``beam_search``, ``dvts``."""
    return str(an.run.results.get("method") or an.run.config.get("method") or BEST_OF_N)


def is_search(an: A.Analysis) -> bool:
    """A search's N solutions are its final pool: subsets of it are not what a smaller search would give."""
    return run_method(an) in SEARCH_METHODS


def pool_words(an: A.Analysis) -> tuple[str, str]:
    """Where a right answer was (``sampled``, or ``in the pool`` of a search) and what one solution is called."""
    return ("in the pool", "solution") if is_search(an) else ("sampled", "sample")


def method_text(an: A.Analysis) -> str:
    """``Best-of-16``, or ``beam search (N=16, beam width 4, at most 40 iterations, lookahead 0)``."""
    cfg, n = an.run.config, an.run.n
    if not is_search(an):
        return f"Best-of-{n}"
    return (f"{RUN_METHOD_LABELS[run_method(an)]} (N={n}, beam width {cfg.get('beam_width')}, at most "
            f"{cfg.get('num_iterations')} iterations, lookahead {cfg.get('lookahead')})")


def labeller(an: A.Analysis) -> Callable[[str], str]:
    """A rule's label for this run: ``weighted Best-of-16``; for a search, ``weighted pick from the pool``."""
    n, pool = an.run.n, is_search(an)
    return lambda m: (A.METHOD_LABELS[m].replace("Best-of-N", "pick from the pool" if pool else f"Best-of-{n}")
                      .replace("pass@N", f"pass@{n} of the pool" if pool else f"pass@{n}"))


def comparison_text(c: A.Comparison, name: Callable[[str], str]) -> str:
    """A paired comparison worded so its parts cannot disagree: the informative problems, the split, the exact
    McNemar p (the only verdict), and the size of the difference with its interval (not a second verdict)."""
    a, b = name(c.a), name(c.b)
    if not c.informative:
        return f"{cap(a)} and {b} solved exactly the same problems (0 informative problems): no evidence either way."
    verdict = ("a split this uneven is unlikely if both were equally accurate (significant at 5%)" if c.significant
               else "not significant at 5%")
    floor = A.min_informative_for_significance()
    if not c.significant and c.informative < floor:
        verdict += f"; with {c.informative} informative problems no split could be (it takes at least {floor})"
    return (f"{plural(c.informative, 'informative problem')} (solved by exactly one of {a} and {b}): {a} won "
            f"{len(c.only_a)}, lost {len(c.only_b)}; exact McNemar p = {c.p_value:.3g}, {verdict}. "
            f"Difference in accuracy: {points(c.difference)}.")


def model_name(name: str) -> str:
    """``Qwen/Qwen2.5-1.5B-Instruct`` or ``/models/qwen`` -> its last path part."""
    return Path(str(name).rstrip("/")).name or str(name)


def dataset_name(cfg: dict) -> str:
    """The benchmark a run's config names (``GSM8K``, ``MATH-500``), else its file's or Hub dataset's name."""
    return dataset_title(str(cfg.get("dataset", "?")))


# --- Title and setup --------------------------------------------------------------------------------------------------
def title(an: A.Analysis) -> str:
    """The models, N and the dataset: what the run is, not where it is stored."""
    cfg = an.run.config
    scorer = f" + {model_name(cfg['prm'])}" if cfg.get("prm") else ""
    return (f"{cap(method_text(an))} on {dataset_name(cfg)} ({len(an.run.problems)} problems): "
            f"{model_name(cfg.get('generator', '?'))}{scorer}")


def _setup(page: Page, an: A.Analysis) -> None:
    cfg, run, search = an.run.config, an.run, is_search(an)
    levels = ", ".join(f"{P.level_name(lvl)}: {level_count(an, lvl)}" for lvl in run.levels)
    levels = f" ({levels})" if has_levels(run.problems) else ""
    known = Provenance.from_manifest(run.manifest)  # an imported run knows only what its input stated
    setting = lambda key: known.setting(key, cfg.get(key))  # noqa: E731
    model = lambda key: code(cfg.get(key, "?")) if known.stated(key) else NOT_STATED  # noqa: E731
    chosen = (f"drawn by `bestofn` with seed {cfg.get('seed')}: {subset_note(run.problems)}" if known.stated(SUBSET)
              else f"as given by the imported input (how they were chosen: {NOT_STATED})")
    items = [f"problems: {len(run.problems)}{levels} from {code(cfg.get('dataset', '?'))}, {chosen}"]
    if search:
        duplicates = (", identical partial solutions expanded once"
                      if cfg.get("filter_duplicates") and run_method(an) == "beam_search" else "")
        items.append(f"method: {method_text(an)}{duplicates}; beams ranked by the {code(run.reward_aggregation)} "
                     f"of their step rewards; the final pool of {run.n} finished solutions per problem is what "
                     f"the selection rules choose from (every step the search made is in `tree.jsonl`)")
    items += [
        f"{'solutions' if search else 'samples'} per problem N = {run.n}, temperature {setting('temperature')}, top-p "
        f"{setting('top_p')}, max new tokens {setting('max_new_tokens')}, seed {setting('seed')}, backend "
        f"{setting('backend')}",
        f"generator: {model('generator')}; reward model: {model('prm')}",
        f"reward aggregation for selection: {code(run.reward_aggregation)}"
        + (" (the rewards have one score per solution, so every aggregation is the same)" if run.one_score else ""),
    ]
    if known.is_imported:
        items.append(f"completions imported with `bestofn import` from {code(known.source)}"
                     + ("" if run.has_greedy else "; no greedy solutions (so no greedy baseline)")
                     + f"; the prompt (system and user message): {NOT_STATED}")
    items.append(f"run directory: {code(run.run_dir)}")
    subsets = "" if search else f"{an.curves.subsets} subsets per point, seed {an.curves.seed}, "
    items.append(f"report settings: {subsets}{an.bootstrap} bootstrap resamples")
    page.heading(2, "Setup")
    page.add(bullets(items))


# --- The written analysis ---------------------------------------------------------------------------------------------
def headline(an: A.Analysis) -> str:
    """One paragraph: the main accuracies, and on how many problems selection could and did matter."""
    n, m, name, (where, one) = an.run.n, an.matters, labeller(an), pool_words(an)
    solved = {k: A.solved_counts(an.outcomes, k) for k in an.methods}
    baseline = (f"against greedy's {solved['greedy']} ({with_ci(an.at_full_n('greedy'))}) and "
                if an.run.has_greedy else "against ")
    unanimous = f"on the other {len(m.unanimous)} every sample with an answer agreed"
    if m.no_answer:
        unanimous += f" and on {len(m.no_answer)} no sample had an answer"
    return (
        f"**Headline.** On {len(an.run.problems)} {dataset_name(an.run.config)} problems with "
        + (f"{method_text(an)}, a final pool of {n} solutions each, " if is_search(an) else f"N={n} samples each, ")
        + f"{name('weighted_bon')} solved {solved['weighted_bon']} ({with_ci(an.at_full_n('weighted_bon'))}) "
        f"{baseline}majority vote's {solved['majority']} ({with_ci(an.at_full_n('majority'))}). "
        f"Selection could matter on {plural(len(m.contested), 'problem')} (more than one answer group); {unanimous}. "
        f"On {plural(len(m.missed), 'problem')} a right answer was {where} but not chosen; on {len(m.none_right)} no "
        f"{one} was right (pass@{n} {with_ci(an.at_full_n('pass_at_n'))})."
    )


def written_analysis(an: A.Analysis) -> list[str]:
    """A few paragraphs stating what the numbers show, each claim with its size and its evidence."""
    total, name, search = len(an.run.problems), labeller(an), is_search(an)
    solved = {m: A.solved_counts(an.outcomes, m) for m in an.methods}
    out = [headline(an)]
    if an.run.has_greedy:
        wg = an.comparisons["weighted_bon-greedy"]
        flips = f" Won: {id_list(wg.only_a) or 'none'}. Lost: {id_list(wg.only_b) or 'none'}." if wg.informative else ""
        out.append(f"**Gain over greedy.** {comparison_text(wg, name)}{flips}")
    wm, wn = an.comparisons["weighted_bon-majority"], an.comparisons["weighted_bon-naive_bon"]
    out.append(f"**PRM vs majority vote.** Majority vote alone solved {solved['majority']}/{total}. "
               f"{comparison_text(wm, name)}" + ("" if search else f" {_curve_comparison(an)}"))
    out.append(f"**Weighted vs naive {'selection' if search else 'Best-of-N'}.** {cap(name('naive_bon'))} (trust the "
               f"single highest-reward solution) solved {solved['naive_bon']}/{total}. {comparison_text(wn, name)}")
    out += [_prm_paragraph(an), _search_cost_paragraph(an) if search else _compute_paragraph(an)]
    if len(an.run.levels) > 1:
        parts = [f"{P.level_name(lvl)} ({plural(level_count(an, lvl), 'problem')}): "
                 + (f"{pct(an.by_level[lvl]['greedy'][-1].value)} -> " if an.run.has_greedy else "")
                 + pct(an.by_level[lvl]["weighted_bon"][-1].value) for lvl in an.run.levels]
        out.append(f"**By level** ({'greedy -> ' if an.run.has_greedy else ''}{name('weighted_bon')}): "
                   + "; ".join(parts) + ".")
    out.append("**Grading.** " + "; ".join(
        f"{c.source}: math-verify accepts {c.math_verify}/{c.total} answers, plain string matching "
        f"{c.string_match}/{c.total} ({c.only_math_verify} only math-verify accepts"
        + (f", {c.only_string_match} only string matching accepts" if c.only_string_match else "") + ")"
        for c in an.checks) + ". Accuracies in this report use math-verify.")
    return out


def _curve_comparison(an: A.Analysis) -> str:
    """Where along n the PRM's weights beat plain votes (means only; see the table for intervals)."""
    diffs = [(n, w.value - m.value) for n, w, m in zip(an.ns, an.accuracy["weighted_bon"], an.accuracy["majority"])]
    ahead, behind = [str(n) for n, d in diffs if d > 1e-9], [str(n) for n, d in diffs if d < -1e-9]
    parts = ([f"weighted was ahead of majority at N = {', '.join(ahead)}"] if ahead else []) + (
        [f"behind at N = {', '.join(behind)}"] if behind else [])
    if not parts:
        return "Along the curve, weighted and majority vote had the same mean accuracy at every N."
    return "Along the curve (subset means), " + " and ".join(parts) + "."



def _prm_paragraph(an: A.Analysis) -> str:
    how, s = an.run.reward_aggregation, an.prm[an.run.reward_aggregation]
    what = "the solution reward" if an.run.one_score else f"the solution reward ({how} of the step rewards)"
    if s.auroc is None:
        right = len(s.correct_rewards)
        detector = (f"The AUROC of {what} is undefined: all {right + len(s.incorrect_rewards)} scored samples are "
                    f"{'right' if right else 'wrong'}.")
    else:
        ci = f" (95% CI {s.auroc_ci[0]:.3f}-{s.auroc_ci[1]:.3f})" if s.auroc_ci else ""
        within = (f"; within a problem, which is what selection needs, it is {s.within_auroc:.3f} (mean over the "
                  f"{plural(s.within_problems, 'problem')} with both right and wrong samples)"
                  if s.within_auroc is not None
                  else "; no problem had both right and wrong samples, so the within-problem AUROC is undefined")
        detector = f"As a correctness detector, {what} has AUROC {s.auroc:.3f}{ci}{within}."
    text = (f"**The reward model.** {detector} Calibration: expected calibration error {an.calibration.ece:.3f} over "
            f"{an.calibration.total} solutions ({A.CALIBRATION_BINS} equal bins; the reliability diagram shows where "
            f"the reward over- or under-states the chance of being right).")
    if an.run.one_score:
        return (f"{text} The rewards have one score per solution (an outcome reward, or solutions without step "
                f"breaks): the aggregations `last`, `min`, `prod` and `mean` all give the same reward, so the report "
                f"does not compare them and shows no per-step views.")
    full = {h: an.aggregation[h]["weighted_bon"][-1].value for h in AGGREGATIONS}
    best = max(full.values())
    if all(v == best for v in full.values()):
        return f"{text} The {labeller(an)('weighted_bon')} reaches {pct(best)} under every aggregation."
    ranking = ", ".join(f"{h} {pct(v)}" for h, v in sorted(full.items(), key=lambda kv: -kv[1]))
    return f"{text} The {labeller(an)('weighted_bon')} by aggregation: {ranking} (this run selects with {code(how)})."


def _compute_paragraph(an: A.Analysis) -> str:
    if an.mean_tokens is None:
        return ("**Cost.** Token counts are unavailable for this run (the completions came without them), so the "
                "report shows no cost figures.")
    text = f"**Cost.** Best-of-{an.run.n} generated {an.mean_tokens[-1]:,.0f} tokens per problem on average"
    if an.greedy_mean_tokens:
        text += f", {an.mean_tokens[-1] / an.greedy_mean_tokens:.1f}x greedy's {an.greedy_mean_tokens:,.0f}"
    text += " (PRM scoring reads them once more and is not counted)."
    if len(an.ns) > 1:
        gain = an.accuracy["weighted_bon"][-1].value - an.accuracy["weighted_bon"][-2].value
        text += (f" Going from N={an.ns[-2]} to N={an.run.n} cost {an.mean_tokens[-1] - an.mean_tokens[-2]:,.0f} more "
                 f"tokens per problem for {100 * gain:+.1f} points of weighted Best-of-N accuracy (subset means).")
    return text


def _search_cost_paragraph(an: A.Analysis) -> str:
    """A search's cost is every step it generated (pruned beams and lookahead included), not its pool's length."""
    per_problem = (an.run.results.get("compute") or {}).get("generated_tokens_per_problem")
    if per_problem is None:
        text = "**Cost.** The search's generated-token count is unavailable for this run."
    else:
        text = (f"**Cost.** The {RUN_METHOD_LABELS[run_method(an)]} generated {per_problem:,.0f} tokens per problem on "
                f"average (every step it made, pruned beams and lookahead included)")
        if an.greedy_mean_tokens:
            text += f", {per_problem / an.greedy_mean_tokens:.1f}x greedy's {an.greedy_mean_tokens:,.0f}"
        text += "."
    return (text + f" A search's results are at its N ({an.run.n}): a subset of its final pool is not what a search "
            f"with fewer beams would find, so this report draws no accuracy-vs-N curve. For accuracy at equal N "
            f"and at equal compute against Best-of-N and the other search, run each at several N and put the runs "
            f"side by side with `bestofn compare RUN_DIR... --output-dir OUT` (docs/search.md).")


# --- Sections ---------------------------------------------------------------------------------------------------------
def _accuracy_section(page: Page, an: A.Analysis) -> None:
    n, name = an.run.n, labeller(an)
    if is_search(an):
        page.heading(2, f"Accuracy at N={n}")
        page.para(f"What each rule chose from the {RUN_METHOD_LABELS[run_method(an)]}'s final pool of {n} solutions "
                  f"per problem (95% Wilson intervals over the {len(an.run.problems)} problems). No curve over "
                  f"smaller N: see the cost paragraph above and `bestofn compare`.")
        page.add(table(["rule", "accuracy"], [[name(m), with_ci(an.at_full_n(m))] for m in an.methods]))
        return
    page.heading(2, "Accuracy vs N")
    page.image("accuracy_vs_n.png", "Accuracy vs N")
    page.para(
        f"Each point is the mean over problems of the expected accuracy over up to {an.curves.subsets} random N-subsets "
        f"(drawn without replacement from the {n} samples; all subsets when there are fewer; subset seed "
        f"{an.curves.seed}). Brackets and bands: 95% Wilson intervals over the {len(an.run.problems)} problems. "
        f"Curves that coincide are drawn once and labelled \"a = b\".")
    tokens = an.mean_tokens or [None] * len(an.ns)
    page.add(table(["N", "tokens / problem", *(name(m) for m in an.methods)],
                   [[k, tokens_text(t), *(with_ci(an.accuracy[m][i]) for m in an.methods)]
                    for i, (k, t) in enumerate(zip(an.ns, tokens))]))


def _selection_section(page: Page, an: A.Analysis) -> None:
    m, name, (where, one) = an.matters, labeller(an), pool_words(an)
    page.heading(2, "Where selection matters")
    page.para(
        f"**{len(m.contested)} of {len(an.outcomes)} problems have more than one answer group**: only there can the "
        f"rules disagree, and they picked different answers on {plural(len(m.rules_disagree), 'problem')}. "
        f"On {plural(len(m.missed), 'problem')} a right answer was {where} but {name('weighted_bon')} chose another"
        f"{' (' + id_list(m.missed) + ')' if m.missed else ''}; on {len(m.none_right)} no {one} was right, so no rule "
        f"could help.")
    quiet = [o for o in an.outcomes if not o.contested]
    if quiet:
        page.add(details(f"{len(quiet)} problems without a choice to make: {len(m.unanimous)} unanimous "
                         f"({sum(o.pass_at_n for o in quiet)} of them right), {len(m.no_answer)} without any answer",
                         ", ".join(code(P.short_id(o.unique_id)) for o in quiet)))
    if not m.contested:
        return
    page.image("selection.png", "Problems with more than one answer group, solved or not by each method")
    by_problem = {p.unique_id: p for p in an.run.problems}
    by_id = {o.unique_id: o for o in an.outcomes}
    for uid in sorted(m.contested, key=lambda u: (not by_id[u].missed, by_id[u].level, u)):
        _problem_block(page, by_id[uid], by_problem[uid], an)


def ties(out: A.ProblemOutcome) -> dict[str, str]:
    """The rules whose top answer groups tie (a 2-2 majority): ``{"majority": "2-2 tie"}``. The rules break a tie
    by the group that appears first (:func:`bestofn.selection.heaviest_group`), which says nothing of the answers."""
    found = {}
    for method, key in (("majority", "count"), ("weighted_bon", "reward_sum")):
        values = sorted((g[key] for g in out.groups), reverse=True)
        if len(values) > 1 and abs(values[0] - values[1]) <= 1e-12:
            tied = sum(abs(v - values[0]) <= 1e-12 for v in values)
            found[method] = ("-".join(str(values[0]) for _ in range(tied)) if key == "count" else f"{tied}-way") + " tie"
    return found


def _problem_block(page: Page, out: A.ProblemOutcome, p: A.ProblemData, an: A.Analysis) -> None:
    name, tied = labeller(an), ties(out)
    tag = f" - right answer {pool_words(an)[0]}, not chosen" if out.missed else ""
    where = ([P.level_name(out.level)] if has_levels(an.run.problems) else []) + ([out.subject] if out.subject else [])
    page.heading(4, f"{P.short_id(out.unique_id)}{' (' + ', '.join(where) + ')' if where else ''}{tag}")
    picks = [f"{name(k)}: {code(getattr(out, k).answer)} ({'right' if getattr(out, k).correct else 'wrong'})"
             + (f", a {tied[k]} (broken by the group that appears first)" if k in tied else "")
             for k in ("greedy", *A.SELECTION_METHODS) if getattr(out, k) is not None]
    page.add(bullets([f"gold answer: {code(out.gold)}; right {pool_words(an)[1]}s: {out.num_correct}/{an.run.n}",
                      "; ".join(picks)]))
    rewards = p.rewards(an.run.reward_aggregation)
    fmt = reward_format([*rewards, *(g["reward_sum"] for g in out.groups)])
    rows = []
    for g in out.groups:
        answers = {p.answers[i] for i in g["indices"]}
        chosen_by = ", ".join(A.METHOD_LABELS[k].split(" ")[0] + (f" ({tied[k]})" if k in tied else "")
                              for k in A.SELECTION_METHODS if getattr(out, k).answer in answers)
        rows.append([code(g["answer"]), g["count"], fmt(g["reward_sum"]), fmt(max(rewards[g["indices"]])),
                     "**right**" if g["correct"] else "wrong", chosen_by or "-", ", ".join(map(str, g["indices"]))])
    page.add(table(["answer group", "solutions", "summed reward", "best reward", "right?", "chosen by", "samples"], rows))
    page.add(details("Problem statement", fenced(p.problem)))
    i = out.weighted_bon.sample_index
    if i is not None:
        text = p.texts[i]
        if len(text) > SOLUTION_CHARS:
            text = text[:SOLUTION_CHARS] + f"\n[... cut: {len(p.texts[i]) - SOLUTION_CHARS} more characters in samples.jsonl]"
        page.add(details(f"{cap(name('weighted_bon'))}'s solution: sample {i}, reward {fmt(rewards[i])} "
                         f"(the best-scored solution of the winning group)", fenced(text)))


def _reward_section(page: Page, an: A.Analysis) -> None:
    run, name = an.run, labeller(an)
    page.heading(2, "The reward model")
    page.image("reward_distributions.png", "Rewards of right vs wrong solutions")
    rows = []
    for how in [run.reward_aggregation] if run.one_score else AGGREGATIONS:
        s = an.prm[how]
        auc = "n/a" if s.auroc is None else f"{s.auroc:.3f}" + (
            f" [{s.auroc_ci[0]:.3f}, {s.auroc_ci[1]:.3f}]" if s.auroc_ci else "")
        within = "n/a" if s.within_auroc is None else f"{s.within_auroc:.3f} ({s.within_problems} problems)"
        rows.append([code(how) + (" (used)" if how == run.reward_aggregation else ""), auc, within,
                     with_ci(an.aggregation[how]["weighted_bon"][-1]), with_ci(an.aggregation[how]["naive_bon"][-1])])
    page.add(table(["aggregation", "AUROC (pooled)", "AUROC within problem", name("weighted_bon"), name("naive_bon")],
                   rows))
    page.para(
        "AUROC: probability that a random right solution gets a higher reward than a random wrong one (ties count "
        "half), over all scored samples; the bracket is a 95% bootstrap interval over problems (for the aggregation "
        "used). Within problem: the same, per problem with both right and wrong samples, averaged; it ignores how "
        "hard each problem is, which is all that selection among one problem's samples can use."
        + (" The rewards have one score per solution: the aggregations are not compared." if run.one_score else ""))
    page.heading(3, "Calibration")
    page.image("calibration.png", "Reliability diagram of the solution reward")
    cal = an.calibration
    fmt = reward_format([r for r, c in zip(cal.mean_reward, cal.counts) if c])
    page.add(table(["reward bin", "solutions", "mean reward", "share right [95% Wilson]"],
                   [[f"{lo:.1f}-{hi:.1f}", int(c), fmt(r), f"{pct(a)} [{100 * iv[0]:.1f}, {100 * iv[1]:.1f}]"]
                    for lo, hi, c, r, a, iv in zip(cal.edges[:-1], cal.edges[1:], cal.counts, cal.mean_reward,
                                                   cal.accuracy, cal.intervals) if c]))
    page.para(
        f"Expected calibration error (ECE): {cal.ece:.3f}, the count-weighted mean of |share right - mean reward| over "
        f"the bins. Weighted selection adds rewards up as if they were evidence of correctness; a bin whose share "
        f"right is far from its mean reward is where that reading fails."
        + (f" {cal.clipped} rewards outside [0, 1] were put into the end bins." if cal.clipped else ""))
    page.heading(3, "Rewards within each problem")
    if not mixed_problems(an):
        page.para("No problem has both right and wrong samples: there is nothing for a reward to rank within a problem.")
    else:
        page.image("rewards_by_problem.png", "Rewards of right and wrong solutions per problem")
        page.para("One row per problem with both right and wrong samples (problems where the right answer was sampled "
                  "but not chosen first): the rewards of its right solutions (green) beside those of its wrong ones "
                  f"(red); the ring marks the solution shown for the {name('weighted_bon')}'s pick.")
    if run.one_score:
        return
    page.heading(3, "Step rewards")
    page.image("step_rewards.png", "Step rewards of right vs wrong solutions by step index")
    _step_viewer(page, an)
    if not is_search(an):  # a search's pool has no curve over N (the table above compares the aggregations)
        page.heading(3, "Reward aggregations")
        page.image("aggregation.png", "Best-of-N under each reward aggregation")


def _step_viewer(page: Page, an: A.Analysis) -> None:
    """For a few contested problems, every solution's steps coloured by their reward (HTML); a table in Markdown."""
    by_id = {o.unique_id: o for o in an.outcomes}
    candidates = [p for p in an.run.problems if by_id[p.unique_id].contested and p.scored.any()]
    candidates.sort(key=lambda p: (not by_id[p.unique_id].missed, p.unique_id not in an.matters.rules_disagree,
                                   p.unique_id))
    chosen = candidates[:STEP_VIEWER_PROBLEMS]
    if not chosen:
        return
    separator = an.run.manifest.get("step_separator") or LINE  # the PRM's, recorded by the run or the import
    page.para(f"Step-reward viewer: every solution of {plural(len(chosen), 'problem')} with more than one answer group "
              f"(missed right answers first), best reward first, split into steps exactly as the PRM split it "
              f"(at {separator!r}, blank lines included), each step coloured by its reward "
              f"(red 0, yellow 0.5, green 1). In report.md the rewards are listed instead.")
    legend = "".join(f'<span style="background:{P.reward_color(r)}">{r:g}</span>' for r in (0.0, 0.25, 0.5, 0.75, 1.0))
    views = [_viewer_problem(p, by_id[p.unique_id], an, separator) for p in chosen]
    page.html_block("\n".join([f'<p class="legend">reward: {legend}</p>', *(h for h, _ in views)]),
                    "\n\n".join(md for _, md in views))


def lined_up(text: str, rewards: Sequence[float], separator: str) -> tuple[list[tuple[str, float | None]], str]:
    """Each step of ``text`` (split as the PRM split it, blank lines included) with the reward the PRM gave it,
    and a note for what does not line up: steps past the PRM's context get None; more rewards than steps
    cannot be placed and are said so (never folded silently into one block)."""
    pieces = split_steps(text, separator)
    if len(rewards) > len(pieces):
        return [(t, None) for t in pieces], (f"the PRM gave {len(rewards)} rewards for {len(pieces)} steps split at "
                                            f"{separator!r}: they cannot be lined up (rewards: "
                                            f"{', '.join(f'{r:.3f}' for r in rewards)})")
    unscored = len(pieces) - len(rewards)
    note = (f"the last {plural(unscored, 'step')} got no reward (past the PRM's context, or a trailing separator "
            f"the PRM does not score)") if unscored else ""
    return [(t, rewards[k] if k < len(rewards) else None) for k, t in enumerate(pieces)], note


def _step_html(text: str, reward: float | None, fmt: Callable[[float], str]) -> str:
    shown = (html.escape(text if len(text) <= STEP_CHARS else text[:STEP_CHARS] + " [...]") if text.strip()
             else '<span class="blank">(blank line)</span>')
    if reward is None:
        return f'<div class="step unscored"><span class="r">-</span><span class="t">{shown}</span></div>'
    return (f'<div class="step" style="background:{P.reward_color(reward)}"><span class="r">{fmt(reward)}</span>'
            f'<span class="t">{shown}</span></div>')


def _viewer_problem(p: A.ProblemData, out: A.ProblemOutcome, an: A.Analysis, separator: str) -> tuple[str, str]:
    rewards = p.rewards(an.run.reward_aggregation)
    fmt = reward_format([*rewards, *(r for steps in p.step_rewards for r in steps)])
    summary = (f"{P.short_id(p.unique_id)}: gold {p.gold}; the {labeller(an)('weighted_bon')} answered "
               f"{out.weighted_bon.answer} ({'right' if out.weighted_bon.correct else 'wrong'})")
    parts, rows = [], []
    for i in sorted(range(len(p.answers)), key=lambda i: -rewards[i]):
        steps, note = lined_up(p.texts[i], p.step_rewards[i], separator)
        verdict = '<span class="right">right</span>' if p.correct[i] else '<span class="wrong">wrong</span>'
        head = (f'<div class="head">sample {i}: answer <code>{html.escape(str(p.answers[i]))}</code> {verdict}, '
                f'reward {fmt(rewards[i])}, {plural(len(p.step_rewards[i]), "scored step")}'
                + (f'<div class="note">{html.escape(note)}</div>' if note else "") + "</div>")
        parts.append(f'<div class="steps">{head}{"".join(_step_html(t, r, fmt) for t, r in steps)}</div>')
        rows.append([i, code(p.answers[i]), "yes" if p.correct[i] else "no", fmt(rewards[i]),
                     " ".join(fmt(r) for r in p.step_rewards[i]) + (f" ({note})" if note else "")])
    return (f"<details><summary>{html.escape(summary)}</summary>\n{''.join(parts)}\n</details>",
            f"**{summary}**\n\n" + table(["sample", "answer", "right?", "reward", "step rewards"], rows))


def _level_section(page: Page, an: A.Analysis) -> None:
    """Accuracy per difficulty level (benchmarks with levels only) and generated tokens per N (Best-of-N)."""
    leveled, search = has_levels(an.run.problems), is_search(an)
    if not leveled and search:
        return  # no levels, and a search's cost is in the summary and the compute section
    page.heading(2, "Per level and compute" if leveled else "Generated tokens")
    if leveled:
        page.image("by_level.png", "Accuracy by level")
        page.add(table(["level", "problems", *(labeller(an)(m) for m in an.methods)],
                       [[P.level_name(lvl), level_count(an, lvl),
                         *(with_ci(an.by_level[lvl][m][-1]) for m in an.methods)] for lvl in an.run.levels]))
    if search:
        return
    if an.mean_tokens is None:
        page.para("Generated-token counts are unavailable for this run, so there is no cost plot.")
        return
    page.image("compute.png", "Accuracy vs generated tokens")
    greedy = an.run.has_greedy
    rows = [["all levels", *([tokens_text(an.greedy_mean_tokens)] if greedy else []),
             *(f"{t:,.0f}" for t in an.mean_tokens)]]
    rows += [[P.level_name(lvl), *([tokens_text(an.greedy_tokens_by_level[lvl])] if greedy else []),
              *(f"{t:,.0f}" for t in an.tokens_by_level[lvl])] for lvl in (an.run.levels if leveled else [])]
    page.add(table(["", *(["greedy"] if greedy else []), *(f"N={k}" for k in an.ns)], rows))
    page.para("Generated tokens per problem (mean). N sampled solutions cost N times one solution; greedy is one solution.")


def _grading_section(page: Page, an: A.Analysis) -> None:
    share = lambda k, total: f"{k}/{total} ({pct(k / total) if total else 'n/a'})"  # noqa: E731
    page.heading(2, "Grading: math-verify and string matching")
    page.add(table(["solutions", "math-verify right", "string match right", "only math-verify", "only string match"],
                   [[c.source, share(c.math_verify, c.total), share(c.string_match, c.total), c.only_math_verify,
                     c.only_string_match] for c in an.checks]))
    page.para("math-verify judges symbolic equivalence (`\\frac{1}{2}` = `0.5`); string matching compares the answers "
              "after light normalization, as many codebases do. The difference is how many right answers a plain "
              "string check would miss.")


def _notes_section(page: Page, an: A.Analysis) -> None:
    ps = an.run.problems
    cut_off = (f"{sum(int(p.cut_off.sum()) for p in ps)} samples were cut off at max_new_tokens."
               if Provenance.from_manifest(an.run.manifest).stated("max_new_tokens") else
               f"Whether samples were cut off at a token limit: {NOT_STATED} (imported completions carry no finish reason).")
    notes = [
        f"{sum(a is None for p in ps for a in p.answers)} of {sum(len(p.answers) for p in ps)} samples have no boxed "
        f"answer (they never win a vote).",
        cut_off,
        f"{sum(int((~p.scored).sum()) for p in ps)} samples have no scored step (reward 0 in selection, left out of the "
        f"AUROC and calibration); {sum(int(p.truncated.sum()) for p in ps)} were longer than the PRM's context (only "
        f"their first steps were scored).",
        "Answers are grouped by math-verify equivalence once over all N samples; a subset's groups are that grouping "
        "restricted to it.",
    ] + (["Token counts are unavailable: tables show \"unavailable\", never 0."] if an.mean_tokens is None else [])
    page.heading(2, "Notes")
    page.add(bullets(notes))


# --- The report -------------------------------------------------------------------------------------------------------
def mixed_problems(an: A.Analysis) -> list[A.ProblemData]:
    """Problems with both right and wrong samples: where a reward can rank right above wrong."""
    return [p for p in an.run.problems if 0 < p.correct.sum() < len(p.correct)]


def plots_for(an: A.Analysis) -> dict[str, Callable[[], Figure]]:
    """The report's figures by file name; only those that show something for this run (a search's results are at
    its N: no figure over smaller N)."""
    curves, steps = not is_search(an), not an.run.one_score
    shown = {
        "reward_distributions.png": (True, lambda: P.plot_reward_distributions(an)),
        "calibration.png": (True, lambda: P.plot_calibration(an.calibration)),
        "accuracy_vs_n.png": (curves, lambda: P.plot_accuracy_vs_n(an)),
        "by_level.png": (has_levels(an.run.problems), lambda: P.plot_by_level(an)),
        "rewards_by_problem.png": (bool(mixed_problems(an)), lambda: P.plot_rewards_by_problem(an)),
        "selection.png": (bool(an.matters.contested), lambda: P.plot_selection_grid(an)),
        "step_rewards.png": (steps, lambda: P.plot_step_rewards(an.steps)),
        "aggregation.png": (steps and curves, lambda: P.plot_aggregations(an)),
        "compute.png": (an.mean_tokens is not None and curves, lambda: P.plot_compute(an)),
    }
    return {name: make for name, (show, make) in shown.items() if show}


def build_report(an: A.Analysis) -> Page:
    """The whole report as a :class:`Page` (plots referenced by the file names of :func:`plots_for`)."""
    page = Page(title(an))
    _setup(page, an)
    page.heading(2, "Summary")
    for paragraph in written_analysis(an):
        page.para(paragraph)
    if an.inconsistencies:
        page.para("**Warning: results.json disagrees with the samples** (this report recomputes from samples.jsonl):")
        page.add(bullets(an.inconsistencies))
    _accuracy_section(page, an)
    if is_search(an):
        page.heading(2, "The search tree")
        page.para(f"[{TREE_PAGE}]({TREE_PAGE}) shows every step the {RUN_METHOD_LABELS[run_method(an)]} made, per "
                  f"problem: each node's text, reward and score, which nodes were kept, pruned or merged as "
                  f"duplicates, the final pool with its answers and answer groups, and the chosen answer against the "
                  f"gold one. It is one self-contained page: open it from disk, offline.")
    _selection_section(page, an)
    _reward_section(page, an)
    _level_section(page, an)
    add_compute_section(page, an.run.run_dir, labeller(an))  # time, tokens and memory per stage; accuracy per 1k tokens
    _grading_section(page, an)
    _notes_section(page, an)
    return page


def write_report(run_dir: str | Path, output_dir: str | Path | None = None, subsets: int = A.DEFAULT_SUBSETS,
                 seed: int = A.DEFAULT_SEED, bootstrap: int = A.DEFAULT_BOOTSTRAP,
                 formats: Sequence[str] = ("md", "html")) -> list[Path]:
    """Analyze ``run_dir`` and write the report (default: ``RUN_DIR/report/``); return the written paths. Into a run
    directory, under its run lock (:func:`~bestofn.report.render.output_lock`), reading included."""
    out_dir = Path(output_dir) if output_dir is not None else Path(run_dir) / "report"
    with output_lock(out_dir):
        an = A.analyze(run_dir, subsets=subsets, seed=seed, bootstrap=bootstrap)
        return write_analysis_report(an, out_dir, formats)


def write_analysis_report(an: A.Analysis, out_dir: str | Path, formats: Sequence[str] = ("md", "html")) -> list[Path]:
    """Plot and write the report of an existing :class:`~bestofn.report.analysis.Analysis` into ``out_dir``."""
    figures = {name: make() for name, make in plots_for(an).items()}
    page = build_report(an)
    ours = []  # bestofn's files beside the page: `--overwrite` may remove them
    if stopping.can_study(an.run):  # what adaptive Best-of-N would have saved on this run (report/adaptive.py)
        study = stopping.study(an.run, an.curves, seed=an.curves.seed)
        stopping.add_section(page, study)
        figures[stopping.PLOT] = stopping.plot(study)
        ours.append(stopping.write(study, out_dir))
        record_written(out_dir, [ours[-1].name])
    elif stopping.is_adaptive(an.run):  # an adaptive run: the rule it ran and the samples it used
        stopping.add_run_section(page, an.run)
    written = write_page(page, figures, out_dir, formats)
    if is_search(an):
        ours.append(write_tree_view(an, out_dir, f"Search tree: {title(an)}", run_method(an),
                                    labeller(an)("weighted_bon")))
        record_written(out_dir, [ours[-1].name])
    return written + ours
