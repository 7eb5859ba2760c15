"""Test doubles that behave like the real things: tiny checkpoints in the real architectures and layouts.

Contract: everything here writes folders or objects that load and run through the library's *real* code
paths (``from_pretrained`` on a folder, the ``GenerationBackend`` interface); nothing here is imported by
the library itself. ``python -m bestofn.testing DIR`` writes the tiny models into ``DIR``.
"""

from .models import CHAT_TEMPLATE, SPECIAL_TOKENS, make_tiny_generator, make_tiny_prm, make_tokenizer

__all__ = ["CHAT_TEMPLATE", "SPECIAL_TOKENS", "make_tiny_generator", "make_tiny_prm", "make_tokenizer"]
