"""Step 2: the chain-of-thought prompt.

The PRM scores a solution step by step and finds the steps by splitting at its step separator (a newline
for Skywork, a blank line for the others; :mod:`bestofn.prm.formats`), so the prompt asks for steps
separated exactly that way: the system prompt's ``{step_format}`` is replaced by the matching instruction
(``config.STEP_FORMATS``). It also asks for the final answer in ``\\boxed{}`` so grading can find it.
The wording lives in the config (``system_prompt``, ``user_template``) so users can change it; the chat
formatting is the generator tokenizer's own chat template, so the model sees the format it was tuned on.
"""

from __future__ import annotations

from typing import Any

from .config import STEP_FORMATS
from .prm.formats import LINE

STEP_FORMAT_FIELD = "{step_format}"


def system_prompt_for(system_prompt: str, step_separator: str = LINE) -> str:
    """The system prompt with ``{step_format}`` replaced by the instruction for ``step_separator``."""
    return system_prompt.replace(STEP_FORMAT_FIELD, STEP_FORMATS[step_separator])


def build_messages(problem: str, system_prompt: str, user_template: str,
                   step_separator: str = LINE) -> list[dict[str, str]]:
    """The chat messages for one problem (system message omitted when empty)."""
    system = system_prompt_for(system_prompt, step_separator)
    messages = [{"role": "system", "content": system}] if system else []
    messages.append({"role": "user", "content": user_template.replace("{problem}", problem)})
    return messages


def render_prompt(tokenizer: Any, problem: str, system_prompt: str, user_template: str,
                  step_separator: str = LINE) -> str:
    """Render the messages with the tokenizer's chat template, ending where the assistant starts writing.

    ``step_separator`` is the PRM's (:func:`bestofn.prm.step_separator`); the default is Skywork's, one
    step per line.
    """
    messages = build_messages(problem, system_prompt, user_template, step_separator)
    return tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)
