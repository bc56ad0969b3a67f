"""Golden tests for the Responses <-> chat completions translation, checked against the openai SDK's types."""

from __future__ import annotations

import typing
from typing import Any

import httpx
import openai
import orjson
import pytest

from bifrost_asgi.errors import BifrostError
from bifrost_asgi.translate import (
    ChatToResponsesStream,
    chat_to_responses_response,
    responses_to_chat_request,
)
from tests.translate.openai_shapes import check_events, check_response

Obj = dict[str, Any]

WEATHER_TOOL: Obj = {
    "type": "function",
    "name": "get_weather",
    "description": "Weather for a city",
    "parameters": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]},
    "strict": True,
}
CHAT_WEATHER_TOOL: Obj = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "description": "Weather for a city",
        "parameters": WEATHER_TOOL["parameters"],
        "strict": True,
    },
}


# ---------------------------------------------------------------------------------------------------------
# Request translation
# ---------------------------------------------------------------------------------------------------------


def test_plain_text_input() -> None:
    chat = responses_to_chat_request({"model": "groq/llama", "input": "Hello"}, "llama", stream=False)
    assert chat == {"model": "llama", "messages": [{"role": "user", "content": "Hello"}]}


def test_instructions_become_a_leading_system_message() -> None:
    body = {"input": "Hello", "instructions": "Be brief."}
    chat = responses_to_chat_request(body, "m", stream=False)
    assert chat["messages"] == [
        {"role": "system", "content": "Be brief."},
        {"role": "user", "content": "Hello"},
    ]


def test_multi_turn_with_easy_messages_and_output_messages() -> None:
    body = {
        "input": [
            {"role": "developer", "content": "Answer in French."},
            {"role": "user", "content": [{"type": "input_text", "text": "Hi"}]},
            {
                "type": "message",
                "id": "msg_1",
                "role": "assistant",
                "status": "completed",
                "content": [{"type": "output_text", "text": "Bonjour", "annotations": []}],
            },
            {"type": "message", "role": "user", "content": "How are you?"},
        ]
    }
    chat = responses_to_chat_request(body, "m", stream=False)
    assert chat["messages"] == [
        {"role": "system", "content": "Answer in French."},
        {"role": "user", "content": "Hi"},
        {"role": "assistant", "content": "Bonjour"},
        {"role": "user", "content": "How are you?"},
    ]


def test_images_and_audio_become_chat_parts() -> None:
    content = [
        {"type": "input_text", "text": "What is this?"},
        {"type": "input_image", "image_url": "https://x.test/cat.png", "detail": "low"},
        {"type": "input_image", "image_url": "data:image/png;base64,AAAA"},
        {"type": "input_audio", "input_audio": {"data": "UklG", "format": "wav"}},
    ]
    chat = responses_to_chat_request({"input": [{"role": "user", "content": content}]}, "m", stream=False)
    assert chat["messages"] == [
        {
            "role": "user",
            "content": [
                {"type": "text", "text": "What is this?"},
                {"type": "image_url", "image_url": {"url": "https://x.test/cat.png", "detail": "low"}},
                {"type": "image_url", "image_url": {"url": "data:image/png;base64,AAAA"}},
                {"type": "input_audio", "input_audio": {"data": "UklG", "format": "wav"}},
            ],
        }
    ]


def test_tool_call_round_trip_merges_calls_into_one_assistant_message() -> None:
    body = {
        "input": [
            {"role": "user", "content": "Weather in Paris and Rome?"},
            {"type": "reasoning", "id": "rs_1", "summary": []},
            {"role": "assistant", "content": "Let me check."},
            {
                "type": "function_call",
                "call_id": "call_a",
                "name": "get_weather",
                "arguments": '{"city":"Paris"}',
            },
            {
                "type": "function_call",
                "call_id": "call_b",
                "name": "get_weather",
                "arguments": '{"city":"Rome"}',
            },
            {"type": "function_call_output", "call_id": "call_a", "output": "18C"},
            {
                "type": "function_call_output",
                "call_id": "call_b",
                "output": [{"type": "input_text", "text": "21C"}],
            },
        ],
        "tools": [WEATHER_TOOL],
        "tool_choice": {"type": "function", "name": "get_weather"},
    }
    chat = responses_to_chat_request(body, "m", stream=False)
    assert chat["messages"] == [
        {"role": "user", "content": "Weather in Paris and Rome?"},
        {
            "role": "assistant",
            "content": "Let me check.",
            "tool_calls": [
                {
                    "id": "call_a",
                    "type": "function",
                    "function": {"name": "get_weather", "arguments": '{"city":"Paris"}'},
                },
                {
                    "id": "call_b",
                    "type": "function",
                    "function": {"name": "get_weather", "arguments": '{"city":"Rome"}'},
                },
            ],
        },
        {"role": "tool", "tool_call_id": "call_a", "content": "18C"},
        {"role": "tool", "tool_call_id": "call_b", "content": "21C"},
    ]
    assert chat["tools"] == [CHAT_WEATHER_TOOL]
    assert chat["tool_choice"] == {"type": "function", "function": {"name": "get_weather"}}


def test_function_call_without_preceding_text_opens_an_assistant_message() -> None:
    body = {
        "input": [
            {"role": "user", "content": "Weather?"},
            {"type": "function_call", "call_id": "c1", "name": "get_weather", "arguments": "{}"},
            {"type": "function_call_output", "call_id": "c1", "output": "sunny"},
            {"type": "function_call", "call_id": "c2", "name": "get_weather", "arguments": "{}"},
        ]
    }
    messages = responses_to_chat_request(body, "m", stream=False)["messages"]
    assert [m["role"] for m in messages] == ["user", "assistant", "tool", "assistant"]
    assert messages[1]["content"] is None
    assert [call["id"] for call in messages[3]["tool_calls"]] == ["c2"]


@pytest.mark.parametrize("choice", ["none", "auto", "required"])
def test_parallel_tool_calls_and_string_tool_choice(choice: str) -> None:
    body = {"input": "x", "tools": [WEATHER_TOOL], "tool_choice": choice, "parallel_tool_calls": False}
    chat = responses_to_chat_request(body, "m", stream=False)
    assert chat["tool_choice"] == choice
    assert chat["parallel_tool_calls"] is False


def test_tool_options_without_tools_are_not_sent() -> None:
    # OpenAI-style chat APIs reject tool_choice / parallel_tool_calls when no tools are given.
    body = {"input": "x", "tools": [], "tool_choice": "auto", "parallel_tool_calls": True}
    chat = responses_to_chat_request(body, "m", stream=False)
    assert "tools" not in chat and "tool_choice" not in chat and "parallel_tool_calls" not in chat


def test_json_schema_format() -> None:
    schema = {"type": "object", "properties": {"n": {"type": "integer"}}, "required": ["n"]}
    text = {"format": {"type": "json_schema", "name": "num", "schema": schema, "strict": True}}
    chat = responses_to_chat_request({"input": "x", "text": text}, "m", stream=False)
    assert chat["response_format"] == {
        "type": "json_schema",
        "json_schema": {"name": "num", "schema": schema, "strict": True},
    }


def test_json_object_and_text_formats() -> None:
    as_object = responses_to_chat_request(
        {"input": "x", "text": {"format": {"type": "json_object"}}}, "m", stream=False
    )
    assert as_object["response_format"] == {"type": "json_object"}
    as_text = responses_to_chat_request(
        {"input": "x", "text": {"format": {"type": "text"}}}, "m", stream=False
    )
    assert "response_format" not in as_text


def test_sampling_params_map_and_service_fields_drop() -> None:
    body = {
        "model": "groq/llama",
        "input": "x",
        "stream": True,
        "max_output_tokens": 256,
        "temperature": 0.2,
        "top_p": 0.9,
        "safety_identifier": "user-42",
        "reasoning": {"effort": "low", "summary": "auto"},
        "metadata": {"k": "v"},
        "store": True,
        "include": ["reasoning.encrypted_content"],
        "truncation": "auto",
        "seed": 7,
    }
    chat = responses_to_chat_request(body, "llama", stream=True)
    assert chat == {
        "model": "llama",
        "messages": [{"role": "user", "content": "x"}],
        "max_tokens": 256,
        "temperature": 0.2,
        "top_p": 0.9,
        "user": "user-42",
        "reasoning_effort": "low",
        "seed": 7,
        "stream": True,
        "stream_options": {"include_usage": True},
    }


def test_user_is_forwarded() -> None:
    assert responses_to_chat_request({"input": "x", "user": "u1"}, "m", stream=False)["user"] == "u1"


BAD_REQUESTS: list[tuple[str, Obj, str]] = [
    ("missing input", {}, "input is required"),
    ("item_reference", {"input": [{"type": "item_reference", "id": "msg_1"}]}, "item_reference"),
    ("previous_response_id", {"input": "x", "previous_response_id": "resp_1"}, "previous_response_id"),
    ("conversation", {"input": "x", "conversation": "conv_1"}, "conversation"),
    ("stored prompt", {"input": "x", "prompt": {"id": "pmpt_1"}}, "prompt"),
    ("background", {"input": "x", "background": True}, "background"),
    ("web_search tool", {"input": "x", "tools": [{"type": "web_search"}]}, "'web_search'"),
    ("mcp tool", {"input": "x", "tools": [{"type": "mcp", "server_label": "s"}]}, "'mcp'"),
    ("file_search tool", {"input": "x", "tools": [{"type": "file_search"}]}, "'file_search'"),
    (
        "input_file",
        {"input": [{"role": "user", "content": [{"type": "input_file", "file_id": "file_1"}]}]},
        "input_file",
    ),
    (
        "image by file_id",
        {
            "input": [
                {"role": "user", "content": [{"type": "input_image", "file_id": "file_1", "detail": "auto"}]}
            ]
        },
        "file_id",
    ),
    ("hosted tool call item", {"input": [{"type": "web_search_call", "id": "ws_1"}]}, "'web_search_call'"),
    (
        "hosted tool_choice",
        {"input": "x", "tools": [WEATHER_TOOL], "tool_choice": {"type": "file_search"}},
        "tool_choice",
    ),
    ("text format", {"input": "x", "text": {"format": {"type": "grammar"}}}, "text.format"),
    (
        "image in tool output",
        {"input": [{"type": "function_call_output", "call_id": "c", "output": [{"type": "input_image"}]}]},
        "function_call_output",
    ),
    ("bad role", {"input": [{"role": "tool", "content": "x"}]}, "role"),
    ("instructions list", {"input": "x", "instructions": [{"role": "system"}]}, "instructions"),
]


@pytest.mark.parametrize(
    ("body", "needle"), [case[1:] for case in BAD_REQUESTS], ids=[c[0] for c in BAD_REQUESTS]
)
def test_unrepresentable_requests_are_400(body: Obj, needle: str) -> None:
    with pytest.raises(BifrostError) as caught:
        responses_to_chat_request(body, "m", stream=False)
    assert caught.value.status_code == 400
    assert caught.value.error_type == "invalid_request_error"
    assert needle in caught.value.message


# ---------------------------------------------------------------------------------------------------------
# Non-streaming response translation
# ---------------------------------------------------------------------------------------------------------


def _chat(message: Obj, finish: str = "stop", usage: Obj | None = None) -> Obj:
    chat: Obj = {
        "id": "chatcmpl-1",
        "object": "chat.completion",
        "created": 1_700_000_000,
        "model": "llama-3.1-8b",
        "choices": [{"index": 0, "message": {"role": "assistant", **message}, "finish_reason": finish}],
    }
    if usage is not None:
        chat["usage"] = usage
    return chat


CHAT_USAGE: Obj = {
    "prompt_tokens": 12,
    "completion_tokens": 5,
    "total_tokens": 17,
    "prompt_tokens_details": {"cached_tokens": 4},
    "completion_tokens_details": {"reasoning_tokens": 2},
}
RESPONSES_USAGE: Obj = {
    "input_tokens": 12,
    "input_tokens_details": {"cached_tokens": 4, "cache_write_tokens": 0},
    "output_tokens": 5,
    "output_tokens_details": {"reasoning_tokens": 2},
    "total_tokens": 17,
}


def test_text_response_is_a_valid_openai_response() -> None:
    request = {"input": "hi", "instructions": "Be brief.", "max_output_tokens": 50, "temperature": 0.5}
    result = chat_to_responses_response(
        _chat({"content": "Hello!"}, usage=CHAT_USAGE), request=request, model="m"
    )
    parsed = check_response(result)
    assert parsed.output_text == "Hello!"
    assert result["id"].startswith("resp_")
    assert result["object"] == "response" and result["status"] == "completed"
    assert result["created_at"] == 1_700_000_000
    assert result["model"] == "m"
    assert result["usage"] == RESPONSES_USAGE
    [item] = result["output"]
    assert item["id"].startswith("msg_")
    assert item == {
        "id": item["id"],
        "type": "message",
        "status": "completed",
        "role": "assistant",
        "content": [{"type": "output_text", "text": "Hello!", "annotations": [], "logprobs": []}],
    }
    assert result["instructions"] == "Be brief." and result["max_output_tokens"] == 50
    assert result["temperature"] == 0.5
    assert (result["metadata"], result["tools"], result["tool_choice"]) == ({}, [], "auto")
    assert result["parallel_tool_calls"] is True
    assert result["text"] == {"format": {"type": "text"}}
    assert result["error"] is None and result["incomplete_details"] is None


def test_parallel_tool_calls_response() -> None:
    calls = [
        {
            "id": "call_a",
            "type": "function",
            "function": {"name": "get_weather", "arguments": '{"city":"Paris"}'},
        },
        {
            "id": "call_b",
            "type": "function",
            "function": {"name": "get_weather", "arguments": '{"city":"Rome"}'},
        },
    ]
    request = {"input": "x", "tools": [WEATHER_TOOL], "tool_choice": "required"}
    chat = _chat({"content": "Checking.", "tool_calls": calls}, finish="tool_calls")
    result = chat_to_responses_response(chat, request=request, model="m")
    parsed = check_response(result)
    assert [item.type for item in parsed.output] == ["message", "function_call", "function_call"]
    assert [(i["call_id"], i["name"], i["arguments"], i["status"]) for i in result["output"][1:]] == [
        ("call_a", "get_weather", '{"city":"Paris"}', "completed"),
        ("call_b", "get_weather", '{"city":"Rome"}', "completed"),
    ]
    assert all(item["id"].startswith("fc_") for item in result["output"][1:])
    assert result["tools"] == [WEATHER_TOOL] and result["tool_choice"] == "required"
    assert result["status"] == "completed" and result["usage"] is None


def test_reasoning_content_becomes_a_leading_reasoning_item() -> None:
    chat = _chat({"content": "42", "reasoning_content": "Think, think."})
    result = chat_to_responses_response(chat, request={"input": "x"}, model="m")
    check_response(result)
    reasoning, message = result["output"]
    assert reasoning["type"] == "reasoning" and reasoning["id"].startswith("rs_")
    assert reasoning["summary"] == [{"type": "summary_text", "text": "Think, think."}]
    assert message["content"][0]["text"] == "42"


def test_groq_style_reasoning_field() -> None:
    result = chat_to_responses_response(_chat({"content": "ok", "reasoning": "hmm"}), request={}, model="m")
    assert result["output"][0]["summary"][0]["text"] == "hmm"


def test_refusal_becomes_a_refusal_part() -> None:
    result = chat_to_responses_response(
        _chat({"content": None, "refusal": "I can't."}), request={}, model="m"
    )
    check_response(result)
    assert result["output"][0]["content"] == [{"type": "refusal", "refusal": "I can't."}]


@pytest.mark.parametrize(
    ("finish", "reason"), [("length", "max_output_tokens"), ("content_filter", "content_filter")]
)
def test_truncated_response_is_incomplete(finish: str, reason: str) -> None:
    result = chat_to_responses_response(_chat({"content": "Once upon"}, finish=finish), request={}, model="m")
    check_response(result)
    assert result["status"] == "incomplete"
    assert result["incomplete_details"] == {"reason": reason}
    assert result["output"][0]["status"] == "incomplete"
    assert result["completed_at"] is None


def test_usage_without_details_and_without_total() -> None:
    chat = _chat({"content": "x"}, usage={"prompt_tokens": 3, "completion_tokens": 4})
    usage = chat_to_responses_response(chat, request={}, model="m")["usage"]
    assert usage["total_tokens"] == 7
    assert usage["input_tokens_details"] == {"cached_tokens": 0, "cache_write_tokens": 0}
    assert usage["output_tokens_details"] == {"reasoning_tokens": 0}


# ---------------------------------------------------------------------------------------------------------
# Streaming response translation
# ---------------------------------------------------------------------------------------------------------


def _chunk(delta: Obj | None = None, finish: str | None = None) -> Obj:
    choice: Obj = {"index": 0, "delta": delta or {}, "finish_reason": finish}
    return {
        "id": "chatcmpl-1",
        "object": "chat.completion.chunk",
        "created": 1,
        "model": "x",
        "choices": [choice],
    }


def _usage_chunk(usage: Obj) -> Obj:
    return {
        "id": "chatcmpl-1",
        "object": "chat.completion.chunk",
        "created": 1,
        "model": "x",
        "choices": [],
        "usage": usage,
    }


def _call(index: int, *, call_id: str | None = None, name: str | None = None, args: str | None = None) -> Obj:
    delta: Obj = {"index": index, "function": {}}
    if call_id is not None:
        delta["id"] = call_id
        delta["type"] = "function"
    if name is not None:
        delta["function"]["name"] = name
    if args is not None:
        delta["function"]["arguments"] = args
    return delta


def _run(chunks: list[Obj], request: Obj | None = None) -> tuple[ChatToResponsesStream, list[Obj]]:
    stream = ChatToResponsesStream(request=request or {"input": "x"}, model="m")
    events = stream.start()
    for chunk in chunks:
        events += stream.feed(chunk)
    events += stream.finish()
    return stream, events


TEXT_CHUNKS = [
    _chunk({"role": "assistant", "content": ""}),
    _chunk({"content": "Hel"}),
    _chunk({"content": "lo"}),
    _chunk(finish="stop"),
    _usage_chunk(CHAT_USAGE),
]


def test_text_stream_follows_openai_order() -> None:
    stream, events = _run(TEXT_CHUNKS)
    check_events(events)
    assert [e["type"] for e in events] == [
        "response.created",
        "response.in_progress",
        "response.output_item.added",
        "response.content_part.added",
        "response.output_text.delta",
        "response.output_text.delta",
        "response.output_text.done",
        "response.content_part.done",
        "response.output_item.done",
        "response.completed",
    ]
    created = events[0]["response"]
    assert created["status"] == "in_progress" and created["output"] == [] and created["usage"] is None
    assert events[6]["text"] == "Hello" and events[6]["logprobs"] == []
    assert events[7]["part"] == {"type": "output_text", "text": "Hello", "annotations": [], "logprobs": []}
    completed = events[-1]["response"]
    assert completed["id"] == created["id"] and completed["status"] == "completed"
    assert completed["usage"] == RESPONSES_USAGE == stream.usage
    assert check_response(completed).output_text == "Hello"
    assert stream.response["output"] == completed["output"]


def test_parallel_tool_calls_interleaved_by_index() -> None:
    chunks = [
        _chunk({"role": "assistant", "content": "Checking."}),
        _chunk({"tool_calls": [_call(0, call_id="call_a", name="get_weather", args="")]}),
        _chunk({"tool_calls": [_call(1, call_id="call_b", name="get_weather", args='{"ci')]}),
        _chunk({"tool_calls": [_call(0, args='{"city":')]}),
        _chunk({"tool_calls": [_call(1, args='ty":"Rome"}')]}),
        _chunk({"tool_calls": [_call(0, args='"Paris"}')]}),
        _chunk(finish="tool_calls"),
    ]
    stream, events = _run(chunks)
    check_events(events)
    types = [e["type"] for e in events]
    # The message is closed before the first function call is announced, as OpenAI orders items.
    assert types.index("response.output_item.done") < types.index("response.function_call_arguments.delta")
    added = [e for e in events if e["type"] == "response.output_item.added"]
    assert [(e["output_index"], e["item"]["type"]) for e in added] == [
        (0, "message"),
        (1, "function_call"),
        (2, "function_call"),
    ]
    assert added[1]["item"]["arguments"] == "" and added[1]["item"]["status"] == "in_progress"
    arg_deltas = [(e["output_index"], e["delta"]) for e in events if e["type"].endswith("arguments.delta")]
    assert arg_deltas == [(2, '{"ci'), (1, '{"city":'), (2, 'ty":"Rome"}'), (1, '"Paris"}')]
    done = [e for e in events if e["type"] == "response.function_call_arguments.done"]
    assert [(e["output_index"], e["arguments"]) for e in done] == [
        (1, '{"city":"Paris"}'),
        (2, '{"city":"Rome"}'),
    ]
    # Exactly OpenAI's fields: the name is on the item, never on this event.
    assert {frozenset(e) for e in done} == {
        frozenset({"type", "sequence_number", "item_id", "output_index", "arguments"})
    }
    output = stream.response["output"]
    assert [(i["type"], i.get("call_id")) for i in output] == [
        ("message", None),
        ("function_call", "call_a"),
        ("function_call", "call_b"),
    ]
    assert events[-1]["type"] == "response.completed"


def test_tool_call_name_after_first_delta_and_missing_ids() -> None:
    chunks = [
        _chunk({"tool_calls": [_call(0, args='{"a":')]}),
        _chunk({"tool_calls": [_call(0, name="f", args="1}")]}),
        _chunk(finish="tool_calls"),
    ]
    _, events = _run(chunks)
    check_events(events)
    added = next(e for e in events if e["type"] == "response.output_item.added")
    assert added["item"]["name"] == "f" and added["item"]["call_id"].startswith("call_")
    deltas = [e["delta"] for e in events if e["type"] == "response.function_call_arguments.delta"]
    # Arguments that arrived before the name are sent as one delta once the call can be announced.
    assert deltas == ['{"a":1}']


def test_complete_calls_repeating_index_zero_stay_separate() -> None:
    chunks = [
        _chunk({"tool_calls": [_call(0, call_id="c1", name="f", args="{}")]}),
        _chunk({"tool_calls": [_call(0, call_id="c2", name="g", args="{}")]}),
        _chunk(finish="tool_calls"),
    ]
    stream, events = _run(chunks)
    check_events(events)
    assert [(i["call_id"], i["name"]) for i in stream.response["output"]] == [("c1", "f"), ("c2", "g")]


def test_reasoning_stream() -> None:
    chunks = [
        _chunk({"role": "assistant", "reasoning_content": "Let me "}),
        _chunk({"reasoning_content": "think."}),
        _chunk({"content": "42"}),
        _chunk(finish="stop"),
    ]
    stream, events = _run(chunks)
    check_events(events)
    assert [e["type"] for e in events][2:10] == [
        "response.output_item.added",
        "response.reasoning_summary_part.added",
        "response.reasoning_summary_text.delta",
        "response.reasoning_summary_text.delta",
        "response.reasoning_summary_text.done",
        "response.reasoning_summary_part.done",
        "response.output_item.done",
        "response.output_item.added",
    ]
    assert events[6]["text"] == "Let me think."
    reasoning, message = stream.response["output"]
    assert reasoning["summary"] == [{"type": "summary_text", "text": "Let me think."}]
    assert message["content"][0]["text"] == "42"


def test_refusal_stream() -> None:
    stream, events = _run([_chunk({"refusal": "No"}), _chunk({"refusal": "pe."}), _chunk(finish="stop")])
    check_events(events)
    assert "response.refusal.done" in [e["type"] for e in events]
    assert stream.response["output"][0]["content"] == [{"type": "refusal", "refusal": "Nope."}]


def test_length_finish_ends_with_response_incomplete() -> None:
    stream, events = _run([_chunk({"content": "Once upon"}), _chunk(finish="length")])
    check_events(events)
    final = events[-1]
    assert final["type"] == "response.incomplete"
    assert final["response"]["status"] == "incomplete"
    assert final["response"]["incomplete_details"] == {"reason": "max_output_tokens"}
    assert final["response"]["output"][0]["status"] == "incomplete"
    check_response(final["response"])


def test_usage_only_chunk_sets_usage() -> None:
    stream = ChatToResponsesStream(request={}, model="m")
    stream.start()
    assert stream.usage is None
    assert stream.feed(_usage_chunk(CHAT_USAGE)) == []
    assert stream.usage == RESPONSES_USAGE


def test_feed_before_start_starts_and_finish_is_idempotent() -> None:
    stream = ChatToResponsesStream(request={}, model="m")
    events = stream.feed(_chunk({"content": "a"}))
    assert [e["type"] for e in events][:2] == ["response.created", "response.in_progress"]
    assert stream.start() == []
    assert stream.finish()[-1]["type"] == "response.completed"
    assert stream.finish() == [] and stream.feed(_chunk({"content": "b"})) == []


def test_empty_stream_completes_with_no_output() -> None:
    stream, events = _run([])
    check_events(events)
    assert [e["type"] for e in events] == ["response.created", "response.in_progress", "response.completed"]
    assert stream.response["output"] == []


# ---------------------------------------------------------------------------------------------------------
# The official SDK reads the translated stream
# ---------------------------------------------------------------------------------------------------------


def _sse(events: list[Obj]) -> bytes:
    return b"".join(f"event: {e['type']}\ndata: ".encode() + orjson.dumps(e) + b"\n\n" for e in events)


SDK_CHUNKS = [
    _chunk({"role": "assistant", "content": "Let me check"}),
    _chunk({"content": " both."}),
    _chunk({"tool_calls": [_call(0, call_id="call_a", name="get_weather", args='{"city":')]}),
    _chunk({"tool_calls": [_call(1, call_id="call_b", name="get_weather", args='{"city":"Rome"}')]}),
    _chunk({"tool_calls": [_call(0, args='"Paris"}')]}),
    _chunk(finish="tool_calls"),
    _usage_chunk(CHAT_USAGE),
]


def _client() -> openai.AsyncOpenAI:
    _, events = _run(SDK_CHUNKS, request={"input": "x", "tools": [WEATHER_TOOL]})
    body = _sse(events)

    def handler(request: httpx.Request) -> httpx.Response:
        assert request.url.path == "/v1/responses"
        return httpx.Response(200, headers={"content-type": "text/event-stream"}, content=body)

    http_client = httpx.AsyncClient(transport=httpx.MockTransport(handler))
    # Newer SDKs are typed against their bundled httpx2 but accept an httpx client at runtime.
    return openai.AsyncOpenAI(
        api_key="sk-test", base_url="http://gateway.test/v1", http_client=typing.cast(Any, http_client)
    )


async def test_sdk_create_stream_parses_every_event() -> None:
    async with _client() as client:
        stream = await client.responses.create(model="m", input="x", tools=[], stream=True)
        events = [event async for event in stream]
    assert events[0].type == "response.created" and events[-1].type == "response.completed"
    text = "".join(e.delta for e in events if e.type == "response.output_text.delta")
    assert text == "Let me check both."
    final = events[-1].response
    assert final.output_text == "Let me check both."
    assert final.usage is not None and final.usage.total_tokens == 17


async def test_sdk_stream_helper_final_response() -> None:
    async with _client() as client, client.responses.stream(model="m", input="x") as stream:
        final = await stream.get_final_response()
    assert final.output_text == "Let me check both."
    calls = [item for item in final.output if item.type == "function_call"]
    assert [(c.call_id, c.name, c.arguments) for c in calls] == [
        ("call_a", "get_weather", '{"city":"Paris"}'),
        ("call_b", "get_weather", '{"city":"Rome"}'),
    ]
    assert final.usage is not None
    assert (final.usage.input_tokens, final.usage.output_tokens) == (12, 5)
    assert final.usage.input_tokens_details.cached_tokens == 4
    assert final.usage.output_tokens_details.reasoning_tokens == 2
