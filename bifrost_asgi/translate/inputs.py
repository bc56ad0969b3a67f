"""What the translators to other dialects (chat, Anthropic Messages, Gemini ``generateContent``) read from
an OpenAI-shaped request the same way: the one prompt of a text completion, the chat messages, and the
400 for a Responses input item a provider that keeps no state cannot take."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from bifrost_asgi.errors import BifrostError, invalid_request

__all__ = ["chat_messages", "one_prompt", "unsendable_item"]


def one_prompt(body: dict[str, Any], refusal: str) -> str:
    """The one prompt string of a text completion ``body`` (a one-item list counts as that item);
    otherwise a 400 with ``refusal``, the target dialect's reason why several prompts or token ids
    cannot be sent: the prompt becomes one user turn.

    >>> one_prompt({"prompt": ["Once"]}, "one prompt only")
    'Once'
    """
    prompt = body.get("prompt")
    if isinstance(prompt, list) and len(prompt) == 1:
        prompt = prompt[0]
    if not isinstance(prompt, str):
        raise invalid_request(refusal, param="prompt")
    return prompt


def chat_messages(body: dict[str, Any]) -> Iterator[tuple[Any, str]]:
    """Each message of a chat completions ``body`` with where it stands (``messages[i]``, for errors);
    a 400 when there is no list of messages.

    >>> list(chat_messages({"messages": ["hi"]}))
    [('hi', 'messages[0]')]
    """
    messages = body.get("messages")
    if not isinstance(messages, list):
        raise invalid_request("messages is required for chat completion", param="messages")
    for index, message in enumerate(messages):
        yield message, f"messages[{index}]"


def unsendable_item(kind: Any, where: str, target: str) -> BifrostError:
    """The 400 for a Responses input item that ``target`` (a provider that keeps no state) cannot take:
    an ``item_reference`` to an item stored by OpenAI, or a type it has no equivalent for."""
    if kind == "item_reference":
        return invalid_request(
            f"{where}: item_reference points at an item stored by OpenAI, which {target} cannot resolve",
            param=where,
        )
    return invalid_request(f"{where}: input item type {kind!r} cannot be sent to {target}", param=where)
