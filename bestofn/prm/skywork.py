"""Step 5: score every step of every solution with the Skywork process reward model (PRM).

How the Skywork PRM reads a solution (its reference inference code, reproduced token for token):

    input  = tokens(bos + problem + "\\n")
             + for each piece of response.split("\\n"):  tokens(piece) + [newline token]
    reward of step k = sigmoid(value_head(final hidden state at the newline token that ends piece k))

Empty pieces (from blank lines, or after a trailing newline) count as steps too, because the reference
scores them. The value head is one linear layer (``v_head.summary``) on the backbone's final, normed hidden
state (the reference's ``hidden_states[-1]``, which transformers defines as the output of the final norm);
its output is a logit, so the sigmoid turns it into the PRM's estimate of P(this step is correct). The
solution's reward is its last step's reward (chosen in ``selection.aggregate``): the DeepMind paper
(Appendix E) found the last-step score, which sees the whole solution, a better judge than the min or
product over steps.

This implementation is lean (see docs/prm.md and benchmarks/prm_throughput.py):

- it loads only the Qwen2 backbone and the value head: never the checkpoint's custom code, never its LM
  head, so no vocabulary-sized logits are ever computed;
- it evaluates the value head only at step positions;
- it packs length-sorted solutions into token-budgeted, right-padded batches, so little compute goes to
  padding, and needs no attention mask (see :meth:`SkyworkPRM._forward`), which lets SDPA use its fastest
  causal kernels.
"""

from __future__ import annotations

import functools
import json
import logging
import os
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import nn

from ..errors import BestOfNError, first_line, missing_folder_error, model_load_error

log = logging.getLogger(__name__)

STEP_SEPARATOR = "\n"
# Tokens per batch, padding included. 16k tokens keep an H100 busy (bigger batches gain almost nothing)
# while the activations of the 1.5B model stay near 1 GiB, which also fits a 16 GB T4 beside the weights.
# On CPU, throughput is flat in the batch size, so batches stay small and the memory low.
DEFAULT_BATCH_TOKENS = {"cuda": 16384, "cpu": 4096}
FALLBACK_BATCH_TOKENS = 4096
VALUE_HEAD_KEYS = ("v_head.summary.weight", "v_head.summary.bias")
# Checkpoint weights that the backbone leaves on disk on purpose (the value head is read separately).
_UNUSED_CHECKPOINT_KEYS = [r"^lm_head\.", r"^v_head\."]
# Files needed to score. Python files are never fetched: the checkpoint's own modelling code never runs.
_CONFIG_PATTERNS = ["*.json", "*.txt", "*.model", "*.tiktoken"]
_SAFETENSORS_PATTERNS = ["*.safetensors"]
_BIN_PATTERNS = ["pytorch_model*.bin"]


@dataclass
class PRMScore:
    """Step rewards of one solution."""

    step_rewards: list[float]
    truncated: bool  # input was longer than the PRM's context: only the steps that fit were scored

    @property
    def reward(self) -> float | None:
        """The last scored step's reward (None when not even one step fit in the context)."""
        return self.step_rewards[-1] if self.step_rewards else None


@dataclass
class EncodedPair:
    """One (problem, response) pair as the PRM sees it."""

    input_ids: list[int]
    step_positions: list[int]  # index of the token that ends each step (the newline after it)
    truncated: bool = False


class SkyworkPRM(nn.Module):
    """Qwen2 backbone + scalar value head, loaded from a Skywork-format PRM checkpoint."""

    def __init__(self, backbone: nn.Module, value_head: nn.Linear, tokenizer, max_length: int | None = None,
                 batch_tokens: int | None = None):
        super().__init__()
        self.backbone = backbone
        self.value_head = value_head  # kept in float32: it is tiny and the rewards need the precision
        self.tokenizer = tokenizer
        self.max_length = max_length or backbone.config.max_position_embeddings
        self._batch_tokens = batch_tokens
        self.newline_id = tokenizer.encode(STEP_SEPARATOR)[-1]  # the reference's step token id
        if tokenizer.bos_token is None:
            # The reference recipe prepends bos_token (and would fail without one); the closest reading is
            # to prepend nothing. Said once per model, not once per solution.
            log.warning("the PRM tokenizer has no bos token: PRM inputs start directly with the problem")

    @property
    def device(self) -> torch.device:
        return next(self.backbone.parameters()).device

    @property
    def batch_tokens(self) -> int:
        """Token budget per batch: the one given, else the default for the device the model is on now."""
        return self._batch_tokens or DEFAULT_BATCH_TOKENS.get(self.device.type, FALLBACK_BATCH_TOKENS)

    # --- loading ------------------------------------------------------------------------------------------
    @classmethod
    def from_pretrained(cls, name_or_path: str, device: str = "cpu", dtype: torch.dtype | None = None,
                        revision: str | None = None, batch_tokens: int | None = None,
                        max_length: int | None = None) -> SkyworkPRM:
        """Load a Skywork-format PRM from a local folder or a Hub id.

        ``dtype`` defaults to bfloat16 on GPU (float16 on GPUs without bf16, such as the T4) and float32
        on CPU (bf16 matmuls are slow on most CPUs).
        The checkpoint's ``auto_map`` (custom code) is ignored on purpose: the architecture is a plain
        Qwen2 backbone plus ``v_head.summary``, which this class builds itself, so ``trust_remote_code``
        is never needed. Problems the user can fix are raised as one-line :class:`BestOfNError`.
        """
        from transformers import AutoTokenizer

        from ..backends.base import resolve_dtype

        if dtype is None:
            dtype = resolve_dtype("auto", str(device))
        folder = _resolve_checkpoint(name_or_path, revision)
        config = _load_config(folder)
        value_head = _load_value_head(folder, config.hidden_size)  # first: a wrong checkpoint fails fast
        backbone = _load_backbone(folder, config, dtype)
        try:
            tokenizer = AutoTokenizer.from_pretrained(folder)
        except (OSError, ValueError) as e:
            raise BestOfNError(f"cannot load the PRM tokenizer from {folder}: {first_line(e)}") from None
        model = cls(backbone.eval(), value_head, tokenizer, max_length=max_length, batch_tokens=batch_tokens)
        return model.to(device)

    # --- the reference recipe -------------------------------------------------------------------------------
    def encode(self, problems: Sequence[str], responses: Sequence[str]) -> list[EncodedPair]:
        """Token ids and step positions of each pair, exactly as the reference builds them.

        All prompts and step pieces are tokenized in two batched calls (fast tokenizers parallelize
        them); tokenizing each piece separately, not the whole response, is what the reference does, and
        it changes the tokens wherever a piece would otherwise merge with the newline after it.
        """
        if not problems:
            return []
        bos = self.tokenizer.bos_token or ""
        prompt_ids = self.tokenizer([bos + p + STEP_SEPARATOR for p in problems])["input_ids"]
        pieces = [r.split(STEP_SEPARATOR) for r in responses]
        flat = [piece for ps in pieces for piece in ps]
        flat_ids = iter(self.tokenizer(flat)["input_ids"])
        pairs = []
        for prompt, ps in zip(prompt_ids, pieces):
            ids, positions = list(prompt), []
            for piece in ps:
                piece_ids = next(flat_ids)
                ids.extend(piece_ids if piece else [])  # an empty piece contributes only its newline
                ids.append(self.newline_id)
                positions.append(len(ids) - 1)
            pairs.append(self._truncate(EncodedPair(ids, positions)))
        return pairs

    def _truncate(self, pair: EncodedPair) -> EncodedPair:
        """Policy for inputs longer than the PRM's context: score the steps that fit, flag the pair.

        Attention is causal, so a step's reward depends only on the tokens up to it: the steps that fit
        get exactly the rewards they would get in a longer context.
        """
        if len(pair.input_ids) <= self.max_length:
            return pair
        kept = [p for p in pair.step_positions if p < self.max_length]
        end = kept[-1] + 1 if kept else 0
        return EncodedPair(pair.input_ids[:end], kept, truncated=True)

    # --- scoring --------------------------------------------------------------------------------------------
    def score(self, problems: Sequence[str], responses: Sequence[str]) -> list[list[float]]:
        """Step rewards (sigmoid probabilities) of each (problem, response) pair."""
        return [s.step_rewards for s in self.score_detailed(problems, responses)]

    def score_detailed(self, problems: Sequence[str], responses: Sequence[str],
                       progress: bool = False) -> list[PRMScore]:
        """Like :meth:`score`, with the truncation flag; ``progress`` shows a bar over tokens."""
        if len(problems) != len(responses):
            raise ValueError(f"{len(problems)} problems but {len(responses)} responses: pass one problem per response")
        return self.score_encoded(self.encode(problems, responses), progress=progress)

    @torch.inference_mode()
    def score_encoded(self, pairs: Sequence[EncodedPair], progress: bool = False) -> list[PRMScore]:
        """Score already-encoded pairs (what :meth:`encode` returns), in their order."""
        from tqdm.auto import tqdm

        # A pair with no step inside the context (a huge problem) needs no forward pass: no rewards.
        results = [PRMScore([], p.truncated) for p in pairs]
        total = sum(len(p.input_ids) for p in pairs)
        with tqdm(total=total, unit="tok", desc="PRM scoring", disable=not progress) as bar:
            for batch in self._batches(pairs):
                for i, rewards in zip(batch, self._forward([pairs[i] for i in batch])):
                    results[i] = PRMScore(rewards, pairs[i].truncated)
                bar.update(sum(len(pairs[i].input_ids) for i in batch))
        return results

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
            width = len(pairs[batch[0]].input_ids) if batch else len(pairs[i].input_ids)  # the batch's longest
            if batch and width * (len(batch) + 1) > budget:
                yield batch
                batch = []
            batch.append(i)
        if batch:
            yield batch

    def _forward(self, pairs: list[EncodedPair]) -> list[list[float]]:
        """Step rewards of one batch: backbone, then the value head at step positions only."""
        width = max(len(p.input_ids) for p in pairs)
        pad_id = self.tokenizer.pad_token_id if self.tokenizer.pad_token_id is not None else 0
        input_ids = torch.full((len(pairs), width), pad_id, dtype=torch.long)
        for row, p in enumerate(pairs):
            input_ids[row, : len(p.input_ids)] = torch.tensor(p.input_ids)
        # No attention mask, on purpose: padding is on the right and attention is causal, so no real token
        # ever attends to a pad (and positions are 0..len-1 for every row). Pads get states that are never
        # read. Without a mask, SDPA runs its causal flash kernel instead of the slower masked one.
        hidden = self.backbone(input_ids=input_ids.to(self.device), use_cache=False).last_hidden_state
        # The value head runs only where a step ends: (steps in batch, hidden), not (batch, width, hidden),
        # and only those rows are upcast to float32.
        rows = torch.tensor([r for r, p in enumerate(pairs) for _ in p.step_positions], device=self.device)
        cols = torch.tensor([c for p in pairs for c in p.step_positions], device=self.device)
        logits = self.value_head(hidden[rows, cols].float()).squeeze(-1)
        rewards = torch.sigmoid(logits).tolist()
        out, start = [], 0
        for p in pairs:
            out.append(rewards[start : start + len(p.step_positions)])
            start += len(p.step_positions)
        return out


# --- checkpoint reading ---------------------------------------------------------------------------------------
def _resolve_checkpoint(name_or_path: str, revision: str | None) -> Path:
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


def _load_config(folder: Path):
    """The checkpoint's Qwen2 config, without the custom-code pointers (``auto_map``, ``architectures``)."""
    from transformers import Qwen2Config

    path = folder / "config.json"
    try:
        config_dict = json.loads(path.read_text())
    except (OSError, ValueError) as e:
        raise BestOfNError(f"cannot read the PRM config {path}: {first_line(e)}") from None
    if config_dict.get("model_type") != "qwen2":
        raise BestOfNError(f"{folder} is not a Qwen2-based Skywork PRM (config.json has model_type "
                           f"{config_dict.get('model_type')!r}, expected 'qwen2')")
    config_dict = {k: v for k, v in config_dict.items() if k not in ("auto_map", "architectures")}
    return Qwen2Config.from_dict(config_dict)


@functools.cache
def _backbone_class() -> type:
    """``Qwen2Model`` that expects, and leaves on disk, the checkpoint's LM head and value head.

    The checkpoint stores the backbone under ``model.`` (stripped by transformers as the base-model
    prefix) beside ``lm_head`` and ``v_head``. Declaring those two as expected keeps transformers from
    printing an alarming "UNEXPECTED keys" load report, while any other surprise is still reported, and
    they are never materialized (safetensors are read lazily; a .bin is memory-mapped).
    """
    from transformers import Qwen2Model

    class PRMBackbone(Qwen2Model):
        _keys_to_ignore_on_load_unexpected = _UNUSED_CHECKPOINT_KEYS

    return PRMBackbone


def _load_backbone(folder: Path, config, dtype: torch.dtype) -> nn.Module:
    """The Qwen2 backbone weights, in ``dtype``; a checkpoint that lacks some is refused, not patched."""
    try:
        # SDPA: fused attention on every device (the flash kernel on GPU); same results as eager attention.
        backbone, info = _backbone_class().from_pretrained(folder, config=config, dtype=dtype, attn_implementation="sdpa",
                                                           output_loading_info=True)
    except (OSError, ValueError, RuntimeError) as e:  # no weights file, corrupt file, shape mismatch
        raise BestOfNError(f"cannot load the PRM backbone weights from {folder}: {first_line(e)}") from None
    missing = sorted(info["missing_keys"])
    if missing:
        # transformers would initialize them randomly; the rewards would be noise, so stop here.
        raise BestOfNError(f"the PRM checkpoint {folder} lacks {len(missing)} backbone weights "
                           f"(e.g. {', '.join(missing[:3])}): is it a complete Qwen2-based Skywork PRM?")
    return backbone


def _load_value_head(folder: Path, hidden_size: int) -> nn.Linear:
    """Read just ``v_head.summary.{weight,bias}`` from the checkpoint (safetensors or .bin, sharded or not)."""
    try:
        tensors = _read_tensors(folder, VALUE_HEAD_KEYS)
    except (OSError, RuntimeError, ValueError) as e:
        raise BestOfNError(f"cannot read the PRM weights in {folder}: {first_line(e)}") from None
    missing = [k for k in VALUE_HEAD_KEYS if k not in tensors]
    if missing:
        raise BestOfNError(f"the checkpoint {folder} has no value head ({', '.join(missing)} missing): "
                           "it is not a Skywork-format PRM (e.g. Skywork/Skywork-o1-Open-PRM-Qwen-2.5-1.5B)")
    weight, bias = tensors[VALUE_HEAD_KEYS[0]], tensors[VALUE_HEAD_KEYS[1]]
    if tuple(weight.shape) != (1, hidden_size) or bias.numel() != 1:
        raise BestOfNError(f"the value head in {folder} has shape {tuple(weight.shape)}, expected (1, {hidden_size})")
    head = nn.Linear(hidden_size, 1)
    head.load_state_dict({"weight": weight.float(), "bias": bias.float().reshape(1)})
    return head.eval()


def _read_tensors(folder: Path, names: Sequence[str]) -> dict[str, torch.Tensor]:
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
            out.update(_read_file(folder / f, names))
        return out
    raise OSError(f"no model.safetensors or pytorch_model.bin (or a sharded index of them) in {folder}")


def _read_file(path: Path, names: Sequence[str]) -> dict[str, torch.Tensor]:
    if path.suffix == ".safetensors":
        from safetensors import safe_open

        with safe_open(str(path), framework="pt") as f:
            keys = set(f.keys())
            return {n: f.get_tensor(n) for n in names if n in keys}
    try:  # mmap: reading two small tensors does not pull a multi-GB .bin into memory
        state = torch.load(path, map_location="cpu", weights_only=True, mmap=True)
    except RuntimeError:  # a legacy (non-zip) .bin cannot be memory-mapped
        state = torch.load(path, map_location="cpu", weights_only=True)
    return {n: state[n].clone() for n in names if n in state}
