"""The ``bestofn`` command: a thin layer over the pipeline and the report/publish modules.

    bestofn run --config recipes/best_of_n.yaml [--n 16 --temperature 0.8 ...]
    bestofn report RUN_DIR
    bestofn sweep --temperatures 0.4,0.8,1.2 [run flags]
    bestofn push RUN_DIR --repo-id OWNER/NAME [--dry-run --save-dir DIR]

Errors the user can fix are printed as one line (exit code 2), never as a traceback.
"""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Sequence

from .config import BestOfNConfig
from .errors import BestOfNError

# flag -> (config key, type, help). Types parse the command-line string; None means "not given".
_CONFIG_FLAGS: dict[str, tuple[str, type | None, str]] = {
    "--generator": ("generator", str, "policy model: Hub id or local folder"),
    "--prm": ("prm", str, "process reward model: Hub id or local folder"),
    "--dataset": ("dataset", str, "Hub dataset id or local .jsonl/.parquet file"),
    "--levels": ("levels", None, "difficulty levels to keep, e.g. 1,2,3"),
    "--num-problems": ("num_problems", int, "problems in the subset"),
    "--n": ("n", int, "sampled solutions per problem"),
    "--temperature": ("temperature", float, "sampling temperature"),
    "--top-p": ("top_p", float, "nucleus sampling threshold"),
    "--max-new-tokens": ("max_new_tokens", int, "longest solution, in tokens"),
    "--seed": ("seed", int, "seed for the subset and sampling"),
    "--backend": ("backend", str, "generation backend: transformers or vllm"),
    "--device": ("device", str, "cpu, cuda, cuda:1, or auto"),
    "--gpu-memory-utilization": ("gpu_memory_utilization", float, "vLLM: share of GPU memory (on CPU: of RAM)"),
    "--max-model-len": ("max_model_len", int, "vLLM: longest prompt + solution, in tokens"),
    "--output-dir": ("output_dir", str, "run directory for all artifacts"),
    "--workers": ("workers", int, "Ray: actors per stage, each holding one model (default: one per GPU)"),
}


def parse_levels(text: str) -> list[int]:
    try:
        return [int(x) for x in text.split(",") if x.strip()]
    except ValueError:
        raise BestOfNError(f"--levels takes comma-separated integers 1-5, e.g. 1,2,3; got {text!r}") from None


def add_config_flags(parser: argparse.ArgumentParser) -> None:
    """The flags that build a :class:`BestOfNConfig` (a recipe file plus overrides)."""
    parser.add_argument("--config", help="recipe YAML file (keys of BestOfNConfig); flags override it")
    for flag, (key, typ, help_text) in _CONFIG_FLAGS.items():
        parser.add_argument(flag, dest=key, type=typ or str, default=None, help=help_text)
    parser.add_argument("--ray", dest="ray_address", nargs="?", const="local", default=None, metavar="ADDRESS",
                        help="run generation and PRM scoring on Ray: 'auto' joins the running cluster, an address "
                             "joins that one, no value starts a local one (docs/scale-out.md)")


def config_from_args(args: argparse.Namespace) -> BestOfNConfig:
    overrides = {key: getattr(args, key) for key, _, _ in _CONFIG_FLAGS.values()}
    overrides["ray_address"] = args.ray_address
    if overrides["levels"] is not None:
        overrides["levels"] = parse_levels(overrides["levels"])
    if args.config:
        return BestOfNConfig.from_yaml(args.config, **overrides)
    return BestOfNConfig.from_dict({k: v for k, v in overrides.items() if v is not None})


def _run(args: argparse.Namespace) -> None:
    from .pipeline import run

    config = config_from_args(args)
    results = run(config, overwrite=args.overwrite)
    print(format_summary(results, config.output_dir))


def format_summary(results: dict, output_dir: str) -> str:
    """A short accuracy table for the terminal."""
    lines = [f"{results['num_problems']} problems, N={results['n']}  (run directory: {output_dir})"]
    for method, acc in results["accuracy"].items():
        lines.append(f"  {method:<13} {acc['accuracy']:6.1%}  ({acc['correct']}/{acc['total']})")
    return "\n".join(lines)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="bestofn", description="Best-of-N test-time compute on MATH-500.")
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    sub = parser.add_subparsers(dest="command", required=True)

    run_parser = sub.add_parser("run", help="run (or resume) the whole pipeline into --output-dir")
    add_config_flags(run_parser)
    run_parser.add_argument("--overwrite", action="store_true",
                            help="allow changed settings in an existing run directory (recomputes what they affect)")
    run_parser.set_defaults(func=_run)

    from . import hub, sweep
    from .report import run_report as report

    report.add_cli(sub)
    sweep.add_cli(sub)
    hub.add_cli(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.DEBUG if args.verbose else logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    try:
        args.func(args)
    except BestOfNError as e:
        print(f"bestofn: error: {e}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
