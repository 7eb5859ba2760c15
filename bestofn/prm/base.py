"""What every PRM format shares: the scorer's forward loop, token-budget batches, and checkpoint reading.

A format (one module each) says how a (problem, response) pair becomes token ids plus the positions where
step rewards are read (:meth:`PRMScorer.encode`), and how a final hidden state at such a position becomes
a reward (:meth:`PRMScorer.rewards_at`). Everything else is here, the same for all formats:

- only the backbone (transformers' base model class, e.g. ``Qwen2Model``, ``LlamaModel``) and the few
  head weights a format needs are loaded: never the checkpoint's remote code, never a full LM head, so no
  vocabulary-sized logits are ever computed;
- the head runs only at reward positions, in float32;
- pairs are sorted by length and packed into right-padded batches of at most ``batch_tokens`` tokens,
  with no attention mask (see :meth:`PRMScorer._forward`);
- with ``compile=True`` the backbone is compiled by ``torch.compile`` and batch shapes are rounded up to
  a few length buckets, so few shapes compile (:func:`bucket_width`);
- with a :class:`~bestofn.prm.cache.PrefixCache` (a search), a text that extends an already scored one runs
  only its new tokens, on the cached keys and values of the rest (:meth:`PRMScorer.score_detailed`).
"""

from __future__ import annotations

import functools
import json
import logging
import math
import os
from collections.abc import Hashable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import ClassVar

import torch
from torch import nn

from ..errors import BestOfNError, first_line, missing_folder_error, model_load_error
from ..config import SWITCH
from .cache import CacheEntry, PrefixCache, common_prefix
from .formats import STEP_SEPARATORS

log = logging.getLogger(__name__)

# Tokens per batch, padding included. 16k tokens keep an H100 busy (bigger batches gain almost nothing)
# while the activations of the 1.5B model stay near 1 GiB, which also fits a 16 GB T4 beside the weights.
# On CPU, throughput is flat in the batch size, so batches stay small and the memory low.
DEFAULT_BATCH_TOKENS = {"cuda": 16384, "cpu": 4096}
FALLBACK_BATCH_TOKENS = 4096
# prm_compile "auto" compiles only on CUDA and only for runs of at least this many PRM tokens. Measured on
# an H100 with Skywork-1.5B (issue 12): 141.7k tokens/s eager, 166k compiled, about 2 minutes of compiling;
# 120 s / (1/141.7k - 1/166k s per token) = 116M tokens to pay the compile back. Smaller runs lose time.
COMPILE_MIN_TOKENS = 100_000_000
# Files needed to score. Python files are never fetched: the checkpoint's own modelling code never runs.
_CONFIG_PATTERNS = ["*.json", "*.txt", "*.model", "*.tiktoken"]
_SAFETENSORS_PATTERNS = ["*.safetensors"]
_BIN_PATTERNS = ["pytorch_model*.bin"]


@dataclass
class PRMScore:
    """Step rewards of one solution."""

    step_rewards: list[float]
    truncated: bool  # input was longer than the PRM's context: only the steps that fit were scored
    num_tokens: int | None = None  # tokens the PRM ran for this solution (its share of the compute)
    cached_tokens: int = 0  # tokens of its input served from a prefix cache instead (not run again)

    @property
    def reward(self) -> float | None:
        """The last scored step's reward (None when not even one step fit in the context)."""
        return self.step_rewards[-1] if self.step_rewards else None


@dataclass
class EncodedPair:
    """One (problem, response) pair as the PRM sees it."""

    input_ids: list[int]
    step_positions: list[int]  # index of the token whose final hidden state gives each step's reward
    truncated: bool = False


def compile_enabled(setting: str, device: str | torch.device, tokens: int) -> bool:
    """Whether ``prm_compile`` (auto/on/off) compiles the backbone for a run of ``tokens`` PRM tokens."""
    if setting not in SWITCH:
        raise BestOfNError(f"prm_compile must be one of {', '.join(SWITCH)}, got {setting!r}")
    if setting != "auto":
        return setting == "on"
    return torch.device(device).type == "cuda" and tokens >= COMPILE_MIN_TOKENS


def bucket_width(length: int) -> int:
    """The padded width of a compiled batch: ``length`` rounded up to one of 4 buckets per octave (min 64).

    Buckets are 64, 80, 96, 112, 128, 160, 192, 224, 256, 320, ...: each at most 25% above the length, so
    padding stays small, while inputs of 100-4,000 tokens compile about 20 shapes, not one per length.
    """
    if length <= 64:
        return 64
    step = 2 ** (math.floor(math.log2(length - 1)) - 2)
    return -(-length // step) * step


class PRMScorer(nn.Module):
    """A backbone plus a small head read at reward positions; subclasses define one checkpoint format."""

    format: ClassVar[str]

    def __init__(self, backbone: nn.Module, tokenizer, max_length: int | None = None,
                 batch_tokens: int | None = None, compile: bool = False):
        super().__init__()
        self.backbone = backbone
        self.tokenizer = tokenizer
        self.max_length = max_length or backbone.config.max_position_embeddings
        self._batch_tokens = batch_tokens
        self.compiled = compile
        # Not a submodule: the compiled wrapper shares the backbone's weights and must not appear twice.
        object.__setattr__(self, "_run_backbone", torch.compile(backbone, dynamic=False) if compile else backbone)
        if compile:
            from torch import _dynamo

            # One compiled graph per length bucket; the default limit (8) would silently fall back to eager.
            _dynamo.config.recompile_limit = max(_dynamo.config.recompile_limit, 64)

    @property
    def step_separator(self) -> str:
        return STEP_SEPARATORS[self.format]

    @property
    def device(self) -> torch.device:
        return next(self.backbone.parameters()).device

    @property
    def batch_tokens(self) -> int:
        """Token budget per batch: the one given, else the default for the device the model is on now."""
        return self._batch_tokens or DEFAULT_BATCH_TOKENS.get(self.device.type, FALLBACK_BATCH_TOKENS)

    # --- what a format defines ------------------------------------------------------------------------------
    def encode(self, problems: Sequence[str], responses: Sequence[str]) -> list[EncodedPair]:
        """Token ids and reward positions of each pair, exactly as the format's reference recipe builds them."""
        raise NotImplementedError

    def rewards_at(self, states: torch.Tensor) -> torch.Tensor:
        """Rewards in [0, 1] from float32 final hidden states (one row per reward position)."""
        raise NotImplementedError

    def truncate(self, pair: EncodedPair) -> EncodedPair:
        """Policy for inputs longer than the PRM's context: score the steps that fit, flag the pair.

        Attention is causal, so a step's reward depends only on the tokens up to it: the steps that fit
        get exactly the rewards they would get in a longer context. The flag means "steps were lost": an
        input whose tail after its last reward position (RLHFlow's "+<|eot_id|>") does not fit loses nothing.
        """
        if len(pair.input_ids) <= self.max_length:
            return pair
        kept = [p for p in pair.step_positions if p < self.max_length]
        end = kept[-1] + 1 if kept else 0
        return EncodedPair(pair.input_ids[:end], kept, truncated=len(kept) < len(pair.step_positions))

    # --- scoring --------------------------------------------------------------------------------------------
    def score(self, problems: Sequence[str], responses: Sequence[str]) -> list[list[float]]:
        """Step rewards in [0, 1] of each (problem, response) pair, in input order."""
        return [s.step_rewards for s in self.score_detailed(problems, responses)]

    def score_detailed(self, problems: Sequence[str], responses: Sequence[str], progress: bool = False,
                       cache: PrefixCache | None = None, parents: Sequence[Hashable | None] | None = None,
                       keys: Sequence[Hashable | None] | None = None) -> list[PRMScore]:
        """Like :meth:`score`, with the truncation flag; ``progress`` shows a bar over tokens.

        With ``cache``, text i starts from the entry ``parents[i]`` (a text it extends; texts that name the same
        parent not yet in the cache share one pass over their common prefix, kept under that key) and its own
        entry is kept under ``keys[i]`` (None: not kept), so only tokens no entry covers run (see
        :mod:`bestofn.prm.cache`). Rewards are those of a full scoring, up to float rounding.
        """
        if len(problems) != len(responses):
            raise ValueError(f"{len(problems)} problems but {len(responses)} responses: pass one problem per response")
        pairs = self.encode(problems, responses)
        if cache is None:
            return self.score_encoded(pairs, progress=progress)
        none = [None] * len(pairs)
        return self._score_incremental(pairs, cache, parents or none, keys or none)

    caches_prefixes: ClassVar[bool] = True  # score_detailed takes a PrefixCache (a search's fakes may not)

    @torch.inference_mode()
    def score_encoded(self, pairs: Sequence[EncodedPair], progress: bool = False) -> list[PRMScore]:
        """Score already-encoded pairs (what :meth:`encode` returns), in their order."""
        from tqdm.auto import tqdm

        # A pair with no step inside the context (a huge problem) needs no forward pass: no rewards.
        results = [PRMScore([], p.truncated, len(p.input_ids)) for p in pairs]
        total = sum(len(p.input_ids) for p in pairs)
        with tqdm(total=total, unit="tok", desc="PRM scoring", disable=not progress) as bar:
            for batch in self._batches(pairs):
                for i, rewards in zip(batch, self._forward([pairs[i] for i in batch])):
                    results[i] = PRMScore(rewards, pairs[i].truncated, len(pairs[i].input_ids))
                bar.update(sum(len(pairs[i].input_ids) for i in batch))
        return results

    def _width(self, longest: int) -> int:
        """Padded width of a batch whose longest input has ``longest`` tokens (bucketed when compiled)."""
        return bucket_width(longest) if self.compiled else longest

    def _batches(self, pairs: Sequence[EncodedPair]) -> Iterator[list[int]]:
        """Indices grouped into batches of similar length, each at most ``batch_tokens`` padded tokens.

        Sorting by length (longest first, so an out-of-memory error shows up on the first batch) keeps
        padding small; results are put back in input order by the caller. A pair longer than the budget
        still gets a batch of its own.
        """
        budget = self.batch_tokens
        order = sorted(range(len(pairs)), key=lambda i: -len(pairs[i].input_ids))
        batch: list[int] = []
        for i in order:
            if not pairs[i].step_positions:
                continue  # nothing fits in the context: no forward pass needed
            width = self._width(len(pairs[batch[0]].input_ids) if batch else len(pairs[i].input_ids))
            if batch and width * (len(batch) + 1) > budget:
                yield batch
                batch = []
            batch.append(i)
        if batch:
            yield batch

    def _forward(self, pairs: list[EncodedPair]) -> list[list[float]]:
        """Step rewards of one batch: backbone, then the head at reward positions only."""
        width = self._width(max(len(p.input_ids) for p in pairs))
        # Compiled: every batch of a bucket gets the same shape (the last one is filled with rows of pads).
        rows = max(len(pairs), self.batch_tokens // width) if self.compiled else len(pairs)
        pad_id = self.tokenizer.pad_token_id if self.tokenizer.pad_token_id is not None else 0
        input_ids = torch.full((rows, width), pad_id, dtype=torch.long)
        for row, p in enumerate(pairs):
            input_ids[row, : len(p.input_ids)] = torch.tensor(p.input_ids)
        # No attention mask, on purpose: padding is on the right and attention is causal (with a sliding
        # window, as in Mistral, the window of a real token also holds only earlier, real tokens), so no
        # real token ever attends to a pad, and positions are 0..len-1 in every row. Pads get states that
        # are never read. Without a mask, SDPA runs its causal flash kernel instead of the slower masked one.
        hidden = self._run_backbone(input_ids=input_ids.to(self.device), use_cache=False).last_hidden_state
        # The head runs only where a reward is read: (steps in batch, hidden), not (batch, width, hidden),
        # and only those rows are upcast to float32.
        row_idx = torch.tensor([r for r, p in enumerate(pairs) for _ in p.step_positions], device=self.device)
        col_idx = torch.tensor([c for p in pairs for c in p.step_positions], device=self.device)
        rewards = self.rewards_at(hidden[row_idx, col_idx].float()).tolist()
        out, start = [], 0
        for p in pairs:
            out.append(rewards[start : start + len(p.step_positions)])
            start += len(p.step_positions)
        return out

    # --- incremental scoring (a search's beams) -------------------------------------------------------------------
    @torch.inference_mode()
    def _score_incremental(self, pairs: Sequence[EncodedPair], cache: PrefixCache, parents: Sequence[Hashable | None],
                           keys: Sequence[Hashable | None]) -> list[PRMScore]:
        """Score ``pairs`` running only the tokens that no cache entry covers; keep their entries under ``keys``."""
        if cache.capacity is None:
            cache.capacity = self.batch_tokens
        # Only the tokens up to the last reward position change a reward (a chat template's closing tokens do not).
        ids = [p.input_ids[: p.step_positions[-1] + 1] if p.step_positions else [] for p in pairs]
        window = _sliding_window(self.backbone.config)
        plain = [i for i, x in enumerate(ids) if window is not None and len(x) > window]  # the mask ignores windows
        results = dict(zip(plain, self.score_encoded([pairs[i] for i in plain])))
        todo = [i for i, x in enumerate(ids) if x and i not in results]
        run = dict.fromkeys(range(len(pairs)), 0)  # tokens run for each text
        # 1. Texts that name the same parent, not yet cached (a problem's first steps): their common prefix once.
        bases: dict[Hashable, CacheEntry] = {}
        groups: dict[Hashable, list[int]] = {}
        for i in todo:
            if parents[i] is not None and parents[i] not in cache.entries:
                groups.setdefault(parents[i], []).append(i)
        shared = []
        for key, members in groups.items():
            length = min((common_prefix(ids[members[0]], ids[j]) for j in members[1:]), default=0)
            if length:
                positions = sorted({q for j in members for q in pairs[j].step_positions if q < length})
                shared.append((key, members[0], _Row(None, 0, ids[members[0]][:length], positions)))
        cached_tokens = cache.tokens
        for (key, first, row), entry in zip(shared, self._extend([row for _, _, row in shared])):
            bases[key] = entry
            run[first] += len(entry.ids)  # charged to the first text that shares it
            cached_tokens = self._keep(cache, key, entry, cached_tokens)
        # 2. Every text from its base: the longest common token prefix, cut before any reward the base lacks.
        rows: list[_Row] = []
        row_of: dict[int, int] = {}  # text -> its row; identical texts on the same base share one (and its bits)
        first: dict[tuple, int] = {}
        for i in todo:
            base = cache.entries.get(parents[i]) or bases.get(parents[i])
            length = common_prefix(base.ids, ids[i]) if base is not None else 0
            unknown = [q for q in pairs[i].step_positions if q < length and q not in base.rewards]
            length = unknown[0] if unknown else length
            same = (id(base) if length else None, length, tuple(ids[i]))
            if same not in first:
                first[same] = len(rows)
                rows.append(_Row(base if length else None, length, ids[i], pairs[i].step_positions))
            row_of[i] = first[same]
        entries = self._extend(rows)
        ran: set[int] = set()
        for i in todo:
            entry = entries[row_of[i]]
            if row_of[i] not in ran:  # a duplicate's tokens were run once, for the first of them
                run[i] += entry.own_len
                ran.add(row_of[i])
            rewards = [entry.rewards[q] for q in pairs[i].step_positions]
            # Every token of the text is either run (here or in its shared prefix) or served from the cache.
            results[i] = PRMScore(rewards, pairs[i].truncated, run[i], len(ids[i]) - run[i])
            if keys[i] is not None:
                cached_tokens = self._keep(cache, keys[i], entry, cached_tokens)
        return [results.get(i) or PRMScore([], p.truncated, 0) for i, p in enumerate(pairs)]

    @staticmethod
    def _keep(cache: PrefixCache, key: Hashable, entry: CacheEntry, held: int) -> int:
        """Keep ``entry`` under ``key`` if its own tokens fit the cache's capacity; the tokens then held."""
        cost = entry.own_len if all(e is not entry for e in cache.entries.values()) else 0
        if held + cost > cache.capacity:
            return held
        cache.entries[key] = entry
        return held + cost

    def _extend(self, rows: list[_Row]) -> list[CacheEntry]:
        """Each row's entry: its base's first ``base_len`` tokens plus its other tokens, run in token-budget batches.

        A batch's width counts the longest base and the longest new part, as both are padded: rows x (past +
        new) stays within ``batch_tokens`` (a row longer than that still runs, alone).
        """
        out: list[CacheEntry | None] = [None] * len(rows)
        order = sorted((i for i, r in enumerate(rows) if r.new), key=lambda i: (-rows[i].base_len - rows[i].new, i))
        for i, r in enumerate(rows):
            if not r.new:  # everything is in the base already: the same tokens, no own keys and values
                out[i] = CacheEntry(r.ids, {q: r.base.rewards[q] for q in r.positions}, r.base, r.base_len)
        batch: list[int] = []
        for i in order + [None]:  # None: flush the last batch
            grown = batch + [i] if i is not None else batch
            width = max(rows[j].base_len for j in grown) + max(rows[j].new for j in grown) if grown else 0
            if i is not None and (not batch or len(grown) * width <= self.batch_tokens):
                batch = grown
                continue
            for j, entry in zip(batch, self._forward_cached([rows[j] for j in batch]) if batch else []):
                out[j] = entry
            batch = [i] if i is not None else []
        return out  # type: ignore[return-value]

    def _forward_cached(self, rows: list[_Row]) -> list[CacheEntry]:
        """One batch: new tokens right-padded after the bases' keys and values (right-padded too), one 4D mask.

        Row b's query j (position base_len + j) sees its base's tokens and its own new tokens up to j; pads see
        the same (so no row of the attention is empty), and no real token ever sees a pad.
        """
        from transformers import DynamicCache

        past, width = max(r.base_len for r in rows), max(r.new for r in rows)
        pad_id = self.tokenizer.pad_token_id if self.tokenizer.pad_token_id is not None else 0
        input_ids = torch.full((len(rows), width), pad_id, dtype=torch.long)
        mask = torch.zeros((len(rows), 1, width, past + width), dtype=torch.bool)
        causal = torch.ones((width, width), dtype=torch.bool).tril()
        for b, r in enumerate(rows):
            input_ids[b, : r.new] = torch.tensor(r.ids[r.base_len :])
            mask[b, 0, :, : r.base_len] = True
            mask[b, 0, :, past:] = causal
        positions = torch.tensor([r.base_len for r in rows])[:, None] + torch.arange(width)[None, :]
        cache = DynamicCache(ddp_cache_data=self._stack_bases(rows, past)) if past else DynamicCache()
        out = self.backbone(input_ids=input_ids.to(self.device), attention_mask=mask.to(self.device),
                            position_ids=positions.to(self.device), past_key_values=cache, use_cache=True)
        hidden = out.last_hidden_state
        new_positions = [[q for q in r.positions if q >= r.base_len] for r in rows]
        row_idx = torch.tensor([b for b, qs in enumerate(new_positions) for _ in qs], dtype=torch.long, device=self.device)
        col_idx = torch.tensor([q - r.base_len for r, qs in zip(rows, new_positions) for q in qs], dtype=torch.long,
                               device=self.device)
        rewards = iter(self.rewards_at(hidden[row_idx, col_idx].float()).tolist())
        entries = []
        for b, (r, qs) in enumerate(zip(rows, new_positions)):
            known = {q: r.base.rewards[q] for q in r.positions if q < r.base_len} if r.base is not None else {}
            known.update({q: next(rewards) for q in qs})
            # Copies: a view would keep the whole batch's keys and values alive.
            keys = [layer.keys[b, :, past : past + r.new].clone() for layer in cache.layers]
            values = [layer.values[b, :, past : past + r.new].clone() for layer in cache.layers]
            entries.append(CacheEntry(r.ids, known, r.base, r.base_len, keys, values))
        return entries

    @staticmethod
    def _stack_bases(rows: list[_Row], past: int) -> list[tuple[torch.Tensor, torch.Tensor]]:
        """Per layer, the rows' base keys and values, right-padded with zeros to ``past`` tokens (masked out)."""
        segments = [r.base.segments(r.base_len) if r.base is not None else [] for r in rows]
        sample = next(e for segs in segments for e, n in segs if n)
        layers = []
        for layer, like in enumerate(sample.keys):
            heads, _, dim = like.shape
            stacked = []
            for part in ("keys", "values"):
                out = like.new_zeros((len(rows), heads, past, dim))
                for b, segs in enumerate(segments):
                    pieces = [getattr(e, part)[layer][:, :n] for e, n in segs if n]
                    if pieces:
                        out[b, :, : rows[b].base_len] = torch.cat(pieces, dim=1)
                stacked.append(out)
            layers.append((stacked[0], stacked[1]))
        return layers


@dataclass
class _Row:
    """A text to run on a cached base: ``ids[:base_len]`` come from ``base``, the rest run."""

    base: CacheEntry | None
    base_len: int
    ids: list[int]
    positions: list[int]  # its reward positions

    @property
    def new(self) -> int:
        return len(self.ids) - self.base_len


def _sliding_window(config) -> int | None:
    """The attention window of a backbone that uses one (Mistral; Qwen2 with sliding layers), else None."""
    window = getattr(config, "sliding_window", None)
    layer_types = getattr(config, "layer_types", None)
    if window is None or (layer_types is not None and "sliding_attention" not in layer_types):
        return None
    return window


# --- checkpoint reading ---------------------------------------------------------------------------------------
def resolve_checkpoint(name_or_path: str, revision: str | None) -> Path:
    """A local folder as is; a Hub id downloaded (config, tokenizer and one copy of the weights, no code)."""
    local = os.path.expanduser(name_or_path)  # a recipe file's "~/models/prm" gets no shell expansion
    if os.path.isdir(local):
        return Path(local)
    missing = missing_folder_error("PRM", name_or_path, "--prm")
    if missing is not None:
        raise missing
    from huggingface_hub import snapshot_download

    try:
        folder = Path(snapshot_download(name_or_path, revision=revision,
                                        allow_patterns=_CONFIG_PATTERNS + _SAFETENSORS_PATTERNS))
        if not any(folder.glob("*.safetensors")):  # an older checkpoint: fetch the .bin weights instead
            folder = Path(snapshot_download(name_or_path, revision=revision,
                                            allow_patterns=_CONFIG_PATTERNS + _BIN_PATTERNS))
    except Exception as e:  # noqa: BLE001 - every Hub failure (offline, typo, gated) is the user's to fix
        raise model_load_error("PRM", name_or_path, "--prm", e) from None
    return folder


def read_config_dict(folder: Path) -> dict:
    path = folder / "config.json"
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError) as e:
        raise BestOfNError(f"cannot read the PRM config {path}: {first_line(e)}") from None


def load_config(folder: Path, model_types: Sequence[str], what: str):
    """The checkpoint's transformers config, without the custom-code pointers (``auto_map``, ``architectures``).

    ``model_types`` are the backbones the format is known to use; ``what`` names the format in errors.
    """
    from transformers import AutoConfig

    config_dict = read_config_dict(folder)
    model_type = config_dict.get("model_type")
    if model_type not in model_types:
        expected = " or ".join(repr(t) for t in model_types)
        raise BestOfNError(f"{folder} is not a {what} (config.json has model_type {model_type!r}, expected {expected})")
    config_dict = {k: v for k, v in config_dict.items() if k not in ("auto_map", "architectures", "model_type")}
    return AutoConfig.for_model(model_type, **config_dict)


def load_tokenizer(folder: Path):
    from transformers import AutoTokenizer

    try:
        return AutoTokenizer.from_pretrained(folder)
    except (OSError, ValueError) as e:
        raise BestOfNError(f"cannot load the PRM tokenizer from {folder}: {first_line(e)}") from None


@functools.cache
def _backbone_class(base: type) -> type:
    """transformers' base model class (``Qwen2Model``, ``LlamaModel``, ...) that expects, and leaves on disk,
    the checkpoint's heads.

    A checkpoint stores the backbone under ``model.`` (stripped by transformers as the base-model prefix)
    beside its heads (``lm_head``, Skywork's ``v_head``, Qwen's ``score``). Declaring those as expected
    keeps transformers from printing an alarming "UNEXPECTED keys" load report, while any other surprise is
    still reported, and they are never materialized (safetensors are read lazily; a .bin is memory-mapped).
    """
    return type(f"PRM{base.__name__}", (base,),
                {"_keys_to_ignore_on_load_unexpected": [r"^lm_head\.", r"^v_head\.", r"^score\."]})


def load_backbone(folder: Path, config, dtype: torch.dtype, what: str) -> nn.Module:
    """The backbone weights, in ``dtype``; a checkpoint that lacks some is refused, not patched."""
    from transformers import MODEL_MAPPING

    try:
        base = MODEL_MAPPING[type(config)]
        # SDPA: fused attention on every device (the flash kernel on GPU); same results as eager attention.
        backbone, info = _backbone_class(base).from_pretrained(folder, config=config, dtype=dtype, attn_implementation="sdpa",
                                                               output_loading_info=True)
    except (OSError, ValueError, RuntimeError, KeyError) as e:  # no weights file, corrupt file, shape mismatch
        raise BestOfNError(f"cannot load the PRM backbone weights from {folder}: {first_line(e)}") from None
    missing = sorted(info["missing_keys"])
    if missing:
        # transformers would initialize them randomly; the rewards would be noise, so stop here.
        raise BestOfNError(f"the PRM checkpoint {folder} lacks {len(missing)} backbone weights "
                           f"(e.g. {', '.join(missing[:3])}): is it a complete {what}?")
    return backbone.eval()


def read_tensors(folder: Path, names: Sequence[str], rows: Sequence[int] | None = None) -> dict[str, torch.Tensor]:
    """The named tensors (only ``rows`` of each, if given), from safetensors or .bin, sharded or not.

    Row reads slice the file (safetensors) or a memory map (.bin), so picking two rows of a 128k x 4096
    LM head reads two rows, not the whole matrix. Errors become one-line :class:`BestOfNError`.
    """
    try:
        return _read_tensors(folder, names, rows)
    except (OSError, RuntimeError, ValueError) as e:
        raise BestOfNError(f"cannot read the PRM weights in {folder}: {first_line(e)}") from None


def _read_tensors(folder: Path, names: Sequence[str], rows: Sequence[int] | None) -> dict[str, torch.Tensor]:
    """The named tensors, from the first weights format present (safetensors before .bin, as transformers)."""
    for index_name, single in (("model.safetensors.index.json", "model.safetensors"),
                               ("pytorch_model.bin.index.json", "pytorch_model.bin")):
        if (folder / single).exists():
            files = {single}
        elif (folder / index_name).exists():
            weight_map = json.loads((folder / index_name).read_text())["weight_map"]
            files = {weight_map[n] for n in names if n in weight_map}
        else:
            continue
        out: dict[str, torch.Tensor] = {}
        for f in sorted(files):
            out.update(_read_file(folder / f, names, rows))
        return out
    raise OSError(f"no model.safetensors or pytorch_model.bin (or a sharded index of them) in {folder}")


def _read_file(path: Path, names: Sequence[str], rows: Sequence[int] | None) -> dict[str, torch.Tensor]:
    if path.suffix == ".safetensors":
        from safetensors import safe_open

        with safe_open(str(path), framework="pt") as f:
            keys = set(f.keys())
            if rows is None:
                return {n: f.get_tensor(n) for n in names if n in keys}
            return {n: torch.cat([f.get_slice(n)[r : r + 1] for r in rows]) for n in names if n in keys}
    try:  # mmap: reading a few small tensors does not pull a multi-GB .bin into memory
        state = torch.load(path, map_location="cpu", weights_only=True, mmap=True)
    except RuntimeError:  # a legacy (non-zip) .bin cannot be memory-mapped
        state = torch.load(path, map_location="cpu", weights_only=True)
    return {n: (state[n] if rows is None else state[n][list(rows)]).clone() for n in names if n in state}
