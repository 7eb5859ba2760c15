"""The ``bestofn`` command: every argparse line of the project, over the library (which never imports it).

    bestofn run --config recipes/best_of_n.yaml [--n 16 --temperature 0.8 ...]
    bestofn report RUN_DIR
    bestofn import FILE_OR_HUB_ID --output-dir RUN_DIR
    bestofn compare RUN_DIR... --output-dir DIR
    bestofn sweep --temperatures 0.4,0.8,1.2 [run flags]
    bestofn push RUN_DIR --repo-id OWNER/NAME [--dry-run --save-dir DIR]
    bestofn prm-bench --prm NAME_OR_PATH [--threshold 0.5|gsm8k] --output-dir DIR
    bestofn serve [run flags] [--host 127.0.0.1 --port 8000 --api-key KEY ...]

The flags of ``run`` (and ``sweep``) are generated from :class:`BestOfNConfig`'s fields: one flag per key,
typed by the field's annotation, with the field's ``metadata`` help, choices and default, so a new setting
needs no change here. Every error the user can fix is printed as one ``bestofn: error:`` line (exit code
2), never as a traceback: a :class:`BestOfNError`, and any operating-system error (a read-only or full disk,
a file where a folder should be, a missing permission), which :func:`os_error_text` words with its path and
the fix. Ctrl-C prints one line too (exit code 130), and so does SIGTERM (exit code 143, 128 + 15, the
shell's code for "terminated by SIGTERM", so a scheduler that sent it can tell it from Ctrl-C); both leave a
run that the same command resumes. Parsing is fast: the heavy libraries (torch, transformers, datasets,
matplotlib, math-verify) are imported inside the command handlers only.
"""

from __future__ import annotations

import argparse
import dataclasses
import errno
import functools
import logging
import os
import signal
import stat
import sys
import threading
from collections.abc import Sequence
from typing import Any

from .config import BestOfNConfig, read_recipe
from .errors import BestOfNError
from .selection import AGGREGATIONS, SELECTION_METHODS
from .fields import FieldType, field_types, flag_name, flag_text, parse_text

INTERRUPTED = "interrupted; rerun the same command to resume"
TERMINATED = "terminated (SIGTERM); rerun the same command to resume"
EXIT_ERROR, EXIT_INTERRUPTED, EXIT_TERMINATED = 2, 128 + signal.SIGINT, 128 + signal.SIGTERM  # 2, 130, 143
log = logging.getLogger("bestofn")
FORMATS = {"both": ("md", "html"), "md": ("md",), "html": ("html",)}  # --format -> files the report writes
_METAVARS = {int: "INT", float: "FLOAT", str: "TEXT"}
# field -> (flag, value when the flag is given alone, metavar): `--ray` alone starts a local Ray cluster.
_OPTIONAL_VALUE_FLAGS = {"ray_address": ("--ray", "local", "ADDRESS")}


def say(text: str) -> None:
    """Print the command's output on standard output. A failing standard output (a full device, a closed pipe) is
    its own one-line error: the output directory is not to blame, and the command's work is already saved."""
    try:
        print(text, flush=True)
    except OSError as e:
        _discard_stdout()
        what = _OS_ERRORS.get(e.errno, (e.strerror or type(e).__name__, ""))[0]
        raise BestOfNError(f"cannot write this command's output to standard output ({what}); its work is done and "
                           f"saved, only the summary it prints was lost: send the output to a place with room (e.g. "
                           f"`> summary.txt` on another disk), or rerun without redirecting it") from None


def _discard_stdout() -> None:
    """Point standard output's file descriptor at /dev/null: what is still buffered must not fail again at exit."""
    try:
        null = os.open(os.devnull, os.O_WRONLY)
        os.dup2(null, sys.stdout.fileno())
        os.close(null)
    except (OSError, ValueError, AttributeError):  # not a real file (a test's capture): nothing to flush at exit
        pass


# --- run settings: one flag per BestOfNConfig field ---------------------------------------------------------------
def add_config_flags(parser: argparse.ArgumentParser, exclude: Sequence[str] = ()) -> None:
    """``--config FILE`` plus one flag per setting (``max_new_tokens`` -> ``--max-new-tokens``)."""
    parser.add_argument("--config", metavar="FILE.yaml", help="recipe file (keys of BestOfNConfig); flags override it")
    group = parser.add_argument_group("settings", "Every key of BestOfNConfig; a flag overrides the recipe file.")
    types = field_types(BestOfNConfig)
    for f in dataclasses.fields(BestOfNConfig):
        if f.name not in exclude:
            _add_field_flag(group, f, types[f.name])


def _add_field_flag(group: argparse._ArgumentGroup, f: dataclasses.Field, ft: FieldType) -> None:
    default = f.default_factory() if f.default_factory is not dataclasses.MISSING else f.default
    help_text = f"{f.metadata.get('help', '')} (default: {_show(default)})".strip().replace("%", "%%")
    # SUPPRESS: a flag that is not given leaves the recipe's value (or the field's default) alone.
    kwargs: dict[str, Any] = {"dest": f.name, "default": argparse.SUPPRESS, "help": help_text}
    if ft.base is bool and not ft.is_list:
        kwargs["action"] = argparse.BooleanOptionalAction
    else:
        kwargs["type"] = functools.partial(parse_text, ft)
        if ft.choices:
            kwargs["choices"] = ft.choices
        else:
            scalar = _METAVARS[ft.base]
            kwargs["metavar"] = f"{scalar},{scalar},..." if ft.is_list else scalar
    if f.name in _OPTIONAL_VALUE_FLAGS:  # a flag whose value may be left out, e.g. `--ray` alone
        flag, const, metavar = _OPTIONAL_VALUE_FLAGS[f.name]
        group.add_argument(flag, nargs="?", const=const, **{**kwargs, "metavar": metavar})
        return
    group.add_argument(flag_name(f.name), **kwargs)


def _show(default: Any, limit: int = 60) -> str:
    """A default as help shows it: command-line spelling, long texts cut."""
    text = flag_text(default)
    if isinstance(default, str) and (len(text) > limit or "\n" in text):
        text = repr(text[: limit - 3] + "...")
    return text


def config_from_args(args: argparse.Namespace) -> BestOfNConfig:
    """The recipe file (if any), overridden by the flags that were given."""
    given = {name: getattr(args, name) for name in field_types(BestOfNConfig) if hasattr(args, name)}
    recipe = read_recipe(args.config) if args.config else {}
    return BestOfNConfig.from_dict({**recipe, **given})


# --- report settings -----------------------------------------------------------------------------------------------
def _report_defaults() -> dict[str, int]:
    """The analysis defaults; bestofn.report.analysis is slow to import, so only when a report is made or explained."""
    from .report import analysis as A

    return {"subsets": A.DEFAULT_SUBSETS, "report_seed": A.DEFAULT_SEED, "bootstrap": A.DEFAULT_BOOTSTRAP}


class _ReportHelp(argparse.HelpFormatter):
    """Shows the analysis defaults in ``--help`` (they are ``None`` in the parser: "the analysis default")."""

    def _get_help_string(self, action: argparse.Action) -> str | None:
        if action.dest in ("subsets", "report_seed", "bootstrap"):
            return f"{action.help} (default: {_report_defaults()[action.dest]})"
        return action.help


def add_report_flags(parser: argparse.ArgumentParser, seed_flags: Sequence[str] = ("--report-seed",)) -> None:
    """The analysis settings of ``report`` and ``sweep``.

    ``sweep`` also takes the run flags, whose ``--seed`` seeds sampling: there the analysis seed is only
    ``--report-seed``; ``report`` accepts both spellings.
    """
    group = parser.add_argument_group("report")
    group.add_argument("--subsets", type=int, metavar="INT",
                       help="random N-subsets averaged per point of the accuracy-vs-N curve")
    group.add_argument(*seed_flags, dest="report_seed", type=int, metavar="INT",
                       help="seed of the subset draws and the bootstrap")
    group.add_argument("--bootstrap", type=int, metavar="INT",
                       help="bootstrap resamples of the problems for the 95%% intervals")
    group.add_argument("--format", choices=sorted(FORMATS), default="both",
                       help="report.md (PNGs beside it), report.html (PNGs embedded), or both (default: both)")


def report_settings(args: argparse.Namespace) -> dict[str, Any]:
    """Keyword arguments of the report writers, defaults filled in."""
    defaults = _report_defaults()
    pick = {k: getattr(args, k) if getattr(args, k) is not None else defaults[k] for k in defaults}
    return {"subsets": pick["subsets"], "seed": pick["report_seed"], "bootstrap": pick["bootstrap"],
            "formats": FORMATS[args.format]}


# --- the commands --------------------------------------------------------------------------------------------------
def _run(args: argparse.Namespace) -> None:
    from .report import compute
    from .pipeline import run

    config = config_from_args(args)
    results = run(config, overwrite=args.overwrite, models=args.models)
    say(format_summary(results, config.output_dir))
    say(compute.format_cost_table(compute.stage_totals(config.output_dir)))


def _import(args: argparse.Namespace) -> None:
    from .importer import import_completions

    out = import_completions(args.source, args.output_dir, split=args.split, subset=args.subset,
                             generator=args.generator, prm=args.prm, temperature=args.temperature, top_p=args.top_p,
                             aggregation=args.aggregation, overwrite=args.overwrite)
    say(f"imported {args.source} into {out}")


def format_summary(results: dict, output_dir: str) -> str:
    """A short accuracy table for the terminal, headed by the run's method (``Best-of-N``, ``beam search``, ``DVTS``)."""
    from .methods import BEST_OF_N, RUN_METHOD_LABELS

    method = results.get("method", BEST_OF_N)  # results.json of runs from before methods were recorded: Best-of-N
    lines = [f"{RUN_METHOD_LABELS.get(method, method)} (--method {method}): {results['num_problems']} problems, "
             f"N={results['n']}  (run directory: {output_dir})"]
    used, full = results.get("samples_used"), results["n"] * results["num_problems"]
    if used and used["total"] < full:  # adaptive Best-of-N stopped early, or a search's pool was smaller
        lines.append(f"  samples used: {used['total']} of {full} ({used['per_problem']:.2f} per problem)")
    for method, acc in results["accuracy"].items():
        lines.append(f"  {method:<13} {acc['accuracy']:6.1%}  ({acc['correct']}/{acc['total']})")
    return "\n".join(lines)


def _report(args: argparse.Namespace) -> None:
    from pathlib import Path

    from .report import run_report, sweep_report

    from .bench.processbench import is_bench_dir
    from .report.prmbench_report import write_prm_bench_report

    run_dir, settings = Path(args.run_dir), report_settings(args)
    if is_bench_dir(run_dir):  # `bestofn prm-bench` wrote it: its own report, rewritten where it belongs
        written = write_prm_bench_report(run_dir, settings["formats"], args.report_dir)
        say(f"{run_dir} holds `bestofn prm-bench` results, not a run: this is their report")
    elif not (run_dir / "samples.jsonl").exists() and sweep_report.find_temperature_runs(run_dir):
        # Only the comparison is rewritten; `bestofn report SWEEP_DIR/temperature-<t>` redoes one run's report.
        written = sweep_report.write_sweep_report(run_dir, output_dir=args.report_dir, run_reports=False, **settings)
    else:
        written = run_report.write_report(run_dir, output_dir=args.report_dir, **settings)
    say(f"wrote {len(written)} files to {written[0].parent}: " + ", ".join(p.name for p in written))


def _compare(args: argparse.Namespace) -> None:
    from .bench.processbench import is_bench_dir
    from .report.compare import write_compare_report
    from .report.prmbench_report import write_prm_bench_comparison

    if len(args.run_dirs) < 2:
        raise BestOfNError(f"compare needs at least two run directories, got {len(args.run_dirs)}; e.g. `bestofn "
                           f"compare runs/best_of_n runs/beam_search --output-dir runs/compare`")
    seen: dict[str, str] = {}
    for given in args.run_dirs:  # the same run under two spellings (./base/, base, a link) is one run
        same = seen.setdefault(os.path.realpath(given), given)
        if same is not given:
            raise BestOfNError(f"compare was given the same run directory twice ({same} and {given}); name each run "
                               f"once")
    if any(is_bench_dir(d) for d in args.run_dirs):  # prm-bench directories: PRMs side by side
        written = write_prm_bench_comparison(args.run_dirs, args.compare_dir, FORMATS[args.format])
    else:
        written = write_compare_report(args.run_dirs, args.compare_dir, args.selection, **report_settings(args),
                                       allow_mixed=args.allow_mixed)
    say(f"wrote {len(written)} files to {written[0].parent}: " + ", ".join(p.name for p in written))


def _temperatures(text: str) -> list[float]:
    from .sweep import parse_temperatures

    return parse_temperatures(text)


def _one_temperature(text: str) -> None:
    raise BestOfNError(f"sweep takes --temperatures T1,T2,... (e.g. --temperatures 0.4,0.8,1.2), not --temperature {text}")


def _sweep(args: argparse.Namespace) -> None:
    from . import sweep
    from .report import sweep_report

    config = config_from_args(args)
    if args.models is None:
        sweep.run_sweep(config, args.temperatures)
    else:
        from .pipeline import run

        sweep.run_sweep(config, args.temperatures, run_fn=lambda cfg, overwrite: run(cfg, overwrite, args.models))
    written = sweep_report.write_sweep_report(config.output_dir, **report_settings(args))
    say(f"wrote the sweep report to {written[0].parent}: " + ", ".join(p.name for p in written))


def _push(args: argparse.Namespace) -> None:
    from . import hub

    if args.dry_run:
        if not args.save_dir:
            raise BestOfNError("--dry-run needs --save-dir DIR: the folder where the files that would be uploaded go")
        files = hub.save_dataset_folder(args.run_dir, args.save_dir, args.repo_id)
        say(f"dry run: nothing uploaded; files for {args.repo_id} in {args.save_dir}:")
        for path in files:
            say(f"  {path.relative_to(args.save_dir)}  ({path.stat().st_size:,} bytes)")
        _print_provenance(args.run_dir)
        return
    url = hub.push(args.run_dir, args.repo_id, private=args.private, revision=args.revision, overwrite=args.overwrite,
                   save_dir=args.save_dir, commit_message=args.commit_message)
    say(f"pushed to https://huggingface.co/datasets/{args.repo_id} ({url})")
    _print_provenance(args.run_dir)


def _print_provenance(run_dir: str) -> None:
    """For completions imported with `bestofn import`: where they came from and what the card marks "not stated"."""
    from .provenance import Provenance

    note = Provenance.read(run_dir).summary()
    if note:
        say(f"note: the run's solutions were {note} (the card says so)")


def add_serve_flags(parser: argparse.ArgumentParser) -> None:
    """The run's settings plus the server's own (:class:`bestofn.serve.settings.ServeConfig`)."""
    from .serve.settings import ServeConfig

    add_config_flags(parser)
    group = parser.add_argument_group("server", "How the server listens and what one request may ask for.")
    types = field_types(ServeConfig)
    for f in dataclasses.fields(ServeConfig):
        _add_field_flag(group, f, types[f.name])


def _serve(args: argparse.Namespace) -> None:
    from .serve.settings import ServeConfig

    config = config_from_args(args)
    settings = ServeConfig(**{f.name: getattr(args, f.name) for f in dataclasses.fields(ServeConfig)
                              if hasattr(args, f.name)})
    if config.ray_address:
        from .serve.ray_serve import run_ray_serve

        run_ray_serve(config, settings)
        return
    from .serve.app import run_server

    run_server(config, settings, models=args.models)


# --- prm-bench: ProcessBench for any PRM ------------------------------------------------------------------------
# The settings prm-bench shares with `bestofn run`: their flags, help and choices come from BestOfNConfig.
PRM_BENCH_CONFIG_FIELDS = ("prm", "prm_revision", "prm_format", "prm_batch_tokens", "prm_max_length", "device",
                           "dtype", "ray_address", "workers")


def add_prm_bench_flags(parser: argparse.ArgumentParser) -> None:
    """``--prm``, device, dtype, batch and Ray flags (from BestOfNConfig), plus the benchmark's own."""
    from .bench.processbench import BenchSettings, parse_subsets, parse_threshold

    group = parser.add_argument_group("PRM and hardware", "The keys of BestOfNConfig that prm-bench uses.")
    types = field_types(BestOfNConfig)
    for f in dataclasses.fields(BestOfNConfig):
        if f.name in PRM_BENCH_CONFIG_FIELDS:
            _add_field_flag(group, f, types[f.name])
    bench = {f.name: f for f in dataclasses.fields(BenchSettings)}

    def helped(name: str) -> str:  # the default is shown unless the help text already says it
        text = bench[name].metadata["help"].replace("%", "%%")
        return text if "default" in text else f"{text} (default: {_show(bench[name].default)})"

    group = parser.add_argument_group("benchmark")
    group.add_argument("--data", nargs="+", default=bench["data"].default, metavar="FILE_OR_HUB_ID",
                       help=helped("data"))
    group.add_argument("--subsets", type=parse_subsets, default=None, metavar="S1,S2,...", help=helped("subsets"))
    group.add_argument("--threshold", type=parse_threshold, default=bench["threshold"].default, metavar="X|gsm8k",
                       help=helped("threshold"))
    group.add_argument("--output-dir", required=True, metavar="DIR",
                       help="where predictions.jsonl, results.json, the report and chunks/ (finished scores, for "
                            "resuming) go")
    group.add_argument("--overwrite", action="store_true",
                       help="replace the results of another PRM in --output-dir (refused otherwise)")


def _prm_bench(args: argparse.Namespace) -> None:
    from .bench.processbench import BenchSettings, run_prm_bench
    from .report.prmbench_report import format_results, write_prm_bench_report

    given = {name: getattr(args, name) for name in PRM_BENCH_CONFIG_FIELDS if hasattr(args, name)}
    config = BestOfNConfig.from_dict({**given, "output_dir": args.output_dir})
    results = run_prm_bench(BenchSettings(data=args.data, subsets=args.subsets, threshold=args.threshold), config,
                            overwrite=args.overwrite)
    say(format_results(results))
    written = write_prm_bench_report(args.output_dir)
    say(f"wrote predictions.jsonl, results.json and the report to {args.output_dir}: "
          + ", ".join(p.name for p in written))


# --- the parser ------------------------------------------------------------------------------------------------------
def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="bestofn", description="Test-time compute on math benchmarks (MATH-500, GSM8K, AIME, ...): sample or search (Best-of-N, beam search, DVTS) and let a process reward model pick.")
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    p = sub.add_parser("run", allow_abbrev=False, help="run (or resume) the whole pipeline into --output-dir",
                       description="Run (or resume) every stage of the method into --output-dir.")
    add_config_flags(p)
    p.add_argument("--overwrite", action="store_true",
                   help="allow changed settings in an existing run directory (recomputes what they affect)")
    p.set_defaults(func=_run)

    p = sub.add_parser(
        "report", formatter_class=_ReportHelp, allow_abbrev=False,
        help="plots and a written analysis of a finished run (or of a temperature sweep)",
        description="Write report.md, report.html and PNG plots computed from the artifacts of RUN_DIR. RUN_DIR may "
        "also be a sweep directory (made by `bestofn sweep`): then the sweep's comparison report is rewritten.")
    p.add_argument("run_dir", metavar="RUN_DIR", help="run directory written by `bestofn run` (or `bestofn sweep`)")
    p.add_argument("--output-dir", dest="report_dir", help="where to write the report (default: RUN_DIR/report)")
    add_report_flags(p, seed_flags=("--seed", "--report-seed"))
    p.set_defaults(func=_report)

    import_parser = sub.add_parser(
        "import", allow_abbrev=False, help="turn completions made elsewhere (a .jsonl/.parquet file or Hub dataset) into a run directory",
        description="Rows: problem, answer, completions, optional scores, level, subject, unique_id, "
                    "completion_tokens, greedy (search-and-learn's completion datasets import as they are).")
    import_parser.add_argument("source", metavar="FILE_OR_HUB_ID", help="a .jsonl/.parquet file or a Hub dataset id")
    import_parser.add_argument("--output-dir", required=True, help="the run directory to write")
    import_parser.add_argument("--split", default="train", help="split of a Hub dataset (default: train)")
    import_parser.add_argument("--subset", default=None, help="config name of a Hub dataset")
    import_parser.add_argument("--generator", default=None, help="name of the model that wrote the completions")
    import_parser.add_argument("--prm", default=None, help="name of the reward model behind the scores")
    import_parser.add_argument("--temperature", type=float, default=None, help="sampling temperature used")
    import_parser.add_argument("--top-p", type=float, default=None, help="top-p used")
    import_parser.add_argument("--aggregation", default="last", choices=AGGREGATIONS,
                               help="step rewards -> solution reward for selection (default: last)")
    import_parser.add_argument("--overwrite", action="store_true", help="replace a non-empty output directory")
    import_parser.set_defaults(func=_import)

    p = sub.add_parser(
        "sweep", formatter_class=_ReportHelp, allow_abbrev=False,
        help="run Best-of-N at several temperatures (sharing the greedy baseline) and compare them",
        description="Run the pipeline once per temperature into OUTPUT_DIR/temperature-<t>/ (problems and greedy are "
        "computed once and shared; finished runs are reused), then write each run's report and a sweep report in "
        "OUTPUT_DIR/report/. Takes every flag of `bestofn run` but --overwrite; --temperature is replaced by "
        "--temperatures.")
    p.add_argument("--temperatures", required=True, type=_temperatures, metavar="T1,T2,...",
                   help="sampling temperatures, comma-separated, e.g. 0.4,0.8,1.2")
    add_config_flags(p, exclude=("temperature",))
    p.add_argument("--temperature", type=_one_temperature, default=argparse.SUPPRESS, help=argparse.SUPPRESS)
    add_report_flags(p)
    p.set_defaults(func=_sweep)

    p = sub.add_parser(
        "push", allow_abbrev=False, help="publish a run directory as a Hub dataset with a dataset card",
        description="Build the `problems` and `samples` datasets and the dataset card from a finished run directory, "
        "and upload them to a Hub dataset repo. An existing repo is only written to with --revision (a new branch) "
        "or --overwrite.")
    p.add_argument("run_dir", metavar="RUN_DIR", help="run directory written by `bestofn run --output-dir RUN_DIR`")
    p.add_argument("--repo-id", required=True, metavar="OWNER/NAME", help="dataset repo to push to")
    p.add_argument("--private", action="store_true", help="create the repo as private (no effect on an existing repo)")
    p.add_argument("--revision", metavar="BRANCH", help="push to this branch, created from main if missing")
    p.add_argument("--overwrite", action="store_true", help="allow replacing the dataset files of an existing repo or branch")
    p.add_argument("--dry-run", action="store_true", help="write the files to --save-dir and upload nothing")
    p.add_argument("--save-dir", metavar="DIR", help="folder for the files (required with --dry-run; kept after a push)")
    p.add_argument("--commit-message", metavar="TEXT", help="message of the upload commit")
    p.set_defaults(func=_push)

    p = sub.add_parser(
        "compare", formatter_class=_ReportHelp, allow_abbrev=False,
        help="Best-of-N, beam search and DVTS runs side by side at equal compute",
        description="Write report.md, report.html and PNGs comparing finished runs (e.g. one per --method) on the "
        "problems they share: accuracy vs N and vs generated tokens, per level, and the compute-optimal method. "
        "Given `bestofn prm-bench` directories instead, puts those PRMs' ProcessBench results side by side.")
    p.add_argument("run_dirs", nargs="+", metavar="RUN_DIR", help="finished run directories (`bestofn run`), or "
                   "prm-bench directories")
    p.add_argument("--output-dir", dest="compare_dir", required=True, help="where to write the comparison")
    p.add_argument("--selection", choices=SELECTION_METHODS, default="weighted_bon",
                   help="rule that picks the answer from each final pool (default: %(default)s)")
    p.add_argument("--allow-mixed", action="store_true",
                   help="compare runs made with different generators, PRMs, sampling settings, budgets, prompts or "
                        "datasets (refused otherwise); the report lists every difference")
    add_report_flags(p, seed_flags=("--seed",))
    p.set_defaults(func=_compare)

    p = sub.add_parser(
        "serve", allow_abbrev=False, help="an OpenAI-compatible chat-completions server over the same method",
        description="Serve POST /v1/chat/completions (OpenAI's API; docs/serve.md): each request is answered by the "
        "configured method (Best-of-N, beam search, DVTS), its model calls batched with concurrent requests'. Takes "
        "every setting of `bestofn run`; --ray [ADDRESS] --replicas K serves K replicas with Ray Serve.")
    add_serve_flags(p)
    p.set_defaults(func=_serve)

    p = sub.add_parser(
        "prm-bench", allow_abbrev=False, help="ProcessBench: how well a PRM finds the first wrong step of a solution",
        description="Score every step of ProcessBench's solutions (Qwen/ProcessBench: GSM8K, MATH, OlympiadBench, "
        "Omni-MATH) with a PRM of any format, predict the first wrong step (the first step whose reward is below "
        "--threshold) and report ProcessBench's error/correct accuracy and F1 per subset beside published numbers. "
        "Finished chunks are kept in OUTPUT_DIR/chunks: rerun the same command to resume.")
    add_prm_bench_flags(p)
    p.set_defaults(func=_prm_bench)
    return parser


# --- failures as one line ---------------------------------------------------------------------------------------------
class Terminated(KeyboardInterrupt):
    """SIGTERM, raised where Ctrl-C raises KeyboardInterrupt: every cleanup that handles Ctrl-C handles it too."""


def _raise_terminated(signum: int, frame: Any) -> None:
    raise Terminated()


# errno -> what it means for the path, and the fix (``{flag}``: the command's output flag)
_OS_ERRORS = {
    errno.ENOSPC: ("no space left on the device", "free some space (or choose another {flag}) and rerun the same "
                   "command: what was finished is kept"),
    errno.EDQUOT: ("disk quota exceeded", "free some space (or choose another {flag}) and rerun the same command"),
    errno.EROFS: ("the file system is read-only", "choose a writable {flag}"),
    errno.EACCES: ("permission denied", "make it writable for this user (e.g. chmod u+w) or choose another {flag}"),
    errno.EPERM: ("operation not permitted", "make it writable for this user (check chmod and chattr) or choose "
                  "another {flag}"),
    errno.ENOTDIR: ("it, or a folder above it, is a file, not a folder", "pass a folder with {flag}"),
    errno.EEXIST: ("it exists and is not a folder", "pass a folder (or a new name) with {flag}"),
    errno.EISDIR: ("it is a folder where a file belongs", "move that folder away (or pass a file) and rerun"),
    errno.ENOENT: ("it does not exist", "check the path"),
}


def os_error_text(error: OSError, output: tuple[str, str] | None = None) -> str:
    """One line for an operating-system error: the path, what is wrong with it, and the fix.

    ``output`` is the command's output ``(flag, path)``: it names the fix's flag, and the place that was being
    written when the error carries no file name (a failed ``write`` says only "No space left on device").
    """
    flag, out_path = output or ("--output-dir", None)
    paths = [_named(p, error.errno) for p in (error.filename, error.filename2) if p is not None]
    where = " -> ".join(map(str, paths)) if paths else (f"writing into {out_path}" if out_path else "")
    prefix = f"{where}: " if where else ""
    if error.errno in (errno.EACCES, errno.EPERM) and paths and _unreadable(paths[0]):
        return f"{prefix}permission denied: this user cannot read it; give it read permission (chmod u+r {paths[0]})"
    if error.errno in _OS_ERRORS:
        what, fix = _OS_ERRORS[error.errno]
        return f"{prefix}{what}; {fix.format(flag=flag)}"
    reason = error.strerror or f"{type(error).__name__}: {error}"
    return f"{prefix}{reason} (rerun with -v for the traceback)"


_WRITE_ERRORS = {errno.ENOSPC, errno.EDQUOT, errno.EROFS, errno.EACCES, errno.EPERM}


def _named(path: Any, code: int | None) -> str:
    """The path an error line names: a file that could not be created (often a temporary file of an atomic write)
    is named by its folder, which is what the user must fix."""
    path = os.fsdecode(path) if isinstance(path, (str, bytes, os.PathLike)) else str(path)
    if code in _WRITE_ERRORS and not os.path.lexists(path) and os.path.isdir(os.path.dirname(path) or "."):
        return os.path.dirname(path) or "."
    return path


def _unreadable(path: str) -> bool:
    """Whether an existing file lacks read permission: then the fix is to grant it, not to make it writable. (The
    mode bits too: for root ``os.access`` says yes to every file, yet a file system may still refuse.)"""
    try:
        mode = os.stat(path).st_mode
    except OSError:
        return False
    return stat.S_ISREG(mode) and (not os.access(path, os.R_OK) or not mode & (stat.S_IRUSR | stat.S_IRGRP | stat.S_IROTH))


def _output_of(args: argparse.Namespace | None) -> tuple[str, str] | None:
    """The command's output ``(flag, path)``, as given (or None before parsing, or for a command without one)."""
    for dest, flag in (("save_dir", "--save-dir"), ("compare_dir", "--output-dir"), ("report_dir", "--output-dir"),
                       ("output_dir", "--output-dir")):
        if getattr(args, dest, None):
            return flag, str(getattr(args, dest))
    if getattr(args, "run_dir", None):  # `bestofn report RUN_DIR` writes RUN_DIR/report
        return "--output-dir", str(args.run_dir)
    return None


def unknown_flags_text(parser: argparse.ArgumentParser, command: str, unknown: Sequence[str]) -> str:
    """``unrecognized argument for `bestofn run`: --temp (did you mean --temperature?)``: the closest real flags of
    the command (difflib; argparse's own suggestions need Python 3.14), or its ``--help`` when none is close."""
    import difflib

    sub = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction)).choices[command]
    flags = sorted({f for a in [*parser._actions, *sub._actions] if a.help != argparse.SUPPRESS
                    for f in a.option_strings}, key=len)  # a set: --help is the parser's and the command's
    given = [u for u in unknown if u.startswith("-")] or list(unknown)
    clauses = []
    for flag in given:
        name = flag.split("=", 1)[0]
        close = ([f for f in flags if f.startswith(name) and name.startswith("--")]  # an abbreviation, or a typo
                 or difflib.get_close_matches(name, flags, n=3, cutoff=0.6))
        clauses.append(f"{flag} (did you mean {' or '.join(close[:3])}?)" if close else flag)
    noun = "argument" if len(given) == 1 else "arguments"
    return (f"unrecognized {noun} for `bestofn {command}`: {', '.join(clauses)}"
            + ("" if any("did you mean" in c for c in clauses) else f" (see `bestofn {command} --help`)"))


def main(argv: Sequence[str] | None = None, models: Any = None) -> int:
    """Parse and run one command; a user or operating-system error is one line (exit 2), Ctrl-C one line (exit
    130), SIGTERM one line (exit 143).

    ``models`` (a :class:`bestofn.pipeline.Models`): how ``run`` and ``sweep`` load their models (default: the
    real loaders; tests inject scripted ones here)."""
    parser = build_parser()
    args = None
    on_main_thread = threading.current_thread() is threading.main_thread()  # only there can a handler be set
    previous = signal.signal(signal.SIGTERM, _raise_terminated) if on_main_thread else None
    try:
        args, unknown = parser.parse_known_args(argv)  # a flag's type= may raise BestOfNError (--temperatures 0,1)
        if unknown:
            raise BestOfNError(unknown_flags_text(parser, args.command, unknown))
        args.models = models
        logging.basicConfig(level=logging.DEBUG if args.verbose else logging.INFO,
                            format="%(levelname)s %(name)s: %(message)s")
        args.func(args)
    except BestOfNError as e:
        print(f"bestofn: error: {' '.join(str(e).splitlines())}", file=sys.stderr)
        return EXIT_ERROR
    except OSError as e:
        log.debug("operating-system error", exc_info=True)  # -v shows the traceback
        print(f"bestofn: error: {' '.join(os_error_text(e, _output_of(args)).splitlines())}", file=sys.stderr)
        return EXIT_ERROR
    except Terminated:
        print(f"\nbestofn: {TERMINATED}", file=sys.stderr)
        return EXIT_TERMINATED
    except KeyboardInterrupt:
        print(f"\nbestofn: {INTERRUPTED}", file=sys.stderr)
        return EXIT_INTERRUPTED
    finally:
        if on_main_thread:
            signal.signal(signal.SIGTERM, previous)
    return 0


if __name__ == "__main__":
    sys.exit(main())
