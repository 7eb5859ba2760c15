"""Tiny checkpoints in the real architectures, for tests, benchmarks and offline smoke runs.

No machine of ours reaches the Hub, yet the real loading code (``from_pretrained`` on a folder) must be
exercised. These builders write, with ``save_pretrained``, folders that load through exactly the same code
paths as the real models:

- :func:`make_tiny_generator`: a random ``Qwen2ForCausalLM`` with a real byte-level BPE fast tokenizer and
  a Qwen-style chat template (its outputs are noise, but they flow through every stage).
- :func:`make_tiny_prm`: a Skywork-format PRM checkpoint: Qwen2 backbone weights under ``model.``, an LM
  head, the value head ``v_head.summary``, and an ``auto_map`` pointing at custom code that is not there
  (as on the Hub, where our loader must not need it).

Run ``python -m bestofn.testing DIR`` to write both into ``DIR/generator`` and ``DIR/prm``.
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
