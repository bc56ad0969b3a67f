"""Golden tests for the Anthropic Messages translations, checked against the openai and anthropic SDKs' types.

Forward (the anthropic provider): Responses / chat / text requests -> Messages, and Messages answers
(JSON and SSE) -> Responses / chat / text. Reverse (the /anthropic integration): Messages requests ->
Responses, and Responses answers (JSON and events) -> Messages.
"""

from __future__ import annotations

from typing import Any

import orjson
import pydantic
import pytest
from anthropic.lib.streaming._messages import accumulate_event
from anthropic.types import Message, RawMessageStreamEvent
from openai.types import Completion

from bifrost_asgi.errors import BifrostError
from bifrost_asgi.translate import (
    ChatToResponsesStream,
    MessagesToChatStream,
    MessagesToResponsesStream,
    ResponsesToMessagesStream,
    anthropic_error_status,
    anthropic_error_type,
    chat_to_messages_request,
    count_tokens_request,
    messages_to_chat_completion,
    messages_to_responses_request,
    messages_to_responses_response,
    messages_to_text_completion,
    responses_to_message,
    responses_to_messages_request,
    text_to_messages_request,
)
from tests.translate.openai_shapes import check_chat, check_chunks, check_events, check_response

Obj = dict[str, Any]

WEATHER_TOOL: Obj = {
    "type": "function",
    "name": "get_weather",
    "description": "Weather for a city",
    "parameters": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]},
}
ANTHROPIC_WEATHER_TOOL: Obj = {
    "name": "get_weather",
    "description": "Weather for a city",
    "input_schema": WEATHER_TOOL["parameters"],
}
PNG = "iVBORw0KGgo="
ANTHROPIC_USAGE: Obj = {
    "input_tokens": 20,
    "cache_read_input_tokens": 100,
    "cache_creation_input_tokens": 50,
    "output_tokens": 10,
}
RESPONSES_USAGE: Obj = {
    "input_tokens": 170,
    "input_tokens_details": {
        "cached_tokens": 100,
        "cache_write_tokens": 50,
        "cached_read_tokens": 100,
        "cached_write_tokens": 50,
    },
    "output_tokens": 10,
    "output_tokens_details": {"reasoning_tokens": 0},
    "total_tokens": 180,
}
CHAT_USAGE: Obj = {
    "prompt_tokens": 170,
    "completion_tokens": 10,
    "total_tokens": 180,
    "prompt_tokens_details": RESPONSES_USAGE["input_tokens_details"],
    "completion_tokens_details": {"reasoning_tokens": 0},
}


ANTHROPIC_EVENT = pydantic.TypeAdapter(RawMessageStreamEvent)


def _to_messages(body: Obj, **kwargs: Any) -> Obj:
    return responses_to_messages_request(body, "claude-sonnet-4-5", stream=kwargs.pop("stream", False))


def _user(*blocks: Obj) -> Obj:
    return {"role": "user", "content": list(blocks)}


def _assistant(*blocks: Obj) -> Obj:
    return {"role": "assistant", "content": list(blocks)}


def _text(text: str) -> Obj:
    return {"type": "text", "text": text}


# =========================================================================================================
# Requests: Responses -> Messages
# =========================================================================================================


def test_plain_text_input_gets_the_default_max_tokens() -> None:
    assert _to_messages({"model": "anthropic/claude-sonnet-4-5", "input": "Hello"}) == {
        "model": "claude-sonnet-4-5",
        "max_tokens": 4096,
        "messages": [_user(_text("Hello"))],
    }


def test_instructions_and_system_messages_become_the_system_prompt() -> None:
    one = _to_messages({"input": "Hi", "instructions": "Be brief."})
    assert one["system"] == "Be brief."
    several = _to_messages(
        {
            "instructions": "Be brief.",
            "input": [
                {"role": "developer", "content": "Answer in French."},
                {"role": "user", "content": "Hi"},
                {"role": "system", "content": [{"type": "input_text", "text": "No emoji."}]},
            ],
        }
    )
    assert several["system"] == [_text("Be brief."), _text("Answer in French."), _text("No emoji.")]
    assert several["messages"] == [_user(_text("Hi"))]


def test_multi_turn_merges_consecutive_turns_of_one_role() -> None:
    body = {
        "input": [
            {"role": "user", "content": [{"type": "input_text", "text": "Hi"}]},
            {
                "type": "message",
                "id": "msg_1",
                "role": "assistant",
                "status": "completed",
                "content": [{"type": "output_text", "text": "Bonjour", "annotations": []}],
            },
            {"role": "assistant", "content": [{"type": "refusal", "refusal": "Not that."}]},
            {"type": "message", "role": "user", "content": "How are you?"},
            {"role": "user", "content": ""},
        ]
    }
    assert _to_messages(body)["messages"] == [
        _user(_text("Hi")),
        _assistant(_text("Bonjour"), _text("Not that.")),
        _user(_text("How are you?")),
    ]


def test_function_tools_and_tool_choice() -> None:
    req = _to_messages(
        {"input": "Weather?", "tools": [{**WEATHER_TOOL, "strict": True}], "tool_choice": "auto"}
    )
    assert req["tools"] == [{**ANTHROPIC_WEATHER_TOOL, "strict": True}]
    assert req["tool_choice"] == {"type": "auto"}
    bare = _to_messages({"input": "x", "tools": [{"type": "function", "name": "ping"}]})
    assert bare["tools"] == [{"name": "ping", "input_schema": {"type": "object", "properties": {}}}]
    assert "tool_choice" not in bare


@pytest.mark.parametrize(
    ("choice", "parallel", "expected"),
    [
        ("auto", None, {"type": "auto"}),
        ("required", None, {"type": "any"}),
        ("none", None, {"type": "none"}),
        ({"type": "function", "name": "get_weather"}, None, {"type": "tool", "name": "get_weather"}),
        (None, False, {"type": "auto", "disable_parallel_tool_use": True}),
        ("required", False, {"type": "any", "disable_parallel_tool_use": True}),
        ("none", False, {"type": "none"}),
    ],
)
def test_tool_choice_mapping(choice: Any, parallel: Any, expected: Obj) -> None:
    body = {"input": "x", "tools": [WEATHER_TOOL], "tool_choice": choice, "parallel_tool_calls": parallel}
    assert _to_messages(body)["tool_choice"] == expected


def test_tool_choice_without_tools_is_not_sent() -> None:
    assert "tool_choice" not in _to_messages({"input": "x", "tool_choice": "required"})


def test_tool_call_round_trip_with_parallel_calls() -> None:
    body = {
        "input": [
            {"role": "user", "content": "Weather in Paris and Rome?"},
            {
                "type": "reasoning",
                "id": "rs_1",
                "summary": [{"type": "summary_text", "text": "Two calls."}],
                "encrypted_content": "sig-1",
            },
            {
                "type": "message",
                "role": "assistant",
                "content": [{"type": "output_text", "text": "Checking."}],
            },
            {
                "type": "function_call",
                "call_id": "toolu_a",
                "name": "get_weather",
                "arguments": '{"city":"Paris"}',
            },
            {
                "type": "function_call",
                "call_id": "toolu_b",
                "name": "get_weather",
                "arguments": '{"city":"Rome"}',
            },
            {"type": "function_call_output", "call_id": "toolu_a", "output": "Sunny"},
            {
                "type": "function_call_output",
                "call_id": "toolu_b",
                "output": [
                    {"type": "input_text", "text": "Rain"},
                    {"type": "input_image", "image_url": "https://x/r.png"},
                ],
            },
            {"role": "user", "content": "And tomorrow?"},
        ],
        "tools": [WEATHER_TOOL],
    }
    assert _to_messages(body)["messages"] == [
        _user(_text("Weather in Paris and Rome?")),
        _assistant(
            {"type": "thinking", "thinking": "Two calls.", "signature": "sig-1"},
            _text("Checking."),
            {"type": "tool_use", "id": "toolu_a", "name": "get_weather", "input": {"city": "Paris"}},
            {"type": "tool_use", "id": "toolu_b", "name": "get_weather", "input": {"city": "Rome"}},
        ),
        _user(
            {"type": "tool_result", "tool_use_id": "toolu_a", "content": "Sunny"},
            {
                "type": "tool_result",
                "tool_use_id": "toolu_b",
                "content": [
                    _text("Rain"),
                    {"type": "image", "source": {"type": "url", "url": "https://x/r.png"}},
                ],
            },
            _text("And tomorrow?"),
        ),
    ]


def test_tool_results_go_before_text_in_a_merged_user_turn() -> None:
    body = {
        "input": [
            {"type": "function_call", "call_id": "c1", "name": "f", "arguments": ""},
            {"role": "user", "content": "Note: use metric."},
            {"type": "function_call_output", "call_id": "c1", "output": ""},
        ]
    }
    assert _to_messages(body)["messages"] == [
        _assistant({"type": "tool_use", "id": "c1", "name": "f", "input": {}}),
        _user({"type": "tool_result", "tool_use_id": "c1"}, _text("Note: use metric.")),
    ]


def test_images_and_pdf_documents() -> None:
    body = {
        "input": [
            {
                "role": "user",
                "content": [
                    {"type": "input_text", "text": "What is this?"},
                    {"type": "input_image", "image_url": f"data:image/png;base64,{PNG}", "detail": "high"},
                    {"type": "input_image", "image_url": "https://example.com/cat.jpg"},
                    {
                        "type": "input_file",
                        "filename": "a.pdf",
                        "file_data": "data:application/pdf;base64,JVBERi0=",
                    },
                    {"type": "input_file", "file_url": "https://example.com/a.pdf"},
                ],
            }
        ]
    }
    assert _to_messages(body)["messages"][0]["content"] == [
        _text("What is this?"),
        {"type": "image", "source": {"type": "base64", "media_type": "image/png", "data": PNG}},
        {"type": "image", "source": {"type": "url", "url": "https://example.com/cat.jpg"}},
        {
            "type": "document",
            "source": {"type": "base64", "media_type": "application/pdf", "data": "JVBERi0="},
        },
        {"type": "document", "source": {"type": "url", "url": "https://example.com/a.pdf"}},
    ]


def test_reasoning_items_replay_as_signed_thinking() -> None:
    body = {
        "input": [
            {"role": "user", "content": "Hi"},
            {
                "type": "reasoning",
                "summary": [{"type": "summary_text", "text": "Think."}],
                "encrypted_content": "sig",
            },
            {"type": "reasoning", "summary": [], "encrypted_content": "REDACTED=="},
            # From another provider: no signature Anthropic could verify, so it is not replayed.
            {"type": "reasoning", "summary": [{"type": "summary_text", "text": "Unsigned."}]},
            {"role": "assistant", "content": "Hello!"},
        ]
    }
    assert _to_messages(body)["messages"][1] == _assistant(
        {"type": "thinking", "thinking": "Think.", "signature": "sig"},
        {"type": "redacted_thinking", "data": "REDACTED=="},
        _text("Hello!"),
    )


@pytest.mark.parametrize(
    ("reasoning", "max_output_tokens", "thinking"),
    [
        ({"effort": "low"}, None, {"type": "enabled", "budget_tokens": 1024}),
        ({"effort": "medium", "summary": "auto"}, None, {"type": "enabled", "budget_tokens": 2048}),
        ({"effort": "high"}, 20000, {"type": "enabled", "budget_tokens": 16000}),
        ({"effort": "minimal"}, 2000, {"type": "enabled", "budget_tokens": 1024}),
        ({"max_tokens": 3000}, 8000, {"type": "enabled", "budget_tokens": 3000}),
        ({"effort": "none"}, None, None),
    ],
)
def test_reasoning_enables_thinking(
    reasoning: Obj, max_output_tokens: int | None, thinking: Obj | None
) -> None:
    req = _to_messages({"input": "x", "reasoning": reasoning, "max_output_tokens": max_output_tokens})
    assert req.get("thinking") == thinking
    assert req["max_tokens"] == (max_output_tokens or 4096)


def test_sampling_user_format_stream_and_extra_params() -> None:
    body = {
        "input": "x",
        "max_output_tokens": 300,
        "temperature": 0.2,
        "top_p": 0.9,
        "user": "u-1",
        "safety_identifier": "sid-1",
        "text": {
            "format": {"type": "json_schema", "name": "out", "schema": {"type": "object"}},
            "verbosity": "low",
        },
        "store": False,
        "metadata": {"k": "v"},
        "include": ["reasoning.encrypted_content"],
        "top_k": 5,
        "fallbacks": ["openai/gpt-4o"],
    }
    assert _to_messages(body, stream=True) == {
        "model": "claude-sonnet-4-5",
        "max_tokens": 300,
        "messages": [_user(_text("x"))],
        "temperature": 0.2,
        "top_p": 0.9,
        "metadata": {"user_id": "sid-1"},
        "output_config": {"format": {"type": "json_schema", "schema": {"type": "object"}}},
        "top_k": 5,
        "stream": True,
    }


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ({"input": "x", "previous_response_id": "resp_1"}, "previous_response_id needs server-side state"),
        ({"input": "x", "conversation": "conv_1"}, "conversation needs server-side state"),
        ({"input": "x", "background": True}, "background responses are not supported"),
        ({"input": "x", "top_logprobs": 3}, "top_logprobs cannot be sent to Anthropic"),
        ({}, "input is required"),
        (
            {"input": [{"type": "item_reference", "id": "msg_1"}]},
            "item_reference points at an item stored by OpenAI",
        ),
        ({"input": [{"type": "file_search_call"}]}, "input item type 'file_search_call' cannot be sent"),
        ({"input": [{"role": "tool", "content": "x"}]}, "role must be one of"),
        ({"input": "x", "tools": [{"type": "file_search"}]}, "tool type 'file_search' cannot be sent"),
        (
            {"input": "x", "tools": [WEATHER_TOOL], "tool_choice": {"type": "allowed_tools"}},
            "tool_choice 'allowed_tools' cannot be sent",
        ),
        (
            {"input": [{"role": "user", "content": [{"type": "input_image", "file_id": "file-1"}]}]},
            "file_id is not supported",
        ),
        (
            {
                "input": [
                    {
                        "role": "user",
                        "content": [{"type": "input_image", "image_url": "data:image/bmp;base64,AA"}],
                    }
                ]
            },
            "image type 'image/bmp' is not supported",
        ),
        (
            {
                "input": [
                    {"role": "user", "content": [{"type": "input_image", "image_url": "data:image/png,AA"}]}
                ]
            },
            "data URLs must be base64-encoded",
        ),
        (
            {"input": [{"role": "user", "content": [{"type": "input_image", "image_url": "ftp://x/a.png"}]}]},
            "image URLs must be http(s) or data: URLs",
        ),
        (
            {"input": [{"role": "user", "content": [{"type": "input_audio", "input_audio": {}}]}]},
            "content part type 'input_audio' cannot be sent",
        ),
        (
            {
                "input": [
                    {
                        "role": "user",
                        "content": [{"type": "input_file", "file_data": "data:text/csv;base64,AA"}],
                    }
                ]
            },
            "file type 'text/csv' cannot be sent to Anthropic",
        ),
        (
            {"input": [{"role": "user", "content": [{"type": "input_file", "file_id": "file-1"}]}]},
            "files need file_data as a data: URL or a file_url",
        ),
        (
            {"input": [{"role": "system", "content": [{"type": "input_image", "image_url": "https://x"}]}]},
            "system messages can only carry text",
        ),
        (
            {
                "input": [
                    {"role": "assistant", "content": [{"type": "input_image", "image_url": "https://x"}]}
                ]
            },
            "assistant messages can only carry text or refusal parts",
        ),
        (
            {"input": [{"type": "function_call", "call_id": "c", "name": "f", "arguments": "[1]"}]},
            "arguments must be a JSON object",
        ),
        ({"input": [{"type": "function_call", "name": "f", "arguments": "{}"}]}, "needs an id and a name"),
        ({"input": [{"type": "function_call_output", "output": "x"}]}, "needs the id of its call"),
        ({"input": "x", "max_output_tokens": 0}, "max_output_tokens must be a positive integer"),
        (
            {"input": "x", "max_output_tokens": 1024, "reasoning": {"effort": "high"}},
            "thinking budget must be at least 1024 and below max_tokens",
        ),
        ({"input": "x", "reasoning": {"effort": "extreme"}}, "'extreme' is not a known reasoning effort"),
        ({"input": "x", "text": {"format": {"type": "json_object"}}}, "use json_schema"),
        ({"input": "x", "instructions": ["a"]}, "instructions must be a string"),
    ],
)
def test_what_anthropic_cannot_express_is_a_400(body: Obj, message: str) -> None:
    with pytest.raises(BifrostError) as info:
        _to_messages(body)
    err = info.value
    assert err.status_code == 400 and err.error_type == "invalid_request_error"
    assert message in err.message
    assert not err.allow_fallbacks


# =========================================================================================================
# Requests: chat completions and text completions -> Messages
# =========================================================================================================


def test_chat_request_with_tools_reasoning_and_stop() -> None:
    body = {
        "model": "anthropic/claude-sonnet-4-5",
        "messages": [
            {"role": "system", "content": "Be brief."},
            {
                "role": "user",
                "content": [
                    {"type": "text", "text": "Weather?"},
                    {"type": "image_url", "image_url": {"url": "https://x/a.png"}},
                ],
            },
            {
                "role": "assistant",
                "content": None,
                "reasoning_details": [
                    {"index": 0, "type": "reasoning.text", "text": "Call it.", "signature": "s1"},
                    {"index": 1, "type": "reasoning.encrypted", "data": "ENC"},
                    {"index": 2, "type": "reasoning.summary", "summary": "unsigned"},
                ],
                "tool_calls": [
                    {
                        "id": "toolu_a",
                        "type": "function",
                        "function": {"name": "get_weather", "arguments": '{"city":"Paris"}'},
                    },
                    {
                        "id": "toolu_b",
                        "type": "function",
                        "function": {"name": "get_weather", "arguments": '{"city":"Rome"}'},
                    },
                ],
            },
            {"role": "tool", "tool_call_id": "toolu_a", "content": "Sunny"},
            {"role": "tool", "tool_call_id": "toolu_b", "content": [{"type": "text", "text": "Rain"}]},
        ],
        "tools": [{"type": "function", "function": {k: v for k, v in WEATHER_TOOL.items() if k != "type"}}],
        "tool_choice": {"type": "function", "function": {"name": "get_weather"}},
        "parallel_tool_calls": False,
        "max_completion_tokens": 5000,
        "reasoning_effort": "low",
        "stop": "END",
        "user": "u-1",
        "n": 1,
        "frequency_penalty": 0,
        "logprobs": False,
        "stream_options": {"include_usage": True},
    }
    assert chat_to_messages_request(body, "claude-sonnet-4-5", stream=True) == {
        "model": "claude-sonnet-4-5",
        "max_tokens": 5000,
        "system": "Be brief.",
        "messages": [
            _user(_text("Weather?"), {"type": "image", "source": {"type": "url", "url": "https://x/a.png"}}),
            _assistant(
                {"type": "thinking", "thinking": "Call it.", "signature": "s1"},
                {"type": "redacted_thinking", "data": "ENC"},
                {"type": "tool_use", "id": "toolu_a", "name": "get_weather", "input": {"city": "Paris"}},
                {"type": "tool_use", "id": "toolu_b", "name": "get_weather", "input": {"city": "Rome"}},
            ),
            _user(
                {"type": "tool_result", "tool_use_id": "toolu_a", "content": "Sunny"},
                {"type": "tool_result", "tool_use_id": "toolu_b", "content": [_text("Rain")]},
            ),
        ],
        "tools": [ANTHROPIC_WEATHER_TOOL],
        "tool_choice": {"type": "tool", "name": "get_weather", "disable_parallel_tool_use": True},
        "metadata": {"user_id": "u-1"},
        "stop_sequences": ["END"],
        "thinking": {"type": "enabled", "budget_tokens": 1024},
        "stream": True,
    }


EPHEMERAL = {"type": "ephemeral"}
HOUR = {"type": "ephemeral", "ttl": "1h"}


def _cached(block: Obj, cache: Obj = EPHEMERAL) -> Obj:
    return {**block, "cache_control": cache}


def test_chat_cache_breakpoints_reach_anthropic_where_the_client_set_them() -> None:
    function: Obj = {k: v for k, v in WEATHER_TOOL.items() if k != "type"}
    tool = {"type": "function", "function": function}
    body = {
        "messages": [
            {
                "role": "system",
                "content": [
                    {"type": "text", "text": "You are a weather bot."},
                    {"type": "text", "text": "Long manual.", "cache_control": HOUR},
                    {"type": "text", "text": "Today is Monday."},
                ],
            },
            {
                "role": "user",
                "content": [
                    {
                        "type": "image_url",
                        "image_url": {"url": "https://x/a.png"},
                        "cache_control": EPHEMERAL,
                    },
                    {"type": "text", "text": "Weather?", "cache_control": EPHEMERAL},
                ],
            },
            {
                "role": "assistant",
                "content": None,
                "tool_calls": [
                    {
                        "id": "toolu_a",
                        "type": "function",
                        "function": {"name": "get_weather", "arguments": "{}"},
                        "cache_control": EPHEMERAL,
                    }
                ],
            },
            {"role": "tool", "tool_call_id": "toolu_a", "content": "Sunny", "cache_control": EPHEMERAL},
            {"role": "user", "content": "Thanks", "cache_control": EPHEMERAL},
        ],
        "tools": [{**tool, "cache_control": HOUR}],
    }
    req = chat_to_messages_request(body, "m", stream=False)
    # The system prompt splits after the breakpoint, so the text after it can change without a miss.
    assert req["system"] == [
        _cached(_text("You are a weather bot.\n\nLong manual."), HOUR),
        _text("Today is Monday."),
    ]
    assert req["messages"] == [
        _user(
            _cached({"type": "image", "source": {"type": "url", "url": "https://x/a.png"}}),
            _cached(_text("Weather?")),
        ),
        _assistant(_cached({"type": "tool_use", "id": "toolu_a", "name": "get_weather", "input": {}})),
        _user(
            _cached({"type": "tool_result", "tool_use_id": "toolu_a", "content": "Sunny"}),
            _cached(_text("Thanks")),
        ),
    ]
    assert req["tools"] == [_cached(ANTHROPIC_WEATHER_TOOL, HOUR)]
    # Inside "function" is accepted too, as some clients send it there.
    inner = {"type": "function", "function": {**function, "cache_control": EPHEMERAL}}
    assert chat_to_messages_request({**body, "tools": [inner]}, "m", stream=False)["tools"] == [
        _cached(ANTHROPIC_WEATHER_TOOL)
    ]


def test_responses_cache_breakpoints_reach_anthropic_where_the_client_set_them() -> None:
    pdf = "data:application/pdf;base64,JVBERi0="
    body = {
        "instructions": "Be brief.",
        "input": [
            {
                "role": "developer",
                "content": [{"type": "input_text", "text": "Manual.", "cache_control": HOUR}],
            },
            {
                "role": "user",
                "content": [
                    {"type": "input_file", "file_data": pdf, "cache_control": EPHEMERAL},
                    {"type": "input_text", "text": "Summarise."},
                ],
            },
            {"type": "function_call", "call_id": "c1", "name": "f", "arguments": "{}"},
            {
                "type": "function_call_output",
                "call_id": "c1",
                "output": [{"type": "input_text", "text": "big result", "cache_control": EPHEMERAL}],
            },
            {"type": "message", "role": "user", "content": "Go on.", "cache_control": EPHEMERAL},
        ],
        "tools": [{**WEATHER_TOOL, "cache_control": EPHEMERAL}],
        # Anthropic's automatic caching: an unknown field, forwarded as is.
        "cache_control": EPHEMERAL,
    }
    req = _to_messages(body)
    assert req["system"] == [_text("Be brief."), _cached(_text("Manual."), HOUR)]
    document = {
        "type": "document",
        "source": {"type": "base64", "media_type": "application/pdf", "data": "JVBERi0="},
    }
    assert req["messages"] == [
        _user(_cached(document), _text("Summarise.")),
        _assistant({"type": "tool_use", "id": "c1", "name": "f", "input": {}}),
        _user(
            {"type": "tool_result", "tool_use_id": "c1", "content": [_cached(_text("big result"))]},
            _cached(_text("Go on.")),
        ),
    ]
    assert req["tools"] == [_cached(ANTHROPIC_WEATHER_TOOL)]
    assert req["cache_control"] == EPHEMERAL
    # Counting tokens keeps the breakpoints: Anthropic counts the same prompt.
    assert count_tokens_request(req)["messages"] == req["messages"]


def test_chat_plain_request_and_response_format() -> None:
    body = {
        "messages": [
            {"role": "user", "content": "Hi"},
            {"role": "assistant", "content": "Yo", "refusal": "no"},
        ],
        "max_tokens": 50,
        "stop": ["a", "b"],
        "response_format": {
            "type": "json_schema",
            "json_schema": {"name": "x", "schema": {"type": "object"}},
        },
    }
    assert chat_to_messages_request(body, "m", stream=False) == {
        "model": "m",
        "max_tokens": 50,
        "messages": [_user(_text("Hi")), _assistant(_text("Yo"), _text("no"))],
        "stop_sequences": ["a", "b"],
        "output_config": {"format": {"type": "json_schema", "schema": {"type": "object"}}},
    }


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        ({"n": 2}, "n cannot be sent to Anthropic"),
        ({"logprobs": True}, "logprobs cannot be sent"),
        ({"top_logprobs": 2}, "top_logprobs cannot be sent"),
        ({"logit_bias": {"50256": -100}}, "logit_bias cannot be sent"),
        ({"frequency_penalty": 0.5}, "frequency_penalty cannot be sent"),
        ({"presence_penalty": 0.5}, "presence_penalty cannot be sent"),
        ({"seed": 7}, "seed cannot be sent"),
        ({"audio": {"voice": "alloy"}}, "audio cannot be sent"),
        ({"modalities": ["text", "audio"]}, "modalities cannot be sent"),
        ({"prediction": {"type": "content"}}, "prediction cannot be sent"),
        ({"web_search_options": {}}, "web_search_options cannot be sent"),
        ({"functions": []}, "functions cannot be sent"),
        ({"tools": [{"type": "custom", "custom": {"name": "x"}}]}, "tool type 'custom' cannot be sent"),
        ({"response_format": {"type": "json_object"}}, "response_format type 'json_object'"),
        ({"reasoning_effort": "high", "max_tokens": 1000}, "thinking budget must be at least 1024"),
        ({"messages": [{"role": "function", "name": "f", "content": "x"}]}, "role 'function' cannot be sent"),
        (
            {"messages": [{"role": "user", "content": [{"type": "file", "file": {"file_id": "f"}}]}]},
            "files need file_data",
        ),
        (
            {"messages": [{"role": "user", "content": [{"type": "input_audio", "input_audio": {}}]}]},
            "content part type 'input_audio' cannot be sent",
        ),
        (
            {"messages": [{"role": "assistant", "tool_calls": [{"id": "c", "type": "custom"}]}]},
            "only function tool calls can be sent",
        ),
        ({"messages": "hi"}, "messages is required"),
    ],
)
def test_chat_fields_anthropic_cannot_express_are_a_400(extra: Obj, message: str) -> None:
    body = {"messages": [{"role": "user", "content": "Hi"}], **extra}
    with pytest.raises(BifrostError) as info:
        chat_to_messages_request(body, "m", stream=False)
    assert info.value.status_code == 400
    assert message in info.value.message


def test_text_completion_prompt_is_one_user_message() -> None:
    body = {"prompt": ["Once upon"], "max_tokens": 16, "stop": "\n", "temperature": 0, "echo": False, "n": 1}
    assert text_to_messages_request(body, "m", stream=True) == {
        "model": "m",
        "max_tokens": 16,
        "messages": [_user(_text("Once upon"))],
        "temperature": 0,
        "stop_sequences": ["\n"],
        "stream": True,
    }


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        ({"prompt": ["a", "b"]}, "prompt must be one string"),
        ({"prompt": [1, 2, 3]}, "prompt must be one string"),
        ({"echo": True}, "echo cannot be sent"),
        ({"suffix": "end"}, "suffix cannot be sent"),
        ({"best_of": 3}, "best_of cannot be sent"),
        ({"logprobs": 2}, "logprobs cannot be sent"),
        ({"n": 2}, "n cannot be sent"),
    ],
)
def test_text_fields_anthropic_cannot_express_are_a_400(extra: Obj, message: str) -> None:
    with pytest.raises(BifrostError) as info:
        text_to_messages_request({"prompt": "Hi", **extra}, "m", stream=False)
    assert info.value.status_code == 400
    assert message in info.value.message


def test_count_tokens_request_keeps_only_what_the_model_reads() -> None:
    req = _to_messages(
        {
            "input": "x",
            "instructions": "s",
            "tools": [WEATHER_TOOL],
            "temperature": 0.3,
            "user": "u",
            "reasoning": {"effort": "low"},
        },
        stream=True,
    )
    assert count_tokens_request(req) == {
        "model": "claude-sonnet-4-5",
        "system": "s",
        "messages": [_user(_text("x"))],
        "tools": [ANTHROPIC_WEATHER_TOOL],
        "thinking": {"type": "enabled", "budget_tokens": 1024},
    }


# =========================================================================================================
# Answers: Message -> Responses / chat / text
# =========================================================================================================


def _message(*blocks: Obj, stop: str | None = "end_turn", usage: Obj | None = None) -> Obj:
    return {
        "id": "msg_01",
        "type": "message",
        "role": "assistant",
        "model": "claude-sonnet-4-5",
        "content": list(blocks),
        "stop_reason": stop,
        "stop_sequence": None,
        "usage": usage if usage is not None else ANTHROPIC_USAGE,
    }


THINKING = {"type": "thinking", "thinking": "Let me think.", "signature": "sig-1"}
REDACTED = {"type": "redacted_thinking", "data": "ENC=="}
TOOL_A = {"type": "tool_use", "id": "toolu_a", "name": "get_weather", "input": {"city": "Paris"}}
TOOL_B = {"type": "tool_use", "id": "toolu_b", "name": "get_weather", "input": {"city": "Rome"}}


def test_message_to_responses_with_cached_usage() -> None:
    request = {"input": "hi", "max_output_tokens": 100}
    result = messages_to_responses_response(
        _message(_text("Hello"), _text(" there")), request=request, model="m"
    )
    parsed = check_response(result)
    assert parsed.output_text == "Hello there"
    assert result["status"] == "completed" and result["incomplete_details"] is None
    assert result["max_output_tokens"] == 100 and result["model"] == "m"
    message = result["output"][0]
    # Consecutive text blocks are one output_text part, as OpenAI answers with one.
    assert message["status"] == "completed" and len(message["content"]) == 1
    assert result["usage"] == RESPONSES_USAGE


def test_message_to_responses_reasoning_and_parallel_calls() -> None:
    msg = _message(THINKING, REDACTED, _text("Checking."), TOOL_A, TOOL_B, stop="tool_use")
    result = messages_to_responses_response(msg, request={}, model="m")
    check_response(result)
    kinds = [item["type"] for item in result["output"]]
    assert kinds == ["reasoning", "reasoning", "message", "function_call", "function_call"]
    thinking, redacted = result["output"][:2]
    assert thinking["summary"] == [{"type": "summary_text", "text": "Let me think."}]
    assert thinking["encrypted_content"] == "sig-1"
    assert redacted["summary"] == [] and redacted["encrypted_content"] == "ENC=="
    calls = [
        (i["call_id"], i["name"], orjson.loads(i["arguments"]), i["status"]) for i in result["output"][3:]
    ]
    assert calls == [
        ("toolu_a", "get_weather", {"city": "Paris"}, "completed"),
        ("toolu_b", "get_weather", {"city": "Rome"}, "completed"),
    ]
    assert result["status"] == "completed"


def test_reasoning_round_trips_back_into_thinking_blocks() -> None:
    msg = _message(THINKING, REDACTED, TOOL_A, stop="tool_use")
    output = messages_to_responses_response(msg, request={}, model="m")["output"]
    body = {
        "input": [
            {"role": "user", "content": "Weather?"},
            *output,
            {"type": "function_call_output", "call_id": "toolu_a", "output": "Sunny"},
        ]
    }
    assert _to_messages(body)["messages"][1] == _assistant(THINKING, REDACTED, TOOL_A)


@pytest.mark.parametrize(
    ("stop", "status", "details", "finish"),
    [
        ("end_turn", "completed", None, "stop"),
        ("stop_sequence", "completed", None, "stop"),
        ("pause_turn", "completed", None, "stop"),
        ("tool_use", "completed", None, "tool_calls"),
        ("max_tokens", "incomplete", {"reason": "max_output_tokens"}, "length"),
        ("model_context_window_exceeded", "incomplete", {"reason": "max_output_tokens"}, "length"),
        ("refusal", "incomplete", {"reason": "content_filter"}, "content_filter"),
        (None, "completed", None, "stop"),
    ],
)
def test_every_stop_reason(stop: str | None, status: str, details: Obj | None, finish: str) -> None:
    msg = _message(THINKING, _text("Partial"), stop=stop)
    result = messages_to_responses_response(msg, request={}, model="m")
    check_response(result)
    assert (result["status"], result["incomplete_details"]) == (status, details)
    assert result["output"][-1]["status"] == ("completed" if status == "completed" else "incomplete")
    assert (result["completed_at"] is None) == (status != "completed")
    chat = messages_to_chat_completion(msg, model="m")
    assert chat["choices"][0]["finish_reason"] == finish
    assert messages_to_text_completion(msg, model="m")["choices"][0]["finish_reason"] == finish


def test_message_to_chat_completion() -> None:
    msg = _message(THINKING, REDACTED, _text("Checking "), _text("both."), TOOL_A, TOOL_B, stop="tool_use")
    chat = messages_to_chat_completion(msg, model="claude-sonnet-4-5")
    check_chat(chat)
    assert chat["object"] == "chat.completion" and chat["model"] == "claude-sonnet-4-5"
    message = chat["choices"][0]["message"]
    assert message["content"] == "Checking both."
    assert message["reasoning"] == "Let me think."
    assert message["reasoning_details"] == [
        {"index": 0, "type": "reasoning.text", "text": "Let me think.", "signature": "sig-1"},
        {"index": 1, "type": "reasoning.encrypted", "data": "ENC=="},
    ]
    assert message["tool_calls"] == [
        {
            "id": "toolu_a",
            "type": "function",
            "function": {"name": "get_weather", "arguments": '{"city":"Paris"}'},
        },
        {
            "id": "toolu_b",
            "type": "function",
            "function": {"name": "get_weather", "arguments": '{"city":"Rome"}'},
        },
    ]
    assert chat["usage"] == CHAT_USAGE


def test_chat_answer_with_only_tool_calls_has_null_content_and_replays() -> None:
    chat = messages_to_chat_completion(_message(THINKING, TOOL_A, stop="tool_use"), model="m")
    message = chat["choices"][0]["message"]
    assert message["content"] is None
    body = {
        "messages": [
            {"role": "user", "content": "Weather?"},
            message,
            {"role": "tool", "tool_call_id": "toolu_a", "content": "Sunny"},
        ]
    }
    assert chat_to_messages_request(body, "m", stream=False)["messages"][1] == _assistant(THINKING, TOOL_A)


def test_message_to_text_completion() -> None:
    usage = {**ANTHROPIC_USAGE, "output_tokens_details": {"thinking_tokens": 3}}
    result = messages_to_text_completion(_message(_text("Once upon a time"), usage=usage), model="m")
    Completion.model_validate(result)
    assert result["choices"] == [
        {"index": 0, "text": "Once upon a time", "finish_reason": "stop", "logprobs": None}
    ]
    assert result["usage"]["completion_tokens_details"] == {"reasoning_tokens": 3}


# =========================================================================================================
# Streams: Anthropic events -> Responses events / chat chunks / text chunks
# =========================================================================================================


def _start_event(usage: Obj | None = None) -> Obj:
    start_usage = usage if usage is not None else {**ANTHROPIC_USAGE, "output_tokens": 1}
    message = {**_message(stop=None, usage=start_usage), "content": []}
    return {"type": "message_start", "message": message}


def _block(index: int, block: Obj, *deltas: Obj) -> list[Obj]:
    return [
        {"type": "content_block_start", "index": index, "content_block": block},
        *({"type": "content_block_delta", "index": index, "delta": d} for d in deltas),
        {"type": "content_block_stop", "index": index},
    ]


def _end(stop: str, output_tokens: int = 10, **usage: Any) -> list[Obj]:
    delta = {
        "type": "message_delta",
        "delta": {"stop_reason": stop, "stop_sequence": None},
        "usage": {"output_tokens": output_tokens, **usage},
    }
    return [delta, {"type": "message_stop"}]


def _text_delta(text: str) -> Obj:
    return {"type": "text_delta", "text": text}


TEXT_EVENTS = [
    _start_event(),
    {"type": "ping"},
    *_block(0, {"type": "text", "text": ""}, _text_delta("Hel"), _text_delta("lo")),
    *_end("end_turn"),
]
TOOL_EVENTS = [
    _start_event(),
    *_block(
        0,
        {"type": "thinking", "thinking": "", "signature": ""},
        {"type": "thinking_delta", "thinking": "Let me "},
        {"type": "thinking_delta", "thinking": "think."},
        {"type": "signature_delta", "signature": "sig-1"},
    ),
    *_block(1, {"type": "text", "text": ""}, _text_delta("Checking.")),
    *_block(
        2,
        {"type": "tool_use", "id": "toolu_a", "name": "get_weather", "input": {}},
        {"type": "input_json_delta", "partial_json": ""},
        {"type": "input_json_delta", "partial_json": '{"city": '},
        {"type": "input_json_delta", "partial_json": '"Paris"}'},
    ),
    *_block(
        3,
        {"type": "tool_use", "id": "toolu_b", "name": "get_weather", "input": {}},
        {"type": "input_json_delta", "partial_json": '{"city": "Rome"}'},
    ),
    *_block(4, {"type": "tool_use", "id": "toolu_c", "name": "get_time", "input": {}}),
    *_end("tool_use", output_tokens=42, input_tokens=20),
]


def _responses_stream(
    events: list[Obj], request: Obj | None = None
) -> tuple[MessagesToResponsesStream, list[Obj]]:
    stream = MessagesToResponsesStream(request=request or {"input": "hi"}, model="m")
    out = stream.start()
    for event in events:
        if event["type"] != "ping":  # the SDK skips pings before validating
            ANTHROPIC_EVENT.validate_python(event)
        out += stream.feed(event)
    out += stream.finish()
    return stream, out


def test_text_stream_follows_openai_order() -> None:
    stream, events = _responses_stream(TEXT_EVENTS)
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
    completed = events[-1]["response"]
    assert completed["id"] == events[0]["response"]["id"]
    assert completed["usage"] == RESPONSES_USAGE == stream.usage
    assert check_response(completed).output_text == "Hello"
    assert stream.response["output"] == completed["output"]


def test_thinking_and_tool_calls_stream() -> None:
    _, events = _responses_stream(TOOL_EVENTS)
    check_events(events)
    types = [e["type"] for e in events]
    assert types[2:6] == [
        "response.output_item.added",
        "response.reasoning_summary_part.added",
        "response.reasoning_summary_text.delta",
        "response.reasoning_summary_text.delta",
    ]
    reasoning_done = next(e for e in events if e["type"] == "response.output_item.done")
    assert reasoning_done["item"]["summary"] == [{"type": "summary_text", "text": "Let me think."}]
    assert reasoning_done["item"]["encrypted_content"] == "sig-1"
    args: dict[int, str] = {}
    for event in events:
        if event["type"] == "response.function_call_arguments.delta":
            args[event["output_index"]] = args.get(event["output_index"], "") + event["delta"]
    done = {e["output_index"]: e for e in events if e["type"] == "response.function_call_arguments.done"}
    assert (
        {i: e["arguments"] for i, e in done.items()}
        == args
        == {
            2: '{"city": "Paris"}',
            3: '{"city": "Rome"}',
            4: "{}",
        }
    )
    completed = events[-1]["response"]
    assert [i["type"] for i in completed["output"]] == [
        "reasoning",
        "message",
        "function_call",
        "function_call",
        "function_call",
    ]
    assert [i.get("call_id") for i in completed["output"][2:]] == ["toolu_a", "toolu_b", "toolu_c"]
    assert completed["status"] == "completed"
    assert completed["usage"]["output_tokens"] == 42


def test_stream_and_json_answers_agree() -> None:
    _, events = _responses_stream(TOOL_EVENTS)
    streamed = events[-1]["response"]["output"]
    message = _message(
        THINKING,
        _text("Checking."),
        TOOL_A,
        TOOL_B,
        {"type": "tool_use", "id": "toolu_c", "name": "get_time", "input": {}},
        stop="tool_use",
    )
    plain = messages_to_responses_response(message, request={}, model="m")["output"]

    def shape(items: list[Obj]) -> list[Any]:
        out: list[Any] = []
        for item in items:
            item = {k: v for k, v in item.items() if k != "id"}
            if item["type"] == "function_call":
                item["arguments"] = orjson.loads(item["arguments"])
            out.append(item)
        return out

    assert shape(streamed) == shape(plain)


def test_redacted_thinking_streams_as_a_whole_item() -> None:
    events = [
        _start_event(),
        *_block(0, REDACTED),
        *_block(1, {"type": "text", "text": ""}, _text_delta("Hi")),
        *_end("end_turn"),
    ]
    _, out = _responses_stream(events)
    check_events(out)
    added = [e for e in out if e["type"] == "response.output_item.added"]
    assert added[0]["item"]["encrypted_content"] == "ENC==" and added[0]["item"]["summary"] == []
    assert out[-1]["response"]["output"][0] == added[0]["item"]


@pytest.mark.parametrize(
    ("stop", "status", "reason"),
    [("max_tokens", "incomplete", "max_output_tokens"), ("refusal", "incomplete", "content_filter")],
)
def test_truncated_stream_marks_only_the_last_item_incomplete(stop: str, status: str, reason: str) -> None:
    events = [
        _start_event(),
        *_block(0, {"type": "text", "text": ""}, _text_delta("Done.")),
        *_block(
            1,
            {"type": "tool_use", "id": "t", "name": "f", "input": {}},
            {"type": "input_json_delta", "partial_json": '{"a": '},
        ),
        *_end(stop),
    ]
    _, out = _responses_stream(events)
    check_events(out)
    final = out[-1]
    assert final["type"] == "response.incomplete"
    assert final["response"]["status"] == status and final["response"]["incomplete_details"] == {
        "reason": reason
    }
    assert [i["status"] for i in final["response"]["output"]] == ["completed", "incomplete"]


def _chat_stream(events: list[Obj], *, text: bool = False) -> list[Obj]:
    stream = MessagesToChatStream(model="m", text=text)
    chunks: list[Obj] = []
    for event in events:
        chunks += stream.feed(event)
    chunks += stream.finish()
    return chunks


def test_chat_chunks_for_thinking_and_tool_calls() -> None:
    chunks = _chat_stream(TOOL_EVENTS)
    for chunk in chunks:
        check_chunks([chunk])
    deltas = [c["choices"][0]["delta"] for c in chunks if c["choices"]]
    assert deltas[0] == {"role": "assistant", "content": ""}
    assert "".join(d.get("reasoning", "") for d in deltas) == "Let me think."
    details = [d["reasoning_details"] for d in deltas if "reasoning_details" in d]
    assert details == [
        [{"index": 0, "type": "reasoning.text", "text": "Let me think.", "signature": "sig-1"}]
    ]
    assert "".join(d.get("content") or "" for d in deltas) == "Checking."
    calls: dict[int, Obj] = {}
    for delta in deltas:
        for call in delta.get("tool_calls", []):
            entry = calls.setdefault(call["index"], {"id": None, "name": "", "arguments": ""})
            entry["id"] = call.get("id") or entry["id"]
            entry["name"] += call.get("function", {}).get("name") or ""
            entry["arguments"] += call["function"].get("arguments", "")
    assert calls == {
        0: {"id": "toolu_a", "name": "get_weather", "arguments": '{"city": "Paris"}'},
        1: {"id": "toolu_b", "name": "get_weather", "arguments": '{"city": "Rome"}'},
        2: {"id": "toolu_c", "name": "get_time", "arguments": "{}"},
    }
    finish, usage = chunks[-2:]
    assert finish["choices"][0]["finish_reason"] == "tool_calls"
    assert usage["choices"] == [] and usage["usage"]["completion_tokens"] == 42
    assert usage["usage"]["prompt_tokens_details"]["cached_write_tokens"] == 50
    assert {c["id"] for c in chunks} == {"msg_01"}


# Anthropic splits an answer with citations mid-sentence: one block per cited passage.
SPLIT_TEXT = ["The tallest building is ", "the Burj Khalifa", ", at 828 m."]


def test_chat_text_is_the_concatenation_of_text_blocks() -> None:
    events = [
        _start_event(),
        *(
            event
            for index, text in enumerate(SPLIT_TEXT)
            for event in _block(index, {"type": "text", "text": ""}, _text_delta(text))
        ),
        *_end("max_tokens"),
    ]
    chunks = _chat_stream(events)
    streamed = "".join(c["choices"][0]["delta"].get("content") or "" for c in chunks if c["choices"])
    message = _message(*map(_text, SPLIT_TEXT))
    whole = messages_to_chat_completion(message, model="m")["choices"][0]["message"]["content"]
    text = messages_to_text_completion(message, model="m")["choices"][0]["text"]
    streamed_text = "".join(c["choices"][0]["text"] for c in _chat_stream(events, text=True) if c["choices"])
    assert streamed == whole == text == streamed_text == "The tallest building is the Burj Khalifa, at 828 m."
    assert chunks[-2]["choices"][0]["finish_reason"] == "length"


def test_text_completion_chunks() -> None:
    chunks = _chat_stream(TEXT_EVENTS, text=True)
    # The SDK's Completion type has no null finish_reason, which streamed chunks carry (as OpenAI's do).
    for chunk in chunks[-2:]:
        Completion.model_validate(chunk)
    assert [c["choices"][0]["text"] for c in chunks[:-1]] == ["Hel", "lo", ""]
    assert chunks[-2]["choices"][0]["finish_reason"] == "stop"
    assert chunks[-1]["usage"] == CHAT_USAGE
    assert {c["object"] for c in chunks} == {"text_completion"}


def test_stream_usage_takes_the_latest_cumulative_counts() -> None:
    events = [
        _start_event({"input_tokens": 5, "output_tokens": 1}),
        *_block(0, {"type": "text", "text": ""}, _text_delta("x")),
        *_end("end_turn", output_tokens=7, cache_read_input_tokens=3, input_tokens=None),
    ]
    stream, _ = _responses_stream(events)
    assert (stream.usage["input_tokens"], stream.usage["output_tokens"]) == (8, 7)
    assert stream.usage["input_tokens_details"]["cached_read_tokens"] == 3


# Citations and server tools (web search)
# ---------------------------------------------------------------------------------------------------------

BURJ = "https://en.wikipedia.org/wiki/Burj_Khalifa"
SEARCH_USE = {
    "type": "server_tool_use",
    "id": "srvtoolu_01",
    "name": "web_search",
    "input": {"query": "tallest"},
}
SEARCH_RESULT = {
    "type": "web_search_tool_result",
    "tool_use_id": "srvtoolu_01",
    "content": [
        {
            "type": "web_search_result",
            "url": BURJ,
            "title": "Burj Khalifa",
            "encrypted_content": "E1",
            "page_age": None,
        },
        {
            "type": "web_search_result",
            "url": "https://example.com/top",
            "title": "Top 10",
            "encrypted_content": "E2",
        },
    ],
}
WEB_CITATION = {
    "type": "web_search_result_location",
    "url": BURJ,
    "title": "Burj Khalifa",
    "encrypted_index": "Eo8B",
    "cited_text": "The Burj Khalifa is the world's tallest building.",
}
DOC_CITATION = {
    "type": "char_location",
    "cited_text": "828 metres",
    "document_index": 0,
    "document_title": "Facts",
    "start_char_index": 10,
    "end_char_index": 20,
}
# A recorded web search answer's shape: text split around each cited passage.
SEARCHED = [
    _text("Let me search. "),
    SEARCH_USE,
    SEARCH_RESULT,
    _text("The tallest building is "),
    {"type": "text", "text": "the Burj Khalifa", "citations": [WEB_CITATION]},
    _text(", at "),
    {"type": "text", "text": "828 m", "citations": [DOC_CITATION]},
    _text("."),
]
SEARCHED_TEXT = "The tallest building is the Burj Khalifa, at 828 m."
URL_ANNOTATION = {
    "type": "url_citation",
    "url": BURJ,
    "title": "Burj Khalifa",
    "start_index": 24,
    "end_index": 40,
}
# Document citations have no OpenAI counterpart: Anthropic's fields, plus where in the text they apply.
DOC_ANNOTATION = {**DOC_CITATION, "start_index": 45, "end_index": 50}


def _events_of(blocks: list[Obj], stop: str = "end_turn") -> list[Obj]:
    """The stream Anthropic sends for a Message of ``blocks``: citations stream before their text."""
    events = [_start_event()]
    for index, block in enumerate(blocks):
        if block["type"] == "text":
            deltas = [{"type": "citations_delta", "citation": c} for c in block.get("citations", [])]
            events += _block(index, {"type": "text", "text": ""}, *deltas, _text_delta(block["text"]))
        elif block["type"] == "server_tool_use":
            json_delta = {"type": "input_json_delta", "partial_json": orjson.dumps(block["input"]).decode()}
            events += _block(index, {**block, "input": {}}, json_delta)
        else:
            events += _block(index, block)
    return events + _end(stop)


def _without_ids(items: list[Obj]) -> list[Obj]:
    return [{k: v for k, v in item.items() if k != "id"} for item in items]


def test_web_search_and_citations_become_a_search_call_and_annotations() -> None:
    result = messages_to_responses_response(_message(*SEARCHED), request={}, model="m")
    output = result["output"]
    assert [item["type"] for item in output] == ["message", "web_search_call", "message"]
    search = output[1]
    assert search["id"].startswith("ws_") and search["status"] == "completed"
    assert search["action"] == {
        "type": "search",
        "query": "tallest",
        "sources": [{"type": "url", "url": BURJ}, {"type": "url", "url": "https://example.com/top"}],
    }
    (part,) = output[2]["content"]
    assert part["text"] == SEARCHED_TEXT
    assert part["annotations"] == [URL_ANNOTATION, DOC_ANNOTATION]
    assert part["text"][24:40] == "the Burj Khalifa" and part["text"][45:50] == "828 m"
    without_document = messages_to_responses_response(
        _message(*SEARCHED[:5]), request={}, model="m"
    )  # the SDK types know every other field
    check_response(without_document)


def test_web_search_stream_matches_the_json_answer() -> None:
    stream, events = _responses_stream(_events_of(SEARCHED[:5]))
    check_events(events)
    types = [e["type"] for e in events]
    search_events = [t for t in types if t.startswith("response.web_search_call.")]
    assert search_events == [
        "response.web_search_call.in_progress",
        "response.web_search_call.searching",
        "response.web_search_call.completed",
    ]
    added = next(e for e in events if e["type"] == "response.output_text.annotation.added")
    assert (added["annotation"], added["annotation_index"], added["content_index"]) == (URL_ANNOTATION, 0, 0)
    whole = messages_to_responses_response(_message(*SEARCHED[:5]), request={}, model="m")["output"]
    assert _without_ids(stream.response["output"]) == _without_ids(whole)
    # An annotation added later does not rewrite the part an earlier event announced.
    part_added = [e["part"] for e in events if e["type"] == "response.content_part.added"]
    assert [p["annotations"] for p in part_added] == [[], []]


def test_document_citations_stream_like_the_json_answer() -> None:
    stream, events = _responses_stream(_events_of(SEARCHED))
    whole = messages_to_responses_response(_message(*SEARCHED), request={}, model="m")["output"]
    assert _without_ids(stream.response["output"]) == _without_ids(whole)
    annotations = [e["annotation"] for e in events if e["type"] == "response.output_text.annotation.added"]
    assert annotations == [URL_ANNOTATION, DOC_ANNOTATION]


def test_a_searched_answer_can_be_sent_back() -> None:
    output = messages_to_responses_response(_message(*SEARCHED[:5]), request={}, model="m")["output"]
    body = {"input": [{"role": "user", "content": "Tallest?"}, *output, {"role": "user", "content": "Sure?"}]}
    # The search call is skipped (its results cannot be replayed without their encrypted content);
    # the text, annotations aside, is what the model said.
    assert _to_messages(body)["messages"][1] == _assistant(
        _text("Let me search. "), _text("The tallest building is the Burj Khalifa")
    )


@pytest.mark.parametrize("stream", [False, True])
def test_failed_and_unanswered_searches(stream: bool) -> None:
    failed = {
        "type": "web_search_tool_result",
        "tool_use_id": "srvtoolu_01",
        "content": {"type": "web_search_tool_result_error", "error_code": "max_uses_exceeded"},
    }
    second = {**SEARCH_USE, "id": "srvtoolu_02", "input": {"query": "again"}}
    blocks = [SEARCH_USE, failed, second]  # the turn paused before the second search answered
    if stream:
        output = _responses_stream(_events_of(blocks, stop="pause_turn"))[0].response["output"]
    else:
        output = messages_to_responses_response(_message(*blocks, stop="pause_turn"), request={}, model="m")[
            "output"
        ]
    assert [(i["status"], i["action"]) for i in output] == [
        ("failed", {"type": "search", "query": "tallest"}),
        ("incomplete", {"type": "search", "query": "again"}),
    ]


def test_web_fetch_is_an_open_page_action() -> None:
    fetch = {"type": "server_tool_use", "id": "srvtoolu_f", "name": "web_fetch", "input": {"url": BURJ}}
    result = {
        "type": "web_fetch_tool_result",
        "tool_use_id": "srvtoolu_f",
        "content": {
            "type": "web_fetch_result",
            "url": BURJ,
            "content": {
                "type": "document",
                "source": {"type": "text", "media_type": "text/plain", "data": "x"},
            },
        },
    }
    output = messages_to_responses_response(_message(fetch, result), request={}, model="m")["output"]
    assert _without_ids(output) == [
        {"type": "web_search_call", "status": "completed", "action": {"type": "open_page", "url": BURJ}}
    ]


@pytest.mark.parametrize("stream", [False, True])
def test_server_tools_without_an_openai_item_pass_through(stream: bool) -> None:
    run = {"type": "server_tool_use", "id": "srvtoolu_c", "name": "code_execution", "input": {"code": "1+1"}}
    ran = {
        "type": "code_execution_tool_result",
        "tool_use_id": "srvtoolu_c",
        "content": {
            "type": "code_execution_result",
            "stdout": "2",
            "stderr": "",
            "return_code": 0,
            "content": [],
        },
    }
    if stream:
        output = _responses_stream(_events_of([run, ran, _text("2")]))[0].response["output"]
    else:
        output = messages_to_responses_response(_message(run, ran, _text("2")), request={}, model="m")[
            "output"
        ]
    assert output[:2] == [run, ran]
    assert output[2]["content"][0]["text"] == "2"


def test_chat_answers_carry_citations_as_annotations() -> None:
    chat = messages_to_chat_completion(_message(*SEARCHED), model="m")
    message = chat["choices"][0]["message"]
    assert message["content"] == "Let me search. " + SEARCHED_TEXT
    shift = len("Let me search. ")
    url = {"url": BURJ, "title": "Burj Khalifa", "start_index": 24 + shift, "end_index": 40 + shift}
    document = {k: v for k, v in DOC_ANNOTATION.items() if k != "type"}
    document.update(start_index=45 + shift, end_index=50 + shift)
    assert message["annotations"] == [
        {"type": "url_citation", "url_citation": url},
        {"type": "char_location", "char_location": document},
    ]
    check_chat(messages_to_chat_completion(_message(*SEARCHED[:5]), model="m"))
    chunks = _chat_stream(_events_of(SEARCHED))
    streamed = "".join(c["choices"][0]["delta"].get("content") or "" for c in chunks if c["choices"])
    assert streamed == message["content"]
    # As OpenAI streams a searched answer: all annotations in one delta after the text, then the finish.
    cited = [
        c["choices"][0]["delta"] for c in chunks if c["choices"] and "annotations" in c["choices"][0]["delta"]
    ]
    assert cited == [{"annotations": message["annotations"]}]
    assert "annotations" in chunks[-3]["choices"][0]["delta"]
    check_chunks(_chat_stream(_events_of(SEARCHED[:5])))


def test_text_completions_ignore_citations() -> None:
    chunks = _chat_stream(_events_of(SEARCHED), text=True)
    assert (
        "".join(c["choices"][0]["text"] for c in chunks if c["choices"]) == "Let me search. " + SEARCHED_TEXT
    )
    assert messages_to_text_completion(_message(*SEARCHED), model="m")["choices"][0]["text"] == (
        "Let me search. " + SEARCHED_TEXT
    )


def test_errors_map_between_anthropic_types_and_statuses() -> None:
    assert anthropic_error_status("overloaded_error") == 529
    assert anthropic_error_status("rate_limit_error") == 429
    assert anthropic_error_status("something_new") == 500
    assert anthropic_error_type(529) == "overloaded_error"
    assert anthropic_error_type(404) == "not_found_error"
    assert anthropic_error_type(422) == "invalid_request_error"
    assert anthropic_error_type(502) == "api_error"
    assert anthropic_error_type(504) == "timeout_error"


# =========================================================================================================
# Reverse: Messages requests -> Responses, Responses answers -> Messages (the /anthropic integration)
# =========================================================================================================


def test_messages_request_to_responses() -> None:
    body = {
        "model": "openai/gpt-4o",
        "max_tokens": 1024,
        "system": [_text("Be brief."), {**_text("Use metric."), "cache_control": {"type": "ephemeral"}}],
        "messages": [
            {
                "role": "user",
                "content": [
                    _text("Weather?"),
                    {"type": "image", "source": {"type": "base64", "media_type": "image/png", "data": PNG}},
                ],
            },
            _assistant(THINKING, _text("Checking."), TOOL_A, TOOL_B),
            _user(
                {"type": "tool_result", "tool_use_id": "toolu_a", "content": "Sunny"},
                {
                    "type": "tool_result",
                    "tool_use_id": "toolu_b",
                    "is_error": True,
                    "content": [_text("Timeout")],
                },
                _text("Thanks"),
            ),
        ],
        "tools": [ANTHROPIC_WEATHER_TOOL],
        "tool_choice": {"type": "any", "disable_parallel_tool_use": True},
        "temperature": 0.5,
        "metadata": {"user_id": "u-1"},
        "thinking": {"type": "enabled", "budget_tokens": 4000},
        "service_tier": "auto",
        "fallbacks": ["anthropic/claude-sonnet-4-5"],
    }
    assert messages_to_responses_request(body, stream=True) == {
        "model": "openai/gpt-4o",
        "instructions": "Be brief.\n\nUse metric.",
        "input": [
            {
                "role": "user",
                "content": [
                    {"type": "input_text", "text": "Weather?"},
                    {"type": "input_image", "image_url": f"data:image/png;base64,{PNG}", "detail": "auto"},
                ],
            },
            {"role": "assistant", "content": "Checking."},
            {
                "type": "function_call",
                "call_id": "toolu_a",
                "name": "get_weather",
                "arguments": '{"city":"Paris"}',
            },
            {
                "type": "function_call",
                "call_id": "toolu_b",
                "name": "get_weather",
                "arguments": '{"city":"Rome"}',
            },
            {"type": "function_call_output", "call_id": "toolu_a", "output": "Sunny"},
            {
                "type": "function_call_output",
                "call_id": "toolu_b",
                "output": [{"type": "input_text", "text": "Timeout"}],
            },
            {"role": "user", "content": "Thanks"},
        ],
        "max_output_tokens": 1024,
        "temperature": 0.5,
        "safety_identifier": "u-1",
        "tools": [
            {
                "type": "function",
                "name": "get_weather",
                "parameters": WEATHER_TOOL["parameters"],
                "description": "Weather for a city",
                "strict": False,
            }
        ],
        "tool_choice": "required",
        "parallel_tool_calls": False,
        "reasoning": {"effort": "medium", "summary": "auto"},
        "stream": True,
    }


@pytest.mark.parametrize(
    ("extra", "expected"),
    [
        ({"thinking": {"type": "enabled", "budget_tokens": 1024}}, {"effort": "low", "summary": "auto"}),
        ({"thinking": {"type": "enabled", "budget_tokens": 20000}}, {"effort": "high", "summary": "auto"}),
        ({"thinking": {"type": "adaptive"}}, {"effort": "medium", "summary": "auto"}),
        (
            {"thinking": {"type": "adaptive"}, "output_config": {"effort": "max"}},
            {"effort": "xhigh", "summary": "auto"},
        ),
        ({"thinking": {"type": "disabled"}}, None),
        ({}, None),
    ],
)
def test_thinking_becomes_reasoning_effort(extra: Obj, expected: Obj | None) -> None:
    body = {"model": "m", "max_tokens": 30000, "messages": [{"role": "user", "content": "x"}], **extra}
    assert messages_to_responses_request(body, stream=False).get("reasoning") == expected


def test_documents_tool_choice_and_output_format() -> None:
    body = {
        "model": "m",
        "messages": [
            _user(
                {
                    "type": "document",
                    "title": "r.pdf",
                    "source": {"type": "base64", "media_type": "application/pdf", "data": "JVBERi0="},
                },
                {"type": "document", "source": {"type": "url", "url": "https://x/a.pdf"}},
                {"type": "document", "source": {"type": "text", "media_type": "text/plain", "data": "notes"}},
                {"type": "image", "source": {"type": "url", "url": "https://x/a.png"}},
            )
        ],
        "tools": [{**ANTHROPIC_WEATHER_TOOL, "type": "custom"}],
        "tool_choice": {"type": "tool", "name": "get_weather"},
        "output_config": {"format": {"type": "json_schema", "schema": {"type": "object"}}},
    }
    req = messages_to_responses_request(body, stream=False)
    assert req["input"][0]["content"] == [
        {"type": "input_file", "filename": "r.pdf", "file_data": "data:application/pdf;base64,JVBERi0="},
        {"type": "input_file", "file_url": "https://x/a.pdf"},
        {"type": "input_text", "text": "notes"},
        {"type": "input_image", "image_url": "https://x/a.png", "detail": "auto"},
    ]
    assert req["tool_choice"] == {"type": "function", "name": "get_weather"}
    assert req["text"] == {
        "format": {"type": "json_schema", "name": "output", "schema": {"type": "object"}, "strict": True}
    }


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        ({"top_k": 5}, "top_k cannot be sent"),
        ({"stop_sequences": ["END"]}, "stop_sequences cannot be sent"),
        ({"container": "c"}, "container cannot be sent"),
        ({"mcp_servers": []}, "mcp_servers cannot be sent"),
        (
            {"tools": [{"type": "code_execution_20250522", "name": "code_execution"}]},
            "tool type 'code_execution_20250522'",
        ),
        ({"tool_choice": {"type": "something"}}, "tool_choice type 'something'"),
        ({"messages": []}, "messages is required"),
        ({"messages": [{"role": "system", "content": "x"}]}, "role must be user or assistant"),
        (
            {"messages": [_user({"type": "image", "source": {"type": "file", "file_id": "f"}})]},
            "image source 'file' cannot be sent",
        ),
        (
            {
                "messages": [
                    _user(
                        {
                            "type": "document",
                            "source": {"type": "base64", "media_type": "text/csv", "data": "AA"},
                        }
                    )
                ]
            },
            "document source 'base64' cannot be sent",
        ),
        ({"messages": [_user({"type": "search_result", "content": []})]}, "block type 'search_result'"),
        (
            {"messages": [_assistant({"type": "image", "source": {"type": "url", "url": "https://x"}})]},
            "assistant block type 'image'",
        ),
        ({"messages": [_user(TOOL_A)]}, "user block type 'tool_use'"),
        (
            {"messages": [_user({"type": "tool_result", "tool_use_id": "t", "content": [REDACTED]})]},
            "tool_result block type 'redacted_thinking'",
        ),
        ({"system": 3}, "system must be a string"),
        ({"output_config": {"format": {"type": "regex"}}}, "output_config.format must be a json_schema"),
    ],
)
def test_what_responses_cannot_express_is_a_400(extra: Obj, message: str) -> None:
    body = {"model": "m", "max_tokens": 10, "messages": [{"role": "user", "content": "x"}], **extra}
    with pytest.raises(BifrostError) as info:
        messages_to_responses_request(body, stream=False)
    assert info.value.status_code == 400
    assert message in info.value.message


def _responses_answer(output: list[Obj], status: str = "completed", details: Obj | None = None) -> Obj:
    return {
        "id": "resp_1",
        "object": "response",
        "status": status,
        "incomplete_details": details,
        "output": output,
        "usage": RESPONSES_USAGE,
    }


OPENAI_OUTPUT: list[Obj] = [
    {
        "id": "rs_1",
        "type": "reasoning",
        "summary": [{"type": "summary_text", "text": "Plan."}],
        "encrypted_content": "gAAAA",
    },
    {
        "id": "msg_1",
        "type": "message",
        "role": "assistant",
        "status": "completed",
        "content": [{"type": "output_text", "text": "Checking.", "annotations": []}],
    },
    {
        "id": "fc_1",
        "type": "function_call",
        "call_id": "call_1",
        "name": "get_weather",
        "arguments": '{"city":"Paris"}',
        "status": "completed",
    },
]


def test_responses_answer_to_message() -> None:
    message = responses_to_message(_responses_answer(OPENAI_OUTPUT), model="openai/gpt-4o")
    Message.model_validate(message)
    assert message["model"] == "openai/gpt-4o" and message["id"].startswith("msg_")
    assert message["content"] == [
        {"type": "thinking", "thinking": "Plan.", "signature": "gAAAA"},
        _text("Checking."),
        {"type": "tool_use", "id": "call_1", "name": "get_weather", "input": {"city": "Paris"}},
    ]
    assert message["stop_reason"] == "tool_use"
    assert message["usage"] == {
        "input_tokens": 20,
        "output_tokens": 10,
        "cache_read_input_tokens": 100,
        "cache_creation_input_tokens": 50,
    }


@pytest.mark.parametrize(
    ("status", "details", "stop"),
    [
        ("completed", None, "end_turn"),
        ("incomplete", {"reason": "max_output_tokens"}, "max_tokens"),
        ("incomplete", {"reason": "content_filter"}, "refusal"),
    ],
)
def test_responses_status_to_stop_reason(status: str, details: Obj | None, stop: str) -> None:
    output = [{"type": "message", "content": [{"type": "refusal", "refusal": "No."}]}]
    message = responses_to_message(_responses_answer(output, status, details), model="m")
    assert message["stop_reason"] == stop
    assert message["content"] == [_text("No.")]


@pytest.mark.parametrize("output", [None, "text", {"type": "message"}])
def test_a_responses_answer_without_an_output_list_is_a_502_not_an_empty_message(output: Any) -> None:
    answer = {**_responses_answer([]), "output": output}
    if output is None:
        del answer["output"]
    with pytest.raises(BifrostError) as info:
        responses_to_message(answer, model="m")
    assert info.value.status_code == 502 and info.value.error_type == "provider_bad_response"
    assert responses_to_message(_responses_answer([]), model="m")["content"] == []  # listed, empty: fine


def test_invalid_tool_arguments_from_a_provider_are_a_502() -> None:
    output = [{"type": "function_call", "call_id": "c", "name": "f", "arguments": "not json"}]
    with pytest.raises(BifrostError) as info:
        responses_to_message(_responses_answer(output), model="m")
    assert info.value.status_code == 502


def _accumulate(events: list[Obj]) -> Any:
    snapshot = None
    buffers: dict[int, bytes] = {}
    for event in events:
        ANTHROPIC_EVENT.validate_python(event)
        snapshot = accumulate_event(event=event, current_snapshot=snapshot, json_bufs=buffers)  # type: ignore[arg-type]
    return snapshot


def _reverse(events: list[Obj]) -> list[Obj]:
    stream = ResponsesToMessagesStream(model="openai/gpt-4o")
    out: list[Obj] = []
    for event in events:
        out += stream.feed(event)
    return out


def test_responses_stream_to_messages_events_round_trips_through_the_sdk() -> None:
    # Anthropic events -> Responses events -> Anthropic events: the SDK accumulates the same message.
    _, responses_events = _responses_stream(TOOL_EVENTS)
    events = _reverse(responses_events)
    assert [e["type"] for e in events][:2] == ["message_start", "content_block_start"]
    assert events[-2]["type"] == "message_delta" and events[-1]["type"] == "message_stop"
    indexes = [e["index"] for e in events if e["type"] == "content_block_start"]
    assert indexes == list(range(len(indexes)))
    final = _accumulate(events)
    assert [b.model_dump(exclude_none=True) for b in final.content] == [
        {"type": "thinking", "thinking": "Let me think.", "signature": "sig-1"},
        _text("Checking."),
        {**TOOL_A, "input": {"city": "Paris"}},
        {**TOOL_B, "input": {"city": "Rome"}},
        {"type": "tool_use", "id": "toolu_c", "name": "get_time", "input": {}},
    ]
    assert final.stop_reason == "tool_use"
    assert (final.usage.input_tokens, final.usage.output_tokens) == (20, 42)
    assert (final.usage.cache_read_input_tokens, final.usage.cache_creation_input_tokens) == (100, 50)


def _chat_chunk(delta: Obj, finish: str | None = None) -> Obj:
    return {
        "id": "c",
        "object": "chat.completion.chunk",
        "created": 0,
        "model": "m",
        "choices": [{"index": 0, "delta": delta, "finish_reason": finish}],
    }


def test_interleaved_parallel_calls_become_sequential_blocks() -> None:
    # A chat provider interleaves two calls by index; Anthropic blocks never overlap.
    chat = ChatToResponsesStream(request={"input": "x"}, model="m")
    events = chat.start()
    for chunk in [
        _chat_chunk(
            {"tool_calls": [{"index": 0, "id": "call_a", "function": {"name": "f", "arguments": ""}}]}
        ),
        _chat_chunk(
            {"tool_calls": [{"index": 1, "id": "call_b", "function": {"name": "g", "arguments": '{"b"'}}]}
        ),
        _chat_chunk({"tool_calls": [{"index": 0, "function": {"arguments": '{"a":1}'}}]}),
        _chat_chunk({"tool_calls": [{"index": 1, "function": {"arguments": ":2}"}}]}),
        _chat_chunk({}, "tool_calls"),
    ]:
        events += chat.feed(chunk)
    events += chat.finish()
    out = _reverse(events)
    starts_and_stops = [(e["type"], e.get("index")) for e in out if e["type"].startswith("content_block_s")]
    assert starts_and_stops == [
        ("content_block_start", 0),
        ("content_block_stop", 0),
        ("content_block_start", 1),
        ("content_block_stop", 1),
    ]
    final = _accumulate(out)
    assert [(b.id, b.name, b.input) for b in final.content] == [
        ("call_a", "f", {"a": 1}),
        ("call_b", "g", {"b": 2}),
    ]


def test_failed_and_error_events_raise() -> None:
    stream = ResponsesToMessagesStream(model="m")
    failed = {
        "type": "response.failed",
        "response": {"status": "failed", "error": {"code": "server_error", "message": "boom"}},
    }
    with pytest.raises(BifrostError, match="boom"):
        stream.feed(failed)
    with pytest.raises(BifrostError, match="rate limited"):
        ResponsesToMessagesStream(model="m").feed(
            {"type": "error", "code": "rate_limit", "message": "rate limited"}
        )


def test_text_arriving_while_a_call_streams_is_sent_after_it() -> None:
    chat = ChatToResponsesStream(request={"input": "x"}, model="m")
    events = chat.start()
    for chunk in [
        _chat_chunk(
            {"tool_calls": [{"index": 0, "id": "call_a", "function": {"name": "f", "arguments": "{}"}}]}
        ),
        _chat_chunk({"content": "Also, "}),
        _chat_chunk({"content": "hello."}),
        _chat_chunk({}, "tool_calls"),
    ]:
        events += chat.feed(chunk)
    events += chat.finish()
    out = _reverse(events)
    blocks = [(e["index"], e["content_block"]["type"]) for e in out if e["type"] == "content_block_start"]
    assert blocks == [(0, "tool_use"), (1, "text")]
    final = _accumulate(out)
    assert final.content[1].type == "text" and final.content[1].text == "Also, hello."
    assert final.stop_reason == "tool_use"


def test_bifrosts_reasoning_summary_extension_picks_the_summary_for_other_providers() -> None:
    from bifrost_asgi.translate import messages_to_responses_request

    body = {
        "model": "gemini/gemini-2.5-flash",
        "max_tokens": 100,
        "messages": [{"role": "user", "content": "hi"}],
        "thinking": {"type": "enabled", "budget_tokens": 4000},
        "reasoning_summary": "detailed",
    }
    req = messages_to_responses_request(body, stream=False)
    assert req["reasoning"] == {"effort": "medium", "summary": "detailed"}
    assert "reasoning_summary" not in req  # consumed, not forwarded as an unknown field
