"""Translate OpenAI-shaped requests to Anthropic Messages, and Anthropic's answers back.

Used by the anthropic provider: a Responses, chat completions or text completions request becomes a
``POST /v1/messages`` body, and the Message (or its SSE event stream) becomes the Responses object (or
event sequence), the ``chat.completion`` (or chunks) or the ``text_completion`` the client asked for.

Mapping decisions:

- ``instructions`` and system/developer messages become ``system``, in order (Anthropic has one system
  prompt and no system turns).
- Consecutive items of one role are merged into one turn: an assistant turn carries its thinking, text and
  every ``tool_use`` of that turn, and consecutive tool results share one user turn (Anthropic requires
  both), with ``tool_result`` blocks first.
- Reasoning ↔ thinking: a thinking block is a reasoning item with one ``summary_text`` part (the thinking
  text) and ``encrypted_content`` = its signature; a redacted thinking block is a reasoning item with no
  summary and ``encrypted_content`` = its data. Sent back, they become the same blocks, so multi-turn
  reasoning survives. A reasoning item without ``encrypted_content`` (from another provider) is skipped:
  Anthropic rejects thinking without a signature, and chat-translated providers skip past reasoning too.
  Chat answers carry thinking as ``reasoning`` (text) plus ``reasoning_details`` (Bifrost's field:
  ``reasoning.text`` with its signature, ``reasoning.encrypted`` with redacted data), read back the same way.
- ``reasoning.effort`` (chat: ``reasoning_effort``) enables thinking with ``budget_tokens`` = that share of
  ``max_tokens`` (``_EFFORT_SHARE``), at least 1024; ``reasoning.max_tokens`` sets the budget directly;
  effort ``none`` leaves thinking off.
- ``max_tokens`` is required by Anthropic: ``max_output_tokens`` / ``max_completion_tokens`` /
  ``max_tokens`` when given, else :data:`DEFAULT_MAX_TOKENS`.
- ``tool_choice``: auto → auto, required → any, none → none, a named function → tool;
  ``parallel_tool_calls: false`` → ``disable_parallel_tool_use``.
- Text: a chat (or text completion) answer's content is the concatenation of its text blocks, streamed or
  not, and consecutive text blocks are one Responses ``output_text`` part. Anthropic splits one answer
  into several blocks mid-sentence (around each cited passage), so any separator would change the text
  (Bifrost's blank line does; this deliberately does not).
- The Responses ``web_search`` tool becomes Anthropic's ``web_search_20250305`` server tool
  (``filters.allowed_domains`` and an approximate ``user_location`` kept); any other hosted tool is a 400
  naming it.
- Citations become ``annotations`` (Responses parts, chat messages) and server-tool blocks
  ``web_search_call`` items or pass-through items: :mod:`.anthropic_citations` says how. A
  ``web_search_call`` input item is skipped: its results cannot be replayed without the encrypted
  content Anthropic issued, and the answer's text carries what was found.
- Prompt caching: a ``cache_control`` on a content part, a message or item, a tool call or result, or a
  tool is kept on the block it becomes (on a message, its last block), so each breakpoint stays where
  the client set it; a system message is split after a part that sets one, as the text after it may
  change between requests. A top-level ``cache_control`` (Anthropic's automatic caching) is forwarded
  like any unknown field.
- ``user`` / ``safety_identifier`` → ``metadata.user_id``; chat ``stop`` → ``stop_sequences``;
  JSON-schema output formats → ``output_config.format``.
- Usage: OpenAI's input tokens = Anthropic's ``input_tokens`` + cache reads + cache writes, with
  ``cached_tokens``/``cached_read_tokens`` = cache reads and ``cache_write_tokens``/``cached_write_tokens``
  = cache writes (OpenAI's and Bifrost's names), so pricing charges each at its own rate;
  ``reasoning_tokens`` = ``output_tokens_details.thinking_tokens``.
- ``stop_reason``: end_turn, stop_sequence, pause_turn → completed / ``stop``; tool_use → completed /
  ``tool_calls``; max_tokens and model_context_window_exceeded → incomplete ``max_output_tokens`` /
  ``length``; refusal → incomplete ``content_filter`` / ``content_filter``. Only the last output item of an
  incomplete answer is marked incomplete: the items before it were finished.

What Anthropic cannot express is a 400 naming the field (the ``*_REJECTS`` tables and each
``invalid_request`` below); the few fields dropped only tune OpenAI's own service and are listed in
``_DROPPED`` with why. Also dropped, for the same reason: ``reasoning.summary`` (Claude returns summarized
thinking unasked), ``text.verbosity``, an image's ``detail``. Unknown fields are forwarded untouched as
provider extra params (spec §1).
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any

import orjson

from bifrost_asgi.errors import invalid_request
from bifrost_asgi.translate.anthropic_citations import (
    SEARCH_RESULTS,
    SEARCH_TOOL_TYPES,
    SEARCH_TOOLS,
    chat_annotation,
    responses_annotation,
    search_action,
    search_status,
    web_search_tool,
)
from bifrost_asgi.translate.inputs import chat_messages, one_prompt, unsendable_item
from bifrost_asgi.translate.responses_chat import _reject_stateful
from bifrost_asgi.translate.responses_events import (
    FunctionCallHandle,
    ResponsesStreamWriter,
    SearchHandle,
    _function_call_item,
    _message_item,
    _Outcome,
    _response_object,
    _text_part,
    new_id,
)

__all__ = [
    "DEFAULT_MAX_TOKENS",
    "MessagesToChatStream",
    "MessagesToResponsesStream",
    "anthropic_error_status",
    "anthropic_error_type",
    "chat_to_messages_request",
    "count_tokens_request",
    "messages_to_chat_completion",
    "messages_to_responses_response",
    "messages_to_text_completion",
    "messages_usage_to_chat",
    "messages_usage_to_responses",
    "responses_to_messages_request",
    "text_to_messages_request",
]

Obj = dict[str, Any]

# Anthropic requires max_tokens; OpenAI's APIs default to "as much as the model allows". 4096 is what every
# current Claude model can produce and is Bifrost's own default, so short answers are never cut.
DEFAULT_MAX_TOKENS = 4096
# Anthropic's smallest thinking budget.
MIN_THINKING_BUDGET = 1024
# reasoning effort -> share of max_tokens given to thinking (the same scale OpenRouter documents).
_EFFORT_SHARE: dict[str, float] = {"minimal": 0.1, "low": 0.2, "medium": 0.5, "high": 0.8, "xhigh": 0.95}
_IMAGE_MEDIA_TYPES = frozenset({"image/jpeg", "image/png", "image/gif", "image/webp"})
_DOCUMENT_MEDIA_TYPES = frozenset({"application/pdf"})
# The count_tokens endpoint takes the Messages request minus what only shapes generation.
_NOT_COUNTED = ("max_tokens", "temperature", "top_p", "top_k", "stop_sequences", "metadata", "stream",
                "service_tier")  # fmt: skip

# stop_reason -> (Responses status, incomplete reason, chat finish_reason)
_STOP: dict[str, tuple[str, str | None, str]] = {
    "end_turn": ("completed", None, "stop"),
    "stop_sequence": ("completed", None, "stop"),
    # pause_turn: a long server-tool turn Anthropic paused; the turn as returned is what there is.
    "pause_turn": ("completed", None, "stop"),
    "tool_use": ("completed", None, "tool_calls"),
    "max_tokens": ("incomplete", "max_output_tokens", "length"),
    "model_context_window_exceeded": ("incomplete", "max_output_tokens", "length"),
    "refusal": ("incomplete", "content_filter", "content_filter"),
}

# Anthropic's error types and their HTTP statuses (docs: "Errors"); also used on the /anthropic prefix.
_ERROR_STATUS: dict[str, int] = {
    "invalid_request_error": 400,
    "authentication_error": 401,
    "billing_error": 402,
    "permission_error": 403,
    "not_found_error": 404,
    "request_too_large": 413,
    "rate_limit_error": 429,
    "api_error": 500,
    "timeout_error": 504,
    "overloaded_error": 529,
}
_STATUS_ERROR = {status: kind for kind, status in _ERROR_STATUS.items()}

# Fields dropped on purpose: none changes what the model is asked, and Anthropic rejects unknown fields.
_DROPPED: dict[str, str] = {
    "metadata": "labels a response stored at OpenAI; Anthropic's metadata only holds user_id (from user)",
    "store": "nothing is stored upstream; the gateway answers the same either way",
    "include": "asks OpenAI for extra output; thinking signatures are always returned as encrypted_content",
    "truncation": "'auto' only matters when the context overflows, which Anthropic reports itself",
    "service_tier": "an OpenAI billing tier; Anthropic's service_tier takes other values",
    "prompt_cache_key": "an OpenAI cache-routing hint",
    "prompt_cache_retention": "an OpenAI cache-lifetime hint",
    "stream_options": "usage is always reported on Anthropic streams",
    "max_tool_calls": "caps hosted (built-in) tool calls, which are rejected anyway",
    "verbosity": "a style hint only OpenAI accepts",
}

_RESPONSES_HANDLED = frozenset(
    {"model", "fallbacks", "return_tokens", "stream", "input", "instructions", "tools", "tool_choice",
     "parallel_tool_calls", "text", "reasoning", "max_output_tokens", "temperature", "top_p", "user",
     "safety_identifier", "previous_response_id", "conversation", "prompt", "background", "top_logprobs",
     *_DROPPED}
)  # fmt: skip
_CHAT_HANDLED = frozenset(
    {"model", "fallbacks", "return_tokens", "stream", "messages", "tools", "tool_choice",
     "parallel_tool_calls", "response_format", "reasoning_effort", "max_tokens", "max_completion_tokens",
     "temperature", "top_p", "stop", "user", "safety_identifier", "n", "logprobs", "top_logprobs",
     "logit_bias", "frequency_penalty", "presence_penalty", "seed", "audio", "modalities", "prediction",
     "web_search_options", "functions", "function_call", *_DROPPED}
)  # fmt: skip
_TEXT_HANDLED = frozenset(
    {"model", "fallbacks", "stream", "prompt", "max_tokens", "temperature", "top_p", "stop", "user",
     "safety_identifier", "n", "best_of", "echo", "suffix", "logprobs", "logit_bias", "frequency_penalty",
     "presence_penalty", "seed", *_DROPPED}
)  # fmt: skip


def anthropic_error_status(error_type: str | None) -> int:
    """The HTTP status Anthropic uses for an error type (for ``error`` events inside a 200 stream)."""
    return _ERROR_STATUS.get(error_type or "", 500)


def anthropic_error_type(status: int) -> str:
    """The Anthropic error type for an HTTP status, as the /anthropic prefix reports errors."""
    if status in _STATUS_ERROR:
        return _STATUS_ERROR[status]
    return "invalid_request_error" if 400 <= status < 500 else "api_error"


# ---------------------------------------------------------------------------------------------------------
# Requests: the shared turn builder
# ---------------------------------------------------------------------------------------------------------


@dataclass(slots=True)
class _Turns:
    """Anthropic's conversation being built: one system prompt and alternating turns."""

    system: list[Obj] = field(default_factory=list)  # text blocks
    messages: list[Obj] = field(default_factory=list)

    def add(self, role: str, blocks: list[Obj]) -> None:
        if not blocks:
            return
        last = self.messages[-1] if self.messages else None
        if last is None or last["role"] != role:
            self.messages.append({"role": role, "content": list(blocks)})
            return
        content: list[Obj] = last["content"]
        for block in blocks:
            if block["type"] == "tool_result":
                # Anthropic wants a turn's tool results before anything else in it.
                content.insert(sum(1 for b in content if b["type"] == "tool_result"), block)
            else:
                content.append(block)

    def apply(self, req: Obj) -> None:
        if len(self.system) == 1 and "cache_control" not in self.system[0]:
            req["system"] = self.system[0]["text"]
        elif self.system:
            req["system"] = self.system
        req["messages"] = self.messages


def _text_block(text: str) -> list[Obj]:
    # Anthropic rejects empty text blocks; an empty string adds nothing the model would read.
    return [{"type": "text", "text": text}] if text else []


def _keep_cache(blocks: list[Obj], source: Any) -> list[Obj]:
    """Put the ``cache_control`` of an OpenAI-shaped part, item, message or tool on the last block it
    became, so the prompt-cache breakpoint stays where the client set it (cached input costs a tenth)."""
    cache = source.get("cache_control") if isinstance(source, dict) else None
    if cache is not None and blocks:
        blocks[-1] = {**blocks[-1], "cache_control": cache}
    return blocks


def _string(value: Any, where: str) -> str:
    if not isinstance(value, str):
        raise invalid_request(f"{where} must be a string", param=where)
    return value


def _data_url(url: str, where: str) -> tuple[str, str]:
    """``data:<media type>;base64,<data>`` -> (media type, data)."""
    head, sep, data = url.partition(",")
    if not sep or not head.endswith(";base64"):
        raise invalid_request(f"{where}: data URLs must be base64-encoded", param=where)
    return head[5:-7].lower(), data


def _image(url: Any, where: str) -> Obj:
    if not isinstance(url, str) or not url:
        # A file_id names a file uploaded to OpenAI, which Anthropic cannot fetch.
        raise invalid_request(
            f"{where}: images need an image URL or a data: URL (file_id is not supported)", param=where
        )
    if url.startswith("data:"):
        media_type, data = _data_url(url, where)
        if media_type not in _IMAGE_MEDIA_TYPES:
            raise invalid_request(f"{where}: image type {media_type!r} is not supported by Anthropic "
                                  f"(jpeg, png, gif, webp)", param=where)  # fmt: skip
        return {"type": "image", "source": {"type": "base64", "media_type": media_type, "data": data}}
    if url.startswith(("http://", "https://")):
        return {"type": "image", "source": {"type": "url", "url": url}}
    raise invalid_request(f"{where}: image URLs must be http(s) or data: URLs", param=where)


def _document(file_data: Any, file_url: Any, where: str) -> Obj:
    if isinstance(file_data, str) and file_data.startswith("data:"):
        media_type, data = _data_url(file_data, where)
        if media_type not in _DOCUMENT_MEDIA_TYPES:
            raise invalid_request(
                f"{where}: file type {media_type!r} cannot be sent to Anthropic (PDF only)", param=where
            )
        return {"type": "document", "source": {"type": "base64", "media_type": media_type, "data": data}}
    if isinstance(file_url, str) and file_url.startswith(("http://", "https://")):
        return {"type": "document", "source": {"type": "url", "url": file_url}}
    raise invalid_request(
        f"{where}: files need file_data as a data: URL or a file_url (file_id is not supported)", param=where
    )


def _arguments(arguments: Any, where: str) -> Obj:
    if arguments is None or arguments == "":
        return {}
    try:
        value = orjson.loads(arguments) if isinstance(arguments, str) else None
    except orjson.JSONDecodeError:
        value = None
    if not isinstance(value, dict):
        raise invalid_request(
            f"{where}.arguments must be a JSON object, as Anthropic tool input is", param=where
        )
    return value


def _tool_use(call_id: Any, name: Any, arguments: Any, where: str) -> Obj:
    if not isinstance(call_id, str) or not isinstance(name, str):
        raise invalid_request(f"{where}: a function call needs an id and a name", param=where)
    return {"type": "tool_use", "id": call_id, "name": name, "input": _arguments(arguments, where)}


def _tool_result(call_id: Any, content: str | list[Obj], where: str) -> Obj:
    if not isinstance(call_id, str):
        raise invalid_request(f"{where}: a tool result needs the id of its call", param=where)
    block: Obj = {"type": "tool_result", "tool_use_id": call_id}
    if content:
        block["content"] = content
    return block


def _thinking(text: str | None, signature: Any) -> list[Obj]:
    """A thinking block (``text`` given) or a redacted one; nothing without a signature (see module doc)."""
    if not isinstance(signature, str) or not signature:
        return []
    if text is None:
        return [{"type": "redacted_thinking", "data": signature}]
    return [{"type": "thinking", "thinking": text, "signature": signature}]


# ---------------------------------------------------------------------------------------------------------
# Requests: sampling, tools, thinking, output format (shared by all three request shapes)
# ---------------------------------------------------------------------------------------------------------


def _max_tokens(value: Any, name: str) -> int:
    if value is None:
        return DEFAULT_MAX_TOKENS
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise invalid_request(f"{name} must be a positive integer", param=name)
    return value


def _add_sampling(body: Obj, req: Obj) -> None:
    for key in ("temperature", "top_p"):
        if body.get(key) is not None:
            req[key] = body[key]
    user = body.get("safety_identifier") or body.get("user")
    if user is not None:
        req["metadata"] = {"user_id": _string(user, "user")}


def _add_stop(stop: Any, req: Obj) -> None:
    if stop is None:
        return
    sequences = [stop] if isinstance(stop, str) else stop
    if not isinstance(sequences, list) or not all(isinstance(s, str) for s in sequences):
        raise invalid_request("stop must be a string or a list of strings", param="stop")
    if sequences:
        req["stop_sequences"] = sequences


def _add_thinking(effort: Any, budget: Any, req: Obj, where: str) -> None:
    if budget is None:
        if effort is None or effort == "none":
            return
        if effort not in _EFFORT_SHARE:
            raise invalid_request(f"{where} {effort!r} is not a known reasoning effort", param=where)
        budget = max(MIN_THINKING_BUDGET, int(req["max_tokens"] * _EFFORT_SHARE[effort]))
        if budget >= req["max_tokens"]:
            raise invalid_request(
                f"{where} {effort!r} needs more output tokens: Anthropic's thinking budget must be at least "
                f"{MIN_THINKING_BUDGET} and below max_tokens ({req['max_tokens']})",
                param=where,
            )
    elif isinstance(budget, bool) or not isinstance(budget, int):
        raise invalid_request("reasoning.max_tokens must be an integer", param="reasoning.max_tokens")
    req["thinking"] = {"type": "enabled", "budget_tokens": budget}


def _add_format(fmt: Any, where: str, req: Obj) -> None:
    if fmt is None:
        return
    kind = fmt.get("type") if isinstance(fmt, dict) else None
    if kind == "text":
        return
    if kind == "json_schema":
        # Responses puts the schema on the format; chat nests it under json_schema.
        spec = fmt.get("json_schema", fmt)
        schema = spec.get("schema") if isinstance(spec, dict) else None
        if not isinstance(schema, dict):
            raise invalid_request(f"{where} json_schema needs a schema", param=where)
        req["output_config"] = {"format": {"type": "json_schema", "schema": schema}}
        return
    raise invalid_request(
        f"{where} type {kind!r} cannot be sent to Anthropic; use json_schema for structured output",
        param=where,
    )


def _tool(tool: Any, where: str, *, chat: bool) -> Obj:
    kind = tool.get("type") if isinstance(tool, dict) else None
    spec = tool.get("function") if chat and isinstance(tool, dict) else tool
    if not chat and kind in SEARCH_TOOL_TYPES:
        return web_search_tool(tool, where)
    if kind != "function" or not isinstance(spec, dict):
        raise invalid_request(
            f"{where}: tool type {kind!r} cannot be sent to Anthropic; only function tools and web_search "
            f"can",
            param=where,
        )
    name = spec.get("name")
    if not isinstance(name, str) or not name:
        raise invalid_request(f"{where}.name is required", param=where)
    parameters = spec.get("parameters")
    out: Obj = {"name": name, "input_schema": parameters or {"type": "object", "properties": {}}}
    if spec.get("description") is not None:
        out["description"] = spec["description"]
    if spec.get("strict") is not None:
        out["strict"] = spec["strict"]
    # Chat clients put a tool's cache breakpoint beside "function" (litellm) or inside it.
    return _keep_cache([out], tool if tool.get("cache_control") is not None else spec)[0]


def _tool_choice(choice: Any, parallel: Any, *, chat: bool) -> Obj | None:
    if choice is None and parallel is not False:
        return None
    out = _choice_type(choice, chat=chat)
    if parallel is False and out["type"] != "none":
        out["disable_parallel_tool_use"] = True
    return out


def _choice_type(choice: Any, *, chat: bool) -> Obj:
    if choice is None or choice == "auto":
        return {"type": "auto"}
    if choice == "none":
        return {"type": "none"}
    if choice == "required":
        return {"type": "any"}
    named = choice.get("function", {}) if chat and isinstance(choice, dict) else choice
    kind = choice.get("type") if isinstance(choice, dict) else choice
    if kind != "function" or not isinstance(named, dict) or not isinstance(named.get("name"), str):
        raise invalid_request(f"tool_choice {kind!r} cannot be sent to Anthropic", param="tool_choice")
    return {"type": "tool", "name": named["name"]}


def _add_tools(body: Obj, req: Obj, *, chat: bool) -> None:
    tools = body.get("tools") or []
    if not isinstance(tools, list):
        raise invalid_request("tools must be a list", param="tools")
    if not tools:
        # Anthropic refuses tool_choice without tools; with no tools there is nothing to choose.
        return
    req["tools"] = [_tool(tool, f"tools[{index}]", chat=chat) for index, tool in enumerate(tools)]
    choice = _tool_choice(body.get("tool_choice"), body.get("parallel_tool_calls"), chat=chat)
    if choice is not None:
        req["tool_choice"] = choice


def _reject(body: Obj, checks: dict[str, tuple[Any, str]]) -> None:
    """400 for each field set to something Anthropic cannot do; ``checks`` maps field -> (its no-op
    value, or a tuple of them; why not)."""
    for key, (neutral, why) in checks.items():
        value = body.get(key)
        allowed = neutral if isinstance(neutral, tuple) else (neutral,)
        if value is not None and value not in allowed:
            raise invalid_request(f"{key} cannot be sent to Anthropic: {why}", param=key)


_SAMPLING_REJECTS: dict[str, tuple[Any, str]] = {
    "n": (1, "Anthropic returns one answer per request"),
    "logprobs": ((False, 0), "Anthropic does not return log probabilities"),
    "top_logprobs": (0, "Anthropic does not return log probabilities"),
    "logit_bias": ({}, "Anthropic has no logit bias"),
    "frequency_penalty": ((0, 0.0), "Anthropic has no frequency penalty"),
    "presence_penalty": ((0, 0.0), "Anthropic has no presence penalty"),
    "seed": ((), "Anthropic has no seeded sampling"),
}


def _forward_unknown(body: Obj, handled: frozenset[str], req: Obj) -> None:
    for key, value in body.items():
        if key not in handled and key not in req:
            req[key] = value


# ---------------------------------------------------------------------------------------------------------
# Requests: Responses -> Messages
# ---------------------------------------------------------------------------------------------------------


def responses_to_messages_request(body: dict[str, Any], model: str, *, stream: bool) -> dict[str, Any]:
    """Build the Messages body for a parsed Responses request.

    >>> responses_to_messages_request({"input": "hi"}, "claude-sonnet-4-5", stream=False)["messages"]
    [{'role': 'user', 'content': [{'type': 'text', 'text': 'hi'}]}]
    """
    _reject_stateful(body)
    _reject(body, {"top_logprobs": (0, "Anthropic does not return log probabilities")})
    turns = _Turns()
    instructions = body.get("instructions")
    if instructions is not None and _string(instructions, "instructions"):
        turns.system.append({"type": "text", "text": instructions})
    _add_input(body.get("input"), turns)
    req: Obj = {"model": model, "max_tokens": _max_tokens(body.get("max_output_tokens"), "max_output_tokens")}
    turns.apply(req)
    _add_tools(body, req, chat=False)
    _add_sampling(body, req)
    reasoning = body.get("reasoning")
    if isinstance(reasoning, dict):
        _add_thinking(reasoning.get("effort"), reasoning.get("max_tokens"), req, "reasoning.effort")
    text = body.get("text")
    if isinstance(text, dict):
        _add_format(text.get("format"), "text.format", req)
    _forward_unknown(body, _RESPONSES_HANDLED, req)
    if stream:
        req["stream"] = True
    return req


def _add_input(source: Any, turns: _Turns) -> None:
    if isinstance(source, str):
        turns.add("user", _text_block(source))
        return
    if not isinstance(source, list):
        raise invalid_request("input is required for responses", param="input")
    for index, item in enumerate(source):
        _add_item(turns, item, f"input[{index}]")


def _add_item(turns: _Turns, item: Any, where: str) -> None:
    if not isinstance(item, dict):
        raise invalid_request(f"{where} must be an object", param=where)
    kind = item.get("type", "message" if "role" in item else None)
    if kind == "message":
        _add_message(turns, item, where)
    elif kind == "function_call":
        call = _tool_use(item.get("call_id"), item.get("name"), item.get("arguments"), where)
        turns.add("assistant", _keep_cache([call], item))
    elif kind == "function_call_output":
        result = _tool_result(item.get("call_id"), _tool_output(item.get("output"), where), where)
        turns.add("user", _keep_cache([result], item))
    elif kind == "reasoning":
        turns.add("assistant", _reasoning_blocks(item))
    elif kind == "web_search_call":
        # A search answered earlier (see anthropic_citations): Anthropic only takes results back with
        # their encrypted content, which the item does not carry; the answer's text says what was found.
        return
    else:
        raise unsendable_item(kind, where, "Anthropic")


def _reasoning_blocks(item: Obj) -> list[Obj]:
    summary = item.get("summary")
    texts = [p.get("text", "") for p in summary if isinstance(p, dict)] if isinstance(summary, list) else []
    return _thinking("\n\n".join(texts) if texts else None, item.get("encrypted_content"))


def _add_message(turns: _Turns, item: Obj, where: str) -> None:
    role = item.get("role")
    content = item.get("content")
    if role in ("system", "developer"):
        turns.system += _keep_cache(_system_blocks(content, where), item)
    elif role == "user":
        turns.add("user", _keep_cache(_user_blocks(content, where), item))
    elif role == "assistant":
        turns.add("assistant", _keep_cache(_assistant_blocks(content, where), item))
    else:
        raise invalid_request(f"{where}.role must be one of user, system, developer, assistant", param=where)


def _parts(content: Any, where: str) -> list[Any]:
    if isinstance(content, str):
        return [{"type": "input_text", "text": content}]
    if not isinstance(content, list):
        raise invalid_request(f"{where}.content must be a string or a list of parts", param=where)
    return content


def _system_blocks(content: Any, where: str) -> list[Obj]:
    """A system message's text parts, joined by blank lines into one block, split after each part that
    sets a cache breakpoint (the text after it may change between requests)."""
    blocks: list[Obj] = []
    texts: list[str] = []
    for index, part in enumerate(_parts(content, where)):
        kind = part.get("type") if isinstance(part, dict) else None
        if kind not in ("input_text", "output_text", "text"):
            at = f"{where}.content[{index}]"
            raise invalid_request(f"{at}: system messages can only carry text for Anthropic", param=at)
        texts.append(_string(part.get("text"), f"{where}.content[{index}].text"))
        if part.get("cache_control") is not None:
            blocks += _keep_cache([{"type": "text", "text": "\n\n".join(texts)}], part)
            texts = []
    if texts or not blocks:
        blocks.append({"type": "text", "text": "\n\n".join(texts)})
    return blocks


def _user_blocks(content: Any, where: str) -> list[Obj]:
    blocks: list[Obj] = []
    for index, part in enumerate(_parts(content, where)):
        blocks += _input_part(part, f"{where}.content[{index}]")
    return blocks


def _input_part(part: Any, where: str) -> list[Obj]:
    return _keep_cache(_input_blocks(part, where), part)


def _input_blocks(part: Any, where: str) -> list[Obj]:
    kind = part.get("type") if isinstance(part, dict) else None
    if kind in ("input_text", "output_text"):
        return _text_block(_string(part.get("text"), f"{where}.text"))
    if kind == "input_image":
        return [_image(part.get("image_url"), where)]
    if kind == "input_file":
        return [_document(part.get("file_data"), part.get("file_url"), where)]
    raise invalid_request(f"{where}: content part type {kind!r} cannot be sent to Anthropic", param=where)


def _assistant_blocks(content: Any, where: str) -> list[Obj]:
    blocks: list[Obj] = []
    for index, part in enumerate(_parts(content, where)):
        at = f"{where}.content[{index}]"
        kind = part.get("type") if isinstance(part, dict) else None
        if kind in ("output_text", "input_text"):
            blocks += _keep_cache(_text_block(_string(part.get("text"), f"{at}.text")), part)
        elif kind == "refusal":
            # A refusal the assistant gave is text it said; Anthropic has no refusal block.
            blocks += _keep_cache(_text_block(_string(part.get("refusal"), f"{at}.refusal")), part)
        else:
            raise invalid_request(f"{at}: assistant messages can only carry text or refusal parts", param=at)
    return blocks


def _tool_output(output: Any, where: str) -> str | list[Obj]:
    if isinstance(output, str):
        return output
    if not isinstance(output, list):
        raise invalid_request(f"{where}.output must be a string or a list of parts", param=where)
    blocks: list[Obj] = []
    for index, part in enumerate(output):
        blocks += _input_part(part, f"{where}.output[{index}]")
    return blocks


# ---------------------------------------------------------------------------------------------------------
# Requests: chat completions -> Messages
# ---------------------------------------------------------------------------------------------------------


_CHAT_REJECTS: dict[str, tuple[Any, str]] = {
    **_SAMPLING_REJECTS,
    "audio": ((), "Anthropic does not produce audio"),
    "modalities": ((["text"],), "Anthropic only produces text"),
    "prediction": ((), "Anthropic has no predicted outputs"),
    "web_search_options": ((), "send a function tool instead; hosted search is not translated"),
    "functions": ((), "the legacy functions field is not translated; send tools"),
    "function_call": ((), "the legacy function_call field is not translated; send tool_choice"),
}


def chat_to_messages_request(body: dict[str, Any], model: str, *, stream: bool) -> dict[str, Any]:
    """Build the Messages body for a parsed chat completions request.

    >>> body = {"messages": [{"role": "user", "content": "hi"}]}
    >>> chat_to_messages_request(body, "m", stream=False)["max_tokens"]
    4096
    """
    _reject(body, _CHAT_REJECTS)
    turns = _Turns()
    for message, where in chat_messages(body):
        _add_chat_message(turns, message, where)
    limit = body.get("max_completion_tokens", body.get("max_tokens"))
    name = "max_completion_tokens" if body.get("max_completion_tokens") is not None else "max_tokens"
    req: Obj = {"model": model, "max_tokens": _max_tokens(limit, name)}
    turns.apply(req)
    _add_tools(body, req, chat=True)
    _add_sampling(body, req)
    _add_stop(body.get("stop"), req)
    _add_thinking(body.get("reasoning_effort"), None, req, "reasoning_effort")
    _add_format(body.get("response_format"), "response_format", req)
    _forward_unknown(body, _CHAT_HANDLED, req)
    if stream:
        req["stream"] = True
    return req


def _add_chat_message(turns: _Turns, message: Any, where: str) -> None:
    if not isinstance(message, dict):
        raise invalid_request(f"{where} must be an object", param=where)
    role = message.get("role")
    content = message.get("content")
    if role in ("system", "developer"):
        turns.system += _keep_cache(_system_blocks(content, where), message)
    elif role == "user":
        turns.add("user", _keep_cache(_chat_user_blocks(content, where), message))
    elif role == "assistant":
        turns.add("assistant", _keep_cache(_chat_assistant_blocks(message, where), message))
    elif role == "tool":
        output = _tool_output(_chat_parts_as_input(content, where), where)
        turns.add("user", _keep_cache([_tool_result(message.get("tool_call_id"), output, where)], message))
    else:
        raise invalid_request(f"{where}.role {role!r} cannot be sent to Anthropic", param=where)


def _chat_parts_as_input(content: Any, where: str) -> Any:
    """Chat content parts, renamed to their Responses equivalents so one converter handles both."""
    if content is None or isinstance(content, str):
        return content or ""
    if not isinstance(content, list):
        raise invalid_request(f"{where}.content must be a string or a list of parts", param=where)
    return [_chat_part(part, f"{where}.content[{index}]") for index, part in enumerate(content)]


def _chat_part(part: Any, where: str) -> Obj:
    renamed = _renamed_chat_part(part, where)
    if part.get("cache_control") is not None:
        renamed["cache_control"] = part["cache_control"]
    return renamed


def _renamed_chat_part(part: Any, where: str) -> Obj:
    kind = part.get("type") if isinstance(part, dict) else None
    if kind == "text":
        return {"type": "input_text", "text": part.get("text")}
    if kind == "image_url":
        image = part.get("image_url")
        return {"type": "input_image", "image_url": image.get("url") if isinstance(image, dict) else image}
    if kind == "file":
        file = part.get("file") if isinstance(part.get("file"), dict) else {}
        return {"type": "input_file", "file_data": file.get("file_data")}
    if kind == "refusal":
        return {"type": "refusal", "refusal": part.get("refusal")}
    raise invalid_request(f"{where}: content part type {kind!r} cannot be sent to Anthropic", param=where)


def _chat_user_blocks(content: Any, where: str) -> list[Obj]:
    return _user_blocks(_chat_parts_as_input(content, where), where)


def _chat_assistant_blocks(message: Obj, where: str) -> list[Obj]:
    blocks: list[Obj] = []
    for detail in message.get("reasoning_details") or []:
        blocks += _reasoning_detail(detail)
    content = message.get("content")
    if content is not None:
        blocks += _assistant_blocks(_chat_parts_as_input(content, where), where)
    if isinstance(message.get("refusal"), str):
        blocks += _text_block(message["refusal"])
    for index, call in enumerate(message.get("tool_calls") or []):
        at = f"{where}.tool_calls[{index}]"
        function = call.get("function") if isinstance(call, dict) else None
        if not isinstance(function, dict):
            raise invalid_request(f"{at}: only function tool calls can be sent to Anthropic", param=at)
        blocks += _keep_cache(
            [_tool_use(call.get("id"), function.get("name"), function.get("arguments"), at)], call
        )
    return blocks


def _reasoning_detail(detail: Any) -> list[Obj]:
    kind = detail.get("type") if isinstance(detail, dict) else None
    if kind == "reasoning.text":
        return _thinking(detail.get("text") or "", detail.get("signature"))
    if kind == "reasoning.encrypted":
        return _thinking(None, detail.get("data"))
    # reasoning.summary has no signature; like unsigned reasoning text it cannot be replayed.
    return []


# ---------------------------------------------------------------------------------------------------------
# Requests: text completions -> Messages
# ---------------------------------------------------------------------------------------------------------


_TEXT_REJECTS: dict[str, tuple[Any, str]] = {
    **_SAMPLING_REJECTS,
    "logprobs": ((), "Anthropic does not return log probabilities"),
    "best_of": (1, "Anthropic returns one answer per request"),
    "echo": (False, "Anthropic does not echo the prompt"),
    "suffix": ("", "Anthropic has no insertion (suffix) mode"),
}


def text_to_messages_request(body: dict[str, Any], model: str, *, stream: bool) -> dict[str, Any]:
    """Build the Messages body for a text completion: the prompt is one user message.

    >>> text_to_messages_request({"prompt": "Once"}, "m", stream=False)["messages"][0]["content"]
    [{'type': 'text', 'text': 'Once'}]
    """
    _reject(body, _TEXT_REJECTS)
    prompt = one_prompt(
        body, "prompt must be one string for Anthropic (several prompts or token ids cannot be sent)"
    )
    req: Obj = {"model": model, "max_tokens": _max_tokens(body.get("max_tokens"), "max_tokens")}
    req["messages"] = [{"role": "user", "content": _text_block(prompt) or [{"type": "text", "text": " "}]}]
    _add_sampling(body, req)
    _add_stop(body.get("stop"), req)
    _forward_unknown(body, _TEXT_HANDLED, req)
    if stream:
        req["stream"] = True
    return req


def count_tokens_request(messages_request: dict[str, Any]) -> dict[str, Any]:
    """The count_tokens body for a Messages request: what the model reads, without generation settings."""
    return {k: v for k, v in messages_request.items() if k not in _NOT_COUNTED}


# ---------------------------------------------------------------------------------------------------------
# Answers: usage and stop reasons
# ---------------------------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class _Counts:
    fresh: int
    cache_read: int
    cache_write: int
    output: int
    reasoning: int

    @property
    def input(self) -> int:
        return self.fresh + self.cache_read + self.cache_write


def _int(value: Any) -> int:
    return value if isinstance(value, int) and not isinstance(value, bool) else 0


def _counts(usage: Any) -> _Counts:
    usage = usage if isinstance(usage, dict) else {}
    details = usage.get("output_tokens_details")
    thinking = details.get("thinking_tokens") if isinstance(details, dict) else None
    return _Counts(
        _int(usage.get("input_tokens")),
        _int(usage.get("cache_read_input_tokens")),
        _int(usage.get("cache_creation_input_tokens")),
        _int(usage.get("output_tokens")),
        _int(thinking),
    )


def _input_details(c: _Counts) -> Obj:
    # cached_tokens / cache_write_tokens are OpenAI's names (its SDKs read them); cached_read_tokens /
    # cached_write_tokens are Bifrost's, which pricing reads to charge each at its own rate.
    return {
        "cached_tokens": c.cache_read,
        "cache_write_tokens": c.cache_write,
        "cached_read_tokens": c.cache_read,
        "cached_write_tokens": c.cache_write,
    }


def messages_usage_to_responses(usage: Any) -> dict[str, Any]:
    """Anthropic usage in Responses terms (input tokens include cache reads and writes)."""
    c = _counts(usage)
    return {
        "input_tokens": c.input,
        "input_tokens_details": _input_details(c),
        "output_tokens": c.output,
        "output_tokens_details": {"reasoning_tokens": c.reasoning},
        "total_tokens": c.input + c.output,
    }


def merge_stream_usage(usage: dict[str, Any], kind: str | None, event: Any) -> bool:
    """Fold one Messages stream event's usage into ``usage``: it arrives in two halves (input on
    ``message_start``, output on ``message_delta``). True on ``message_delta``, whose merged usage is
    the stream's whole."""
    if kind not in ("message_start", "message_delta") or not isinstance(event, dict):
        return False
    inner = event.get("message") if kind == "message_start" else event
    found = inner.get("usage") if isinstance(inner, dict) else None
    if isinstance(found, dict):
        usage.update({k: v for k, v in found.items() if v is not None})
    return kind == "message_delta"


def messages_usage_to_chat(usage: Any) -> dict[str, Any]:
    """Anthropic usage in chat/text completion terms."""
    c = _counts(usage)
    return {
        "prompt_tokens": c.input,
        "completion_tokens": c.output,
        "total_tokens": c.input + c.output,
        "prompt_tokens_details": _input_details(c),
        "completion_tokens_details": {"reasoning_tokens": c.reasoning},
    }


def _stop(stop_reason: Any) -> tuple[str, str | None, str]:
    return _STOP.get(stop_reason if isinstance(stop_reason, str) else "", ("completed", None, "stop"))


def _incomplete(reason: str | None) -> Obj | None:
    return {"reason": reason} if reason else None


def _now() -> int:
    return int(time.time())


def _json(value: Any) -> str:
    return orjson.dumps(value if value is not None else {}).decode()


def _blocks(message: Obj) -> list[Obj]:
    content = message.get("content")
    return [b for b in content if isinstance(b, dict)] if isinstance(content, list) else []


# ---------------------------------------------------------------------------------------------------------
# Answers: Message -> Responses / chat / text (non-streaming)
# ---------------------------------------------------------------------------------------------------------


def messages_to_responses_response(
    message: dict[str, Any], *, request: dict[str, Any], model: str
) -> dict[str, Any]:
    """Turn a Message into the Responses object OpenAI would have returned for ``request``.

    >>> msg = {"content": [{"type": "text", "text": "hi"}], "stop_reason": "end_turn", "usage": {}}
    >>> messages_to_responses_response(msg, request={}, model="m")["output"][0]["content"][0]["text"]
    'hi'
    """
    status, reason, _ = _stop(message.get("stop_reason"))
    output = _output_items(_blocks(message))
    if status != "completed" and output and "status" in output[-1]:
        output[-1]["status"] = "incomplete"
    now = _now()
    completed_at = now if status == "completed" else None
    outcome = _Outcome(
        status, output, messages_usage_to_responses(message.get("usage")), _incomplete(reason), completed_at
    )
    return _response_object(request, model, new_id("resp"), now, outcome)


def _output_items(blocks: list[Obj]) -> list[Obj]:
    output = _Output()
    for block in blocks:
        output.add(block)
    return output.items


@dataclass(slots=True)
class _Output:
    """Responses output items built from a Message's blocks, in order. Consecutive text blocks share one
    ``output_text`` part (their citations become its annotations); a web search call is one item from its
    ``server_tool_use`` until its result fills it in."""

    items: list[Obj] = field(default_factory=list)
    text: Obj | None = None  # the open message's output_text part
    searches: dict[Any, tuple[Obj, Obj]] = field(default_factory=dict)  # tool use id -> (item, block)

    def add(self, block: Obj) -> None:
        kind = block.get("type")
        if kind == "text":
            self._text(block)
            return
        self.text = None
        if kind == "server_tool_use" and block.get("name") in SEARCH_TOOLS:
            item = _search_item(str(block["name"]), block.get("input"), None)
            self.searches[block.get("id")] = (item, block)
            self.items.append(item)
        elif kind in SEARCH_RESULTS and block.get("tool_use_id") in self.searches:
            item, call = self.searches.pop(block.get("tool_use_id"))
            done = _search_item(str(call["name"]), call.get("input"), block)
            item.update(status=done["status"], action=done["action"])
        else:
            self.items.append(_output_item(block))

    def _text(self, block: Obj) -> None:
        text = block.get("text")
        if not isinstance(text, str) or not text:
            return
        if self.text is None:
            self.text = _text_part("")
            self.items.append(_message_item(new_id("msg"), [self.text], "completed"))
        start = len(self.text["text"])
        self.text["text"] += text
        end = len(self.text["text"])
        self.text["annotations"] += [responses_annotation(c, start, end) for c in _citations(block)]


def _search_item(name: str, tool_input: Any, result: Obj | None) -> Obj:
    # Without its result (the turn paused or was cut short), a search did not complete.
    status = search_status(result) if result is not None else "incomplete"
    action = search_action(name, tool_input, result)
    return {"id": new_id("ws"), "type": "web_search_call", "status": status, "action": action}


def _citations(block: Obj) -> list[Obj]:
    citations = block.get("citations")
    return [c for c in citations if isinstance(c, dict)] if isinstance(citations, list) else []


def _output_item(block: Obj) -> Obj:
    kind = block.get("type")
    if kind == "thinking":
        return _reasoning(block.get("thinking") or "", block.get("signature"))
    if kind == "redacted_thinking":
        return _reasoning(None, block.get("data"))
    if kind == "tool_use":
        arguments = _json(block.get("input"))
        return _function_call_item(
            new_id("fc"), str(block.get("id")), str(block.get("name")), arguments, "completed"
        )
    # Server-tool blocks with no OpenAI item (code execution, tool search, ...) pass through as they are.
    return dict(block)


def _reasoning(text: str | None, encrypted: Any) -> Obj:
    item: Obj = {"id": new_id("rs"), "type": "reasoning", "summary": []}
    if text is not None:
        item["summary"] = [{"type": "summary_text", "text": text}]
    if isinstance(encrypted, str) and encrypted:
        item["encrypted_content"] = encrypted
    return item


@dataclass(slots=True)
class _ChatParts:
    text: list[str] = field(default_factory=list)
    reasoning: list[str] = field(default_factory=list)
    details: list[Obj] = field(default_factory=list)
    tool_calls: list[Obj] = field(default_factory=list)
    annotations: list[Obj] = field(default_factory=list)
    length: int = 0  # of the text so far: where the next block's text starts


def _chat_parts(blocks: list[Obj]) -> _ChatParts:
    parts = _ChatParts()
    for block in blocks:
        kind = block.get("type")
        if kind == "text" and block.get("text"):
            start, parts.length = parts.length, parts.length + len(block["text"])
            parts.text.append(block["text"])
            parts.annotations += [chat_annotation(c, start, parts.length) for c in _citations(block)]
        elif kind == "thinking":
            parts.reasoning.append(block.get("thinking") or "")
            parts.details.append(
                _detail_text(len(parts.details), block.get("thinking") or "", block.get("signature"))
            )
        elif kind == "redacted_thinking":
            parts.details.append(
                {"index": len(parts.details), "type": "reasoning.encrypted", "data": block.get("data")}
            )
        elif kind == "tool_use":
            function = {"name": block.get("name"), "arguments": _json(block.get("input"))}
            parts.tool_calls.append({"id": block.get("id"), "type": "function", "function": function})
    return parts


def _detail_text(index: int, text: str, signature: Any) -> Obj:
    detail: Obj = {"index": index, "type": "reasoning.text", "text": text}
    if isinstance(signature, str) and signature:
        detail["signature"] = signature
    return detail


def messages_to_chat_completion(message: dict[str, Any], *, model: str) -> dict[str, Any]:
    """Turn a Message into a ``chat.completion``; its content is the text blocks' concatenation.

    >>> msg = {"content": [{"type": "text", "text": "hi"}], "stop_reason": "end_turn"}
    >>> messages_to_chat_completion(msg, model="m")["choices"][0]["message"]["content"]
    'hi'
    """
    parts = _chat_parts(_blocks(message))
    out: Obj = {"role": "assistant", "content": "".join(parts.text), "refusal": None}
    if parts.annotations:
        out["annotations"] = parts.annotations
    if parts.tool_calls:
        out["tool_calls"] = parts.tool_calls
        out["content"] = out["content"] or None
    if parts.details:
        out["reasoning"] = "\n\n".join(parts.reasoning)
        out["reasoning_details"] = parts.details
    choice = {
        "index": 0,
        "message": out,
        "finish_reason": _stop(message.get("stop_reason"))[2],
        "logprobs": None,
    }
    return _completion(message, model, "chat.completion", choice)


def messages_to_text_completion(message: dict[str, Any], *, model: str) -> dict[str, Any]:
    """Turn a Message into a ``text_completion`` (its text blocks, concatenated as for chat)."""
    text = "".join(_chat_parts(_blocks(message)).text)
    finish = _stop(message.get("stop_reason"))[2]
    choice = {"index": 0, "text": text, "finish_reason": finish, "logprobs": None}
    return _completion(message, model, "text_completion", choice)


def _completion(message: Obj, model: str, kind: str, choice: Obj) -> Obj:
    return {
        "id": str(message.get("id") or new_id("msg")),
        "object": kind,
        "created": _now(),
        "model": model,
        "choices": [choice],
        "usage": messages_usage_to_chat(message.get("usage")),
    }


# ---------------------------------------------------------------------------------------------------------
# Streams: the shared event bookkeeping
# ---------------------------------------------------------------------------------------------------------


@dataclass(slots=True)
class _Block:
    """One content block seen on an Anthropic stream."""

    kind: str
    tool_index: int = 0  # the chat tool_calls index of a tool_use block
    detail_index: int = 0  # the reasoning_details index of a thinking block
    call: FunctionCallHandle | None = None
    search: SearchHandle | None = None
    start: Obj = field(default_factory=dict)  # a server tool use as content_block_start gave it
    initial_input: Any = None
    text: str = ""  # thinking text, or a tool's input JSON as streamed
    signature: str = ""
    offset: int = 0  # where a text block's text starts within the answer's text
    citations: list[Obj] = field(default_factory=list)

    def tool_input(self) -> Any:
        """A tool use block's input: the streamed JSON, else what came whole on ``content_block_start``."""
        if self.text:
            try:
                return orjson.loads(self.text)
            except orjson.JSONDecodeError:
                return None
        return self.initial_input


class _MessagesStream:
    """Common to both stream translators: usage and the stop reason, accumulated as Anthropic sends them
    (``message_delta`` usage counts are cumulative and overwrite earlier ones)."""

    def __init__(self) -> None:
        self._usage: Obj = {}
        self._stop_reason: str | None = None
        self._message_id: str | None = None
        self._blocks: dict[int, _Block] = {}

    def _on_message_start(self, event: Obj) -> None:
        message = _obj(event.get("message"))
        self._message_id = message.get("id")
        self._merge_usage(message.get("usage"))

    def _on_message_delta(self, event: Obj) -> None:
        delta = _obj(event.get("delta"))
        if delta.get("stop_reason") is not None:
            self._stop_reason = delta["stop_reason"]
        self._merge_usage(event.get("usage"))

    def _merge_usage(self, usage: Any) -> None:
        if isinstance(usage, dict):
            self._usage.update({k: v for k, v in usage.items() if v is not None})


def _obj(value: Any) -> Obj:
    return value if isinstance(value, dict) else {}


def _delta(event: Obj) -> Obj:
    return _obj(event.get("delta"))


def _index(event: Obj) -> int:
    index = event.get("index")
    return index if isinstance(index, int) else -1


# ---------------------------------------------------------------------------------------------------------
# Streams: Anthropic events -> Responses events
# ---------------------------------------------------------------------------------------------------------


class MessagesToResponsesStream(_MessagesStream):
    """Turns Anthropic stream events into OpenAI Responses stream events.

    Each content block becomes an output item (consecutive text blocks share one message item). A block
    is closed when the next one starts or the message ends, so the last item's status reflects the stop
    reason.

    >>> s = MessagesToResponsesStream(request={"input": "hi"}, model="m")
    >>> events = s.start()
    >>> events += s.feed({"type": "content_block_start", "index": 0, "content_block": {"type": "text"}})
    >>> delta = {"type": "text_delta", "text": "Hi"}
    >>> events += s.feed({"type": "content_block_delta", "index": 0, "delta": delta})
    >>> [e["type"] for e in events + s.finish()][-1]
    'response.completed'
    """

    def __init__(self, *, request: dict[str, Any], model: str) -> None:
        super().__init__()
        self._writer = ResponsesStreamWriter(request=request, model=model)
        self._pending: _Block | None = None
        self._searches: dict[Any, _Block] = {}  # web searches waiting for their result, by tool use id

    def start(self) -> list[dict[str, Any]]:
        self._writer.start()
        return self._writer.drain()

    def feed(self, event: dict[str, Any]) -> list[dict[str, Any]]:
        """Events for one parsed Anthropic stream event (``ping`` and unknown types add none)."""
        self._writer.start()
        if self._writer.finished:
            return []
        kind = event.get("type")
        if kind == "message_start":
            self._on_message_start(event)
        elif kind == "content_block_start":
            self._on_block_start(_index(event), event.get("content_block") or {})
        elif kind == "content_block_delta":
            self._on_block_delta(self._blocks.get(_index(event)), _delta(event))
        elif kind == "content_block_stop":
            self._on_block_stop(_index(event))
        elif kind == "message_delta":
            self._on_message_delta(event)
        elif kind == "message_stop":
            return self.finish()
        return self._writer.drain()

    def finish(self) -> list[dict[str, Any]]:
        """Close what is open, then ``response.completed`` (or ``response.incomplete``); once."""
        if self._writer.finished:
            return []
        status, reason, _ = _stop(self._stop_reason)
        item_status = "completed" if status == "completed" else "incomplete"
        for block in [self._pending, *self._blocks.values()]:
            if block is not None:
                self._close(block, item_status)
        self._pending = None
        self._blocks.clear()
        for search in self._searches.values():
            self._close_search(search, None)
        self._writer.close_message(item_status)
        self._writer.finish(status, _incomplete(reason), self.usage)
        return self._writer.drain()

    @property
    def usage(self) -> dict[str, Any]:
        return messages_usage_to_responses(self._usage)

    @property
    def response(self) -> dict[str, Any]:
        return self._writer.response

    def _on_block_start(self, index: int, content: Obj) -> None:
        kind = str(content.get("type"))
        self._flush(next_is_text=kind == "text")
        block = self._blocks[index] = _Block(kind)
        if kind == "text":
            # Consecutive text blocks continue one part, so citations index into the text as read.
            self._writer.text("output_text", "")
            block.offset = self._writer.text_length
            block.citations = _citations(content)
            self._writer.text("output_text", content.get("text") or "")
        elif kind == "thinking":
            self._writer.open_reasoning()
            self._writer.reasoning_text(content.get("thinking") or "")
            block.signature = content.get("signature") or ""
        elif kind == "redacted_thinking" and content.get("data"):
            self._writer.reasoning_item([], content["data"])
        elif kind == "tool_use":
            block.call = self._writer.open_call(str(content.get("id")), str(content.get("name")))
            block.initial_input = content.get("input")
        elif kind == "server_tool_use":
            block.start, block.initial_input = content, content.get("input")
            if content.get("name") in SEARCH_TOOLS:
                block.search = self._writer.open_search()
                self._searches[content.get("id")] = block
        elif kind in SEARCH_RESULTS and content.get("tool_use_id") in self._searches:
            self._close_search(self._searches.pop(content.get("tool_use_id")), content)
        elif kind != "redacted_thinking":
            # Result blocks with no OpenAI item arrive whole and pass through as they are.
            self._writer.whole_item(dict(content))

    def _close_search(self, block: _Block, result: Obj | None) -> None:
        assert block.search is not None
        status = search_status(result) if result is not None else "incomplete"
        action = search_action(str(block.start.get("name")), block.tool_input(), result)
        self._writer.close_search(block.search, status, action)

    def _flush(self, *, next_is_text: bool) -> None:
        pending, self._pending = self._pending, None
        if pending is not None:
            self._close(pending, "completed")
        if not next_is_text:
            self._writer.close_message("completed")

    def _on_block_delta(self, block: _Block | None, delta: Obj) -> None:
        kind = delta.get("type")
        if block is None:
            return
        if kind == "text_delta":
            self._writer.text("output_text", delta.get("text") or "")
        elif kind == "citations_delta" and isinstance(delta.get("citation"), dict):
            block.citations.append(delta["citation"])
        elif kind == "thinking_delta":
            self._writer.reasoning_text(delta.get("thinking") or "")
        elif kind == "signature_delta":
            block.signature = delta.get("signature") or ""
        elif kind == "input_json_delta" and block.call is not None:
            self._writer.call_arguments(block.call, delta.get("partial_json") or "")
        elif kind == "input_json_delta":
            block.text += delta.get("partial_json") or ""

    def _on_block_stop(self, index: int) -> None:
        block = self._blocks.pop(index, None)
        if block is None:
            return
        if block.kind == "text":
            # Citations stream before the text they cite: only now is the cited span known.
            end = self._writer.text_length
            for citation in block.citations:
                self._writer.annotate(responses_annotation(citation, block.offset, end))
        if self._pending is not None:
            self._close(self._pending, "completed")
        self._pending = block

    def _close(self, block: _Block, status: str) -> None:
        if block.kind == "thinking":
            self._writer.close_reasoning(status, block.signature or None)
        elif block.call is not None:
            if not block.call.arguments:
                # No input_json_delta: the input came whole (or empty) on content_block_start.
                self._writer.call_arguments(block.call, _json(block.initial_input))
            self._writer.close_call(block.call, status)
        elif block.search is not None:
            self._writer.search_running(block.search)
        elif block.kind == "server_tool_use":
            self._writer.whole_item({**block.start, "input": block.tool_input()})


# ---------------------------------------------------------------------------------------------------------
# Streams: Anthropic events -> chat.completion.chunk / text_completion chunks
# ---------------------------------------------------------------------------------------------------------


class MessagesToChatStream(_MessagesStream):
    """Turns Anthropic stream events into ``chat.completion.chunk`` dicts (or, with ``text=True``,
    ``text_completion`` chunks), ending with a finish chunk and a choice-less usage chunk as OpenAI sends
    with ``stream_options.include_usage``.

    Thinking streams as ``delta.reasoning``; when a thinking block ends its full text and signature follow
    as one ``delta.reasoning_details`` entry, so a client can replay it. Text blocks stream back to back
    (the content is their concatenation); their citations follow the text as one ``delta.annotations``.

    >>> s = MessagesToChatStream(model="m")
    >>> chunks = s.feed({"type": "content_block_start", "index": 0, "content_block": {"type": "text"}})
    >>> delta = {"type": "text_delta", "text": "Hi"}
    >>> chunks += s.feed({"type": "content_block_delta", "index": 0, "delta": delta})
    >>> chunks[-1]["choices"][0]["delta"]
    {'content': 'Hi'}
    """

    def __init__(self, *, model: str, text: bool = False) -> None:
        super().__init__()
        self._model = model
        self._text = text
        self._created = _now()
        self._tools = 0
        self._details = 0
        self._length = 0  # of the content sent so far: where a text block's citations start
        self._annotations: list[Obj] = []
        self._finished = False

    def start(self) -> list[dict[str, Any]]:
        return []  # a chat stream's first chunk waits for the first upstream event

    def feed(self, event: dict[str, Any]) -> list[dict[str, Any]]:
        kind = event.get("type")
        if self._finished:
            return []
        if kind == "message_start":
            self._on_message_start(event)
            return [] if self._text else [self._chunk({"role": "assistant", "content": ""})]
        if kind == "content_block_start":
            return self._on_block_start(_index(event), event.get("content_block") or {})
        if kind == "content_block_delta":
            return self._on_block_delta(self._blocks.get(_index(event)), _delta(event))
        if kind == "content_block_stop":
            return self._on_block_stop(self._blocks.pop(_index(event), None))
        if kind == "message_delta":
            self._on_message_delta(event)
        elif kind == "message_stop":
            return self.finish()
        return []

    def finish(self) -> list[dict[str, Any]]:
        """The citations' annotations (if any), the finish chunk, then the usage chunk; once."""
        if self._finished:
            return []
        self._finished = True
        reason = _stop(self._stop_reason)[2]
        last = self._choice({}) if not self._text else {"index": 0, "text": "", "logprobs": None}
        last["finish_reason"] = reason
        usage_chunk = {**self._base(), "choices": [], "usage": self.usage}
        # As OpenAI streams a searched answer: every annotation in one delta after the text.
        cited = [self._chunk({"annotations": self._annotations})] if self._annotations else []
        return [*cited, {**self._base(), "choices": [last]}, usage_chunk]

    @property
    def usage(self) -> dict[str, Any]:
        return messages_usage_to_chat(self._usage)

    def _base(self) -> Obj:
        kind = "text_completion" if self._text else "chat.completion.chunk"
        return {
            "id": self._message_id or "msg",
            "object": kind,
            "created": self._created,
            "model": self._model,
        }

    def _choice(self, delta: Obj) -> Obj:
        if self._text:
            return {"index": 0, "text": delta.get("content", ""), "finish_reason": None, "logprobs": None}
        return {"index": 0, "delta": delta, "finish_reason": None, "logprobs": None}

    def _chunk(self, delta: Obj) -> Obj:
        return {**self._base(), "choices": [self._choice(delta)]}

    def _on_block_start(self, index: int, content: Obj) -> list[Obj]:
        kind = str(content.get("type"))
        block = self._blocks[index] = _Block(kind)
        if kind == "text":
            block.offset = self._length
            block.citations = _citations(content)
            return self._content(content.get("text") or "")
        if self._text:
            return []  # text completions carry text only
        if kind == "thinking":
            block.detail_index, self._details = self._details, self._details + 1
            return self._reasoning(content.get("thinking") or "", block)
        if kind == "redacted_thinking":
            detail = {"index": self._details, "type": "reasoning.encrypted", "data": content.get("data")}
            self._details += 1
            return [self._chunk({"reasoning_details": [detail]})]
        if kind == "tool_use":
            block.tool_index, self._tools = self._tools, self._tools + 1
            block.initial_input = content.get("input")
            function = {"name": content.get("name"), "arguments": ""}
            call = {
                "index": block.tool_index,
                "id": content.get("id"),
                "type": "function",
                "function": function,
            }
            return [self._chunk({"tool_calls": [call]})]
        return []

    def _content(self, text: str) -> list[Obj]:
        self._length += len(text)
        return [self._chunk({"content": text})] if text else []

    def _reasoning(self, text: str, block: _Block) -> list[Obj]:
        block.text += text
        return [self._chunk({"reasoning": text})] if text else []

    def _arguments(self, block: _Block, arguments: str) -> list[Obj]:
        block.text += arguments
        call = {"index": block.tool_index, "function": {"arguments": arguments}}
        return [self._chunk({"tool_calls": [call]})] if arguments else []

    def _on_block_delta(self, block: _Block | None, delta: Obj) -> list[Obj]:
        kind = delta.get("type")
        if block is None:
            return []
        if kind == "text_delta":
            return self._content(delta.get("text") or "")
        if self._text:
            return []
        if kind == "thinking_delta":
            return self._reasoning(delta.get("thinking") or "", block)
        if kind == "input_json_delta" and block.kind == "tool_use":
            return self._arguments(block, delta.get("partial_json") or "")
        if kind == "citations_delta" and isinstance(delta.get("citation"), dict):
            block.citations.append(delta["citation"])
        elif kind == "signature_delta":
            block.signature = delta.get("signature") or ""
        return []

    def _on_block_stop(self, block: _Block | None) -> list[Obj]:
        if block is None or self._text:
            return []
        if block.kind == "text":
            self._annotations += [chat_annotation(c, block.offset, self._length) for c in block.citations]
        if block.kind == "thinking":
            detail = _detail_text(block.detail_index, block.text, block.signature)
            return [self._chunk({"reasoning_details": [detail]})]
        if block.kind == "tool_use" and not block.text:
            return self._arguments(block, _json(block.initial_input))
        return []
