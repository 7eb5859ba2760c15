"""Step 3b: score every step of every solution with the Skywork process reward model (PRM).

How the Skywork PRM reads a solution (its reference inference code, reproduced token for token):

    input  = tokens(bos + problem + "\\n")
             + for each piece of response.split("\\n"):  tokens(piece) + [newline token]
    reward of step k = sigmoid(value_head(hidden state at the newline token that ends piece k))

Empty pieces (from blank lines) count as steps too, because the reference scores them. The value head is
a single linear layer (``v_head.summary``) on the backbone's last hidden state; its output is a logit, so
the sigmoid turns it into the PRM's estimate of P(this step is correct). The solution's reward is its last
step's reward (chosen in ``selection.aggregate``): the DeepMind paper (Appendix E) found the last-step
score, which sees the whole solution, a better judge than the min or product over steps.

This implementation is lean: it loads only the Qwen2 backbone and the value head (no LM head, never the
checkpoint's custom code), evaluates the value head only at step positions, and packs length-sorted
solutions into token-budgeted batches so little compute is spent on padding.
"""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import nn

from .errors import BestOfNError, model_load_error

log = logging.getLogger(__name__)

STEP_SEPARATOR = "\n"
DEFAULT_BATCH_TOKENS = {"cuda": 16384, "cpu": 4096}
# Files needed to score. Python files are never fetched: the checkpoint's own modelling code never runs.
_ALLOW_PATTERNS = ["*.json", "*.safetensors", "*.bin", "*.txt", "*.model", "*.tiktoken"]


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
        device_type = next(backbone.parameters()).device.type
        self.batch_tokens = batch_tokens or DEFAULT_BATCH_TOKENS.get(device_type, 4096)
        self.newline_id = tokenizer.encode(STEP_SEPARATOR)[-1]
        if tokenizer.bos_token is None:
            log.warning("the PRM tokenizer has no bos token: inputs start with the problem (as the reference does)")

    @property
    def device(self) -> torch.device:
        return next(self.backbone.parameters()).device

    # --- loading ------------------------------------------------------------------------------------------
    @classmethod
    def from_pretrained(cls, name_or_path: str, device: str = "cpu", dtype: torch.dtype | None = None,
                        revision: str | None = None, batch_tokens: int | None = None,
                        max_length: int | None = None) -> SkyworkPRM:
        """Load a Skywork-format PRM from a local folder or a Hub id.

        ``dtype`` defaults to bfloat16 on GPU and float32 on CPU. The checkpoint's ``auto_map`` (custom
        code) is ignored on purpose: the architecture is a plain Qwen2 backbone plus ``v_head.summary``,
        which this class builds itself, so ``trust_remote_code`` is never needed.
        """
        from transformers import AutoTokenizer, Qwen2Config, Qwen2Model
        from transformers.utils import logging as hf_logging

        if dtype is None:
            dtype = torch.bfloat16 if str(device).startswith("cuda") else torch.float32
        try:
            folder = _resolve_checkpoint(name_or_path, revision)
            config_dict = json.loads((folder / "config.json").read_text())
            if config_dict.get("model_type") != "qwen2":
                raise ValueError(f"expected a Qwen2-based Skywork PRM, found model_type {config_dict.get('model_type')!r}")
            config_dict = {k: v for k, v in config_dict.items() if k not in ("auto_map", "architectures")}
            config = Qwen2Config(**config_dict)
            tokenizer = AutoTokenizer.from_pretrained(folder)
            # The checkpoint also holds lm_head and v_head weights that Qwen2Model does not use; the load
            # report would list them as "unexpected" and alarm users, so transformers is silenced here.
            verbosity = hf_logging.get_verbosity()
            hf_logging.set_verbosity_error()
            try:
                backbone = Qwen2Model.from_pretrained(folder, config=config, dtype=dtype, attn_implementation="sdpa")
            finally:
                hf_logging.set_verbosity(verbosity)
            value_head = _load_value_head(folder, config.hidden_size)
        except (OSError, ValueError, KeyError) as e:
            raise model_load_error("PRM", name_or_path, "--prm", e) from None
        model = cls(backbone.eval(), value_head, tokenizer, max_length=max_length, batch_tokens=batch_tokens)
        return model.to(device)

    # --- the reference recipe -------------------------------------------------------------------------------
    def encode(self, problems: Sequence[str], responses: Sequence[str]) -> list[EncodedPair]:
        """Token ids and step positions of each pair, exactly as the reference builds them.

        All prompts and step pieces are tokenized in two batched calls (fast tokenizers parallelize
        them); tokenizing each piece separately, not the whole response, is what the reference does.
        """
        bos = self.tokenizer.bos_token or ""
        prompt_ids = self.tokenizer([bos + p + STEP_SEPARATOR for p in problems])["input_ids"]
        pieces = [r.split(STEP_SEPARATOR) for r in responses]
        flat = [piece for ps in pieces for piece in ps]
        flat_ids = iter(self.tokenizer(flat)["input_ids"]) if flat else iter([])
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
        """Policy for inputs longer than the PRM's context: score the steps that fit, flag the pair."""
        if len(pair.input_ids) <= self.max_length:
            return pair
        kept = [p for p in pair.step_positions if p < self.max_length]
        end = kept[-1] + 1 if kept else 0
        return EncodedPair(pair.input_ids[:end], kept, truncated=True)

    # --- scoring --------------------------------------------------------------------------------------------
    def score(self, problems: Sequence[str], responses: Sequence[str]) -> list[list[float]]:
        """Step rewards (sigmoid probabilities) of each (problem, response) pair."""
        return [s.step_rewards for s in self.score_detailed(problems, responses)]

    @torch.inference_mode()
    def score_detailed(self, problems: Sequence[str], responses: Sequence[str],
                       progress: bool = False) -> list[PRMScore]:
        """Like :meth:`score`, with the truncation flag; ``progress`` shows a bar over tokens."""
        from tqdm.auto import tqdm

        if len(problems) != len(responses):
            raise ValueError(f"{len(problems)} problems but {len(responses)} responses: pass one problem per response")
        pairs = self.encode(problems, responses)
        # A pair with no step inside the context (a huge problem) needs no forward pass: no rewards.
        results = [PRMScore([], p.truncated) for p in pairs]
        total = sum(len(p.input_ids) for p in pairs)
        with tqdm(total=total, unit="tok", desc="PRM scoring", disable=not progress) as bar:
            for batch in self._batches(pairs):
                for i, rewards in zip(batch, self._forward([pairs[i] for i in batch])):
                    results[i] = PRMScore(rewards, pairs[i].truncated)
                bar.update(sum(len(pairs[i].input_ids) for i in batch))
        return results

    def _batches(self, pairs: list[EncodedPair]) -> Iterator[list[int]]:
        """Indices grouped into batches of similar length, each at most ``batch_tokens`` padded tokens.

        Sorting by length (longest first, so an out-of-memory error shows up on the first batch) keeps
        padding small; results are put back in input order by the caller.
        """
        order = sorted(range(len(pairs)), key=lambda i: -len(pairs[i].input_ids))
        batch: list[int] = []
        for i in order:
            if not pairs[i].step_positions:
                continue  # nothing fits in the context: no forward pass needed
            longest = len(pairs[batch[0]].input_ids) if batch else len(pairs[i].input_ids)
            if batch and longest * (len(batch) + 1) > self.batch_tokens:
                yield batch
                batch = []
            batch.append(i)
        if batch:
            yield batch

    def _forward(self, pairs: list[EncodedPair]) -> list[list[float]]:
        width = max(len(p.input_ids) for p in pairs)
        pad_id = self.tokenizer.pad_token_id if self.tokenizer.pad_token_id is not None else 0
        # Right padding: with causal attention, pad tokens after a sequence cannot change its states.
        input_ids = torch.full((len(pairs), width), pad_id, dtype=torch.long)
        attention_mask = torch.zeros((len(pairs), width), dtype=torch.long)
        for row, p in enumerate(pairs):
            input_ids[row, : len(p.input_ids)] = torch.tensor(p.input_ids)
            attention_mask[row, : len(p.input_ids)] = 1
        hidden = self.backbone(
            input_ids=input_ids.to(self.device), attention_mask=attention_mask.to(self.device), use_cache=False
        ).last_hidden_state
        # The value head runs only where a step ends: (steps in batch, hidden), not (batch, width, hidden).
        rows = torch.tensor([r for r, p in enumerate(pairs) for _ in p.step_positions], device=self.device)
        cols = torch.tensor([c for p in pairs for c in p.step_positions], device=self.device)
        logits = self.value_head(hidden[rows, cols].float()).squeeze(-1)
        rewards = torch.sigmoid(logits).tolist()
        out, start = [], 0
        for p in pairs:
            out.append(rewards[start : start + len(p.step_positions)])
            start += len(p.step_positions)
        return out


def _resolve_checkpoint(name_or_path: str, revision: str | None) -> Path:
    """A local folder as is; a Hub id downloaded (weights, config and tokenizer only, no code)."""
    if os.path.isdir(name_or_path):
        return Path(name_or_path)
    from huggingface_hub import snapshot_download

    return Path(snapshot_download(name_or_path, revision=revision, allow_patterns=_ALLOW_PATTERNS))


def _load_value_head(folder: Path, hidden_size: int) -> nn.Linear:
    """Read just ``v_head.summary.{weight,bias}`` from the checkpoint (safetensors or .bin, sharded or not)."""
    wanted = ("v_head.summary.weight", "v_head.summary.bias")
    tensors = _read_tensors(folder, wanted)
    missing = [k for k in wanted if k not in tensors]
    if missing:
        raise KeyError(f"{folder} has no value head weights {missing}: is it a Skywork-format PRM checkpoint?")
    head = nn.Linear(hidden_size, 1)
    head.load_state_dict({"weight": tensors[wanted[0]].float(), "bias": tensors[wanted[1]].float()})
    return head.eval()


def _read_tensors(folder: Path, names: Sequence[str]) -> dict[str, torch.Tensor]:
    for index_name, single in (("model.safetensors.index.json", "model.safetensors"),
                               ("pytorch_model.bin.index.json", "pytorch_model.bin")):
        if (folder / index_name).exists():
            weight_map = json.loads((folder / index_name).read_text())["weight_map"]
            files = {weight_map[n] for n in names if n in weight_map}
        elif (folder / single).exists():
            files = {single}
        else:
            continue
        out: dict[str, torch.Tensor] = {}
        for f in files:
            out.update(_read_file(folder / f, names))
        return out
    raise OSError(f"no model.safetensors or pytorch_model.bin (or sharded index) in {folder}")


def _read_file(path: Path, names: Sequence[str]) -> dict[str, torch.Tensor]:
    if path.suffix == ".safetensors":
        from safetensors import safe_open

        with safe_open(str(path), framework="pt") as f:
            return {n: f.get_tensor(n) for n in names if n in f.keys()}
    # mmap: reading two small tensors does not pull a multi-GB .bin into memory
    state = torch.load(path, map_location="cpu", weights_only=True, mmap=True)
    return {n: state[n] for n in names if n in state}
