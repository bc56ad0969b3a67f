"""The prompt of a legacy text completion (``/v1/completions``), for translators to dialects that take
one conversation (Anthropic Messages, Gemini ``generateContent``): the prompt becomes one user turn."""

from __future__ import annotations

from typing import Any

from bifrost_asgi.errors import invalid_request

__all__ = ["one_prompt"]


def one_prompt(body: dict[str, Any], refusal: str) -> str:
    """The one prompt string of ``body`` (a one-item list counts as that item); otherwise a 400 with
    ``refusal``, the target dialect's reason why several prompts or token ids cannot be sent.

    >>> one_prompt({"prompt": ["Once"]}, "one prompt only")
    'Once'
    """
    prompt = body.get("prompt")
    if isinstance(prompt, list) and len(prompt) == 1:
        prompt = prompt[0]
    if not isinstance(prompt, str):
        raise invalid_request(refusal, param="prompt")
    return prompt
