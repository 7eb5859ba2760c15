"""Each PRM format against a plain re-implementation of its reference recipe, detection and errors.

The references below run the FULL model (the causal LM with its whole LM head, or Qwen2Model plus an
``nn.Sequential`` head built here) one solution at a time, without padding, exactly as the model cards and
reference scripts do; every token id is derived through the tokenizer. The lean scorers (backbone only,
two LM-head rows, head at reward positions, token-budget batches) must match them within 1e-5 in float32.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from bestofn.errors import BestOfNError
from bestofn.prm import FORMATS, STEP_SEPARATORS, detect_format, load_prm
from bestofn.testing import make_tokenizer
from bestofn.testing.models import (make_llama3_tokenizer, make_tiny_math_shepherd_prm, make_tiny_qwen_math_prm,
                                    make_tiny_rlhflow_prm)

PROBLEMS = [
    "What is $1 + 1$?",
    "Find all real $x$ such that $x^2 - 5x + 6 = 0$.",
    "Compute $\\frac{16}{4}$.",
    "What is the value of $\\sqrt{16}$?",
    "Let $x = 3$. What is $x + 4$?",
    "Evaluate $2^3$.",
    "Evaluate $3 - 1$.",
]
RESPONSES = [
    "We add.\n\nThen $1+1 = 2$.\n\nTherefore, the final answer is $\\boxed{2}$.",  # "+" inside a step
    "Factor: $(x-2)(x-3) = 0$.\nSo $x = 2$ or $x = 3$.\n\nThe final answer is $\\boxed{2, 3}$.",  # "\n" in a step
    "Divide.\n\n$\\frac{16}{4} = 4$.\n\nTherefore, the final answer is $\\boxed{4}$.\n\n",  # trailing separator
    "\n\nThe square root of 16 is 4.",  # leading separator: an empty first step
    "$x + 4 = 7$, so the final answer is $\\boxed{7}$.",  # one step
    "",  # an empty response
    "First.\n\n\n\nThen $3 - 1 = 2$ ки, done.",  # an empty middle step; the Math-Shepherd tag inside a step
]


# --- the reference recipes, plainly --------------------------------------------------------------------------
class QwenMathReference:
    """Model card of Qwen/Qwen2.5-Math-PRM-7B, with Qwen2Model + the card's score head built here."""

    def __init__(self, folder: Path):
        from transformers import AutoTokenizer, Qwen2Model

        self.tokenizer = AutoTokenizer.from_pretrained(folder)
        self.model = Qwen2Model.from_pretrained(folder, dtype=torch.float32).eval()
        h = self.model.config.hidden_size
        state = load_file(str(folder / "model.safetensors"))
        self.score = torch.nn.Sequential(torch.nn.Linear(h, h), torch.nn.ReLU(), torch.nn.Linear(h, 2))
        self.score.load_state_dict({k.removeprefix("score."): v for k, v in state.items() if k.startswith("score.")})

    @torch.no_grad()
    def rewards(self, problem: str, response: str) -> list[float]:
        messages = [
            {"role": "system", "content": "Please reason step by step, and put your final answer within \\boxed{}."},
            {"role": "user", "content": problem},
            {"role": "assistant", "content": "<extra_0>".join(response.split("\n\n")) + "<extra_0>"},
        ]
        text = self.tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=False)
        input_ids = torch.tensor([self.tokenizer.encode(text)])
        logits = self.score(self.model(input_ids=input_ids).last_hidden_state)
        step_sep_id = self.tokenizer.encode("<extra_0>")[0]
        probabilities = torch.softmax(logits, dim=-1)[0]
        return probabilities[input_ids[0] == step_sep_id][:, 1].tolist()


class RLHFlowReference:
    """RLHF-Reward-Modeling's prm_evaluate.py with search-and-learn's per-step reading, full LlamaForCausalLM."""

    def __init__(self, folder: Path):
        from transformers import AutoTokenizer, LlamaForCausalLM

        self.tokenizer = AutoTokenizer.from_pretrained(folder)
        self.model = LlamaForCausalLM.from_pretrained(folder, dtype=torch.float32).eval()
        self.candidates = [self.tokenizer.encode("+")[-1], self.tokenizer.encode("-")[-1]]

    def conversation(self, problem: str, response: str) -> list[dict[str, str]]:
        conversation = []
        for k, step in enumerate(response.split("\n\n")):
            text = problem + " " + step if k == 0 else step
            conversation.append({"content": text, "role": "user"})
            conversation.append({"content": "+", "role": "assistant"})
        return conversation

    @torch.no_grad()
    def logits(self, problem: str, response: str) -> tuple[list[int], torch.Tensor]:
        conversation = self.conversation(problem, response)
        ids = self.tokenizer.apply_chat_template(conversation)["input_ids"]
        return ids, self.model(torch.tensor([ids])).logits[0, :, self.candidates]

    def rewards(self, problem: str, response: str) -> list[float]:
        ids, logits = self.logits(problem, response)
        scores = logits.softmax(dim=-1)[:, 0]
        conversation, out = self.conversation(problem, response), []
        for k in range(len(conversation) // 2):
            # The prompt up to the k-th assistant turn: its last token predicts that turn's "+".
            prefix = self.tokenizer.apply_chat_template(conversation[: 2 * k + 1], add_generation_prompt=True)["input_ids"]
            assert ids[: len(prefix)] == prefix and ids[len(prefix)] == self.candidates[0]
            out.append(scores[len(prefix) - 1].item())
        return out


class MathShepherdReference:
    """Model card of peiyi9979/math-shepherd-mistral-7b-prm, full MistralForCausalLM."""

    def __init__(self, folder: Path):
        from transformers import AutoTokenizer, MistralForCausalLM

        self.tokenizer = AutoTokenizer.from_pretrained(folder)
        self.model = MistralForCausalLM.from_pretrained(folder, dtype=torch.float32).eval()
        self.candidate_tokens = self.tokenizer.encode("+ -")[1:]
        self.step_tag_id = self.tokenizer.encode("ки")[-1]

    @torch.no_grad()
    def rewards(self, problem: str, response: str) -> list[float]:
        output = response.replace("\n\n", " ки\n\n")
        if not response.endswith("\n\n"):
            output += " ки"
        input_id = torch.tensor([self.tokenizer.encode(f"{problem} {output}")])
        logits = self.model(input_id).logits[:, :, self.candidate_tokens]
        scores = logits.softmax(dim=-1)[:, :, 0]
        return scores[input_id == self.step_tag_id].tolist()


REFERENCES = {"qwen2.5-math-prm": QwenMathReference, "rlhflow": RLHFlowReference, "math-shepherd": MathShepherdReference}
BUILDERS = {"qwen2.5-math-prm": make_tiny_qwen_math_prm, "rlhflow": make_tiny_rlhflow_prm,
            "math-shepherd": make_tiny_math_shepherd_prm}
NEW_FORMATS = tuple(REFERENCES)


@pytest.fixture(scope="session")
def format_dirs(tmp_path_factory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("prm-formats")
    return {fmt: build(root / fmt) for fmt, build in BUILDERS.items()}


@pytest.fixture(scope="module")
def references(format_dirs):
    return {fmt: REFERENCES[fmt](format_dirs[fmt]) for fmt in NEW_FORMATS}


@pytest.fixture(scope="module")
def scorers(format_dirs):
    return {fmt: load_prm(str(format_dirs[fmt]), format=fmt) for fmt in NEW_FORMATS}


def assert_close(actual: list[list[float]], expected: list[list[float]], tol: float = 1e-5) -> None:
    assert [len(r) for r in actual] == [len(r) for r in expected]
    for a, e in zip(actual, expected):
        assert a == pytest.approx(e, abs=tol, rel=0)


# --- fidelity -------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("fmt", NEW_FORMATS)
def test_scores_match_the_reference_recipe_within_1e5(fmt, scorers, references):
    expected = [references[fmt].rewards(p, r) for p, r in zip(PROBLEMS, RESPONSES)]
    scores = scorers[fmt].score(PROBLEMS, RESPONSES)
    assert_close(scores, expected)
    # One reward per step of response.split("\n\n") (Math-Shepherd: per tag, and one response holds an extra "ки").
    steps = [len(r.split("\n\n")) - (fmt == "math-shepherd" and r.endswith("\n\n")) + (fmt == "math-shepherd" and "ки" in r)
             for r in RESPONSES]
    assert [len(s) for s in scores] == steps
    assert len({round(x, 4) for row in scores for x in row}) > 10, "a degenerate model would hide mistakes"


@pytest.mark.parametrize("fmt", NEW_FORMATS)
def test_batches_of_mixed_lengths_give_the_reference_rewards_in_input_order(fmt, scorers, references, monkeypatch):
    scorer = scorers[fmt]
    problems = [PROBLEMS[i % len(PROBLEMS)] for i in range(12)]
    responses = [RESPONSES[(3 * i) % len(RESPONSES)] * (1 + i % 3) for i in range(12)]
    pairs = scorer.encode(problems, responses)
    monkeypatch.setattr(scorer, "_batch_tokens", 2 * max(len(p.input_ids) for p in pairs))
    assert len(list(scorer._batches(pairs))) > 3
    assert_close(scorer.score(problems, responses), [references[fmt].rewards(p, r) for p, r in zip(problems, responses)])


def test_rlhflow_last_step_is_what_the_original_script_reads_at_minus_3(scorers, references):
    """prm_evaluate.py reads only the last step, at position -3 ("+", "<|eot_id|>" follow it)."""
    ref = references["rlhflow"]
    for problem, response, mine in zip(PROBLEMS, RESPONSES, scorers["rlhflow"].score(PROBLEMS, RESPONSES)):
        _, logits = ref.logits(problem, response)
        assert mine[-1] == pytest.approx(logits[-3].softmax(-1)[0].item(), abs=1e-5)


def test_rlhflow_with_tied_embeddings_reads_the_embedding_rows(tmp_path):
    folder = make_tiny_rlhflow_prm(tmp_path / "tied", tie_word_embeddings=True)
    assert "lm_head.weight" not in load_file(str(folder / "model.safetensors"))
    assert_close(load_prm(str(folder), format="rlhflow").score(PROBLEMS, RESPONSES),
                 [RLHFlowReference(folder).rewards(p, r) for p, r in zip(PROBLEMS, RESPONSES)])


@pytest.mark.parametrize("fmt", NEW_FORMATS)
def test_inputs_longer_than_the_context_keep_the_steps_that_fit(fmt, scorers, format_dirs):
    full = scorers[fmt].score_detailed(PROBLEMS, RESPONSES)
    lengths = [len(p.input_ids) for p in scorers[fmt].encode(PROBLEMS, RESPONSES)]
    max_length = sorted(lengths)[len(lengths) // 2]
    short = load_prm(str(format_dirs[fmt]), format=fmt, max_length=max_length)
    cut = short.score_detailed(PROBLEMS, RESPONSES)
    for pair, f, c, n in zip(short.encode(PROBLEMS, RESPONSES), full, cut, lengths):
        assert len(pair.input_ids) <= max_length
        # Flagged exactly when steps were lost; the steps that fit keep their full-context rewards.
        assert c.truncated == (len(c.step_rewards) < len(f.step_rewards))
        assert c.truncated <= (n > max_length)
        assert c.step_rewards == pytest.approx(f.step_rewards[: len(c.step_rewards)], abs=1e-6)
    assert any(c.truncated and c.step_rewards for c in cut)


@pytest.mark.parametrize("fmt", NEW_FORMATS)
def test_lean_loading_keeps_only_the_backbone_and_a_small_head(fmt, scorers):
    scorer = scorers[fmt]
    from transformers import AutoModel

    h = scorer.backbone.config.hidden_size
    backbone = sum(p.numel() for p in AutoModel.from_config(scorer.backbone.config).parameters())
    head = h * h + h + 2 * h + 2 if fmt == "qwen2.5-math-prm" else 2 * h  # the score MLP, or two LM-head rows
    assert sum(p.numel() for p in scorer.parameters()) == backbone + head
    assert scorer.format == fmt and scorer.step_separator == STEP_SEPARATORS[fmt] == "\n\n"


# --- detection ------------------------------------------------------------------------------------------------
def test_formats_are_detected_from_architectures(format_dirs, tiny_prm_dir):
    assert detect_format(str(tiny_prm_dir)) == "skywork"
    assert detect_format(str(format_dirs["qwen2.5-math-prm"])) == "qwen2.5-math-prm"
    assert load_prm(str(format_dirs["qwen2.5-math-prm"])).format == "qwen2.5-math-prm"
    assert load_prm(str(tiny_prm_dir)).format == "skywork"


@pytest.mark.parametrize("hub_id, fmt", [("RLHFlow/Llama3.1-8B-PRM-Deepseek-Data", "rlhflow"),
                                         ("RLHFlow/Llama3.1-8B-PRM-Mistral-Data", "rlhflow"),
                                         ("peiyi9979/math-shepherd-mistral-7b-prm", "math-shepherd")])
def test_known_hub_ids_are_detected_without_the_network(hub_id, fmt):
    assert detect_format(hub_id) == fmt  # HF_HUB_OFFLINE is set: nothing is fetched


def test_a_local_copy_in_the_hub_cache_is_known_by_its_folder_name(format_dirs, tmp_path):
    folder = tmp_path / "models--peiyi9979--math-shepherd-mistral-7b-prm" / "snapshots" / "abc123"
    shutil.copytree(format_dirs["math-shepherd"], folder)
    assert load_prm(str(folder)).format == "math-shepherd"


@pytest.mark.parametrize("fmt", ["rlhflow", "math-shepherd"])
def test_a_plain_causal_lm_without_format_asks_for_prm_format(fmt, format_dirs):
    with pytest.raises(BestOfNError, match="pass --prm-format") as e:
        load_prm(str(format_dirs[fmt]))
    assert "\n" not in str(e.value)


def test_a_format_that_contradicts_the_architecture_is_refused(tiny_prm_dir):
    with pytest.raises(BestOfNError, match="is a 'skywork' checkpoint"):
        load_prm(str(tiny_prm_dir), format="qwen2.5-math-prm")


def test_an_unknown_format_name_is_refused():
    with pytest.raises(BestOfNError, match="unknown PRM format 'llama'"):
        detect_format("RLHFlow/Llama3.1-8B-PRM-Deepseek-Data", format="llama")


# --- errors ---------------------------------------------------------------------------------------------------
def _with_tokenizer(src: Path, dst: Path, tokenizer) -> Path:
    shutil.copytree(src, dst)
    for f in [*dst.glob("tokenizer*"), *dst.glob("chat_template*"), *dst.glob("special_tokens_map*")]:
        f.unlink()
    tokenizer.save_pretrained(dst)
    return dst


def test_qwen_math_prm_without_extra_0_in_the_tokenizer_is_refused(format_dirs, tmp_path):
    folder = _with_tokenizer(format_dirs["qwen2.5-math-prm"], tmp_path / "no-tag", make_tokenizer())
    with pytest.raises(BestOfNError, match="has no <extra_0> token") as e:
        load_prm(str(folder))
    assert "\n" not in str(e.value)


def test_math_shepherd_without_the_step_tag_in_the_tokenizer_is_refused(format_dirs, tmp_path):
    folder = _with_tokenizer(format_dirs["math-shepherd"], tmp_path / "no-tag", make_llama3_tokenizer())
    with pytest.raises(BestOfNError, match="no token for the step tag 'ки'") as e:
        load_prm(str(folder), format="math-shepherd")
    assert "\n" not in str(e.value)


def test_rlhflow_without_a_chat_template_is_refused(format_dirs, tmp_path):
    tokenizer = make_llama3_tokenizer()
    tokenizer.chat_template = None
    folder = _with_tokenizer(format_dirs["rlhflow"], tmp_path / "no-template", tokenizer)
    with pytest.raises(BestOfNError, match="no chat template"):
        load_prm(str(folder), format="rlhflow")


def test_every_format_has_a_separator():
    assert set(FORMATS) == set(STEP_SEPARATORS) == {"skywork", "qwen2.5-math-prm", "rlhflow", "math-shepherd"}
    assert STEP_SEPARATORS["skywork"] == "\n"
