"""The experiment's settings: one dataclass, read from YAML and overridden from the command line.

Every key is documented in its ``metadata["help"]`` (TRL-style) and typed by its annotation (plus
``metadata["choices"]`` for enum-like strings): ``bestofn run`` gets one flag per field from them, and every
value, from a recipe file, a flag or Python, is checked against them (:mod:`bestofn.fields`) before
:meth:`BestOfNConfig.validate` checks ranges. Each stage of the pipeline depends on a known subset of keys
(:func:`stage_keys`); a chunk of a stage is named by a hash of those keys and of its inputs
(:func:`chunk_keys`), which is how a rerun knows what it can reuse.
"""

from __future__ import annotations

import re
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import yaml

from .data import ALL, DATASET_NAMES
from .errors import BestOfNError
from .io import check_output_dir
from .methods import BEST_OF_N, RUN_METHODS
from .fields import check_value, field_types
from .prm.formats import BLANK_LINE, FORMATS, LINE
from .selection import AGGREGATIONS
from .stopping import OFF, RULES

# "{step_format}" is replaced by the STEP_FORMATS entry of the PRM's step separator (prompts.system_prompt_for),
# so the generator writes its steps the way the configured PRM reads them.
DEFAULT_SYSTEM_PROMPT = (
    "You are a careful math tutor. Solve the problem step by step.\n"
    "{step_format}\n"
    "Finish with a line of the form: Therefore, the final answer is $\\boxed{ANSWER}$."
)
STEP_FORMATS = {
    LINE: "Write exactly one reasoning step per line and do not leave blank lines between steps.",
    BLANK_LINE: "Separate consecutive reasoning steps with one blank line, and do not leave blank lines inside a step.",
}
DEVICE = re.compile(r"auto|cpu(:\d+)?|cuda(:\d+)?")  # the device strings a run takes (resolve_device)
SWITCH = ("auto", "on", "off")  # prm_compile and compile_generation: auto decides whether compiling pays back
DEFAULT_USER_TEMPLATE = "{problem}"


@dataclass
class BestOfNConfig:
    """Settings of one Best-of-N experiment (the defaults replicate the DeepMind paper's baseline)."""

    # --- data -------------------------------------------------------------------------------------------
    dataset: str = field(
        default="HuggingFaceH4/MATH-500",
        metadata={"help": f"A benchmark ({', '.join(DATASET_NAMES)}), a Hub dataset id, or a local "
                          f".jsonl/.json/.parquet file in one of their layouts (docs/datasets.md)."},
    )
    dataset_split: str = field(
        default="test", metadata={"help": "Split to load from a Hub dataset id (a benchmark name brings its own)."})
    dataset_format: str | None = field(
        default=None,
        metadata={"help": "Which benchmark's column layout the dataset is in (none: recognised from its columns, "
                          "or the benchmark named by dataset).", "choices": DATASET_NAMES, "example": "gsm8k"},
    )
    levels: list[int] = field(
        default_factory=lambda: [1, 2, 3],
        metadata={"help": "Difficulty levels to keep (1-5; only MATH has levels, elsewhere every problem is eligible)."})
    num_problems: int = field(
        default=20, metadata={"help": "Problems in the subset, stratified by level; all: every eligible problem.",
                              "words": (ALL,), "min": 1})
    # --- prompt -----------------------------------------------------------------------------------------
    system_prompt: str = field(
        default=DEFAULT_SYSTEM_PROMPT,
        metadata={"help": "System message of the chat prompt; '{step_format}' becomes how the PRM wants steps separated."},
    )
    user_template: str = field(
        default=DEFAULT_USER_TEMPLATE, metadata={"help": "User message; '{problem}' is replaced by the problem."}
    )
    # --- generation ---------------------------------------------------------------------------------------
    generator: str = field(default="Qwen/Qwen2.5-1.5B-Instruct", metadata={"help": "Policy model: Hub id or local path."})
    generator_revision: str | None = field(
        default=None, metadata={"help": "Hub revision (branch, tag, commit).", "example": "main"})
    backend: str = field(default="transformers", metadata={"help": "Generation backend.", "choices": ("transformers", "vllm")})
    n: int = field(default=16, metadata={"help": "Sampled solutions per problem (the N of Best-of-N).", "min": 1})
    temperature: float = field(default=0.8, metadata={"help": "Sampling temperature of the N solutions."})
    top_p: float = field(default=1.0, metadata={"help": "Nucleus sampling threshold of the N solutions."})
    max_new_tokens: int = field(default=2048, metadata={"help": "Longest solution, in tokens.", "min": 1})
    seed: int = field(default=0, metadata={"help": "Seed for the subset and for sampling."})
    generation_batch_tokens: int | None = field(
        default=None,
        metadata={"help": "transformers backend: tokens per generation batch, counting prompt + max_new_tokens per "
                          "sequence (default: from free GPU memory and the model's KV-cache size; 32768 on CPU). "
                          "Speed only: it never changes a sample or a chunk.",
                  "example": 262144, "min": 1},
    )
    generation_batch_size: int | None = field(
        default=None, metadata={"help": "transformers backend: at most this many sequences per batch (default: no cap); "
                                        "speed only.",
                                "example": 64, "min": 1}
    )
    compile_generation: str = field(
        default="auto",
        metadata={"help": "transformers backend: static KV cache + torch.compile'd decoding step on CUDA "
                          "(auto: on when the run decodes long enough to pay back the compile).",
                  "choices": SWITCH},
    )
    # --- vLLM engine (backend: vllm) ----------------------------------------------------------------------
    gpu_memory_utilization: float = field(
        default=0.5,
        metadata={"help": "vLLM: share of GPU memory for weights + KV cache (the PRM needs the rest later)."},
    )
    max_model_len: int | None = field(
        default=None,
        metadata={"help": "vLLM: longest prompt + solution, in tokens (none: the model's own context).", "example": 4096,
                  "min": 1},
    )
    tensor_parallel_size: int = field(default=1, metadata={"help": "vLLM: GPUs to shard the generator over.", "min": 1})
    enforce_eager: bool = field(default=False, metadata={"help": "vLLM: disable CUDA graphs (slower, less memory)."})
    # --- adaptive Best-of-N (docs/adaptive.md) ------------------------------------------------------------
    adaptive: str = field(
        default=OFF,
        metadata={"help": "best_of_n: draw samples in rounds and stop a problem early when this rule fires (beta: "
                          "Adaptive-Consistency; esc: a round in full agreement; prm: the Beta test on PRM-weighted "
                          "votes); off: always n.", "choices": (OFF, *RULES)},
    )
    adaptive_batch: int = field(default=4, metadata={"help": "Adaptive: samples per round (the last may be smaller).",
                                                  "min": 1})
    adaptive_confidence: float = field(
        default=0.95, metadata={"help": "Adaptive beta and prm: stop when the leading answer stays ahead with this "
                                        "posterior probability, in (0.5, 1)."})
    # --- search method ------------------------------------------------------------------------------------
    method: str = field(
        default=BEST_OF_N,
        metadata={"help": "best_of_n (sample n, then select), beam_search or dvts (PRM-guided search, n final solutions).",
                  "choices": RUN_METHODS},
    )
    beam_width: int = field(
        default=4, metadata={"help": "Search methods: M, candidates per kept beam (beam_search keeps n/M beams; dvts "
                                     "runs n/M subtrees); n must be a multiple of it.", "min": 1})
    num_iterations: int = field(
        default=40, metadata={"help": "Search methods: most steps per solution; the last one runs beams to their end.", "min": 1})
    lookahead: int = field(
        default=0, metadata={"help": "Search methods: greedy steps generated after a candidate only to score it.", "min": 0})
    filter_duplicates: bool = field(
        default=True, metadata={"help": "beam_search: expand identical partial solutions once (as search-and-learn)."})
    # --- PRM scoring ----------------------------------------------------------------------------------------
    prm: str = field(
        default="Skywork/Skywork-o1-Open-PRM-Qwen-2.5-1.5B", metadata={"help": "Process reward model: Hub id or local path."}
    )
    prm_revision: str | None = field(default=None, metadata={"help": "Hub revision of the PRM.", "example": "main"})
    prm_format: str | None = field(
        default=None,
        metadata={"help": "PRM checkpoint format (default: detected from its config or Hub id).", "choices": FORMATS},
    )
    prm_compile: str = field(
        default="auto",
        metadata={"help": "torch.compile the PRM backbone (auto: only on GPU for runs big enough to pay the compile back).",
                  "choices": SWITCH},
    )
    prm_cache: bool = field(
        default=True, metadata={"help": "Search methods: keep each beam's PRM cache, so each step runs only its new tokens "
                                        "through the PRM (off: rescore every prefix; same rewards up to float rounding)."})
    prm_batch_tokens: int | None = field(
        default=None,
        metadata={"help": "Tokens per PRM batch, padding included (none: 16384 on GPU, 4096 on CPU).", "example": 8192,
                  "min": 1},
    )
    prm_max_length: int | None = field(
        default=None,
        metadata={"help": "Longest PRM input; longer ones are truncated and flagged (none: model context).", "example": 4096,
                  "min": 1},
    )
    # --- selection ------------------------------------------------------------------------------------------
    aggregation: str = field(
        default="last", metadata={"help": "Step rewards -> solution reward (last: the paper's choice).",
                                  "choices": AGGREGATIONS}
    )
    # --- hardware -------------------------------------------------------------------------------------------
    device: str = field(default="auto", metadata={"help": "cpu, cuda, cuda:1, ... ('auto': cuda if available)."})
    dtype: str = field(default="auto", metadata={"help": "Model weights' dtype; auto: bf16 on GPU, fp32 on CPU.",
                                                 "choices": ("auto", "bfloat16", "float16", "float32")})
    # --- scale-out (docs/scale-out.md); never part of a chunk's name: Ray or not, the results are the same
    ray_address: str | None = field(
        default=None,
        metadata={"help": "Run generation, PRM scoring and search on a Ray cluster: 'auto' joins the running one, 'local' "
                          "(or --ray alone) starts one on this machine, or a cluster address (host:6379). "
                          "none: this process only.", "example": "auto"},
    )
    workers: int | None = field(
        default=None,
        metadata={"help": "Ray: actors per stage, each holding one model (none: one per GPU, or 2 on a cluster "
                          "without GPUs).", "example": 8, "min": 1},
    )
    # --- grading --------------------------------------------------------------------------------------------
    grading_timeout: int = field(default=5, metadata={"help": "Seconds to grade one solution (extraction + math-verify), and per answer comparison in selection; a whole number >= 1.", "min": 1})
    # --- output ---------------------------------------------------------------------------------------------
    output_dir: str = field(default="runs/best_of_n", metadata={"help": "Run directory for all artifacts."})

    def __post_init__(self) -> None:
        for name, ft in field_types(type(self)).items():  # types first: validate() compares numbers
            setattr(self, name, check_value(ft, getattr(self, name)))
        self.validate()

    def validate(self) -> None:
        """Reject impossible settings up front, before any model is loaded."""
        self.levels = sorted(set(self.levels))
        bad = [lvl for lvl in self.levels if not 1 <= lvl <= 5]
        if bad or not self.levels:
            raise BestOfNError(f"levels must be a non-empty subset of 1-5, got {self.levels}; e.g. --levels 1,2,3")
        if self.temperature <= 0:
            raise BestOfNError(f"temperature must be > 0 for sampling, got {self.temperature} (greedy is run anyway)")
        if not 0 < self.top_p <= 1:
            raise BestOfNError(f"top_p must be in (0, 1], got {self.top_p}")
        if not 0 < self.gpu_memory_utilization <= 1:
            raise BestOfNError(
                f"gpu_memory_utilization must be in (0, 1], got {self.gpu_memory_utilization}; e.g. 0.5 leaves half "
                f"the GPU for the PRM (on CPU it is the share of RAM)"
            )
        if not DEVICE.fullmatch(self.device):
            raise BestOfNError(f"device must be auto, cpu, cuda or cuda:N (a GPU's index, e.g. cuda:1), got "
                               f"{self.device!r}; e.g. --device cuda")
        check_output_dir(self.output_dir)
        if self.method not in RUN_METHODS:
            raise BestOfNError(f"method must be one of {', '.join(RUN_METHODS)}, got {self.method!r}")
        if self.method != BEST_OF_N:
            if self.n % self.beam_width:
                raise BestOfNError(f"n ({self.n}) must be a positive multiple of beam_width ({self.beam_width}) for "
                                   f"{self.method}; e.g. --n 16 --beam-width 4")
        if self.adaptive != OFF and self.method != BEST_OF_N:
            raise BestOfNError(f"adaptive sampling is for best_of_n, not {self.method}; drop --adaptive or use "
                               f"--method best_of_n")
        if not 0.5 < self.adaptive_confidence < 1:
            raise BestOfNError(f"adaptive_confidence must be in (0.5, 1) (a posterior probability that the leading "
                               f"answer stays ahead), got {self.adaptive_confidence}; e.g. --adaptive-confidence 0.95")
        if "{problem}" not in self.user_template:
            raise BestOfNError("user_template must contain '{problem}', where the problem text goes")

    # --- YAML round trip -------------------------------------------------------------------------------------
    @classmethod
    def from_yaml(cls, path: str | Path, **overrides: Any) -> BestOfNConfig:
        """Read a recipe file, then apply non-None overrides."""
        return cls.from_dict({**read_recipe(path), **{k: v for k, v in overrides.items() if v is not None}})

    @classmethod
    def from_dict(cls, data: dict[str, Any], where: str = "") -> BestOfNConfig:
        """Build from a mapping of keys to values; ``where`` (e.g. "config file r.yaml: ") prefixes errors."""
        return cls(**check_keys(data, where))

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    def to_yaml(self) -> str:
        return yaml.safe_dump(self.to_dict(), sort_keys=False, allow_unicode=True, width=120)


def read_recipe(path: str | Path) -> dict[str, Any]:
    """The keys of a recipe file, each checked against its field's type (one line per error, naming the file)."""
    try:
        raw = Path(path).read_bytes()
        text = raw.decode("utf-8")
        data = yaml.load(text, Loader=_UniqueKeyLoader)  # noqa: S506 - a SafeLoader that refuses repeated keys
    except OSError as e:
        raise BestOfNError(f"cannot read config file {path}: {e.strerror}") from None
    except UnicodeDecodeError as e:
        line = raw[: e.start].count(b"\n") + 1
        raise BestOfNError(f"config file {path} is not UTF-8 text (byte 0x{raw[e.start]:02x} on line {line}); save it "
                           f"as UTF-8") from None
    except _RepeatedKey as e:
        raise BestOfNError(f"config file {path}: key {e.key!r} is given twice (lines {e.first} and {e.second}); "
                           f"keep one of them") from None
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None)
        at = f" at line {mark.line + 1}, column {mark.column + 1}" if mark is not None else ""
        problem = getattr(e, "problem", None) or type(e).__name__
        raise BestOfNError(f"config file {path} is not valid YAML{at}: {problem}; write one `key: value` per line, "
                           f"e.g. n: 16") from None
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise BestOfNError(f"config file {path} must hold a mapping of keys to values, e.g. n: 16")
    return check_keys(data, f"config file {path}: ")


class _RepeatedKey(Exception):
    def __init__(self, key: Any, first: int, second: int):
        self.key, self.first, self.second = key, first, second


class _UniqueKeyLoader(yaml.SafeLoader):
    """YAML's safe loader, except that a key given twice in one mapping is an error (PyYAML keeps the last)."""

    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> dict[Any, Any]:
        seen: dict[Any, int] = {}
        for key_node, _ in node.value:
            key = self.construct_object(key_node, deep=deep)
            line = key_node.start_mark.line + 1
            if key in seen:
                raise _RepeatedKey(key, seen[key], line)
            seen[key] = line
        return super().construct_mapping(node, deep=deep)


def check_keys(data: dict[str, Any], where: str = "") -> dict[str, Any]:
    """``data`` with every key known and every value of its field's type (normalized), else one clear line."""
    types = field_types(BestOfNConfig)
    unknown = sorted(set(data) - set(types), key=str)
    if unknown:
        raise BestOfNError(f"{where}unknown config keys {unknown}; known keys: {sorted(types)}")
    return {k: check_value(types[k], v, where) for k, v in data.items()}


# --- what changes a result: the one list ---------------------------------------------------------------------
# The stages of a run, in order; each one's output depends on every earlier one's (pipeline.py).
STAGES = ("problems", "greedy", "samples", "scores", "results")


@dataclass(frozen=True)
class ResultSetting:
    """How one setting changes a run's results (an entry of :data:`RESULT_SETTINGS`)."""

    stage: str  # the first stage whose output it changes; every later stage changes with it
    also: tuple[str, ...] = ()  # later stages it enters directly too (dtype: the PRM's as well as the generator's)
    search_only: bool = False  # only a search has it (Best-of-N ignores it)
    steers_search: bool = False  # a search's (or an adaptive run's) samples depend on it too: the PRM and the
    # ranking choose a search's steps, and when an adaptive run stops drawing
    adaptive_only: bool = False  # only an adaptive Best-of-N run has it (a fixed run ignores it)
    draws: bool = False  # it chooses which problems are drawn: a chunk is named by its problems instead
    compared: bool = True  # ``compare`` refuses runs that differ in it (False: what a comparison varies, or matches)

    def enters(self, method: str, adaptive: str = OFF) -> set[str]:
        """The stages whose own work this setting changes in a run of ``method`` (adaptive or not)."""
        adaptive_run = method == BEST_OF_N and adaptive != OFF  # (validate refuses adaptive for a search)
        if (self.search_only and method == BEST_OF_N) or (self.adaptive_only and not adaptive_run):
            return set()
        steered = method != BEST_OF_N or adaptive_run  # the PRM decides what is sampled
        return {self.stage, *self.also} | ({"samples"} if self.steers_search and steered else set())


# Every setting that changes a result, and nothing else: the chunk names (chunk_keys), the settings a rerun must
# not change silently (rundir), compare's comparability check, prm-bench's PRM identity and docs/artifacts.md's
# table are all derived from it. The settings left out only change speed, memory or where the work runs (batch
# sizes, device of one kind, vLLM engine memory, compile, Ray, grading time limit, output_dir): a sample is a
# function of the run seed, its problem, its index and these settings alone (bestofn.seeds.sample_seed).
RESULT_SETTINGS: dict[str, ResultSetting] = {
    "dataset": ResultSetting("problems", draws=True),
    "dataset_split": ResultSetting("problems", draws=True),
    "dataset_format": ResultSetting("problems", draws=True),
    "levels": ResultSetting("problems", draws=True, compared=False),  # compare keeps the problems all runs share
    "num_problems": ResultSetting("problems", draws=True, compared=False),
    "seed": ResultSetting("problems"),  # draws the problems and seeds every sample: it names the chunks too
    "generator": ResultSetting("greedy"),
    "generator_revision": ResultSetting("greedy"),
    "system_prompt": ResultSetting("greedy"),
    "user_template": ResultSetting("greedy"),
    "max_new_tokens": ResultSetting("greedy"),
    "backend": ResultSetting("greedy"),  # vLLM and transformers sample differently
    "dtype": ResultSetting("greedy", also=("scores",)),  # both models compute in it
    "n": ResultSetting("samples", compared=False),  # the budget a comparison varies
    "temperature": ResultSetting("samples"),
    "top_p": ResultSetting("samples"),
    "method": ResultSetting("samples", search_only=True, compared=False),  # what a comparison varies
    "beam_width": ResultSetting("samples", search_only=True, compared=False),
    "num_iterations": ResultSetting("samples", search_only=True, compared=False),
    "lookahead": ResultSetting("samples", search_only=True, compared=False),
    "filter_duplicates": ResultSetting("samples", search_only=True, compared=False),
    # Adaptive Best-of-N (docs/adaptive.md): how many samples each problem gets; a fixed run has none of them
    "adaptive": ResultSetting("samples", adaptive_only=True, compared=False),  # what a comparison varies
    "adaptive_batch": ResultSetting("samples", adaptive_only=True, compared=False),
    "adaptive_confidence": ResultSetting("samples", adaptive_only=True, compared=False),
    "prm": ResultSetting("scores", steers_search=True),
    "prm_revision": ResultSetting("scores", steers_search=True),
    "prm_format": ResultSetting("scores", steers_search=True),
    "prm_max_length": ResultSetting("scores", steers_search=True),
    "aggregation": ResultSetting("results", steers_search=True),
}


def stage_keys(stage: str, method: str = BEST_OF_N, adaptive: str = OFF) -> set[str]:
    """All config keys whose change invalidates ``stage`` (for runs of ``method``, adaptive or not): those
    entering it or an earlier stage."""
    upto = set(STAGES[: STAGES.index(stage) + 1])
    return {k for k, s in RESULT_SETTINGS.items() if s.enters(method, adaptive) & upto}


def chunk_keys(stage: str, method: str = BEST_OF_N, adaptive: str = OFF) -> set[str]:
    """The settings a chunk of ``stage`` depends on besides what it reads (its problems, or the solutions it
    scores), which name it too: how the problems were drawn is left out, and scoring depends on the PRM only."""
    if stage == "scores":
        return {k for k, s in RESULT_SETTINGS.items() if "scores" in s.enters(method, adaptive)}
    return {k for k in stage_keys(stage, method, adaptive) if not RESULT_SETTINGS[k].draws}


def compared_settings() -> tuple[str, ...]:
    """The settings two runs must share to be compared side by side (``bestofn compare``)."""
    return tuple(k for k, s in RESULT_SETTINGS.items() if s.compared)
