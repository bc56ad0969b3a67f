"""Translate between the OpenAI Responses API and OpenAI Chat Completions.

Used for OpenAI-compatible providers (groq, vllm, ollama, mistral, ...) that only speak chat completions:
the gateway takes a Responses request, sends the provider a chat request, and turns the chat answer (or its
chunk stream) back into the Responses object (or event stream) that OpenAI's API would have produced.

Everything here is pure: no I/O and no shared state; the clock is read only for timestamps.

What chat completions cannot express raises a 400 naming the field rather than being dropped: hosted tools
(web_search, file_search, mcp, ...), server-side state (``previous_response_id``, ``conversation``,
``prompt``, ``item_reference``), ``background`` and file inputs. The few fields that are dropped only tune
OpenAI's own service and never change what the model is asked; each is listed in ``_DROPPED`` with why.
Content parts, messages and tools are rebuilt in chat's shape, so hints on them for other APIs
(Anthropic's ``cache_control``) are not sent: compat providers reject fields they do not know.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

from bifrost_asgi.errors import invalid_request
from bifrost_asgi.translate.inputs import unsendable_item
from bifrost_asgi.translate.responses_events import (
    FunctionCallHandle,
    ResponsesStreamWriter,
    _function_call_item,
    _message_item,
    _new_id,
    _Outcome,
    _reasoning_item,
    _refusal_part,
    _response_object,
    _text_part,
)

__all__ = ["ChatToResponsesStream", "chat_to_responses_response", "responses_to_chat_request"]

Obj = dict[str, Any]

# Responses fields dropped on purpose. None of them changes the conversation the model sees, and the
# compat providers reject unknown fields, so forwarding them would only turn a working request into a 400.
_DROPPED: dict[str, str] = {
    "metadata": "labels the stored response at OpenAI; compat providers reject the field",
    "store": "nothing is stored upstream; the gateway answers the same either way",
    "include": "asks for extra output (encrypted reasoning, logprobs) chat providers cannot return",
    "truncation": "'auto' only matters when the context overflows, which the provider reports itself",
    "service_tier": "an OpenAI billing tier; the compat providers' tiers use different values",
    "prompt_cache_key": "an OpenAI cache-routing hint",
    "prompt_cache_retention": "an OpenAI cache-lifetime hint",
    "stream_options": "Responses stream options (obfuscation) have no chat counterpart",
    "top_logprobs": "logprobs are not translated back into Responses output",
    "max_tool_calls": "caps hosted (built-in) tool calls, which are rejected anyway",
}

# Fields this module reads itself, plus Bifrost's own; any other body field is forwarded to the provider
# untouched, as Bifrost forwards unknown fields as provider extra params (spec §1).
_HANDLED = frozenset(
    {
        "model",
        "fallbacks",
        "stream",
        "input",
        "instructions",
        "tools",
        "tool_choice",
        "text",
        "reasoning",
        "max_output_tokens",
        "temperature",
        "top_p",
        "parallel_tool_calls",
        "user",
        "safety_identifier",
        "previous_response_id",
        "conversation",
        "prompt",
        "background",
        *_DROPPED,
    }
)

# Chat-compat providers only know "system"; OpenAI documents "developer" as system's successor.
_CHAT_ROLES = {"user": "user", "system": "system", "developer": "system", "assistant": "assistant"}

_TEXT_PARTS = frozenset({"input_text", "output_text"})

_INCOMPLETE_REASONS = {"length": "max_output_tokens", "content_filter": "content_filter"}


# ---------------------------------------------------------------------------------------------------------
# Request: Responses -> chat
# ---------------------------------------------------------------------------------------------------------


def responses_to_chat_request(body: dict[str, Any], model: str, *, stream: bool) -> dict[str, Any]:
    """Build the chat completions body for a parsed Responses request.

    >>> responses_to_chat_request({"input": "hi"}, "llama-3.1-8b", stream=False)
    {'model': 'llama-3.1-8b', 'messages': [{'role': 'user', 'content': 'hi'}]}
    """
    _reject_stateful(body)
    chat: Obj = {"model": model, "messages": _messages(body)}
    _add_tools(body, chat)
    _add_sampling(body, chat)
    _add_output_format(body, chat)
    for key, value in body.items():
        if key not in _HANDLED and key not in chat:
            chat[key] = value
    if stream:
        chat["stream"] = True
        # Usage only arrives on a final choice-less chunk when asked for; Responses needs it on completion.
        chat["stream_options"] = {"include_usage": True}
    return chat


def _reject_stateful(body: Obj) -> None:
    # These refer to state kept on OpenAI's servers (or ask the gateway to keep some), which a chat
    # provider does not have; answering without it would silently change the conversation.
    for key in ("previous_response_id", "conversation", "prompt"):
        if body.get(key) is not None:
            raise invalid_request(
                f"{key} needs server-side state that this provider does not keep; "
                f"send the full conversation in input instead",
                param=key,
            )
    if body.get("background"):
        raise invalid_request("background responses are not supported for this provider", param="background")


def _messages(body: Obj) -> list[Obj]:
    messages: list[Obj] = []
    instructions = body.get("instructions")
    if instructions is not None:
        if not isinstance(instructions, str):
            raise invalid_request("instructions must be a string", param="instructions")
        if instructions:
            messages.append({"role": "system", "content": instructions})
    source = body.get("input")
    if isinstance(source, str):
        messages.append({"role": "user", "content": source})
    elif isinstance(source, list):
        for index, item in enumerate(source):
            _append_item(messages, item, f"input[{index}]")
    else:
        raise invalid_request("input is required for responses", param="input")
    return messages


def _append_item(messages: list[Obj], item: Any, where: str) -> None:
    if not isinstance(item, dict):
        raise invalid_request(f"{where} must be an object", param=where)
    # An item without a type but with a role is an EasyInputMessage.
    kind = item.get("type", "message" if "role" in item else None)
    if kind == "message":
        messages.append(_message(item, where))
    elif kind == "function_call":
        _append_tool_call(messages, _tool_call(item, where))
    elif kind == "function_call_output":
        messages.append(_tool_result(item, where))
    elif kind == "reasoning":
        # Chat requests have no field for earlier reasoning, and chat reasoning models are not shown their
        # past reasoning anyway (deepseek documents dropping it between turns), so the model sees the same.
        return
    else:
        raise unsendable_item(kind, where, "this provider")


def _message(item: Obj, where: str) -> Obj:
    role = item.get("role")
    if role not in _CHAT_ROLES:
        raise invalid_request(f"{where}.role must be one of user, system, developer, assistant", param=where)
    content = item.get("content")
    if isinstance(content, str):
        return {"role": _CHAT_ROLES[role], "content": content}
    if not isinstance(content, list):
        raise invalid_request(f"{where}.content must be a string or a list of parts", param=where)
    if role == "assistant":
        return _assistant_message(content, where)
    parts = [_input_part(part, f"{where}.content[{i}]") for i, part in enumerate(content)]
    return {"role": _CHAT_ROLES[role], "content": _collapse(parts)}


def _assistant_message(content: list[Any], where: str) -> Obj:
    message: Obj = {"role": "assistant"}
    parts: list[Obj] = []
    for index, part in enumerate(content):
        at = f"{where}.content[{index}]"
        kind = part.get("type") if isinstance(part, dict) else None
        if kind in _TEXT_PARTS:
            parts.append({"type": "text", "text": _text_of(part, at)})
        elif kind == "refusal":
            message["refusal"] = part.get("refusal", "")
        else:
            raise invalid_request(f"{at}: assistant messages can only carry text or refusal parts", param=at)
    message["content"] = _collapse(parts) if parts else None
    return message


def _collapse(parts: list[Obj]) -> str | list[Obj]:
    # A single text part as a plain string is the form every compat provider accepts (several reject part
    # lists for system and assistant messages); several parts stay a list so no boundary is lost.
    if not parts:
        return ""
    if len(parts) == 1 and parts[0]["type"] == "text":
        text: str = parts[0]["text"]
        return text
    return parts


def _input_part(part: Any, where: str) -> Obj:
    kind = part.get("type") if isinstance(part, dict) else None
    if kind in _TEXT_PARTS:
        return {"type": "text", "text": _text_of(part, where)}
    if kind == "input_image":
        return _image_part(part, where)
    if kind == "input_audio":
        return {"type": "input_audio", "input_audio": part.get("input_audio")}
    if kind == "input_file":
        raise invalid_request(f"{where}: input_file parts cannot be sent to this provider", param=where)
    raise invalid_request(f"{where}: content part type {kind!r} cannot be sent to this provider", param=where)


def _text_of(part: Obj, where: str) -> str:
    text = part.get("text")
    if not isinstance(text, str):
        raise invalid_request(f"{where}.text must be a string", param=where)
    return text


def _image_part(part: Obj, where: str) -> Obj:
    url = part.get("image_url")
    if not isinstance(url, str) or not url:
        # A file_id names a file uploaded to OpenAI; no other provider can fetch it.
        raise invalid_request(
            f"{where}: input_image needs image_url (a URL or data: URI); file_id is not supported here",
            param=where,
        )
    image: Obj = {"url": url}
    if part.get("detail") is not None:
        image["detail"] = part["detail"]
    return {"type": "image_url", "image_url": image}


def _tool_call(item: Obj, where: str) -> Obj:
    call_id, name = item.get("call_id"), item.get("name")
    if not isinstance(call_id, str) or not isinstance(name, str):
        raise invalid_request(f"{where}: function_call needs call_id and name", param=where)
    arguments = item.get("arguments")
    return {
        "id": call_id,
        "type": "function",
        "function": {"name": name, "arguments": arguments if isinstance(arguments, str) else "{}"},
    }


def _append_tool_call(messages: list[Obj], call: Obj) -> None:
    # Chat keeps all calls of one assistant turn (and its text) in one message; providers reject a
    # tool message that does not follow the assistant message carrying its call.
    last = messages[-1] if messages else None
    if last is not None and last["role"] == "assistant":
        last.setdefault("tool_calls", []).append(call)
        return
    messages.append({"role": "assistant", "content": None, "tool_calls": [call]})


def _tool_result(item: Obj, where: str) -> Obj:
    call_id = item.get("call_id")
    if not isinstance(call_id, str):
        raise invalid_request(f"{where}: function_call_output needs call_id", param=where)
    output = item.get("output")
    if isinstance(output, str):
        content: str | list[Obj] = output
    elif isinstance(output, list):
        content = _collapse(
            [_tool_output_part(part, f"{where}.output[{i}]") for i, part in enumerate(output)]
        )
    else:
        raise invalid_request(f"{where}.output must be a string or a list of parts", param=where)
    return {"role": "tool", "tool_call_id": call_id, "content": content}


def _tool_output_part(part: Any, where: str) -> Obj:
    kind = part.get("type") if isinstance(part, dict) else None
    if kind not in _TEXT_PARTS:
        # Chat tool messages carry text only.
        raise invalid_request(
            f"{where}: function_call_output can only carry text for this provider", param=where
        )
    return {"type": "text", "text": _text_of(part, where)}


def _add_tools(body: Obj, chat: Obj) -> None:
    tools = body.get("tools") or []
    if not isinstance(tools, list):
        raise invalid_request("tools must be a list", param="tools")
    if not tools:
        # OpenAI-style chat APIs answer 400 to tool_choice or parallel_tool_calls without tools.
        return
    chat["tools"] = [_chat_tool(tool, f"tools[{index}]") for index, tool in enumerate(tools)]
    if body.get("tool_choice") is not None:
        chat["tool_choice"] = _chat_tool_choice(body["tool_choice"])
    if body.get("parallel_tool_calls") is not None:
        chat["parallel_tool_calls"] = body["parallel_tool_calls"]


def _chat_tool(tool: Any, where: str) -> Obj:
    kind = tool.get("type") if isinstance(tool, dict) else None
    if kind != "function":
        raise invalid_request(
            f"{where}: tool type {kind!r} is not supported by this provider; only function tools can be sent",
            param=where,
        )
    if not isinstance(tool.get("name"), str):
        raise invalid_request(f"{where}.name is required", param=where)
    function: Obj = {"name": tool["name"]}
    # strict is passed only when given: Responses defaults it to true, but forcing strict schemas on
    # compat providers would reject most hand-written schemas.
    for key in ("description", "parameters", "strict"):
        if tool.get(key) is not None:
            function[key] = tool[key]
    return {"type": "function", "function": function}


def _chat_tool_choice(choice: Any) -> str | Obj:
    if choice in ("none", "auto", "required"):
        return str(choice)
    if isinstance(choice, dict) and choice.get("type") == "function" and isinstance(choice.get("name"), str):
        return {"type": "function", "function": {"name": choice["name"]}}
    kind = choice.get("type") if isinstance(choice, dict) else choice
    raise invalid_request(f"tool_choice {kind!r} cannot be sent to this provider", param="tool_choice")


def _add_sampling(body: Obj, chat: Obj) -> None:
    # max_tokens, not max_completion_tokens: the newer name is still unknown to several compat providers.
    if body.get("max_output_tokens") is not None:
        chat["max_tokens"] = body["max_output_tokens"]
    for key in ("temperature", "top_p"):
        if body.get(key) is not None:
            chat[key] = body[key]
    # safety_identifier is the Responses successor of user; chat providers only know user.
    user = body.get("safety_identifier") or body.get("user")
    if user is not None:
        chat["user"] = user
    reasoning = body.get("reasoning")
    if isinstance(reasoning, dict) and reasoning.get("effort") is not None:
        # reasoning.summary is not sent: chat reasoning models return their reasoning text unasked.
        chat["reasoning_effort"] = reasoning["effort"]


def _add_output_format(body: Obj, chat: Obj) -> None:
    # text.verbosity is not sent: a style hint that only OpenAI accepts.
    text = body.get("text")
    fmt = text.get("format") if isinstance(text, dict) else None
    if fmt is None:
        return
    kind = fmt.get("type") if isinstance(fmt, dict) else None
    if kind == "text":
        return
    if kind == "json_object":
        chat["response_format"] = {"type": "json_object"}
    elif kind == "json_schema":
        chat["response_format"] = {"type": "json_schema", "json_schema": _json_schema(fmt)}
    else:
        raise invalid_request(f"text.format type {kind!r} is not supported", param="text.format")


def _json_schema(fmt: Obj) -> Obj:
    if not isinstance(fmt.get("name"), str) or not isinstance(fmt.get("schema"), dict):
        raise invalid_request("text.format json_schema needs name and schema", param="text.format")
    schema: Obj = {"name": fmt["name"], "schema": fmt["schema"]}
    for key in ("description", "strict"):
        if fmt.get(key) is not None:
            schema[key] = fmt[key]
    return schema


# ---------------------------------------------------------------------------------------------------------
# Response: chat -> Responses (shared pieces)
# ---------------------------------------------------------------------------------------------------------


def _responses_usage(usage: Any) -> Obj | None:
    if not isinstance(usage, dict):
        return None
    prompt = _count(usage.get("prompt_tokens"))
    completion = _count(usage.get("completion_tokens"))
    prompt_details = usage.get("prompt_tokens_details") or {}
    completion_details = usage.get("completion_tokens_details") or {}
    return {
        "input_tokens": prompt,
        "input_tokens_details": {
            "cached_tokens": _count(prompt_details.get("cached_tokens")),
            "cache_write_tokens": _count(prompt_details.get("cache_write_tokens")),
        },
        "output_tokens": completion,
        "output_tokens_details": {"reasoning_tokens": _count(completion_details.get("reasoning_tokens"))},
        "total_tokens": _count(usage.get("total_tokens")) or prompt + completion,
    }


def _count(value: Any) -> int:
    return value if isinstance(value, int) else 0


def _status(finish_reason: str | None) -> tuple[str, Obj | None]:
    reason = _INCOMPLETE_REASONS.get(finish_reason or "")
    if reason is None:
        return "completed", None
    return "incomplete", {"reason": reason}


def _reasoning_of(message: Obj) -> str:
    # deepseek and vllm name it reasoning_content; groq and openrouter name it reasoning.
    for key in ("reasoning_content", "reasoning"):
        value = message.get(key)
        if isinstance(value, str) and value:
            return value
    return ""


def _text_content(content: Any) -> str:
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return "".join(p.get("text", "") for p in content if isinstance(p, dict) and p.get("type") == "text")
    return ""


# ---------------------------------------------------------------------------------------------------------
# Non-streaming response
# ---------------------------------------------------------------------------------------------------------


def chat_to_responses_response(
    chat: dict[str, Any], *, request: dict[str, Any], model: str
) -> dict[str, Any]:
    """Turn a chat completion into the Responses object OpenAI would have returned for ``request``.

    >>> chat = {"choices": [{"message": {"content": "hi"}, "finish_reason": "stop"}]}
    >>> chat_to_responses_response(chat, request={}, model="m")["output"][0]["content"][0]["text"]
    'hi'
    """
    choices = chat.get("choices") or [{}]
    choice = choices[0]
    status, details = _status(choice.get("finish_reason"))
    item_status = "completed" if status == "completed" else "incomplete"
    output = _output_items(choice.get("message") or {}, item_status)
    now = int(time.time())
    created = chat.get("created")
    created_at = created if isinstance(created, int) else now
    completed_at = now if status == "completed" else None
    outcome = _Outcome(status, output, _responses_usage(chat.get("usage")), details, completed_at)
    return _response_object(request, model, _new_id("resp"), created_at, outcome)


def _output_items(message: Obj, status: str) -> list[Obj]:
    # OpenAI's order: reasoning first, then the message, then the function calls.
    items: list[Obj] = []
    reasoning = _reasoning_of(message)
    if reasoning:
        items.append(_reasoning_item(_new_id("rs"), [reasoning]))
    parts: list[Obj] = []
    text = _text_content(message.get("content"))
    if text:
        parts.append(_text_part(text))
    if isinstance(message.get("refusal"), str) and message["refusal"]:
        parts.append(_refusal_part(message["refusal"]))
    if parts:
        items.append(_message_item(_new_id("msg"), parts, status))
    for call in message.get("tool_calls") or []:
        items.append(_tool_call_item(call, status))
    return items


def _tool_call_item(call: Obj, status: str) -> Obj:
    function = call.get("function") or {}
    return _function_call_item(
        _new_id("fc"),
        call.get("id") or _new_id("call"),
        function.get("name") or "",
        function.get("arguments") or "",
        status,
    )


# ---------------------------------------------------------------------------------------------------------
# Streaming response
# ---------------------------------------------------------------------------------------------------------


@dataclass(slots=True)
class _ToolCall:
    upstream_id: str | None
    name: str = ""
    arguments: str = ""  # what arrived before the call could be announced
    handle: FunctionCallHandle | None = None  # None until output_item.added has been sent

    @property
    def call_id(self) -> str:
        if self.upstream_id is None:
            self.upstream_id = _new_id("call")
        return self.upstream_id


class ChatToResponsesStream:
    """Turns a stream of chat.completion.chunk objects into OpenAI Responses stream events.

    Items open in OpenAI's order (reasoning, message, function calls); a reasoning or message item is
    closed as soon as something else starts. Function calls stay open until the choice finishes, because
    chat deltas carry no end-of-call signal and providers may interleave calls by ``index``. The events
    themselves come from :class:`~bifrost_asgi.translate.ResponsesStreamWriter`.

    >>> stream = ChatToResponsesStream(request={"input": "hi"}, model="m")
    >>> events = stream.start()
    >>> events += stream.feed({"choices": [{"index": 0, "delta": {"content": "Hello"}}]})
    >>> events += stream.feed({"choices": [{"index": 0, "delta": {}, "finish_reason": "stop"}]})
    >>> [e["type"] for e in events + stream.finish()][-1]
    'response.completed'
    """

    def __init__(self, *, request: dict[str, Any], model: str) -> None:
        self._writer = ResponsesStreamWriter(request=request, model=model)
        self._tool_calls: list[_ToolCall] = []  # every call of the choice, in arrival order
        self._tool_call_by_index: dict[int, _ToolCall] = {}  # the call each chat delta index refers to
        self._finish_reason: str | None = None
        self._usage: Obj | None = None

    # -- public surface ------------------------------------------------------------------------------

    def start(self) -> list[dict[str, Any]]:
        """``response.created`` then ``response.in_progress``; empty if already started."""
        self._writer.start()
        return self._writer.drain()

    def feed(self, chunk: dict[str, Any]) -> list[dict[str, Any]]:
        """Events for one parsed chat.completion.chunk."""
        self._writer.start()
        if self._writer.finished:
            return []
        self._take_usage(chunk)
        choices = chunk.get("choices") or []
        choice = choices[0] if choices else None
        if isinstance(choice, dict) and self._finish_reason is None:
            self._on_delta(choice.get("delta") or {})
            if choice.get("finish_reason"):
                self._finish_reason = choice["finish_reason"]
                self._close_all()
        return self._writer.drain()

    def finish(self) -> list[dict[str, Any]]:
        """Close whatever is still open, then ``response.completed`` (or ``response.incomplete``)."""
        self._writer.start()
        if self._writer.finished:
            return []
        self._close_all()
        status, details = _status(self._finish_reason)
        self._writer.finish(status, details, self._usage)
        return self._writer.drain()

    @property
    def usage(self) -> dict[str, Any] | None:
        return self._usage

    @property
    def response(self) -> dict[str, Any]:
        """The Response object: in progress until :meth:`finish`, then as sent in the final event."""
        return self._writer.response

    # -- plumbing ------------------------------------------------------------------------------------

    def _take_usage(self, chunk: Obj) -> None:
        # Groq used to report stream usage only under x_groq.
        usage = chunk.get("usage") or (chunk.get("x_groq") or {}).get("usage")
        if usage:
            self._usage = _responses_usage(usage)

    def _item_status(self) -> str:
        return "completed" if _status(self._finish_reason)[0] == "completed" else "incomplete"

    def _on_delta(self, delta: Obj) -> None:
        reasoning = _reasoning_of(delta)
        if reasoning:
            self._writer.close_message(self._item_status())
            self._writer.reasoning_text(reasoning)
        text = _text_content(delta.get("content"))
        if text:
            self._on_text("output_text", text)
        refusal = delta.get("refusal")
        if isinstance(refusal, str) and refusal:
            self._on_text("refusal", refusal)
        for position, call in enumerate(delta.get("tool_calls") or []):
            self._on_tool_call_delta(call, position)

    def _on_text(self, kind: str, text: str) -> None:
        self._writer.close_reasoning(self._item_status())
        self._writer.text(kind, text)

    def _close_all(self) -> None:
        status = self._item_status()
        self._writer.close_reasoning(status)
        self._writer.close_message(status)
        for call in sorted(self._tool_calls, key=_open_order):
            # A call whose name never arrived is still announced, so its arguments are not lost.
            self._writer.close_call(call.handle or self._open_tool_call(call), status)
        self._tool_calls.clear()
        self._tool_call_by_index.clear()

    # -- function calls ------------------------------------------------------------------------------

    def _on_tool_call_delta(self, delta: Any, position: int) -> None:
        if not isinstance(delta, dict):
            return
        call = self._tool_call_for(delta, position)
        function = delta.get("function") or {}
        arguments = function.get("arguments")
        arguments = arguments if isinstance(arguments, str) else ""
        if call.handle is not None:
            self._writer.call_arguments(call.handle, arguments)
            return
        if isinstance(function.get("name"), str):
            call.name += function["name"]
        call.arguments += arguments
        # Wait for the name: output_item.added must already carry it.
        if call.name:
            self._open_tool_call(call)

    def _tool_call_for(self, delta: Obj, position: int) -> _ToolCall:
        index = delta.get("index")
        index = index if isinstance(index, int) else position
        upstream_id = delta.get("id") or None
        call = self._tool_call_by_index.get(index)
        # Some providers send every complete call at index 0; a new id means a new call.
        if call is None or (upstream_id and call.upstream_id and upstream_id != call.upstream_id):
            call = self._tool_call_by_index[index] = _ToolCall(upstream_id)
            self._tool_calls.append(call)
        elif call.upstream_id is None and upstream_id:
            call.upstream_id = upstream_id
        return call

    def _open_tool_call(self, call: _ToolCall) -> FunctionCallHandle:
        status = self._item_status()
        self._writer.close_reasoning(status)
        self._writer.close_message(status)
        handle = call.handle = self._writer.open_call(call.call_id, call.name)
        self._writer.call_arguments(handle, call.arguments)
        return handle


def _open_order(call: _ToolCall) -> float:
    # Calls already announced close in output order; calls still waiting for a name go last.
    return float("inf") if call.handle is None else call.handle.output_index
