"""PRM scoring throughput: each format's lean scorer (``bestofn.prm``) against a reference-style pass.

Both run in this process, on the same random weights and the same random inputs (token ids with a reward
token ending each step, as the PRM sees a solution), and the script reports for each: tokens/s, peak
memory, useful TFLOP/s and their share of the device's bf16 peak; then the ratios and the largest
difference between their step rewards. The reference-style passes (``--format``), each with one batch per
problem padded to its longest solution and an attention mask, as the reference code is used:

- skywork (SkyworkAI/skywork-o1-prm-inference): the full causal LM with ``output_hidden_states``, float32
  copies of the (unused) vocabulary logits, the value head on every token;
- qwen2.5-math-prm (the model card's ``Qwen2ForProcessRewardModel``): the score MLP on every token;
- rlhflow, math-shepherd (search-and-learn, the model cards): the full vocabulary logits at every token,
  then the "+"/"-" columns.

Rewards are gathered with one tensor op rather than the references' per-step ``.item()``, which only
flatters them. The lean side (``PRMScorer.score_encoded``): backbone only, length-sorted token-budgeted
batches, no mask, the head (or two LM-head rows) at reward positions only.

Usage (from the repository root):

    python benchmarks/prm_throughput.py --format rlhflow            # CPU, small shape: 1-2 minutes on 2 cores
    python benchmarks/prm_throughput.py --format rlhflow --shape llama3.1-8b --device cuda --out prm_rlhflow.json
    python benchmarks/prm_throughput.py --shape qwen2.5-1.5b --device cuda --compile   # prm_compile: on

Tokenization is left out on purpose: both implementations share it (the scorer's ``encode``).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import random
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path

import torch
from torch import nn

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run from a checkout without installing

from bestofn.prm import EncodedPair

# Real shapes (config.json of each checkpoint's base model). "family" fixes the architecture of a real shape;
# "small" takes the family of the --format.
REAL = {"hidden_size": 1536, "num_hidden_layers": 28, "num_attention_heads": 12, "num_key_value_heads": 2,
        "intermediate_size": 8960, "vocab_size": 151936, "max_position_embeddings": 32768, "rope_theta": 1e6,
        "family": "qwen2"}
SHAPES = {
    "qwen2.5-1.5b": REAL,  # Skywork-o1-Open-PRM-Qwen-2.5-1.5B
    "qwen2.5-math-7b": {"hidden_size": 3584, "num_hidden_layers": 28, "num_attention_heads": 28, "num_key_value_heads": 4,
                        "intermediate_size": 18944, "vocab_size": 152064, "max_position_embeddings": 4096,
                        "rope_theta": 1e4, "family": "qwen2"},  # Qwen2.5-Math-PRM-7B
    "llama3.1-8b": {"hidden_size": 4096, "num_hidden_layers": 32, "num_attention_heads": 32, "num_key_value_heads": 8,
                    "intermediate_size": 14336, "vocab_size": 128256, "max_position_embeddings": 131072,
                    "rope_theta": 5e5, "family": "llama"},  # RLHFlow/Llama3.1-8B-PRM-*
    "mistral-7b": {"hidden_size": 4096, "num_hidden_layers": 32, "num_attention_heads": 32, "num_key_value_heads": 8,
                   "intermediate_size": 14336, "vocab_size": 32000, "max_position_embeddings": 32768,
                   "rope_theta": 1e4, "sliding_window": 4096, "family": "mistral"},  # math-shepherd-mistral-7b-prm
    # A real shape scaled down for a CPU, vocabulary included: with 4096 tokens the LM head keeps about the
    # share of the reference's matmul FLOPs that it has in Qwen2.5-1.5B (16%), so the CPU ratio is not
    # inflated by a huge LM head (Llama-3-8B's share is 7%, Mistral-7B's 2%).
    "small": {"hidden_size": 256, "num_hidden_layers": 4, "num_attention_heads": 4, "num_key_value_heads": 2,
              "intermediate_size": 1536, "vocab_size": 4096, "max_position_embeddings": 4096},
}
FAMILIES = {"skywork": "qwen2", "qwen2.5-math-prm": "qwen2", "rlhflow": "llama", "math-shepherd": "mistral"}
DEFAULT_SHAPES = {"skywork": "qwen2.5-1.5b", "qwen2.5-math-prm": "qwen2.5-math-7b", "rlhflow": "llama3.1-8b",
                  "math-shepherd": "mistral-7b"}
# Dense bf16 peak of known GPUs in TFLOP/s (the vendors' datasheets, no sparsity); the first match wins.
PEAK_BF16_TFLOPS = [("H100 PCIe", 756.0), ("H100 NVL", 835.0), ("H100", 989.0), ("H200", 989.0),
                    ("A100", 312.0), ("L40S", 362.0), ("L4", 121.0), ("T4", 65.0)]
NEWLINE_ID = 198  # any id works; 198 is "\n" in Qwen's vocabulary
GIB = 1024**3


# --- inputs ---------------------------------------------------------------------------------------------------
def make_inputs(problems: int, n: int, min_tokens: int, max_tokens: int, vocab: int,
                seed: int) -> list[list[EncodedPair]]:
    """``problems`` groups of ``n`` random solutions, each ``min_tokens``-``max_tokens`` tokens in all.

    A group shares its problem prompt (30-150 tokens), like the N samples of one problem; steps are 5-60
    tokens, each ending with the newline token, where the PRM is read.
    """
    rng = random.Random(seed)
    groups = []
    for _ in range(problems):
        prompt = rng.choices(range(vocab), k=rng.randint(30, min(150, min_tokens - 1))) + [NEWLINE_ID]
        group = []
        for _ in range(n):
            ids, positions, total = list(prompt), [], rng.randint(min_tokens, max_tokens)
            while len(ids) < total:
                step = min(rng.randint(5, 60), total - len(ids))
                ids += rng.choices(range(vocab), k=step - 1) + [NEWLINE_ID]
                positions.append(len(ids) - 1)
            group.append(EncodedPair(ids, positions))
        groups.append(group)
    return groups


# --- models ---------------------------------------------------------------------------------------------------
def _config(shape: str, fmt: str):
    """The transformers config of ``shape`` for the backbone family of format ``fmt``."""
    from transformers import LlamaConfig, MistralConfig, Qwen2Config

    dims = {k: v for k, v in SHAPES[shape].items() if k not in ("family", "rope_theta", "sliding_window")}
    family = SHAPES[shape].get("family", FAMILIES[fmt])
    extra = {k: SHAPES[shape][k] for k in ("rope_theta", "sliding_window") if k in SHAPES[shape]}
    cls = {"qwen2": Qwen2Config, "llama": LlamaConfig, "mistral": MistralConfig}[family]
    return cls(**dims, **extra, tie_word_embeddings=False, rms_norm_eps=1e-6, attn_implementation="sdpa")


def build(fmt: str, shape: str, device: str, dtype: torch.dtype, seed: int, batch_tokens: int | None):
    """Random weights in ``shape``; returns (lean scorer, reference-style scorer, backbone config).

    Both share one set of weights on ``device``. The heads get weights of about unit gain, so rewards
    spread over (0, 1) and differences between the two show.
    """
    from transformers import MODEL_FOR_CAUSAL_LM_MAPPING, Qwen2Model

    from bestofn.prm import MathShepherdPRM, QwenMathPRM, RLHFlowPRM, SkyworkPRM
    from bestofn.testing import make_tokenizer
    from bestofn.testing.models import make_llama3_tokenizer, make_mistral_tokenizer, make_qwen_math_prm_tokenizer

    config = _config(shape, fmt)
    h = config.hidden_size
    torch.manual_seed(seed)
    with torch.device(device), torch.no_grad():  # random init on the GPU takes seconds, on the CPU minutes for 7B
        if fmt == "qwen2.5-math-prm":
            backbone = Qwen2Model._from_config(config, dtype=dtype).eval()
            score = nn.Sequential(nn.Linear(h, h), nn.ReLU(), nn.Linear(h, 2))
            for layer in (score[0], score[2]):
                layer.weight.normal_(std=h**-0.5)
            tokenizer = make_qwen_math_prm_tokenizer()
            lean = QwenMathPRM(backbone, score, tokenizer, batch_tokens=batch_tokens)
            return lean, QwenMathReferenceStyle(backbone, score.to(dtype), tokenizer.pad_token_id), config
        lm = MODEL_FOR_CAUSAL_LM_MAPPING[type(config)]._from_config(config, dtype=dtype).eval()
        if fmt == "skywork":
            head = nn.Linear(h, 1)
            head.weight.normal_(std=h**-0.5)
            head.bias.zero_()
            tokenizer = make_tokenizer()  # only for its pad id: the inputs below are token ids already
            tokenizer.bos_token = "<|endoftext|>"
            lean = SkyworkPRM(lm.model, head, tokenizer, batch_tokens=batch_tokens)
            return lean, SkyworkReferenceStyle(lm, head, tokenizer.pad_token_id), config
        lm.lm_head.weight.normal_(std=h**-0.5)
        cls, tokenizer = ((RLHFlowPRM, make_llama3_tokenizer()) if fmt == "rlhflow" else
                          (MathShepherdPRM, make_mistral_tokenizer()))
        candidates = list(cls.candidate_ids(tokenizer))
        rows = nn.Linear(h, 2, bias=False)
        rows.weight.copy_(lm.lm_head.weight[candidates].float())  # what load_token_rows reads from the file
        pad_id = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else 0
        lean = cls(lm.model, rows, tokenizer, batch_tokens=batch_tokens)
        return lean, TwoTokenReferenceStyle(lm, candidates, pad_id), config


class ReferenceStyle:
    """One padded batch per problem, with an attention mask, as the reference scripts are used."""

    pad_id: int

    @torch.inference_mode()
    def score(self, groups: list[list[EncodedPair]]) -> list[list[float]]:
        out: list[list[float]] = []
        for group in groups:
            out += self._score_group(group)
        return out

    def _score_group(self, group: list[EncodedPair]) -> list[list[float]]:
        from torch.nn.utils.rnn import pad_sequence

        ids = pad_sequence([torch.tensor(p.input_ids) for p in group], batch_first=True, padding_value=self.pad_id)
        mask = pad_sequence([torch.ones(len(p.input_ids), dtype=torch.long) for p in group], batch_first=True)
        values = self.rewards_everywhere(ids.to(self.device), mask.to(self.device))
        rows = torch.tensor([r for r, p in enumerate(group) for _ in p.step_positions], device=self.device)
        cols = torch.tensor([c for p in group for c in p.step_positions], device=self.device)
        flat = values[rows, cols].tolist()
        rewards, start = [], 0
        for p in group:
            rewards.append(flat[start : start + len(p.step_positions)])
            start += len(p.step_positions)
        return rewards


class SkyworkReferenceStyle(ReferenceStyle):
    """Skywork's inference code: full causal LM, hidden states, fp32 logits, value head on every token."""

    def __init__(self, lm: nn.Module, head: nn.Linear, pad_id: int):
        self.lm, self.head, self.pad_id, self.device = lm, head, pad_id, head.weight.device

    def rewards_everywhere(self, ids: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        output = self.lm(input_ids=ids, attention_mask=mask, output_hidden_states=True, use_cache=False)
        logits = output.logits.float()  # the reference upcasts the LM logits that it then ignores
        values = torch.sigmoid(self.head(output.hidden_states[-1].to(self.head.weight.dtype)).squeeze(-1))
        del logits, output
        return values


class QwenMathReferenceStyle(ReferenceStyle):
    """Qwen2ForProcessRewardModel's forward: the score head on every token, softmax, mask at the tags."""

    def __init__(self, backbone: nn.Module, score: nn.Module, pad_id: int):
        self.backbone, self.score_head, self.pad_id = backbone, score, pad_id
        self.device = next(backbone.parameters()).device

    def rewards_everywhere(self, ids: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        hidden = self.backbone(input_ids=ids, attention_mask=mask, use_cache=False).last_hidden_state
        return torch.softmax(self.score_head(hidden).float(), dim=-1)[..., 1]


class TwoTokenReferenceStyle(ReferenceStyle):
    """search-and-learn / the model cards: full vocabulary logits, then the two candidate columns."""

    def __init__(self, lm: nn.Module, candidates: list[int], pad_id: int):
        self.lm, self.candidates, self.pad_id = lm, candidates, pad_id
        self.device = next(lm.parameters()).device

    def rewards_everywhere(self, ids: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        logits = self.lm(input_ids=ids, attention_mask=mask, use_cache=False).logits[:, :, self.candidates]
        return logits.float().softmax(dim=-1)[..., 0]


# --- measuring ------------------------------------------------------------------------------------------------
class RSSPeak:
    """Peak resident memory of this process between ``start()`` and ``stop()``, sampled every millisecond."""

    def __init__(self):
        self.before = self.peak = _rss()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._watch, daemon=True)

    def _watch(self) -> None:
        while not self._stop.wait(0.001):
            self.peak = max(self.peak, _rss())

    def start(self) -> None:
        self.before = self.peak = _rss()
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join()
        self.peak = max(self.peak, _rss())


def _release_freed_memory() -> None:
    """Hand freed heap memory back to the OS (glibc), so that one run's leftovers do not hide the next's."""
    try:
        import ctypes

        ctypes.CDLL("libc.so.6").malloc_trim(0)
    except (OSError, AttributeError):  # not glibc: the working memory of later runs may read low
        pass


def _rss() -> int:
    """Resident memory now (Linux); elsewhere the process's lifetime peak, which cannot be reset."""
    try:
        with open("/proc/self/statm") as f:
            return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
    except OSError:
        import resource

        peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        return peak if sys.platform == "darwin" else peak * 1024  # bytes on macOS, KiB elsewhere


@dataclass
class Run:
    """One implementation's best run."""

    name: str
    seconds: float | None = None
    tokens_per_s: float | None = None
    peak_gib: float | None = None  # GPU: peak allocated (weights included); CPU: peak RSS of the process
    working_mib: float | None = None  # the peak above what was held before the run: the working memory
    padded_tokens: int | None = None  # tokens the forward passes computed, padding included
    tflops: float | None = None  # useful FLOPs (no padding, no LM head) per second
    flop_share: float | None = None  # tflops over the device's bf16 peak
    error: str | None = None


def measure_once(fn: Callable[[], list[list[float]]], device: str) -> tuple[float, int, int, list[list[float]]]:
    """Seconds, peak memory and working memory (bytes) of one call of ``fn``, and its rewards."""
    if device.startswith("cuda"):
        torch.cuda.synchronize()
        torch.cuda.empty_cache()
        torch.cuda.reset_peak_memory_stats()
        before = torch.cuda.memory_allocated()
        start = time.perf_counter()
        rewards = fn()
        torch.cuda.synchronize()
        seconds = time.perf_counter() - start
        return seconds, torch.cuda.max_memory_allocated(), torch.cuda.max_memory_allocated() - before, rewards
    _release_freed_memory()
    mem = RSSPeak()
    mem.start()
    try:
        start = time.perf_counter()
        rewards = fn()
        seconds = time.perf_counter() - start
    finally:
        mem.stop()
    return seconds, mem.peak, mem.peak - mem.before, rewards


def measure(impls: dict[str, Callable[[], list[list[float]]]], device: str, repeats: int, tokens: int,
            flops: float, peak_tflops: float | None) -> tuple[dict[str, Run], dict[str, list[list[float]]]]:
    """Best time of each implementation over ``repeats`` rounds, and the largest peak memory seen.

    The implementations take turns (A B, B A, A B, ...), so a machine that gets busier or quieter during
    the benchmark (a shared CPU) does not favour one of them. An out-of-memory error is recorded, and
    that implementation is not run again.
    """
    runs = {name: Run(name) for name in impls}
    samples: dict[str, list[tuple[float, int, int]]] = {name: [] for name in impls}
    rewards: dict[str, list[list[float]]] = {}
    names = list(impls)
    for round_ in range(repeats):
        for name in names if round_ % 2 == 0 else names[::-1]:
            if runs[name].error:
                continue
            try:
                seconds, peak, extra, rewards[name] = measure_once(impls[name], device)
                samples[name].append((seconds, peak, extra))
            except torch.cuda.OutOfMemoryError as e:  # also torch.OutOfMemoryError in torch >= 2.5
                runs[name].error = f"out of memory ({str(e).splitlines()[0][:120]})"
                rewards.pop(name, None)
                if device.startswith("cuda"):
                    torch.cuda.empty_cache()
    for name, run in runs.items():
        if run.error or not samples[name]:
            continue
        run.seconds = min(s for s, _, _ in samples[name])
        run.tokens_per_s = tokens / run.seconds
        run.peak_gib = max(p for _, p, _ in samples[name]) / GIB
        run.working_mib = max(e for _, _, e in samples[name]) / 2**20
        run.tflops = flops / run.seconds / 1e12
        run.flop_share = run.tflops / peak_tflops if peak_tflops else None
    return runs, rewards


def useful_flops(pairs: list[EncodedPair], config) -> float:
    """Matmul FLOPs that scoring needs: backbone linears and causal attention, no padding, no LM head."""
    h, layers = config.hidden_size, config.num_hidden_layers
    kv = config.num_key_value_heads * (h // config.num_attention_heads)
    linear_per_token = 2 * layers * (2 * h * h + 2 * h * kv + 3 * h * config.intermediate_size)
    return sum(linear_per_token * len(p.input_ids) + 2 * layers * h * len(p.input_ids) * (len(p.input_ids) + 1)
               for p in pairs)


def detect_peak_tflops(device: str) -> tuple[float | None, str]:
    if not device.startswith("cuda"):
        return None, platform.processor() or platform.machine()
    name = torch.cuda.get_device_name(device)
    return next((tflops for key, tflops in PEAK_BF16_TFLOPS if key in name), None), name


# --- main -----------------------------------------------------------------------------------------------------
def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--format", choices=sorted(FAMILIES), default="skywork",
                   help="PRM format: its lean scorer against its reference-style pass")
    p.add_argument("--shape", choices=sorted(SHAPES), default="small",
                   help=f"model shape (real ones: {', '.join(f'{f}: {s}' for f, s in DEFAULT_SHAPES.items())})")
    p.add_argument("--compile", action="store_true",
                   help="torch.compile the lean backbone (prm_compile: on); compiling happens in an untimed warm-up")
    p.add_argument("--device", default="cpu", help="cpu, cuda or cuda:N")
    p.add_argument("--dtype", choices=["auto", "float32", "bfloat16", "float16"], default="auto",
                   help="auto: bfloat16 on GPU, float32 on CPU (as the pipeline)")
    p.add_argument("--problems", type=int, help="problems (default: 20 on GPU, 4 on CPU)")
    p.add_argument("--n", type=int, default=16, help="solutions per problem: one reference-style batch")
    p.add_argument("--min-tokens", type=int, default=200, help="shortest input (problem + solution)")
    p.add_argument("--max-tokens", type=int, default=900, help="longest input (problem + solution)")
    p.add_argument("--batch-tokens", type=int, help="lean batch budget (default: the scorer's default for the device)")
    p.add_argument("--repeats", type=int, help="timed runs of each, taking turns, best kept (default: 3 GPU, 2 CPU)")
    p.add_argument("--peak-tflops", type=float, help="device bf16 peak for the FLOP share (default: known GPUs)")
    p.add_argument("--threads", type=int, help="CPU threads for torch (default: torch's choice)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", type=Path, help="write the results as JSON here")
    return p.parse_args(argv)


def main(argv: list[str] | None = None) -> dict:
    args = parse_args(argv)
    cuda = args.device.startswith("cuda")
    if cuda and not torch.cuda.is_available():
        sys.exit(f"--device {args.device}: no CUDA device is visible to torch {torch.__version__}")
    if args.threads:
        torch.set_num_threads(args.threads)
    dtype = (torch.bfloat16 if cuda else torch.float32) if args.dtype == "auto" else getattr(torch, args.dtype)
    problems = args.problems or (20 if cuda else 4)
    repeats = args.repeats or (3 if cuda else 2)
    peak_tflops, device_name = detect_peak_tflops(args.device)
    peak_tflops = args.peak_tflops or peak_tflops

    build_start = time.perf_counter()
    lean, reference, config = build(args.format, args.shape, args.device, dtype, args.seed, args.batch_tokens)
    groups = make_inputs(problems, args.n, args.min_tokens, args.max_tokens, config.vocab_size, args.seed)
    pairs = [p for g in groups for p in g]
    tokens, flops = sum(len(p.input_ids) for p in pairs), useful_flops(pairs, config)
    print(f"built the models and {len(pairs)} inputs in {time.perf_counter() - build_start:.1f}s", file=sys.stderr)

    compile_seconds = None
    if args.compile:  # every length bucket compiles once, here, untimed
        lean = type(lean)(lean.backbone, _head(lean), lean.tokenizer, batch_tokens=args.batch_tokens, compile=True)
        start = time.perf_counter()
        lean.score_encoded(pairs)
        compile_seconds = time.perf_counter() - start
        print(f"compiled the lean backbone in {compile_seconds:.1f}s", file=sys.stderr)
    # Warm-up (kernel selection, allocator, lazy init) on one problem, untimed, for both.
    lean.score_encoded(groups[0])
    reference.score(groups[:1])

    impls = {"reference-style": lambda: reference.score(groups),
             "lean (bestofn.prm)": lambda: [s.step_rewards for s in lean.score_encoded(pairs)]}
    runs, rewards = measure(impls, args.device, repeats, tokens, flops, peak_tflops)
    ref_run, lean_run = runs["reference-style"], runs["lean (bestofn.prm)"]
    ref_run.padded_tokens = sum(max(len(p.input_ids) for p in g) * len(g) for g in groups)
    lean_run.padded_tokens = sum(max(len(pairs[i].input_ids) for i in b) * len(b) for b in lean._batches(pairs))

    max_diff = None
    if len(rewards) == 2:
        max_diff = max(abs(a - b) for ra, rb in zip(*rewards.values()) for a, b in zip(ra, rb))
    both = ref_run.tokens_per_s and lean_run.tokens_per_s
    result = {
        "format": args.format, "compile": args.compile, "compile_seconds": compile_seconds, "shape": args.shape, "config": SHAPES[args.shape], "device": args.device, "device_name": device_name,
        "dtype": str(dtype).removeprefix("torch."), "solutions": len(pairs), "problems": problems, "n": args.n,
        "tokens_per_solution": [args.min_tokens, args.max_tokens], "tokens": tokens,
        "steps": sum(len(p.step_positions) for p in pairs), "lean_batch_tokens": lean.batch_tokens,
        "repeats": repeats, "peak_bf16_tflops": peak_tflops, "useful_gflop_per_token": flops / tokens / 1e9,
        "flop_limit_tokens_per_s": peak_tflops * 1e12 / (flops / tokens) if peak_tflops else None,
        "reference": asdict(ref_run), "lean": asdict(lean_run),
        "speedup": lean_run.tokens_per_s / ref_run.tokens_per_s if both else None,
        "peak_memory_ratio": lean_run.peak_gib / ref_run.peak_gib if both else None,
        "max_abs_reward_diff": max_diff,
        "torch": torch.__version__, "threads": torch.get_num_threads(),
    }
    print_table(result, ref_run, lean_run)
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps(result, indent=2) + "\n")
        print(f"wrote {args.out}")
    return result


def _head(lean):
    """The head module of a lean scorer (its name differs by format)."""
    return lean.value_head if hasattr(lean, "value_head") else lean.head


def print_table(r: dict, ref: Run, lean: Run) -> None:
    def num(x: float | None, fmt: str) -> str:
        return "-" if x is None else format(x, fmt)

    mem = "peak GPU mem (GiB)" if r["device"].startswith("cuda") else "peak RSS (GiB)"
    print(f"\nPRM scoring, format {r['format']}{' (compiled)' if r['compile'] else ''}, {r['shape']} shape (random weights), {r['device']} ({r['device_name']}), {r['dtype']}, "
          f"{r['threads']} CPU threads")
    print(f"{r['solutions']} solutions ({r['problems']} problems x {r['n']}) of {r['tokens_per_solution'][0]}-"
          f"{r['tokens_per_solution'][1]} tokens: {r['tokens']:,} tokens, {r['steps']:,} steps; lean batch budget "
          f"{r['lean_batch_tokens']:,} tokens; best of {r['repeats']}")
    header = f"{'':20s} {'tokens/s':>10s} {'time (s)':>9s} {mem:>19s} {'working (MiB)':>14s} {'padding':>8s} " \
             f"{'TFLOP/s':>8s} {'of peak':>8s}"
    print(header)
    for run in (ref, lean):
        if run.error:
            print(f"{run.name:20s} {run.error}")
            continue
        padding = 1 - r["tokens"] / run.padded_tokens
        print(f"{run.name:20s} {run.tokens_per_s:10,.0f} {run.seconds:9.2f} {run.peak_gib:19.2f} {run.working_mib:14,.0f} "
              f"{padding:8.1%} {run.tflops:8.2f} {'-' if run.flop_share is None else format(run.flop_share, '.1%'):>8s}")
    print(f"{'lean / reference':20s} {num(r['speedup'], '9.2f') + 'x':>10s} {'':9s} "
          f"{num(r['peak_memory_ratio'], '18.2f') + 'x':>19s}")
    if r["flop_limit_tokens_per_s"]:
        print(f"bf16 FLOP limit: {r['peak_bf16_tflops']:g} TFLOP/s = {r['flop_limit_tokens_per_s']:,.0f} tokens/s "
              f"at {r['useful_gflop_per_token']:.2f} useful GFLOP/token")
    print(f"max |reward difference| lean vs reference-style: {num(r['max_abs_reward_diff'], '.2e')}")


if __name__ == "__main__":
    main()
