"""Pieces shared by the translators that answer in OpenAI's Responses shape: the one home of its item,
part and Response object shapes and of its stream events.

:class:`ResponsesStreamWriter` turns item-level operations ("open a function call", "append text",
"close the reasoning item") into OpenAI's Responses stream events, each with exactly the fields of the
openai SDK's event type. :class:`~bifrost_asgi.translate.ChatToResponsesStream` drives it from chat
deltas; providers whose streams mark their own item boundaries (Anthropic's content blocks) drive it
directly.

Pure: no I/O; the clock is read only for timestamps.
"""

from __future__ import annotations

import time
import uuid
from dataclasses import dataclass, field
from typing import Any

__all__ = ["FunctionCallHandle", "ResponsesStreamWriter", "SearchHandle", "new_id"]

Obj = dict[str, Any]


# ---------------------------------------------------------------------------------------------------------
# Shapes: items, parts and the Response object, as OpenAI's API returns them
# ---------------------------------------------------------------------------------------------------------


def _new_id(prefix: str) -> str:
    return f"{prefix}_{uuid.uuid4().hex}"


new_id = _new_id


def _text_part(text: str) -> Obj:
    return {"type": "output_text", "text": text, "annotations": [], "logprobs": []}


def _refusal_part(refusal: str) -> Obj:
    return {"type": "refusal", "refusal": refusal}


def _message_item(item_id: str, parts: list[Obj], status: str) -> Obj:
    return {"id": item_id, "type": "message", "status": status, "role": "assistant", "content": parts}


def _reasoning_item(item_id: str, summary: list[str]) -> Obj:
    return {
        "id": item_id,
        "type": "reasoning",
        "summary": [{"type": "summary_text", "text": text} for text in summary],
    }


def _function_call_item(item_id: str, call_id: str, name: str, arguments: str, status: str) -> Obj:
    return {
        "id": item_id,
        "type": "function_call",
        "status": status,
        "call_id": call_id,
        "name": name,
        "arguments": arguments,
    }


@dataclass(frozen=True, slots=True)
class _Outcome:
    """What a response ended as: the fields that differ between in-progress and final objects."""

    status: str
    output: list[Obj]
    usage: Obj | None = None
    incomplete_details: Obj | None = None
    completed_at: int | None = None


def _response_object(request: Obj, model: str, response_id: str, created_at: int, outcome: _Outcome) -> Obj:
    # Echo the request the way OpenAI does, with OpenAI's defaults for what the caller left out.
    return {
        "id": response_id,
        "object": "response",
        "created_at": created_at,
        "status": outcome.status,
        "completed_at": outcome.completed_at,
        "background": False,
        "error": None,
        "incomplete_details": outcome.incomplete_details,
        "instructions": request.get("instructions"),
        "max_output_tokens": request.get("max_output_tokens"),
        "max_tool_calls": request.get("max_tool_calls"),
        "model": model,
        "output": outcome.output,
        "parallel_tool_calls": _given(request.get("parallel_tool_calls"), True),
        "previous_response_id": None,
        "prompt_cache_key": request.get("prompt_cache_key"),
        "reasoning": _given(request.get("reasoning"), {"effort": None, "summary": None}),
        "safety_identifier": request.get("safety_identifier"),
        "temperature": request.get("temperature"),
        "text": _given(request.get("text"), {"format": {"type": "text"}}),
        "tool_choice": _given(request.get("tool_choice"), "auto"),
        "tools": _given(request.get("tools"), []),
        "top_p": request.get("top_p"),
        "truncation": _given(request.get("truncation"), "disabled"),
        "usage": outcome.usage,
        "user": request.get("user"),
        "metadata": _given(request.get("metadata"), {}),
    }


def _given(value: Any, default: Any) -> Any:
    return default if value is None else value


# ---------------------------------------------------------------------------------------------------------
# The stream writer
# ---------------------------------------------------------------------------------------------------------


@dataclass(slots=True)
class _OpenItem:
    """An output item the writer has announced (``output_item.added``) and not yet closed."""

    item_id: str
    output_index: int  # its place in ``response.output``


@dataclass(slots=True)
class _OpenMessage(_OpenItem):
    parts: list[Obj] = field(default_factory=list)
    part_open: bool = False


@dataclass(slots=True)
class _OpenReasoning(_OpenItem):
    text: str = ""


@dataclass(slots=True)
class FunctionCallHandle(_OpenItem):
    """An open function-call item; pass it back to the writer to add arguments or close it."""

    call_id: str
    name: str
    arguments: str = ""


@dataclass(slots=True)
class SearchHandle(_OpenItem):
    """An open ``web_search_call`` item; pass it back to the writer to report progress or close it."""


class ResponsesStreamWriter:
    """Emits OpenAI Responses stream events, numbered, from item-level operations.

    At most one message and one reasoning item are open at a time; opening one closes nothing by itself,
    the caller decides when (and with which status) an item ends, because only it knows whether the
    upstream stopped early.

    >>> w = ResponsesStreamWriter(request={}, model="m")
    >>> w.start(); w.text("output_text", "Hi"); w.close_message("completed")
    >>> w.finish("completed", None, None)
    >>> [e["type"] for e in w.drain()][-1]
    'response.completed'
    """

    def __init__(self, *, request: dict[str, Any], model: str, response_id: str | None = None) -> None:
        self._request = request
        self._model = model
        self._response_id = response_id or _new_id("resp")
        self._created_at = int(time.time())
        self._events: list[Obj] = []
        self._sequence = 0
        self._next_index = 0
        self._started = False
        self._final: _Outcome | None = None
        self._done_items: dict[int, Obj] = {}
        self._message: _OpenMessage | None = None
        self._reasoning: _OpenReasoning | None = None

    # -- lifecycle -----------------------------------------------------------------------------------

    def start(self) -> None:
        """``response.created`` then ``response.in_progress``, once."""
        if self._started:
            return
        self._started = True
        self._emit("response.created", response=self.response)
        self._emit("response.in_progress", response=self.response)

    def finish(self, status: str, incomplete_details: Obj | None, usage: Obj | None) -> None:
        """``response.completed`` (or ``response.incomplete``) with every finished item. A message or
        reasoning item still open is closed with the response's status rather than lost; function calls
        are the caller's to close (their handles are its own)."""
        self.start()
        item_status = "completed" if status == "completed" else "incomplete"
        self.close_reasoning(item_status)
        self.close_message(item_status)
        output = [self._done_items[index] for index in sorted(self._done_items)]
        completed_at = int(time.time()) if status == "completed" else None
        self._final = _Outcome(status, output, usage, incomplete_details, completed_at)
        kind = "response.completed" if status == "completed" else "response.incomplete"
        self._emit(kind, response=self.response)

    def drain(self) -> list[dict[str, Any]]:
        events, self._events = self._events, []
        return events

    @property
    def finished(self) -> bool:
        return self._final is not None

    @property
    def response(self) -> dict[str, Any]:
        """The Response object: in progress until :meth:`finish`, then as sent in the final event."""
        outcome = self._final or _Outcome("in_progress", [])
        return _response_object(self._request, self._model, self._response_id, self._created_at, outcome)

    # -- message text --------------------------------------------------------------------------------

    def open_part(self, kind: str) -> None:
        """Start a new ``output_text`` or ``refusal`` part, opening the message item if needed."""
        message = self._message or self._open_message()
        self._close_part(message)
        part = _text_part("") if kind == "output_text" else _refusal_part("")
        message.parts.append(part)
        message.part_open = True
        self._emit("response.content_part.added", **self._part_where(message), part=_snapshot(part))

    def text(self, kind: str, delta: str) -> None:
        """Append to the open part, opening a part of ``kind`` first when none (or another kind) is open."""
        message = self._message
        if message is None or not message.part_open or message.parts[-1]["type"] != kind:
            self.open_part(kind)
            message = self._message
            assert message is not None
        if not delta:
            return
        key = "text" if kind == "output_text" else "refusal"
        message.parts[-1][key] += delta
        where = self._part_where(message)
        if kind == "output_text":
            self._emit("response.output_text.delta", **where, delta=delta, logprobs=[])
        else:
            self._emit("response.refusal.delta", **where, delta=delta)

    def close_part(self) -> None:
        if self._message is not None:
            self._close_part(self._message)

    @property
    def text_length(self) -> int:
        """How much text the open ``output_text`` part holds: where the next delta's text starts."""
        message = self._message
        if message is None or not message.part_open or message.parts[-1]["type"] != "output_text":
            return 0
        return len(message.parts[-1]["text"])

    def annotate(self, annotation: Obj) -> None:
        """Add an annotation (a citation) to the open ``output_text`` part."""
        message = self._message
        if message is None or not message.part_open or message.parts[-1]["type"] != "output_text":
            return
        annotations: list[Obj] = message.parts[-1]["annotations"]
        annotations.append(annotation)
        self._emit(
            "response.output_text.annotation.added",
            **self._part_where(message),
            annotation_index=len(annotations) - 1,
            annotation=annotation,
        )

    def close_message(self, status: str) -> None:
        message, self._message = self._message, None
        if message is None:
            return
        self._close_part(message)
        parts = [_snapshot(part) for part in message.parts]
        self._finish_item(message.output_index, _message_item(message.item_id, parts, status))

    def _open_message(self) -> _OpenMessage:
        message = self._message = _OpenMessage(_new_id("msg"), self._claim_index())
        item = _message_item(message.item_id, [], "in_progress")
        self._emit("response.output_item.added", output_index=message.output_index, item=item)
        return message

    def _part_where(self, message: _OpenMessage) -> Obj:
        return {
            "item_id": message.item_id,
            "output_index": message.output_index,
            "content_index": len(message.parts) - 1,
        }

    def _close_part(self, message: _OpenMessage) -> None:
        if not message.part_open:
            return
        message.part_open = False
        part = message.parts[-1]
        where = self._part_where(message)
        if part["type"] == "output_text":
            self._emit("response.output_text.done", **where, text=part["text"], logprobs=[])
        else:
            self._emit("response.refusal.done", **where, refusal=part["refusal"])
        self._emit("response.content_part.done", **where, part=_snapshot(part))

    # -- reasoning -----------------------------------------------------------------------------------

    def open_reasoning(self) -> None:
        """A reasoning item with one summary part that :meth:`reasoning_text` appends to."""
        item = self._reasoning = _OpenReasoning(_new_id("rs"), self._claim_index())
        self._emit(
            "response.output_item.added",
            output_index=item.output_index,
            item=_reasoning_item(item.item_id, []),
        )
        self._emit(
            "response.reasoning_summary_part.added",
            **self._reasoning_where(item),
            part={"type": "summary_text", "text": ""},
        )

    def reasoning_text(self, delta: str) -> None:
        item = self._reasoning
        if item is None:
            self.open_reasoning()
            item = self._reasoning
            assert item is not None
        if not delta:
            return
        item.text += delta
        self._emit("response.reasoning_summary_text.delta", **self._reasoning_where(item), delta=delta)

    def close_reasoning(self, status: str, encrypted_content: str | None = None) -> None:
        item, self._reasoning = self._reasoning, None
        if item is None:
            return
        where = self._reasoning_where(item)
        self._emit("response.reasoning_summary_text.done", **where, text=item.text)
        self._emit(
            "response.reasoning_summary_part.done", **where, part={"type": "summary_text", "text": item.text}
        )
        self._finish_item(item.output_index, _reasoning(item.item_id, [item.text], encrypted_content))

    def reasoning_item(self, summary: list[str], encrypted_content: str | None) -> None:
        """A reasoning item that arrives whole (Anthropic's redacted thinking): added, then done."""
        self.whole_item(_reasoning(_new_id("rs"), summary, encrypted_content))

    def whole_item(self, item: Obj) -> None:
        """An item that arrives complete: ``output_item.added``, then ``output_item.done``."""
        index = self._claim_index()
        self._emit("response.output_item.added", output_index=index, item=item)
        self._finish_item(index, item)

    @staticmethod
    def _reasoning_where(item: _OpenReasoning) -> Obj:
        return {"item_id": item.item_id, "output_index": item.output_index, "summary_index": 0}

    # -- function calls ------------------------------------------------------------------------------

    def open_call(self, call_id: str, name: str) -> FunctionCallHandle:
        call = FunctionCallHandle(_new_id("fc"), self._claim_index(), call_id, name)
        item = _function_call_item(call.item_id, call_id, name, "", "in_progress")
        self._emit("response.output_item.added", output_index=call.output_index, item=item)
        return call

    def call_arguments(self, call: FunctionCallHandle, delta: str) -> None:
        if not delta:
            return
        call.arguments += delta
        self._emit(
            "response.function_call_arguments.delta",
            item_id=call.item_id,
            output_index=call.output_index,
            delta=delta,
        )

    def close_call(self, call: FunctionCallHandle, status: str) -> None:
        self._emit(
            "response.function_call_arguments.done",
            item_id=call.item_id,
            output_index=call.output_index,
            arguments=call.arguments,
        )
        item = _function_call_item(call.item_id, call.call_id, call.name, call.arguments, status)
        self._finish_item(call.output_index, item)

    # -- web search calls ----------------------------------------------------------------------------

    def open_search(self) -> SearchHandle:
        """A ``web_search_call`` item, in progress; what it searched is only known when it closes."""
        search = SearchHandle(_new_id("ws"), self._claim_index())
        item = _search_item(search.item_id, "in_progress", {"type": "search"})
        self._emit("response.output_item.added", output_index=search.output_index, item=item)
        self._search_event(search, "in_progress")
        return search

    def search_running(self, search: SearchHandle) -> None:
        self._search_event(search, "searching")

    def close_search(self, search: SearchHandle, status: str, action: Obj) -> None:
        # OpenAI has no event for a failed search; the item's status says it.
        if status == "completed":
            self._search_event(search, "completed")
        self._finish_item(search.output_index, _search_item(search.item_id, status, action))

    def _search_event(self, search: SearchHandle, stage: str) -> None:
        self._emit(
            f"response.web_search_call.{stage}", item_id=search.item_id, output_index=search.output_index
        )

    # -- plumbing ------------------------------------------------------------------------------------

    def _emit(self, kind: str, **fields: Any) -> None:
        self._events.append({"type": kind, "sequence_number": self._sequence, **fields})
        self._sequence += 1

    def _claim_index(self) -> int:
        index = self._next_index
        self._next_index += 1
        return index

    def _finish_item(self, output_index: int, item: Obj) -> None:
        self._done_items[output_index] = item
        self._emit("response.output_item.done", output_index=output_index, item=item)


def _snapshot(part: Obj) -> Obj:
    # Events are kept (and may be serialised later): later annotations must not change earlier events.
    copy = dict(part)
    if "annotations" in copy:
        copy["annotations"] = list(copy["annotations"])
    return copy


def _search_item(item_id: str, status: str, action: Obj) -> Obj:
    return {"id": item_id, "type": "web_search_call", "status": status, "action": action}


def _reasoning(item_id: str, summary: list[str], encrypted_content: str | None) -> Obj:
    item = _reasoning_item(item_id, summary)
    if encrypted_content is not None:
        item["encrypted_content"] = encrypted_content
    return item
