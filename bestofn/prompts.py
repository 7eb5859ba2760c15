"""Step 2: the chain-of-thought prompt.

The PRM scores a solution step by step and finds the steps by splitting at newlines, so the prompt asks for
exactly one reasoning step per line; it also asks for the final answer in ``\\boxed{}`` so grading can find it.
The wording lives in the config (``system_prompt``, ``user_template``) so users can change it; the chat
formatting is the generator tokenizer's own chat template, so the model sees the format it was tuned on.
"""

from __future__ import annotations

from typing import Any


def build_messages(problem: str, system_prompt: str, user_template: str) -> list[dict[str, str]]:
    """The chat messages for one problem (system message omitted when empty)."""
    messages = [{"role": "system", "content": system_prompt}] if system_prompt else []
    messages.append({"role": "user", "content": user_template.replace("{problem}", problem)})
    return messages


def render_prompt(tokenizer: Any, problem: str, system_prompt: str, user_template: str) -> str:
    """Render the messages with the tokenizer's chat template, ending where the assistant starts writing."""
    messages = build_messages(problem, system_prompt, user_template)
    return tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)
