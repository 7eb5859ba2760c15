"""Tiny checkpoints in the real architectures, for tests, benchmarks and offline smoke runs.

No machine of ours reaches the Hub, yet the real loading code (``from_pretrained`` on a folder) must be
exercised. These builders write, with ``save_pretrained``, folders that load through exactly the same code
paths as the real models:

- :func:`make_tiny_generator`: a random ``Qwen2ForCausalLM`` with a real byte-level BPE fast tokenizer and
  a Qwen-style chat template (its outputs are noise, but they flow through every stage).
- :func:`make_tiny_prm`: a Skywork-format PRM checkpoint: Qwen2 backbone weights under ``model.``, an LM
  head, the value head ``v_head.summary``, and an ``auto_map`` pointing at custom code that is not there
  (as on the Hub, where our loader must not need it).
- :func:`make_tiny_qwen_math_prm`: a Qwen2.5-Math-PRM checkpoint: Qwen2 weights under ``model.``, the
  score head ``score.0``/``score.2``, ``<extra_0>`` in the tokenizer, architectures
  ``Qwen2ForProcessRewardModel`` and an ``auto_map`` to absent code.
- :func:`make_tiny_rlhflow_prm`: a ``LlamaForCausalLM`` (untied LM head, as Llama-3.1-8B) with a Llama-3
  byte-level tokenizer and a Llama-3-style chat template (``<|start_header_id|>...<|eot_id|>``).
- :func:`make_tiny_math_shepherd_prm`: a ``MistralForCausalLM`` (sliding window 4096, as Mistral-7B-v0.1)
  with a sentencepiece-style (Metaspace) tokenizer that has the step tag ``ки`` and adds ``<s>``.

Run ``python -m bestofn.testing DIR`` to write them all into ``DIR/generator``, ``DIR/prm`` (Skywork),
``DIR/qwen-math-prm``, ``DIR/rlhflow-prm`` and ``DIR/math-shepherd-prm``.
"""

from __future__ import annotations

import random
from pathlib import Path

import torch

CHAT_TEMPLATE = (
    "{%- for message in messages %}"
    "{{ '<|im_start|>' + message['role'] + '\\n' + message['content'] + '<|im_end|>' + '\\n' }}"
    "{%- endfor %}"
    "{%- if add_generation_prompt %}{{ '<|im_start|>assistant\\n' }}{%- endif %}"
)
SPECIAL_TOKENS = ["<|endoftext|>", "<|im_start|>", "<|im_end|>"]


def _corpus(rng: random.Random, size: int = 400) -> list[str]:
    """Math-flavoured text for the tokenizer and the tiny generator: numbers, LaTeX, short steps."""
    lines = []
    for _ in range(size):
        a, b = rng.randint(1, 50), rng.randint(1, 50)
        lines.append(
            f"Let $x = {a}$ and $y = {b}$.\nThen $x + y = {a + b}$ and $\\frac{{x}}{{y}} = \\frac{{{a}}}{{{b}}}$.\n"
            f"Therefore, the final answer is $\\boxed{{{a + b}}}$."
        )
    lines += ["What is the value of $\\sqrt{16}$? Solve the problem step by step.",
              "Find all real $x$ such that $x^2 - 5x + 6 = 0$. Write one step per line."]
    return lines


def make_tokenizer(path: str | Path | None = None, vocab_size: int = 512):
    """A byte-level BPE fast tokenizer (like Qwen's) with Qwen's special tokens and chat template."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size, special_tokens=SPECIAL_TOKENS, initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tok.train_from_iterator(_corpus(random.Random(0)), trainer=trainer)
    fast = PreTrainedTokenizerFast(
        tokenizer_object=tok, eos_token="<|im_end|>", pad_token="<|endoftext|>", unk_token=None, bos_token=None
    )
    fast.chat_template = CHAT_TEMPLATE
    if path is not None:
        fast.save_pretrained(path)
    return fast


def _qwen2_config(tokenizer, hidden_size: int, layers: int, heads: int, kv_heads: int, max_positions: int,
                  intermediate_size: int | None = None, vocab_size: int | None = None):
    from transformers import Qwen2Config

    return Qwen2Config(
        vocab_size=vocab_size or len(tokenizer),  # larger than the tokenizer: ids it lacks decode to nothing
        hidden_size=hidden_size,
        intermediate_size=intermediate_size or hidden_size * 2,
        num_hidden_layers=layers,
        num_attention_heads=heads,
        num_key_value_heads=kv_heads,
        max_position_embeddings=max_positions,
        tie_word_embeddings=True,
        bos_token_id=None,
        eos_token_id=tokenizer.convert_tokens_to_ids("<|im_end|>"),
        pad_token_id=tokenizer.pad_token_id,
    )


def make_tiny_generator(path: str | Path, seed: int = 0, hidden_size: int = 128,
                        layers: int = 2, heads: int = 2, max_positions: int = 2048, *, kv_heads: int = 1,
                        intermediate_size: int | None = None, vocab_size: int | None = None,
                        device: str = "cpu", dtype: torch.dtype = torch.float32) -> Path:
    """Write a tiny random ``Qwen2ForCausalLM`` + tokenizer to ``path``; head_dim is 64 (vLLM refuses 16).

    The keyword-only arguments build other shapes (benchmarks/pipeline_throughput.py writes the real
    Qwen2.5-1.5B shape, initialized on ``device`` and saved in ``dtype``).
    """
    from transformers import GenerationConfig, Qwen2ForCausalLM

    path = Path(path)
    torch.manual_seed(seed)
    tokenizer = make_tokenizer()
    config = _qwen2_config(tokenizer, hidden_size, layers, heads, kv_heads, max_positions, intermediate_size, vocab_size)
    with torch.device(device):
        model = Qwen2ForCausalLM(config).to(dtype)
    stop_ids = [tokenizer.convert_tokens_to_ids("<|im_end|>"), tokenizer.convert_tokens_to_ids("<|endoftext|>")]
    model.generation_config = GenerationConfig(eos_token_id=stop_ids, pad_token_id=tokenizer.pad_token_id)
    model.save_pretrained(path)
    tokenizer.save_pretrained(path)
    return path


def make_tiny_prm(path: str | Path, seed: int = 1, hidden_size: int = 128, layers: int = 2, heads: int = 2,
                  max_positions: int = 4096, safetensors: bool = True, *, kv_heads: int = 1,
                  intermediate_size: int | None = None, vocab_size: int | None = None, device: str = "cpu",
                  dtype: torch.dtype = torch.float32) -> Path:
    """Write a Skywork-format PRM checkpoint: Qwen2 weights under ``model.``, ``lm_head``, ``v_head.summary``."""
    from transformers import Qwen2ForCausalLM

    path = Path(path)
    torch.manual_seed(seed)
    tokenizer = make_tokenizer()
    config = _qwen2_config(tokenizer, hidden_size, layers, heads, kv_heads, max_positions, intermediate_size, vocab_size)
    config.architectures = ["Qwen2ForPrmModel"]
    config.auto_map = {"AutoModel": "modeling_qwen2_prm.Qwen2ForPrmModel"}  # code that is deliberately absent
    with torch.device(device):
        lm = Qwen2ForCausalLM(config).to(dtype)
    state = {k: v.contiguous().cpu() for k, v in lm.state_dict().items()}
    state["lm_head.weight"] = state["lm_head.weight"].clone()  # stored untied, as in the Hub checkpoint
    state["v_head.summary.weight"] = torch.randn(1, hidden_size) * 0.5
    state["v_head.summary.bias"] = torch.randn(1) * 0.1
    path.mkdir(parents=True, exist_ok=True)
    if safetensors:
        from safetensors.torch import save_file

        save_file(state, str(path / "model.safetensors"), metadata={"format": "pt"})
    else:
        torch.save(state, path / "pytorch_model.bin")
    config.save_pretrained(path)
    tokenizer.save_pretrained(path)
    return path


# --- the other PRM formats -------------------------------------------------------------------------------------
QWEN_PRM_TAG = "<extra_0>"
LLAMA3_SPECIAL_TOKENS = ["<|begin_of_text|>", "<|end_of_text|>", "<|start_header_id|>", "<|end_header_id|>",
                         "<|eot_id|>"]
# Llama 3's chat template, minus its date header: bos, then a header and a trimmed message per turn.
LLAMA3_CHAT_TEMPLATE = (
    "{{- bos_token }}"
    "{%- for message in messages %}"
    "{{- '<|start_header_id|>' + message['role'] + '<|end_header_id|>\\n\\n' + message['content'] | trim + '<|eot_id|>' }}"
    "{%- endfor %}"
    "{%- if add_generation_prompt %}{{- '<|start_header_id|>assistant<|end_header_id|>\\n\\n' }}{%- endif %}"
)
# Llama 3's pre-tokenizer split pattern (tokenizer.json of Meta-Llama-3.1-8B-Instruct).
LLAMA3_PATTERN = (r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*"
                  r"|\s*[\r\n]+|\s+(?!\S)|\s+")
MISTRAL_SPECIAL_TOKENS = ["<unk>", "<s>", "</s>"]


def _step_corpus(rng: random.Random) -> list[str]:
    """The math corpus with blank-line steps, "+"/"-" verdicts and Math-Shepherd's step tag."""
    lines = _corpus(rng)
    lines += [f"Step {k}: we get $x = {k}$ ки\n\nStep {k + 1}: so $y = {k} + 1 - 2$ ки + - + -" for k in range(200)]
    return lines


def make_qwen_math_prm_tokenizer():
    """The tiny Qwen tokenizer plus ``<extra_0>``, the step tag of Qwen2.5-Math-PRM (an added special token)."""
    from tokenizers import AddedToken

    tokenizer = make_tokenizer()
    tokenizer.add_tokens([AddedToken(QWEN_PRM_TAG, special=True, normalized=False)], special_tokens=True)
    return tokenizer


def make_llama3_tokenizer(vocab_size: int = 512):
    """A byte-level BPE fast tokenizer with Llama 3's split pattern, special tokens, bos and chat template."""
    from tokenizers import Regex, Tokenizer, decoders, models, pre_tokenizers, processors, trainers
    from transformers import PreTrainedTokenizerFast

    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.Sequence([
        pre_tokenizers.Split(Regex(LLAMA3_PATTERN), behavior="isolated"),
        pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False),
    ])
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=vocab_size, special_tokens=LLAMA3_SPECIAL_TOKENS,
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet(), show_progress=False)
    tok.train_from_iterator(_step_corpus(random.Random(0)), trainer=trainer)
    bos = "<|begin_of_text|>"
    tok.post_processor = processors.TemplateProcessing(single=f"{bos} $A", pair=f"{bos} $A {bos} $B",
                                                       special_tokens=[(bos, tok.token_to_id(bos))])
    fast = PreTrainedTokenizerFast(tokenizer_object=tok, bos_token=bos, eos_token="<|eot_id|>",
                                   pad_token="<|end_of_text|>", unk_token=None)
    fast.chat_template = LLAMA3_CHAT_TEMPLATE
    return fast


def make_mistral_tokenizer(vocab_size: int = 600):
    """A sentencepiece-style BPE (Metaspace "▁", bos ``<s>``) whose vocabulary has "▁ки", "▁+" and "▁-"."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, processors, trainers
    from transformers import PreTrainedTokenizerFast

    tok = Tokenizer(models.BPE(unk_token="<unk>"))
    # Newlines never merge with letters (sentencepiece keeps them as byte tokens): split them off first.
    tok.pre_tokenizer = pre_tokenizers.Sequence([pre_tokenizers.Split("\n", behavior="isolated"),
                                                 pre_tokenizers.Metaspace(replacement="▁", prepend_scheme="first")])
    tok.decoder = decoders.Metaspace(replacement="▁", prepend_scheme="first")
    alphabet = sorted(set("".join(_step_corpus(random.Random(0)))) | {"▁"})
    trainer = trainers.BpeTrainer(vocab_size=vocab_size, special_tokens=MISTRAL_SPECIAL_TOKENS, initial_alphabet=alphabet,
                                  show_progress=False)
    tok.train_from_iterator(_step_corpus(random.Random(0)), trainer=trainer)
    tok.post_processor = processors.TemplateProcessing(single="<s> $A", pair="<s> $A <s> $B",
                                                       special_tokens=[("<s>", tok.token_to_id("<s>"))])
    return PreTrainedTokenizerFast(tokenizer_object=tok, bos_token="<s>", eos_token="</s>", unk_token="<unk>",
                                   pad_token=None)


def _save(path: Path, state: dict[str, torch.Tensor], config, tokenizer) -> Path:
    from safetensors.torch import save_file

    path.mkdir(parents=True, exist_ok=True)
    save_file({k: v.contiguous() for k, v in state.items()}, str(path / "model.safetensors"), metadata={"format": "pt"})
    config.save_pretrained(path)
    tokenizer.save_pretrained(path)
    return path


def make_tiny_qwen_math_prm(path: str | Path, seed: int = 2, hidden_size: int = 64, layers: int = 2, heads: int = 2,
                            max_positions: int = 4096) -> Path:
    """Write a Qwen2.5-Math-PRM checkpoint: ``model.*`` (Qwen2), ``score.0.*``/``score.2.*``, no LM head."""
    from transformers import Qwen2Model

    torch.manual_seed(seed)
    tokenizer = make_qwen_math_prm_tokenizer()
    config = _qwen2_config(tokenizer, hidden_size, layers, heads, 1, max_positions)
    config.tie_word_embeddings = False
    config.num_labels = 2
    config.architectures = ["Qwen2ForProcessRewardModel"]
    config.auto_map = {"AutoModel": "modeling_qwen2_rm.Qwen2ForProcessRewardModel"}  # deliberately absent code
    state = {f"model.{k}": v for k, v in Qwen2Model(config).state_dict().items()}
    # Weights of about unit gain, so the two labels' logits differ by O(1) and the rewards spread over (0, 1).
    state["score.0.weight"] = torch.randn(hidden_size, hidden_size) * hidden_size**-0.5
    state["score.0.bias"] = torch.randn(hidden_size) * 0.1
    state["score.2.weight"] = torch.randn(2, hidden_size) * 2 * hidden_size**-0.5
    state["score.2.bias"] = torch.randn(2) * 0.1
    return _save(Path(path), state, config, tokenizer)


def _causal_lm_state(model, spread: float) -> dict[str, torch.Tensor]:
    """The model's weights, with an LM head scaled so that token logits differ by O(1) (rewards spread)."""
    state = {k: v.clone() for k, v in model.state_dict().items()}
    if "lm_head.weight" in state:
        state["lm_head.weight"] = torch.randn_like(state["lm_head.weight"]) * spread
    return state


def make_tiny_rlhflow_prm(path: str | Path, seed: int = 3, hidden_size: int = 64, layers: int = 2, heads: int = 2,
                          max_positions: int = 4096, tie_word_embeddings: bool = False) -> Path:
    """Write an RLHFlow-format PRM: a ``LlamaForCausalLM`` with a Llama-3-style tokenizer and chat template."""
    from transformers import LlamaConfig, LlamaForCausalLM

    torch.manual_seed(seed)
    tokenizer = make_llama3_tokenizer()
    config = LlamaConfig(vocab_size=len(tokenizer), hidden_size=hidden_size, intermediate_size=2 * hidden_size,
                         num_hidden_layers=layers, num_attention_heads=heads, num_key_value_heads=1,
                         max_position_embeddings=max_positions, rope_theta=500000.0, tie_word_embeddings=tie_word_embeddings,
                         bos_token_id=tokenizer.bos_token_id, eos_token_id=tokenizer.eos_token_id,
                         architectures=["LlamaForCausalLM"])
    state = _causal_lm_state(LlamaForCausalLM(config), 2 * hidden_size**-0.5)
    if tie_word_embeddings:
        state.pop("lm_head.weight", None)  # stored once, as the embeddings
    return _save(Path(path), state, config, tokenizer)


def make_tiny_math_shepherd_prm(path: str | Path, seed: int = 4, hidden_size: int = 64, layers: int = 2,
                                heads: int = 2, max_positions: int = 4096) -> Path:
    """Write a Math-Shepherd-format PRM: a ``MistralForCausalLM`` whose tokenizer has "ки"."""
    from transformers import MistralConfig, MistralForCausalLM

    torch.manual_seed(seed)
    tokenizer = make_mistral_tokenizer()
    config = MistralConfig(vocab_size=len(tokenizer), hidden_size=hidden_size, intermediate_size=2 * hidden_size,
                           num_hidden_layers=layers, num_attention_heads=heads, num_key_value_heads=1,
                           max_position_embeddings=max_positions, sliding_window=4096, tie_word_embeddings=False,
                           bos_token_id=tokenizer.bos_token_id, eos_token_id=tokenizer.eos_token_id,
                           architectures=["MistralForCausalLM"])
    state = _causal_lm_state(MistralForCausalLM(config), 2 * hidden_size**-0.5)
    return _save(Path(path), state, config, tokenizer)
