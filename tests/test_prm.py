"""The PRM scorer against the Skywork reference recipe, written out plainly here, and its loading rules.

The reference (SkyworkAI/skywork-o1-prm-inference) runs the full causal LM with ``output_hidden_states``,
applies the value head to ``hidden_states[-1]`` and reads the sigmoid at the newline that ends each piece
of ``response.split("\\n")``. ``reference_rewards`` below does exactly that, one solution at a time with
no padding; the lean scorer (backbone only, batched, value head at step positions) must match it.
"""

from __future__ import annotations

import json
import logging
import shutil
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file, save_file

from bestofn.errors import BestOfNError
from bestofn.prm import DEFAULT_BATCH_TOKENS, EncodedPair, SkyworkPRM

BOS = "<|endoftext|>"  # a special token of the tiny tokenizer, as bos in the real PRM tokenizer

PROBLEMS = [
    "What is $1 + 1$?",
    "Find all real $x$ such that $x^2 - 5x + 6 = 0$.",
    "Compute $\\frac{16}{4}$.",
    "What is the value of $\\sqrt{16}$?",
    "Let $x = 3$. What is $x + 4$?",
    "Evaluate $2^3$.",
]
RESPONSES = [
    "We add.\nThen $1 + 1 = 2$.\nTherefore, the final answer is $\\boxed{2}$.",
    "Factor: $(x-2)(x-3) = 0$.\n\nSo $x = 2$ or $x = 3$.\n\n\nThe final answer is $\\boxed{2, 3}$.",  # blank lines
    "Divide.\n$\\frac{16}{4} = 4$.\nTherefore, the final answer is $\\boxed{4}$.\n",  # trailing newline
    "\nThe square root of 16 is 4.",  # leading newline
    "$x + 4 = 7$, so the final answer is $\\boxed{7}$.",  # one step, no newline at all
    "",  # an empty response: one empty step
]


# --- the reference recipe, plainly --------------------------------------------------------------------------
def reference_encode(tokenizer, problem: str, response: str) -> tuple[list[int], list[int]]:
    """Token ids and reward flags as in the reference's ``prepare_input`` (step token "\\n")."""
    newline_id = tokenizer.encode("\n")[-1]
    ids = tokenizer.encode((tokenizer.bos_token or "") + problem + "\n")
    flags = [0] * len(ids)
    for piece in response.split("\n"):
        piece_ids = tokenizer.encode(piece) if piece != "" else []
        piece_ids = piece_ids + [newline_id]
        ids += piece_ids
        flags += [0] * (len(piece_ids) - 1) + [1]
    return ids, flags


class ReferencePRM:
    """Full ``Qwen2ForCausalLM`` (LM head included) + value head on ``hidden_states[-1]``, float32."""

    def __init__(self, folder: Path):
        from transformers import AutoTokenizer, Qwen2ForCausalLM

        self.tokenizer = AutoTokenizer.from_pretrained(folder)
        self.lm = Qwen2ForCausalLM.from_pretrained(folder, dtype=torch.float32).eval()
        state = load_file(str(folder / "model.safetensors"))
        self.v_head = torch.nn.Linear(self.lm.config.hidden_size, 1)
        self.v_head.load_state_dict({"weight": state["v_head.summary.weight"], "bias": state["v_head.summary.bias"]})

    @torch.no_grad()
    def rewards(self, problem: str, response: str) -> list[float]:
        ids, flags = reference_encode(self.tokenizer, problem, response)
        out = self.lm(input_ids=torch.tensor([ids]), output_hidden_states=True)
        values = torch.sigmoid(self.v_head(out.hidden_states[-1]).squeeze(-1))[0]
        return [values[i].item() for i, f in enumerate(flags) if f == 1]


# --- checkpoints ----------------------------------------------------------------------------------------------
def _copy_without_weights(src: Path, dst: Path) -> Path:
    dst.mkdir(parents=True)
    for f in src.iterdir():
        if f.suffix not in (".safetensors", ".bin"):
            shutil.copy(f, dst / f.name)
    return dst


def _write_shards(state: dict[str, torch.Tensor], folder: Path, fmt: str) -> None:
    """Split ``state`` over two files with an index, as ``save_pretrained`` does for big models."""
    keys = sorted(state)
    halves = [keys[: len(keys) // 2], keys[len(keys) // 2 :]]
    ext, index_name = ("safetensors", "model.safetensors.index.json") if fmt == "safetensors" else \
        ("bin", "pytorch_model.bin.index.json")
    prefix = "model" if fmt == "safetensors" else "pytorch_model"
    weight_map = {}
    for i, half in enumerate(halves, start=1):
        name = f"{prefix}-0000{i}-of-00002.{ext}"
        part = {k: state[k] for k in half}
        save_file(part, str(folder / name)) if fmt == "safetensors" else torch.save(part, folder / name)
        weight_map.update({k: name for k in half})
    (folder / index_name).write_text(json.dumps({"metadata": {}, "weight_map": weight_map}))


@pytest.fixture(scope="module")
def prm_dir(tiny_prm_dir, tmp_path_factory) -> Path:
    """The tiny Skywork-format PRM with a bos token, as the real PRM tokenizer has."""
    from transformers import AutoTokenizer

    folder = _copy_without_weights(tiny_prm_dir, tmp_path_factory.mktemp("prm") / "with_bos")
    shutil.copy(tiny_prm_dir / "model.safetensors", folder / "model.safetensors")
    tokenizer = AutoTokenizer.from_pretrained(tiny_prm_dir)
    tokenizer.bos_token = BOS
    tokenizer.save_pretrained(folder)
    return folder


@pytest.fixture(scope="module")
def variant(prm_dir, tmp_path_factory):
    """``variant(kind)``: the same weights as ``prm_dir`` stored another way (or damaged)."""
    state = load_file(str(prm_dir / "model.safetensors"))
    root = tmp_path_factory.mktemp("variants")

    def make(kind: str) -> Path:
        folder = _copy_without_weights(prm_dir, root / kind)
        if kind == "bin":
            torch.save(state, folder / "pytorch_model.bin")
        elif kind in ("sharded-safetensors", "sharded-bin"):
            _write_shards(state, folder, kind.split("-")[1])
        elif kind == "no-v-head":
            save_file({k: v for k, v in state.items() if not k.startswith("v_head.")}, str(folder / "model.safetensors"))
        elif kind == "no-norm":
            save_file({k: v for k, v in state.items() if k != "model.norm.weight"}, str(folder / "model.safetensors"))
        return folder

    return make


@pytest.fixture(scope="module")
def reference(prm_dir) -> ReferencePRM:
    return ReferencePRM(prm_dir)


@pytest.fixture(scope="module")
def prm(prm_dir) -> SkyworkPRM:
    return SkyworkPRM.from_pretrained(str(prm_dir))


def assert_close(actual: list[list[float]], expected: list[list[float]], tol: float = 1e-5) -> None:
    assert [len(r) for r in actual] == [len(r) for r in expected]
    for a, e in zip(actual, expected):
        assert a == pytest.approx(e, abs=tol, rel=0)


# --- fidelity -------------------------------------------------------------------------------------------------
def test_reference_value_head_reads_the_final_normed_state(reference):
    """Settles what the reference's ``hidden_states[-1]`` is in this transformers: the final norm's output.

    So the lean scorer must read ``last_hidden_state`` (which is also post-norm), and the fidelity test
    below can tell the two apart, because the norm changes the states a lot.
    """
    seen = {}
    hook = reference.lm.model.norm.register_forward_hook(lambda m, inp, out: seen.update(pre=inp[0], post=out))
    try:
        with torch.no_grad():
            out = reference.lm(input_ids=torch.tensor([[5, 17, 42, 7]]), output_hidden_states=True)
    finally:
        hook.remove()
    assert torch.equal(out.hidden_states[-1], seen["post"])
    assert (seen["pre"] - seen["post"]).abs().max() > 0.1


def test_encode_matches_the_reference_recipe(prm, reference):
    pairs = prm.encode(PROBLEMS, RESPONSES)
    for pair, problem, response in zip(pairs, PROBLEMS, RESPONSES):
        ids, flags = reference_encode(reference.tokenizer, problem, response)
        assert pair.input_ids == ids
        assert pair.step_positions == [i for i, f in enumerate(flags) if f]
        assert len(pair.step_positions) == response.count("\n") + 1  # every piece is a step, empty ones too
        assert not pair.truncated
    assert pairs[0].input_ids[0] == reference.tokenizer.convert_tokens_to_ids(BOS)


def test_scores_match_the_reference_within_1e5(prm, reference):
    expected = [reference.rewards(p, r) for p, r in zip(PROBLEMS, RESPONSES)]
    scores = prm.score(PROBLEMS, RESPONSES)
    assert_close(scores, expected)
    # Not a degenerate model: the rewards differ from step to step and from solution to solution.
    assert len({round(x, 4) for row in scores for x in row}) > 10


def test_without_bos_the_input_starts_with_the_problem_and_it_is_said_once(tiny_prm_dir, caplog):
    with caplog.at_level(logging.WARNING, logger="bestofn.prm.skywork"):
        prm = SkyworkPRM.from_pretrained(str(tiny_prm_dir))
        scores = prm.score(PROBLEMS, RESPONSES)
        prm.score(PROBLEMS[:2], RESPONSES[:2])
    reference = ReferencePRM(tiny_prm_dir)
    assert reference.tokenizer.bos_token is None
    assert_close(scores, [reference.rewards(p, r) for p, r in zip(PROBLEMS, RESPONSES)])
    assert [r.getMessage() for r in caplog.records if "bos" in r.getMessage()] == [
        "the PRM tokenizer has no bos token: PRM inputs start directly with the problem"
    ]


# --- loading --------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("kind", ["bin", "sharded-safetensors", "sharded-bin"])
def test_every_checkpoint_format_gives_the_same_scores(kind, variant, prm):
    other = SkyworkPRM.from_pretrained(str(variant(kind)))
    assert other.score(PROBLEMS, RESPONSES) == prm.score(PROBLEMS, RESPONSES)


class _Records(logging.Handler):
    def __init__(self):
        super().__init__(logging.WARNING)
        self.messages: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.messages.append(record.getMessage())


def test_loading_keeps_no_lm_head_and_reports_nothing_alarming(prm_dir, capfd):
    from transformers import Qwen2Config, Qwen2Model

    # transformers' logger does not propagate to the root (pytest's caplog): listen to it directly.
    records, hf_logger = _Records(), logging.getLogger("transformers")
    hf_logger.addHandler(records)
    try:
        prm = SkyworkPRM.from_pretrained(str(prm_dir))
    finally:
        hf_logger.removeHandler(records)
    assert records.messages == []
    out, err = capfd.readouterr()
    for alarm in ("UNEXPECTED", "LOAD REPORT", "lm_head", "newly initialized", "MISSING"):
        assert alarm not in out + err
    config = Qwen2Config.from_pretrained(prm_dir)
    backbone_only = sum(p.numel() for p in Qwen2Model(config).parameters())
    assert sum(p.numel() for p in prm.parameters()) == backbone_only + config.hidden_size + 1
    assert not any("lm_head" in name for name, _ in prm.named_parameters())
    assert prm.backbone.dtype == torch.float32 and prm.value_head.weight.dtype == torch.float32


def test_a_checkpoint_without_value_head_is_refused_by_name(variant):
    with pytest.raises(BestOfNError, match=r"no value head \(v_head\.summary\.weight, v_head\.summary\.bias"):
        SkyworkPRM.from_pretrained(str(variant("no-v-head")))


def test_a_checkpoint_missing_backbone_weights_is_refused_not_patched(variant):
    with pytest.raises(BestOfNError, match=r"lacks 1 backbone weights \(e\.g\. norm\.weight\)"):
        SkyworkPRM.from_pretrained(str(variant("no-norm")))


@pytest.mark.parametrize("path", ["/no/such/prm", "./no-such-prm", "models/skywork/prm"])
def test_a_bad_path_is_a_one_line_error(path):
    with pytest.raises(BestOfNError) as e:
        SkyworkPRM.from_pretrained(path)
    assert path in str(e.value) and "\n" not in str(e.value)


def test_a_folder_that_is_not_a_model_is_a_one_line_error(tmp_path):
    with pytest.raises(BestOfNError) as e:
        SkyworkPRM.from_pretrained(str(tmp_path))
    assert "config.json" in str(e.value) and "\n" not in str(e.value)


# --- long inputs ----------------------------------------------------------------------------------------------
def test_inputs_longer_than_the_context_keep_the_steps_that_fit(prm_dir, prm):
    full = prm.score_detailed(PROBLEMS, RESPONSES)
    lengths = [len(p.input_ids) for p in prm.encode(PROBLEMS, RESPONSES)]
    max_length = sorted(lengths)[len(lengths) // 2]  # about half of the inputs are too long
    short = SkyworkPRM.from_pretrained(str(prm_dir), max_length=max_length)
    cut = short.score_detailed(PROBLEMS, RESPONSES)
    for pair, f, c, n in zip(short.encode(PROBLEMS, RESPONSES), full, cut, lengths):
        assert c.truncated == (n > max_length)
        assert len(pair.input_ids) <= max_length
        # Causal attention: the steps that fit get exactly their full-context rewards.
        assert c.step_rewards == pytest.approx(f.step_rewards[: len(c.step_rewards)], abs=1e-6)
        if c.truncated:
            assert len(c.step_rewards) < len(f.step_rewards)
    assert any(c.truncated and c.step_rewards for c in cut)

    # A problem that alone fills the context: no step fits, no reward, flagged (and no forward pass).
    tiny = SkyworkPRM.from_pretrained(str(prm_dir), max_length=4)
    [score] = tiny.score_detailed([PROBLEMS[1]], [RESPONSES[1]])
    assert score.truncated and score.step_rewards == [] and score.reward is None


# --- batching -------------------------------------------------------------------------------------------------
def test_batching_restores_the_input_order(prm, reference, monkeypatch):
    problems = [PROBLEMS[i % len(PROBLEMS)] for i in range(14)]
    responses = [RESPONSES[(3 * i) % len(RESPONSES)] * (1 + i % 4) for i in range(14)]  # mixed lengths
    expected = [reference.rewards(p, r) for p, r in zip(problems, responses)]
    pairs = prm.encode(problems, responses)
    budget = 2 * max(len(p.input_ids) for p in pairs)
    monkeypatch.setattr(prm, "_batch_tokens", budget)
    batches = list(prm._batches(pairs))
    assert len(batches) > 3 and max(len(b) for b in batches) > 1
    assert sorted(i for b in batches for i in b) == list(range(len(pairs)))
    for b in batches:
        assert max(len(pairs[i].input_ids) for i in b) * len(b) <= budget
    assert_close(prm.score(problems, responses), expected)


def test_a_pair_longer_than_the_budget_gets_its_own_batch(prm, monkeypatch):
    pairs = [EncodedPair(list(range(1, 41)), [9, 39]), EncodedPair(list(range(1, 11)), [9])]
    monkeypatch.setattr(prm, "_batch_tokens", 16)
    assert list(prm._batches(pairs)) == [[0], [1]]
    scores = prm.score_encoded(pairs)
    assert scores[0].step_rewards[0] == pytest.approx(scores[1].step_rewards[0], abs=1e-6)  # same prefix


def test_the_batch_budget_defaults_per_device_unless_given(prm):
    assert prm.batch_tokens == DEFAULT_BATCH_TOKENS["cpu"]
    assert SkyworkPRM(prm.backbone, prm.value_head, prm.tokenizer, batch_tokens=123).batch_tokens == 123


def test_mismatched_inputs_and_no_inputs(prm):
    with pytest.raises(ValueError, match="2 problems but 1 responses"):
        prm.score(PROBLEMS[:2], RESPONSES[:1])
    assert prm.score([], []) == []
