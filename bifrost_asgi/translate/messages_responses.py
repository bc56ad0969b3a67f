"""The ``/anthropic`` integration's translation: Anthropic Messages in and out, any provider behind.

A Messages request for a model that Anthropic does not serve (``openai/gpt-4o``, ``mock/x``) becomes an
OpenAI Responses request, which every provider serves; the Responses answer (object or event stream)
becomes the Message (or Messages SSE events) the anthropic SDK expects, ``tool_use`` input included.

Mapping decisions:

- ``system`` → ``instructions``; user text, images (base64 → data URL, url → URL) and PDF documents →
  input parts; ``tool_use`` → ``function_call`` items; ``tool_result`` → ``function_call_output`` items
  (in their order within the turn).
- ``thinking`` / ``redacted_thinking`` blocks in the history are not replayed: their signatures only
  verify at Anthropic, and other providers keep (or drop) their own reasoning state, as Bifrost strips
  unverifiable reasoning. Reasoning summaries in the answer become thinking blocks with the provider's
  ``encrypted_content`` (or an empty string) as signature; such blocks cannot be replayed to Claude.
- ``thinking.budget_tokens`` → ``reasoning.effort``: up to 2048 low, up to 8192 medium, above high
  (``adaptive`` → medium; ``output_config.effort`` wins), with ``summary: auto`` so thinking is shown.
- ``max_tokens`` → ``max_output_tokens``; ``metadata.user_id`` → ``safety_identifier``;
  ``tool_choice`` any → required, tool → function; ``disable_parallel_tool_use`` →
  ``parallel_tool_calls: false``; ``output_config.format`` → ``text.format`` json_schema.
- Usage back: ``input_tokens`` = OpenAI input − cache reads − cache writes, with
  ``cache_read_input_tokens`` / ``cache_creation_input_tokens`` = the cached read / write tokens.
- Stop: incomplete ``max_output_tokens`` → ``max_tokens``; ``content_filter`` → ``refusal``; a completed
  answer with function calls → ``tool_use``; else ``end_turn``.
- Anthropic's ``web_search_*`` server tool → the Responses ``web_search`` tool (``allowed_domains`` as
  ``filters``, ``user_location`` kept, ``max_uses`` as ``max_tool_calls``; ``blocked_domains`` is a
  400). Its answer comes back as Claude's would: a ``web_search_call`` → ``server_tool_use`` +
  ``web_search_tool_result`` (the sources as results, without page text or encrypted content),
  ``url_citation`` annotations →
  ``web_search_result_location`` citations on the text (``cited_text`` = the cited span; streamed as
  ``citations_delta``).
- A 400 names what Responses cannot express: ``top_k``, ``stop_sequences``, other server tools,
  ``container``, ``mcp_servers``, ``context_management``, documents other than PDF/text, Files-API
  sources. Dropped (they tune Anthropic's own service): ``cache_control`` hints (other providers cache
  automatically), ``service_tier``, ``inference_geo``, ``speed``; ``is_error`` on a tool result
  (Responses has no such flag; the result's text says what failed) and text ``citations`` in replayed
  history.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import orjson

from bifrost_asgi.errors import bad_response, invalid_request, upstream_failed

__all__ = [
    "ResponsesToMessagesStream",
    "responses_usage_to_messages",
    "messages_to_responses_request",
    "responses_to_message",
]

Obj = dict[str, Any]

_REJECTED: dict[str, str] = {
    "top_k": "other providers have no top_k sampling",
    "container": "containers belong to Anthropic's code-execution tools",
    "mcp_servers": "MCP servers are connected by Anthropic's API",
    "context_management": "context editing is done by Anthropic's API",
}
_DROPPED = frozenset({"service_tier", "inference_geo", "speed", "cache_control", "diagnostics"})
_HANDLED = frozenset(
    {"model", "fallbacks", "messages", "system", "max_tokens", "temperature", "top_p", "stream", "tools",
     "tool_choice", "metadata", "thinking", "output_config", "stop_sequences", "reasoning_summary",
     *_REJECTED, *_DROPPED}
)  # fmt: skip
_LOCATION_FIELDS = ("type", "city", "region", "country", "timezone")
# Thinking budget -> the OpenAI reasoning effort of about that size.
_EFFORT_BY_BUDGET = ((2048, "low"), (8192, "medium"))
_EFFORTS = {"low": "low", "medium": "medium", "high": "high", "xhigh": "xhigh", "max": "xhigh"}


def _new_id(prefix: str) -> str:
    return f"{prefix}_{uuid.uuid4().hex}"


def _obj(value: Any) -> Obj:
    return value if isinstance(value, dict) else {}


def _list(value: Any) -> list[Any]:
    return value if isinstance(value, list) else []


# ---------------------------------------------------------------------------------------------------------
# Request: Messages -> Responses
# ---------------------------------------------------------------------------------------------------------


def messages_to_responses_request(body: dict[str, Any], *, stream: bool) -> dict[str, Any]:
    """Build the Responses body for a parsed Messages request (``model`` kept as the client sent it).

    >>> body = {"model": "openai/gpt-4o", "max_tokens": 64, "messages": [{"role": "user", "content": "hi"}]}
    >>> messages_to_responses_request(body, stream=False)["input"]
    [{'role': 'user', 'content': 'hi'}]
    """
    for key, why in _REJECTED.items():
        if body.get(key) is not None:
            raise invalid_request(f"{key} cannot be sent to this provider: {why}", param=key)
    if body.get("stop_sequences"):
        raise invalid_request(
            "stop_sequences cannot be sent to this provider: the Responses API has no stop sequences",
            param="stop_sequences",
        )
    req: Obj = {"model": body.get("model"), "input": _input(body.get("messages"))}
    _add_system(body.get("system"), req)
    if body.get("max_tokens") is not None:
        req["max_output_tokens"] = body["max_tokens"]
    for key in ("temperature", "top_p"):
        if body.get(key) is not None:
            req[key] = body[key]
    _add_user(body.get("metadata"), req)
    _add_tools(body, req)
    _add_reasoning(body, req)
    _add_format(body.get("output_config"), req)
    for key, value in body.items():
        if key not in _HANDLED and key not in req:
            req[key] = value
    if stream:
        req["stream"] = True
    return req


def _add_system(system: Any, req: Obj) -> None:
    if system is None:
        return
    if isinstance(system, str):
        text = system
    elif isinstance(system, list):
        text = "\n\n".join(_block_text(block, f"system[{i}]") for i, block in enumerate(system))
    else:
        raise invalid_request("system must be a string or a list of text blocks", param="system")
    if text:
        req["instructions"] = text


def _block_text(block: Any, where: str) -> str:
    if not isinstance(block, dict) or block.get("type") != "text" or not isinstance(block.get("text"), str):
        raise invalid_request(f"{where} must be a text block", param=where)
    text: str = block["text"]
    return text


def _add_user(metadata: Any, req: Obj) -> None:
    user = metadata.get("user_id") if isinstance(metadata, dict) else None
    if isinstance(user, str) and user:
        req["safety_identifier"] = user


def _input(messages: Any) -> list[Obj]:
    if not isinstance(messages, list) or not messages:
        raise invalid_request("messages is required", param="messages")
    items: list[Obj] = []
    for index, message in enumerate(messages):
        where = f"messages[{index}]"
        role = message.get("role") if isinstance(message, dict) else None
        if role not in ("user", "assistant"):
            raise invalid_request(f"{where}.role must be user or assistant", param=where)
        content = message.get("content")
        blocks = [{"type": "text", "text": content}] if isinstance(content, str) else content
        if not isinstance(blocks, list):
            raise invalid_request(f"{where}.content must be a string or a list of blocks", param=where)
        items += _TurnItems(role, where).convert(blocks)
    return items


@dataclass(slots=True)
class _TurnItems:
    """The Responses items for one Anthropic turn: its text and media parts grouped into messages, with
    tool calls and results as items of their own, in their original order."""

    role: str
    where: str
    items: list[Obj] = field(default_factory=list)
    parts: list[Obj] = field(default_factory=list)

    def convert(self, blocks: list[Any]) -> list[Obj]:
        for index, block in enumerate(blocks):
            self._block(block, f"{self.where}.content[{index}]")
        self._flush()
        return self.items

    def _block(self, block: Any, where: str) -> None:
        kind = block.get("type") if isinstance(block, dict) else None
        if kind in ("thinking", "redacted_thinking"):
            return  # see the module docstring: signatures only verify at Anthropic
        if kind == "tool_use" and self.role == "assistant":
            self._flush()
            self.items.append(_function_call(block, where))
        elif kind == "tool_result" and self.role == "user":
            self._flush()
            self.items.append(_function_call_output(block, where))
        elif kind == "text":
            self.parts.append({"type": "text", "text": _block_text(block, where)})
        elif kind in ("image", "document") and self.role == "user":
            self.parts.append(_media_part(block, where))
        else:
            raise invalid_request(
                f"{where}: {self.role} block type {kind!r} cannot be sent to this provider", param=where
            )

    def _flush(self) -> None:
        parts, self.parts = self.parts, []
        if not parts:
            return
        if self.role == "assistant":
            self.items.append({"role": "assistant", "content": "".join(p["text"] for p in parts)})
        elif len(parts) == 1 and parts[0]["type"] == "text":
            self.items.append({"role": "user", "content": parts[0]["text"]})
        else:
            self.items.append({"role": "user", "content": [_input_part(p) for p in parts]})


def _input_part(part: Obj) -> Obj:
    return {"type": "input_text", "text": part["text"]} if part["type"] == "text" else part


def _function_call(block: Obj, where: str) -> Obj:
    call_id, name = block.get("id"), block.get("name")
    if not isinstance(call_id, str) or not isinstance(name, str):
        raise invalid_request(f"{where}: tool_use needs id and name", param=where)
    arguments = orjson.dumps(block.get("input") or {}).decode()
    return {"type": "function_call", "call_id": call_id, "name": name, "arguments": arguments}


def _function_call_output(block: Obj, where: str) -> Obj:
    call_id = block.get("tool_use_id")
    if not isinstance(call_id, str):
        raise invalid_request(f"{where}: tool_result needs tool_use_id", param=where)
    content = block.get("content")
    if content is None or isinstance(content, str):
        output: str | list[Obj] = content or ""
    elif isinstance(content, list):
        output = [_tool_result_part(part, f"{where}.content[{i}]") for i, part in enumerate(content)]
    else:
        raise invalid_request(f"{where}.content must be a string or a list of blocks", param=where)
    return {"type": "function_call_output", "call_id": call_id, "output": output}


def _tool_result_part(block: Any, where: str) -> Obj:
    kind = block.get("type") if isinstance(block, dict) else None
    if kind == "text":
        return {"type": "input_text", "text": _block_text(block, where)}
    if kind in ("image", "document"):
        return _media_part(block, where)
    raise invalid_request(
        f"{where}: tool_result block type {kind!r} cannot be sent to this provider", param=where
    )


def _media_part(block: Obj, where: str) -> Obj:
    source = _obj(block.get("source"))
    kind = source.get("type")
    image = block.get("type") == "image"
    if kind == "base64":
        data_url = f"data:{source.get('media_type')};base64,{source.get('data')}"
        if image:
            return {"type": "input_image", "image_url": data_url, "detail": "auto"}
        if source.get("media_type") == "application/pdf":
            return {
                "type": "input_file",
                "filename": block.get("title") or "document.pdf",
                "file_data": data_url,
            }
    elif kind == "url" and isinstance(source.get("url"), str):
        if image:
            return {"type": "input_image", "image_url": source["url"], "detail": "auto"}
        return {"type": "input_file", "file_url": source["url"]}
    elif kind == "text" and not image and isinstance(source.get("data"), str):
        return {"type": "input_text", "text": source["data"]}
    raise invalid_request(
        f"{where}: {block.get('type')} source {kind!r} cannot be sent to this provider "
        f"(base64 images, URLs, PDF and plain-text documents can)",
        param=where,
    )


def _add_tools(body: Obj, req: Obj) -> None:
    tools = body.get("tools") or []
    if not isinstance(tools, list):
        raise invalid_request("tools must be a list", param="tools")
    if tools:
        req["tools"] = [_tool(tool, f"tools[{index}]") for index, tool in enumerate(tools)]
        caps = [t["max_uses"] for t in tools if isinstance(t, dict) and isinstance(t.get("max_uses"), int)]
        if caps:
            req["max_tool_calls"] = min(caps)  # a web search's max_uses caps its hosted calls
    choice = body.get("tool_choice")
    if not isinstance(choice, dict):
        return
    kind = choice.get("type")
    if kind in ("auto", "none"):
        req["tool_choice"] = kind
    elif kind == "any":
        req["tool_choice"] = "required"
    elif kind == "tool" and isinstance(choice.get("name"), str):
        req["tool_choice"] = {"type": "function", "name": choice["name"]}
    else:
        raise invalid_request(
            f"tool_choice type {kind!r} cannot be sent to this provider", param="tool_choice"
        )
    if choice.get("disable_parallel_tool_use"):
        req["parallel_tool_calls"] = False


def _tool(tool: Any, where: str) -> Obj:
    kind = tool.get("type") if isinstance(tool, dict) else None
    if isinstance(tool, dict) and isinstance(kind, str) and kind.startswith("web_search_"):
        return _web_search(tool, where)
    if not isinstance(tool, dict) or kind not in (None, "custom") or not isinstance(tool.get("name"), str):
        raise invalid_request(
            f"{where}: tool type {kind!r} cannot be sent to this provider; only custom (function) tools and "
            f"web_search can",
            param=where,
        )
    out: Obj = {"type": "function", "name": tool["name"], "parameters": tool.get("input_schema") or {}}
    if tool.get("description") is not None:
        out["description"] = tool["description"]
    # Responses defaults function tools to strict schemas, which most hand-written schemas fail.
    out["strict"] = bool(tool.get("strict", False))
    return out


def _web_search(tool: Obj, where: str) -> Obj:
    """Anthropic's web search server tool as the Responses ``web_search`` tool (each provider maps that to
    its own search, or refuses it with a 400 naming it)."""
    if tool.get("blocked_domains"):
        raise invalid_request(
            f"{where}: blocked_domains cannot be sent to this provider (only allowed_domains can)",
            param=where,
        )
    out: Obj = {"type": "web_search"}
    if tool.get("allowed_domains"):
        out["filters"] = {"allowed_domains": tool["allowed_domains"]}
    location = tool.get("user_location")
    if isinstance(location, dict):
        out["user_location"] = {k: v for k, v in location.items() if k in _LOCATION_FIELDS}
    return out


def _add_reasoning(body: Obj, req: Obj) -> None:
    thinking = body.get("thinking")
    kind = thinking.get("type") if isinstance(thinking, dict) else None
    config = body.get("output_config")
    effort = _EFFORTS.get(str(config.get("effort"))) if isinstance(config, dict) else None
    if kind == "enabled" and effort is None:
        budget = thinking.get("budget_tokens") if isinstance(thinking, dict) else None
        budget = budget if isinstance(budget, int) else 0
        effort = next((name for limit, name in _EFFORT_BY_BUDGET if budget <= limit), "high")
    elif kind == "adaptive" and effort is None:
        effort = "medium"
    # Bifrost's extension on /anthropic: which reasoning summary a non-Anthropic target should return.
    summary = body.get("reasoning_summary")
    summary = summary if summary in ("auto", "concise", "detailed") else "auto"
    if effort is not None and kind != "disabled":
        req["reasoning"] = {"effort": effort, "summary": summary}


def _add_format(config: Any, req: Obj) -> None:
    fmt = config.get("format") if isinstance(config, dict) else None
    if fmt is None:
        return
    if (
        not isinstance(fmt, dict)
        or fmt.get("type") != "json_schema"
        or not isinstance(fmt.get("schema"), dict)
    ):
        raise invalid_request(
            "output_config.format must be a json_schema format", param="output_config.format"
        )
    req["text"] = {
        "format": {"type": "json_schema", "name": "output", "schema": fmt["schema"], "strict": True}
    }


# ---------------------------------------------------------------------------------------------------------
# Answer: Responses -> Message
# ---------------------------------------------------------------------------------------------------------


def _int(value: Any) -> int:
    return value if isinstance(value, int) and not isinstance(value, bool) else 0


def responses_usage_to_messages(usage: Any) -> dict[str, Any]:
    """Responses usage in Anthropic terms: input tokens exclude the cached reads and writes."""
    usage = usage if isinstance(usage, dict) else {}
    details = _obj(usage.get("input_tokens_details"))
    read = _int(details.get("cached_read_tokens", details.get("cached_tokens")))
    write = _int(details.get("cached_write_tokens", details.get("cache_write_tokens")))
    return {
        "input_tokens": max(_int(usage.get("input_tokens")) - read - write, 0),
        "output_tokens": _int(usage.get("output_tokens")),
        "cache_read_input_tokens": read,
        "cache_creation_input_tokens": write,
    }


def _stop_reason(response: Obj, saw_tool_call: bool) -> str:
    details = response.get("incomplete_details")
    reason = details.get("reason") if isinstance(details, dict) else None
    if response.get("status") == "incomplete" or reason:
        return "refusal" if reason == "content_filter" else "max_tokens"
    return "tool_use" if saw_tool_call else "end_turn"


def _tool_input(arguments: Any) -> Obj:
    try:
        value = orjson.loads(arguments) if isinstance(arguments, str) and arguments else {}
    except orjson.JSONDecodeError:
        value = None
    if not isinstance(value, dict):
        raise bad_response("the provider returned tool call arguments that are not a JSON object")
    return value


def _summary_text(item: Obj) -> str:
    summary = item.get("summary")
    parts = summary if isinstance(summary, list) else []
    return "\n\n".join(str(p.get("text", "")) for p in parts if isinstance(p, dict))


def _content_blocks(item: Obj) -> list[Obj]:
    kind = item.get("type")
    if kind == "message":
        return [block for p in _list(item.get("content")) if isinstance(p, dict) for block in _text_block(p)]
    if kind == "web_search_call":
        return search_blocks(item)
    if kind == "function_call":
        call = {"type": "tool_use", "id": item.get("call_id"), "name": item.get("name")}
        return [{**call, "input": _tool_input(item.get("arguments"))}]
    if kind == "reasoning" and _summary_text(item):
        signature = item.get("encrypted_content") if isinstance(item.get("encrypted_content"), str) else ""
        return [{"type": "thinking", "thinking": _summary_text(item), "signature": signature}]
    return []


def _text_block(part: Obj) -> list[Obj]:
    text = part.get("text") if part.get("type") == "output_text" else part.get("refusal")
    if not isinstance(text, str) or not text:
        return []
    block: Obj = {"type": "text", "text": text}
    citations = [c for a in _list(part.get("annotations")) if (c := citation(a, text)) is not None]
    if citations:
        block["citations"] = citations
    return [block]


def citation(annotation: Any, text: str) -> Obj | None:
    """A ``url_citation`` annotation as Anthropic's web search citation (the cited span as its text)."""
    if not isinstance(annotation, dict) or annotation.get("type") != "url_citation":
        return None
    start, end = _int(annotation.get("start_index")), _int(annotation.get("end_index"))
    return {
        "type": "web_search_result_location",
        "url": str(annotation.get("url") or ""),
        "title": annotation.get("title") if isinstance(annotation.get("title"), str) else None,
        "cited_text": text[start:end],
        "encrypted_index": "",  # Anthropic's handle for replaying the citation; other providers have none
    }


def search_blocks(item: Obj) -> list[Obj]:
    """A ``web_search_call`` as the ``server_tool_use`` and ``web_search_tool_result`` blocks of a search
    Claude made: the query, and each source as a result (no page text or encrypted content to give)."""
    action = _obj(item.get("action"))
    call_id = "srvtoolu_" + str(item.get("id") or uuid.uuid4().hex)
    query = action.get("query") if isinstance(action.get("query"), str) else ""
    sources = [
        s for s in _list(action.get("sources")) if isinstance(s, dict) and isinstance(s.get("url"), str)
    ]
    results = [{"type": "web_search_result", "url": s["url"], "title": str(s.get("title") or s["url"]),
                "encrypted_content": "", "page_age": None} for s in sources]  # fmt: skip
    return [
        {"type": "server_tool_use", "id": call_id, "name": "web_search", "input": {"query": query}},
        {"type": "web_search_tool_result", "tool_use_id": call_id, "content": results},
    ]


def responses_to_message(response: dict[str, Any], *, model: str) -> dict[str, Any]:
    """Turn a Responses object into the Message Anthropic would have returned.

    >>> resp = {"status": "completed", "output": [{"type": "message", "content": [
    ...     {"type": "output_text", "text": "hi"}]}], "usage": {"input_tokens": 3, "output_tokens": 1}}
    >>> responses_to_message(resp, model="openai/gpt-4o")["content"]
    [{'type': 'text', 'text': 'hi'}]
    """
    listed = response.get("output")
    if not isinstance(listed, list):
        # Every Responses answer lists its output (empty when there is none): without it, an empty
        # message would report an answer that never came as complete.
        raise bad_response("the provider returned a Responses answer without an output list")
    output = [item for item in listed if isinstance(item, dict)]
    content = [block for item in output for block in _content_blocks(item)]
    saw_tool_call = any(item.get("type") == "function_call" for item in output)
    return {
        "id": _new_id("msg"),
        "type": "message",
        "role": "assistant",
        "model": model,
        "content": content,
        "stop_reason": _stop_reason(response, saw_tool_call),
        "stop_sequence": None,
        "usage": responses_usage_to_messages(response.get("usage")),
    }


# ---------------------------------------------------------------------------------------------------------
# Stream: Responses events -> Messages events
# ---------------------------------------------------------------------------------------------------------


@dataclass(slots=True)
class _Call:
    call_id: str
    name: str
    arguments: str = ""
    block: int | None = None  # the Anthropic block index while it streams live
    streamed: bool = False


@dataclass(slots=True)
class _OpenBlock:
    index: int
    key: tuple[int, int]  # (output_index, content_index), with _REASONING / _CALL for those items


_REASONING = -1
_CALL = -2
_TEXT_START: Obj = {"type": "text", "text": ""}
_THINKING_START: Obj = {"type": "thinking", "thinking": "", "signature": ""}


class ResponsesToMessagesStream:
    """Turns OpenAI Responses stream events into Anthropic Messages stream events.

    Anthropic's blocks never overlap, so one block is open at a time. Text parts and reasoning stream
    live; a function call streams live when it starts with nothing else open. Providers that interleave
    items (chat providers keep parallel calls open until the end) get the overlapping items sent whole
    once they are done and the open block has closed, in the order they finish.

    >>> s = ResponsesToMessagesStream(model="m")
    >>> [e["type"] for e in s.feed({"type": "response.created", "response": {}})]
    ['message_start']
    """

    def __init__(self, *, model: str) -> None:
        self._model = model
        self._events: list[Obj] = []
        self._next_block = 0
        self._open: _OpenBlock | None = None
        self._queued: list[tuple[Obj, list[Obj]]] = []  # whole blocks waiting for the open one to close
        self._deferred: dict[tuple[int, int], tuple[Obj, list[Obj]]] = {}  # blocks that began mid-call
        self._calls: dict[int, _Call] = {}
        self._texts: dict[tuple[int, int], str] = {}
        self._saw_tool_call = False
        self._started = False
        self._finished = False

    def feed(self, event: dict[str, Any]) -> list[dict[str, Any]]:
        """Anthropic events for one parsed Responses event; raises BifrostError on a failed response."""
        if self._finished:
            return []
        self._start()
        handler = _HANDLERS.get(str(event.get("type")))
        if handler is not None:
            handler(self, event)
        return self._drain()

    # -- plumbing ------------------------------------------------------------------------------------

    def _emit(self, kind: str, **fields: Any) -> None:
        self._events.append({"type": kind, **fields})

    def _drain(self) -> list[Obj]:
        events, self._events = self._events, []
        return events

    def _start(self) -> None:
        if self._started:
            return
        self._started = True
        # Input usage is only known at the end (OpenAI reports it on completion); message_delta carries it.
        message: Obj = {"id": _new_id("msg"), "type": "message", "role": "assistant", "model": self._model,
                        "content": [], "stop_reason": None, "stop_sequence": None,
                        "usage": {"input_tokens": 0, "output_tokens": 0}}  # fmt: skip
        self._emit("message_start", message=message)

    def _claim_block(self) -> int:
        index = self._next_block
        self._next_block += 1
        return index

    def _open_block(self, key: tuple[int, int], block: Obj) -> int:
        self._close_open()
        index = self._claim_block()
        self._open = _OpenBlock(index, key)
        self._emit("content_block_start", index=index, content_block=dict(block))
        return index

    def _delta(self, index: int, delta: Obj) -> None:
        self._emit("content_block_delta", index=index, delta=delta)

    def _close_open(self) -> None:
        block, self._open = self._open, None
        if block is None:
            return
        self._emit("content_block_stop", index=block.index)
        queued, self._queued = self._queued, []
        for start, deltas in queued:
            self._whole(start, deltas)

    def _whole(self, start: Obj, deltas: list[Obj]) -> None:
        """A block sent at once: now when nothing is open, else after the open block closes."""
        if self._open is not None:
            self._queued.append((start, deltas))
            return
        index = self._claim_block()
        self._emit("content_block_start", index=index, content_block=dict(start))
        for delta in deltas:
            self._delta(index, delta)
        self._emit("content_block_stop", index=index)

    def _is_open(self, key: tuple[int, int]) -> bool:
        return self._open is not None and self._open.key == key

    # -- text and reasoning blocks -------------------------------------------------------------------

    def _begin(self, key: tuple[int, int], start: Obj) -> None:
        if key in self._deferred or self._is_open(key):
            return
        if self._open is not None and self._open.key[1] == _CALL:
            self._deferred[key] = (start, [])  # a live call is still streaming: send this one whole later
        else:
            self._open_block(key, start)

    def _add(self, key: tuple[int, int], start: Obj, delta: Obj) -> None:
        self._begin(key, start)
        if key in self._deferred:
            self._deferred[key][1].append(delta)
        elif self._open is not None:
            self._delta(self._open.index, delta)

    def _end(self, key: tuple[int, int], last: list[Obj]) -> None:
        if key in self._deferred:
            start, deltas = self._deferred.pop(key)
            self._whole(start, deltas + last)
        elif self._is_open(key):
            assert self._open is not None
            for delta in last:
                self._delta(self._open.index, delta)
            self._close_open()

    def _on_part_added(self, event: Obj) -> None:
        if _obj(event.get("part")).get("type") in ("output_text", "refusal"):
            self._begin(_key(event, "content_index"), _TEXT_START)

    def _on_text_delta(self, event: Obj) -> None:
        key, text = _key(event, "content_index"), str(event.get("delta", ""))
        self._texts[key] = self._texts.get(key, "") + text  # what a later citation's indexes point into
        self._add(key, _TEXT_START, {"type": "text_delta", "text": text})

    def _on_annotation(self, event: Obj) -> None:
        key = _key(event, "content_index")
        cited = citation(event.get("annotation"), self._texts.get(key, ""))
        if cited is not None:
            self._add(key, _TEXT_START, {"type": "citations_delta", "citation": cited})

    def _on_part_done(self, event: Obj) -> None:
        self._end(_key(event, "content_index"), [])

    def _on_reasoning_delta(self, event: Obj) -> None:
        delta = {"type": "thinking_delta", "thinking": str(event.get("delta", ""))}
        self._add((_int(event.get("output_index")), _REASONING), _THINKING_START, delta)

    def _on_reasoning_part_added(self, event: Obj) -> None:
        # Several summary parts of one item share one thinking block, a blank line apart.
        key = (_int(event.get("output_index")), _REASONING)
        if _int(event.get("summary_index")) > 0 and (key in self._deferred or self._is_open(key)):
            self._add(key, _THINKING_START, {"type": "thinking_delta", "thinking": "\n\n"})

    def _reasoning_done(self, output_index: int, item: Obj) -> None:
        key = (output_index, _REASONING)
        signature = item.get("encrypted_content") if isinstance(item.get("encrypted_content"), str) else ""
        last = [{"type": "signature_delta", "signature": signature}] if signature else []
        if key in self._deferred or self._is_open(key):
            self._end(key, last)
        elif _summary_text(item):
            self._whole(_THINKING_START, [{"type": "thinking_delta", "thinking": _summary_text(item)}, *last])

    # -- function calls ------------------------------------------------------------------------------

    def _on_item_added(self, event: Obj) -> None:
        item = _obj(event.get("item"))
        if item.get("type") != "function_call":
            return
        self._saw_tool_call = True
        output_index = _int(event.get("output_index"))
        call = self._calls[output_index] = _Call(str(item.get("call_id")), str(item.get("name")))
        if self._open is None:
            call.block = self._open_block((output_index, _CALL), _tool_use_start(call))

    def _on_arguments_delta(self, event: Obj) -> None:
        output_index = _int(event.get("output_index"))
        call = self._calls.get(output_index)
        delta = str(event.get("delta", ""))
        if call is None or not delta:
            return
        call.arguments += delta
        if call.block is not None and self._is_open((output_index, _CALL)):
            call.streamed = True
            self._delta(call.block, {"type": "input_json_delta", "partial_json": delta})

    def _call_done(self, output_index: int, item: Obj) -> None:
        call = self._calls.pop(output_index, None) or _Call(str(item.get("call_id")), str(item.get("name")))
        self._saw_tool_call = True
        arguments = item.get("arguments") if isinstance(item.get("arguments"), str) else call.arguments
        if call.block is not None and self._is_open((output_index, _CALL)):
            if not call.streamed and arguments:
                self._delta(call.block, {"type": "input_json_delta", "partial_json": arguments})
            self._close_open()
            return
        deltas = [{"type": "input_json_delta", "partial_json": arguments}] if arguments else []
        self._whole(_tool_use_start(call), deltas)

    # -- items and the end ---------------------------------------------------------------------------

    def _on_item_done(self, event: Obj) -> None:
        item = _obj(event.get("item"))
        output_index = _int(event.get("output_index"))
        kind = item.get("type")
        if kind == "function_call":
            self._call_done(output_index, item)
        elif kind == "reasoning":
            self._reasoning_done(output_index, item)
        elif kind == "web_search_call":
            for block in search_blocks(item):
                self._whole(block, [])
        else:  # a message: any of its parts still open or deferred ends with it
            for key in [k for k in self._deferred if k[0] == output_index]:
                self._end(key, [])
            if self._open is not None and self._open.key[0] == output_index:
                self._close_open()

    def _on_finished(self, event: Obj) -> None:
        response = _obj(event.get("response"))
        self._close_open()
        for key in list(self._deferred):
            self._end(key, [])
        self._finished = True
        delta = {"stop_reason": _stop_reason(response, self._saw_tool_call), "stop_sequence": None}
        self._emit("message_delta", delta=delta, usage=responses_usage_to_messages(response.get("usage")))
        self._emit("message_stop")

    def _on_failed(self, event: Obj) -> None:
        response = _obj(event.get("response"))
        error = _obj(response.get("error")) or event
        message = str(error.get("message") or "the provider reported a failed response")
        code = error.get("code")
        raise upstream_failed(message, str(code) if code is not None else None)


def _key(event: Obj, field_name: str) -> tuple[int, int]:
    return _int(event.get("output_index")), _int(event.get(field_name))


def _tool_use_start(call: _Call) -> Obj:
    return {"type": "tool_use", "id": call.call_id, "name": call.name, "input": {}}


_Handler = Callable[[ResponsesToMessagesStream, Obj], None]
_HANDLERS: dict[str, _Handler] = {
    "response.output_item.added": ResponsesToMessagesStream._on_item_added,
    "response.content_part.added": ResponsesToMessagesStream._on_part_added,
    "response.output_text.delta": ResponsesToMessagesStream._on_text_delta,
    "response.refusal.delta": ResponsesToMessagesStream._on_text_delta,
    "response.content_part.done": ResponsesToMessagesStream._on_part_done,
    "response.output_text.annotation.added": ResponsesToMessagesStream._on_annotation,
    "response.reasoning_summary_part.added": ResponsesToMessagesStream._on_reasoning_part_added,
    "response.reasoning_summary_text.delta": ResponsesToMessagesStream._on_reasoning_delta,
    "response.function_call_arguments.delta": ResponsesToMessagesStream._on_arguments_delta,
    "response.output_item.done": ResponsesToMessagesStream._on_item_done,
    "response.completed": ResponsesToMessagesStream._on_finished,
    "response.incomplete": ResponsesToMessagesStream._on_finished,
    "response.failed": ResponsesToMessagesStream._on_failed,
    "error": ResponsesToMessagesStream._on_failed,
}
