"""Golden tests for the OpenAI <-> Gemini translation, checked against the openai SDK's types."""

from __future__ import annotations

import typing
from typing import Any

import orjson
import pytest
from openai.types import Completion

from bifrost_asgi.errors import BifrostError
from bifrost_asgi.translate.gemini import (
    GeminiToChatStream,
    GeminiToResponsesStream,
    chat_to_gemini_request,
    count_tokens_request,
    count_tokens_response,
    gemini_to_chat_response,
    gemini_to_responses_response,
    gemini_to_text_response,
    is_gemini3,
    json_schema_to_gemini,
    responses_to_gemini_request,
    text_to_gemini_request,
)
from tests.translate.openai_shapes import check_chat, check_chunks, check_events, check_response

Obj = dict[str, Any]
FLASH = "gemini-2.5-flash"

WEATHER_PARAMS: Obj = {
    "type": "object",
    "properties": {"city": {"type": "string", "description": "City name"}},
    "required": ["city"],
    "additionalProperties": False,
}
WEATHER_TOOL: Obj = {
    "type": "function",
    "name": "get_weather",
    "description": "Weather for a city",
    "parameters": WEATHER_PARAMS,
    "strict": True,
}
CHAT_WEATHER_TOOL: Obj = {
    "type": "function",
    "function": {"name": "get_weather", "description": "Weather for a city", "parameters": WEATHER_PARAMS},
}
GEMINI_WEATHER: Obj = {
    "functionDeclarations": [
        {
            "name": "get_weather",
            "description": "Weather for a city",
            "parameters": {
                "type": "OBJECT",
                "properties": {"city": {"type": "STRING", "description": "City name"}},
                "required": ["city"],
            },
        }
    ]
}
USAGE: Obj = {
    "promptTokenCount": 120,
    "cachedContentTokenCount": 100,
    "candidatesTokenCount": 8,
    "thoughtsTokenCount": 5,
    "totalTokenCount": 133,
}
# "sig-Paris" in standard base64, and the same bytes as they ride in a call id (URL-safe, unpadded).
SIGNATURE = "c2lnLVBhcmlz+/8="
SIGNATURE_IN_ID = "c2lnLVBhcmlz-_8"


def user(text: str) -> Obj:
    return {"role": "user", "parts": [{"text": text}]}


def answer(*parts: Obj, finish: str | None = "STOP", usage: Obj | None = USAGE) -> Obj:
    candidate: Obj = {"content": {"role": "model", "parts": list(parts)}, "index": 0}
    if finish is not None:
        candidate["finishReason"] = finish
    response: Obj = {"candidates": [candidate], "modelVersion": FLASH, "responseId": "r1"}
    if usage is not None:
        response["usageMetadata"] = usage
    return response


def call_part(city: str, signature: str | None = None) -> Obj:
    part: Obj = {"functionCall": {"name": "get_weather", "args": {"city": city}}}
    if signature is not None:
        part["thoughtSignature"] = signature
    return part


def bad_request(call: typing.Callable[[], object]) -> BifrostError:
    with pytest.raises(BifrostError) as caught:
        call()
    assert caught.value.status_code == 400
    assert caught.value.error_type == "invalid_request_error"
    return caught.value


# ---------------------------------------------------------------------------------------------------------
# Requests: Responses
# ---------------------------------------------------------------------------------------------------------


def test_plain_text_with_instructions() -> None:
    body = {"model": "gemini/gemini-2.5-flash", "input": "Hello", "instructions": "Be brief.", "stream": True}
    assert responses_to_gemini_request(body, FLASH) == {
        "contents": [user("Hello")],
        "systemInstruction": {"parts": [{"text": "Be brief."}]},
    }


def test_multi_turn_maps_roles_and_hoists_system_messages() -> None:
    body = {
        "instructions": "Be brief.",
        "input": [
            {"role": "developer", "content": "Answer in French."},
            {"role": "user", "content": [{"type": "input_text", "text": "Hi"}]},
            {
                "type": "message",
                "role": "assistant",
                "content": [{"type": "output_text", "text": "Bonjour", "annotations": []}],
            },
            {"type": "message", "role": "user", "content": "How are you?"},
            {"role": "user", "content": "And the weather?"},
        ],
    }
    assert responses_to_gemini_request(body, FLASH) == {
        "contents": [
            user("Hi"),
            {"role": "model", "parts": [{"text": "Bonjour"}]},
            {"role": "user", "parts": [{"text": "How are you?"}, {"text": "And the weather?"}]},
        ],
        "systemInstruction": {"parts": [{"text": "Be brief."}, {"text": "Answer in French."}]},
    }


def test_tool_call_round_trip_restores_names_and_signatures() -> None:
    body = {
        "input": [
            {"role": "user", "content": "Weather in Paris?"},
            {"type": "reasoning", "id": "rs_1", "summary": []},
            {
                "type": "function_call",
                "call_id": f"call_abc_ts_{SIGNATURE_IN_ID}",
                "name": "get_weather",
                "arguments": '{"city":"Paris"}',
            },
            {"type": "function_call_output", "call_id": f"call_abc_ts_{SIGNATURE_IN_ID}", "output": "sunny"},
        ],
        "tools": [WEATHER_TOOL],
    }
    assert responses_to_gemini_request(body, FLASH) == {
        "contents": [
            user("Weather in Paris?"),
            {"role": "model", "parts": [call_part("Paris", SIGNATURE)]},
            {
                "role": "user",
                "parts": [{"functionResponse": {"name": "get_weather", "response": {"output": "sunny"}}}],
            },
        ],
        "tools": [GEMINI_WEATHER],
    }


def test_parallel_calls_share_one_turn_and_json_results_stay_objects() -> None:
    body = {
        "input": [
            {"role": "user", "content": "Paris and Tokyo?"},
            {
                "type": "function_call",
                "call_id": "call_1",
                "name": "get_weather",
                "arguments": '{"city":"Paris"}',
            },
            {
                "type": "function_call",
                "call_id": "call_2",
                "name": "get_weather",
                "arguments": '{"city":"Tokyo"}',
            },
            {"type": "function_call_output", "call_id": "call_1", "output": '{"temp": 20}'},
            {
                "type": "function_call_output",
                "call_id": "call_2",
                "output": [{"type": "input_text", "text": "rain"}],
            },
        ],
        "tools": [WEATHER_TOOL],
        "parallel_tool_calls": True,
    }
    contents = responses_to_gemini_request(body, FLASH)["contents"]
    assert contents[1:] == [
        {"role": "model", "parts": [call_part("Paris"), call_part("Tokyo")]},
        {
            "role": "user",
            "parts": [
                {"functionResponse": {"name": "get_weather", "response": {"temp": 20}}},
                {"functionResponse": {"name": "get_weather", "response": {"output": "rain"}}},
            ],
        },
    ]


def test_images_and_files() -> None:
    content = [
        {"type": "input_text", "text": "What is this?"},
        {"type": "input_image", "image_url": "data:image/png;base64,iVBORw0K", "detail": "high"},
        {"type": "input_image", "image_url": "https://example.com/cat.JPG?size=large"},
        {"type": "input_image", "image_url": "https://cdn.example.com/image/12345"},
        {"type": "input_file", "file_data": "data:application/pdf;base64,JVBERi0x", "filename": "a.pdf"},
        {"type": "input_file", "file_url": "https://example.com/report.pdf"},
    ]
    request = responses_to_gemini_request({"input": [{"role": "user", "content": content}]}, FLASH)
    assert request["contents"][0]["parts"] == [
        {"text": "What is this?"},
        {"inlineData": {"mimeType": "image/png", "data": "iVBORw0K"}},
        {"fileData": {"mimeType": "image/jpeg", "fileUri": "https://example.com/cat.JPG?size=large"}},
        {"fileData": {"fileUri": "https://cdn.example.com/image/12345"}},
        {"inlineData": {"mimeType": "application/pdf", "data": "JVBERi0x"}},
        {"fileData": {"mimeType": "application/pdf", "fileUri": "https://example.com/report.pdf"}},
    ]


def test_generation_config_and_dropped_fields() -> None:
    body = {
        "input": "x",
        "max_output_tokens": 256,
        "temperature": 0.2,
        "top_p": 0.9,
        "top_k": 40,
        "text": {"format": {"type": "json_schema", "name": "city", "schema": WEATHER_PARAMS, "strict": True}},
        "metadata": {"a": "b"},
        "store": False,
        "user": "u-1",
        "safety_identifier": "s-1",
        "include": ["reasoning.encrypted_content"],
        "truncation": "auto",
        "service_tier": "auto",
        "prompt_cache_key": "k",
    }
    assert responses_to_gemini_request(body, FLASH) == {
        "contents": [user("x")],
        "generationConfig": {
            "temperature": 0.2,
            "topP": 0.9,
            "topK": 40,
            "maxOutputTokens": 256,
            "responseMimeType": "application/json",
            "responseSchema": GEMINI_WEATHER["functionDeclarations"][0]["parameters"],
        },
    }


@pytest.mark.parametrize(
    ("model", "reasoning", "thinking"),
    [
        # Thoughts come back whenever reasoning is asked for, as Bifrost asks for them.
        (FLASH, {"effort": "low"}, {"thinkingBudget": 2048, "includeThoughts": True}),
        (FLASH, {"effort": "high", "summary": "auto"}, {"thinkingBudget": 24576, "includeThoughts": True}),
        (FLASH, {"effort": "none", "summary": "auto"}, {"thinkingBudget": 0}),
        (FLASH, {"summary": "detailed"}, {"includeThoughts": True}),
        ("gemini-3-pro-preview", {"effort": "medium"}, {"thinkingLevel": "medium", "includeThoughts": True}),
        (FLASH, {"effort": "none"}, {"thinkingBudget": 0}),
        (
            "gemini-3-flash",
            {"effort": "xhigh", "summary": "auto"},
            {"thinkingLevel": "high", "includeThoughts": True},
        ),
    ],
)
def test_reasoning_becomes_thinking_config(model: str, reasoning: Obj, thinking: Obj) -> None:
    request = responses_to_gemini_request({"input": "x", "reasoning": reasoning}, model)
    assert request["generationConfig"] == {"thinkingConfig": thinking}


def test_json_object_and_text_formats() -> None:
    request = responses_to_gemini_request({"input": "x", "text": {"format": {"type": "json_object"}}}, FLASH)
    assert request["generationConfig"] == {"responseMimeType": "application/json"}
    request = responses_to_gemini_request({"input": "x", "text": {"format": {"type": "text"}}}, FLASH)
    assert "generationConfig" not in request


@pytest.mark.parametrize(
    ("choice", "config"),
    [
        ("auto", {"mode": "AUTO"}),
        ("none", {"mode": "NONE"}),
        ("required", {"mode": "ANY"}),
        (
            {"type": "function", "name": "get_weather"},
            {"mode": "ANY", "allowedFunctionNames": ["get_weather"]},
        ),
        (
            {
                "type": "allowed_tools",
                "mode": "required",
                "tools": [{"type": "function", "name": "get_weather"}],
            },
            {"mode": "ANY", "allowedFunctionNames": ["get_weather"]},
        ),
    ],
)
def test_tool_choice(choice: Any, config: Obj) -> None:
    request = responses_to_gemini_request(
        {"input": "x", "tools": [WEATHER_TOOL], "tool_choice": choice}, FLASH
    )
    assert request["toolConfig"] == {"functionCallingConfig": config}


def test_tool_options_without_tools_are_not_sent() -> None:
    body = {"input": "x", "tools": [], "tool_choice": "required", "parallel_tool_calls": False}
    assert responses_to_gemini_request(body, FLASH) == {"contents": [user("x")]}


def test_gemini3_first_unsigned_call_of_each_turn_gets_the_skip_sentinel() -> None:
    body = {
        "input": [
            {"role": "user", "content": "Paris and Tokyo?"},
            {
                "type": "function_call",
                "call_id": "c1",
                "name": "get_weather",
                "arguments": '{"city":"Paris"}',
            },
            {
                "type": "function_call",
                "call_id": "c2",
                "name": "get_weather",
                "arguments": '{"city":"Tokyo"}',
            },
        ]
    }
    model_turn = responses_to_gemini_request(body, "gemini-3-pro-preview")["contents"][1]["parts"]
    assert model_turn == [
        {**call_part("Paris"), "thoughtSignature": "skip_thought_signature_validator"},
        call_part("Tokyo"),
    ]
    assert responses_to_gemini_request(body, FLASH)["contents"][1]["parts"] == [
        call_part("Paris"),
        call_part("Tokyo"),
    ]


@pytest.mark.parametrize(
    ("model", "expected"),
    [("gemini-3-pro-preview", True), ("gemini-3.1-flash", True), (FLASH, False), ("gemini-exp-1206", False)],
)
def test_is_gemini3(model: str, expected: bool) -> None:
    assert is_gemini3(model) is expected


# ---------------------------------------------------------------------------------------------------------
# Requests: JSON Schema -> Gemini schema
# ---------------------------------------------------------------------------------------------------------


def test_schema_keeps_what_gemini_has_and_strips_what_it_rejects() -> None:
    schema = {
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "type": "object",
        "title": "Query",
        "additionalProperties": False,
        "$defs": {"unit": {"type": "string", "enum": ["c", "f"], "description": "Unit"}},
        "properties": {
            "city": {"type": ["string", "null"], "format": "uri", "minLength": 1, "examples": ["Paris"]},
            "when": {"type": "string", "format": "date-time"},
            "unit": {"$ref": "#/$defs/unit"},
            "days": {"type": "integer", "minimum": 1, "exclusiveMaximum": 15, "enum": [1, 7]},
            "mode": {"const": "fast"},
            "tags": {"type": "array", "items": {"type": "string"}, "uniqueItems": True, "maxItems": 3},
            "where": {"oneOf": [{"type": "string"}, {"type": "number", "format": "double"}]},
            "both": {"type": ["string", "number"]},
        },
        "required": ["city"],
    }
    assert json_schema_to_gemini(schema, "p") == {
        "title": "Query",
        "required": ["city"],
        "type": "OBJECT",
        "properties": {
            "city": {"minLength": 1, "type": "STRING", "nullable": True, "example": "Paris"},
            "when": {"type": "STRING", "format": "date-time"},
            "unit": {"description": "Unit", "type": "STRING", "enum": ["c", "f"]},
            "days": {"minimum": 1, "type": "INTEGER"},
            "mode": {"enum": ["fast"], "type": "STRING"},
            "tags": {"maxItems": 3, "type": "ARRAY", "items": {"type": "STRING"}},
            "where": {"anyOf": [{"type": "STRING"}, {"type": "NUMBER", "format": "double"}]},
            "both": {"anyOf": [{"type": "STRING"}, {"type": "NUMBER"}]},
        },
    }


def test_tool_without_parameters_sends_no_parameters() -> None:
    tools = [
        {"type": "function", "name": "now", "parameters": {"type": "object", "properties": {}}},
        {"type": "function", "name": "ping"},
    ]
    request = responses_to_gemini_request({"input": "x", "tools": tools}, FLASH)
    assert request["tools"] == [{"functionDeclarations": [{"name": "now"}, {"name": "ping"}]}]


@pytest.mark.parametrize(
    ("schema", "needle"),
    [
        ({"allOf": [{"type": "string"}]}, "allOf"),
        ({"type": "object", "properties": {"x": {"not": {"type": "string"}}}}, "not"),
        ({"if": {}, "then": {}}, "'if'"),
        ({"type": "array", "prefixItems": [{"type": "string"}]}, "prefixItems"),
        ({"type": "array", "items": [{"type": "string"}]}, "tuple-style"),
        (
            {
                "$defs": {"n": {"type": "object", "properties": {"n": {"$ref": "#/$defs/n"}}}},
                "$ref": "#/$defs/n",
            },
            "recursive",
        ),
        ({"$ref": "https://example.com/schema.json"}, "not a local definition"),
        ({"type": "decimal"}, "unknown schema type"),
        ("object", "JSON Schema object"),
    ],
)
def test_schema_shapes_gemini_cannot_express_are_400(schema: Any, needle: str) -> None:
    err = bad_request(lambda: json_schema_to_gemini(schema, "tools[0].parameters"))
    assert needle in err.message


# ---------------------------------------------------------------------------------------------------------
# Requests: chat and text completions
# ---------------------------------------------------------------------------------------------------------


def test_chat_conversation_with_tools_images_and_audio() -> None:
    body = {
        "model": "gemini/gemini-2.5-flash",
        "messages": [
            {"role": "system", "content": "Be brief."},
            {
                "role": "user",
                "content": [
                    {"type": "text", "text": "Weather where this photo was taken?"},
                    {
                        "type": "image_url",
                        "image_url": {"url": "https://example.com/a.webp", "detail": "low"},
                    },
                    {"type": "input_audio", "input_audio": {"data": "UklGRg==", "format": "wav"}},
                ],
            },
            {
                "role": "assistant",
                "content": "Checking.",
                "tool_calls": [
                    {
                        "id": f"call_1_ts_{SIGNATURE_IN_ID}",
                        "type": "function",
                        "function": {"name": "get_weather", "arguments": '{"city":"Paris"}'},
                    },
                    {
                        "id": "call_2",
                        "type": "function",
                        "function": {"name": "get_weather", "arguments": '{"city":"Tokyo"}'},
                    },
                ],
            },
            {"role": "tool", "tool_call_id": "call_2", "content": "rain"},
            {
                "role": "tool",
                "tool_call_id": f"call_1_ts_{SIGNATURE_IN_ID}",
                "content": [{"type": "text", "text": "sun"}],
            },
            {"role": "user", "content": "Thanks"},
        ],
        "tools": [CHAT_WEATHER_TOOL],
        "tool_choice": {"type": "function", "function": {"name": "get_weather"}},
        "stream": True,
        "stream_options": {"include_usage": True},
    }
    assert chat_to_gemini_request(body, FLASH) == {
        "contents": [
            {
                "role": "user",
                "parts": [
                    {"text": "Weather where this photo was taken?"},
                    {"fileData": {"mimeType": "image/webp", "fileUri": "https://example.com/a.webp"}},
                    {"inlineData": {"mimeType": "audio/wav", "data": "UklGRg=="}},
                ],
            },
            {
                "role": "model",
                "parts": [{"text": "Checking."}, call_part("Paris", SIGNATURE), call_part("Tokyo")],
            },
            {
                "role": "user",
                "parts": [
                    {"functionResponse": {"name": "get_weather", "response": {"output": "rain"}}},
                    {"functionResponse": {"name": "get_weather", "response": {"output": "sun"}}},
                    {"text": "Thanks"},
                ],
            },
        ],
        "systemInstruction": {"parts": [{"text": "Be brief."}]},
        "tools": [GEMINI_WEATHER],
        "toolConfig": {"functionCallingConfig": {"mode": "ANY", "allowedFunctionNames": ["get_weather"]}},
    }


def test_chat_sampling_and_output_format() -> None:
    body = {
        "messages": [{"role": "user", "content": "x"}],
        "max_completion_tokens": 100,
        "max_tokens": 50,
        "temperature": 0,
        "top_p": 1,
        "stop": "END",
        "seed": 7,
        "presence_penalty": 0.5,
        "frequency_penalty": 0.1,
        "n": 1,
        "logprobs": False,
        "reasoning_effort": "medium",
        "response_format": {"type": "json_schema", "json_schema": {"name": "w", "schema": WEATHER_PARAMS}},
        "user": "u",
        "metadata": {"k": "v"},
        "store": False,
    }
    assert chat_to_gemini_request(body, FLASH)["generationConfig"] == {
        "temperature": 0,
        "topP": 1,
        "seed": 7,
        "presencePenalty": 0.5,
        "frequencyPenalty": 0.1,
        "stopSequences": ["END"],
        "maxOutputTokens": 100,
        "responseMimeType": "application/json",
        "responseSchema": GEMINI_WEATHER["functionDeclarations"][0]["parameters"],
        "thinkingConfig": {"thinkingBudget": 8192, "includeThoughts": True},
    }


def test_text_prompt_is_one_user_turn() -> None:
    body = {"model": "m", "prompt": ["Once upon"], "max_tokens": 20, "stop": ["\n"], "temperature": 1}
    assert text_to_gemini_request(body, FLASH) == {
        "contents": [user("Once upon")],
        "generationConfig": {"temperature": 1, "stopSequences": ["\n"], "maxOutputTokens": 20},
    }


BAD_REQUESTS: list[tuple[str, str, Obj, str]] = [
    (
        "previous_response_id",
        "responses",
        {"input": "x", "previous_response_id": "resp_1"},
        "previous_response_id",
    ),
    ("conversation", "responses", {"input": "x", "conversation": "conv_1"}, "conversation"),
    ("background", "responses", {"input": "x", "background": True}, "background"),
    ("unknown field", "responses", {"input": "x", "frobnicate": 1}, "frobnicate"),
    ("hosted tool", "responses", {"input": "x", "tools": [{"type": "web_search"}]}, "web_search"),
    (
        "parallel off",
        "responses",
        {"input": "x", "tools": [WEATHER_TOOL], "parallel_tool_calls": False},
        "parallel_tool_calls",
    ),
    (
        "hosted tool choice",
        "responses",
        {"input": "x", "tools": [WEATHER_TOOL], "tool_choice": {"type": "file_search"}},
        "tool_choice",
    ),
    (
        "allowed tools auto",
        "responses",
        {
            "input": "x",
            "tools": [WEATHER_TOOL],
            "tool_choice": {"type": "allowed_tools", "mode": "auto", "tools": []},
        },
        "tool_choice",
    ),
    ("item reference", "responses", {"input": [{"type": "item_reference", "id": "msg_1"}]}, "item_reference"),
    ("unknown item", "responses", {"input": [{"type": "computer_call_output"}]}, "computer_call_output"),
    (
        "image file id",
        "responses",
        {"input": [{"role": "user", "content": [{"type": "input_image", "file_id": "f"}]}]},
        "file_id",
    ),
    (
        "file id",
        "responses",
        {"input": [{"role": "user", "content": [{"type": "input_file", "file_id": "f"}]}]},
        "file_id",
    ),
    (
        "ftp image",
        "responses",
        {"input": [{"role": "user", "content": [{"type": "input_image", "image_url": "ftp://x/a.png"}]}]},
        "http(s)",
    ),
    (
        "bad data uri",
        "responses",
        {
            "input": [
                {"role": "user", "content": [{"type": "input_image", "image_url": "data:image/png,abc"}]}
            ]
        },
        "base64",
    ),
    (
        "image in system",
        "responses",
        {"input": [{"role": "system", "content": [{"type": "input_image", "image_url": "https://x/a.png"}]}]},
        "text",
    ),
    (
        "orphan tool result",
        "responses",
        {"input": [{"type": "function_call_output", "call_id": "c9", "output": "x"}]},
        "c9",
    ),
    (
        "image in tool output",
        "responses",
        {
            "input": [
                {"type": "function_call", "call_id": "c", "name": "f", "arguments": "{}"},
                {
                    "type": "function_call_output",
                    "call_id": "c",
                    "output": [{"type": "input_image", "image_url": "https://x/a.png"}],
                },
            ]
        },
        "text",
    ),
    (
        "bad arguments",
        "responses",
        {"input": [{"type": "function_call", "call_id": "c", "name": "f", "arguments": "{"}]},
        "JSON",
    ),
    (
        "array arguments",
        "responses",
        {"input": [{"type": "function_call", "call_id": "c", "name": "f", "arguments": "[1]"}]},
        "object",
    ),
    (
        "damaged signature",
        "responses",
        {"input": [{"type": "function_call", "call_id": "c_ts_a+b", "name": "f", "arguments": "{}"}]},
        "signature",
    ),
    ("bad role", "responses", {"input": [{"role": "tool", "content": "x"}]}, "role"),
    ("unknown effort", "responses", {"input": "x", "reasoning": {"effort": "extreme"}}, "effort"),
    ("text format", "responses", {"input": "x", "text": {"format": {"type": "grammar"}}}, "text.format"),
    ("no input", "responses", {"model": "m"}, "input is required"),
    ("n", "chat", {"messages": [], "n": 2}, "n > 1"),
    ("logprobs", "chat", {"messages": [], "logprobs": True}, "logprobs"),
    ("logit bias", "chat", {"messages": [], "logit_bias": {"1": 5}}, "logit_bias"),
    ("audio output", "chat", {"messages": [], "modalities": ["text", "audio"]}, "text output"),
    ("legacy functions", "chat", {"messages": [], "functions": []}, "functions"),
    (
        "tool call without id",
        "chat",
        {"messages": [{"role": "assistant", "tool_calls": [{"function": {"name": "f"}}]}]},
        "id",
    ),
    (
        "tool result for unknown call",
        "chat",
        {"messages": [{"role": "tool", "tool_call_id": "x", "content": "y"}]},
        "'x'",
    ),
    (
        "chat file id",
        "chat",
        {"messages": [{"role": "user", "content": [{"type": "file", "file": {"file_id": "f"}}]}]},
        "file_id",
    ),
    (
        "bare base64 file",
        "chat",
        {"messages": [{"role": "user", "content": [{"type": "file", "file": {"file_data": "QUJD"}}]}]},
        "type",
    ),
    ("no messages", "chat", {"model": "m"}, "messages is required"),
    ("several prompts", "text", {"prompt": ["a", "b"]}, "single string"),
    ("echo", "text", {"prompt": "a", "echo": True}, "echo"),
    ("best of", "text", {"prompt": "a", "best_of": 3}, "best_of"),
    ("suffix", "text", {"prompt": "a", "suffix": "z"}, "suffix"),
]
TRANSLATORS: dict[str, typing.Callable[[Obj, str], Obj]] = {
    "responses": responses_to_gemini_request,
    "chat": chat_to_gemini_request,
    "text": text_to_gemini_request,
}


@pytest.mark.parametrize(
    ("api", "body", "needle"), [c[1:] for c in BAD_REQUESTS], ids=[c[0] for c in BAD_REQUESTS]
)
def test_unrepresentable_requests_are_400(api: str, body: Obj, needle: str) -> None:
    err = bad_request(lambda: TRANSLATORS[api](body, FLASH))
    assert needle in err.message
    assert err.allow_fallbacks is False


def test_chat_file_with_named_base64_and_refusal_history() -> None:
    body = {
        "messages": [
            {
                "role": "user",
                "content": [{"type": "file", "file": {"file_data": "JVBE", "filename": "r.pdf"}}],
            },
            {"role": "assistant", "content": None, "refusal": "I can't."},
        ]
    }
    assert chat_to_gemini_request(body, FLASH)["contents"] == [
        {"role": "user", "parts": [{"inlineData": {"mimeType": "application/pdf", "data": "JVBE"}}]},
        {"role": "model", "parts": [{"text": "I can't."}]},
    ]


# ---------------------------------------------------------------------------------------------------------
# Count tokens
# ---------------------------------------------------------------------------------------------------------


def test_count_tokens_request_wraps_a_generate_content_request() -> None:
    body = {
        "model": "gemini/x",
        "input": "Hi",
        "instructions": "Be brief.",
        "tools": [WEATHER_TOOL],
        "return_tokens": True,
    }
    assert count_tokens_request(body, FLASH) == {
        "generateContentRequest": {
            "model": f"models/{FLASH}",
            "contents": [user("Hi")],
            "systemInstruction": {"parts": [{"text": "Be brief."}]},
            "tools": [GEMINI_WEATHER],
        }
    }


def test_count_tokens_request_from_messages_and_empty_inputs() -> None:
    body = {"model": "m", "messages": [{"role": "user", "content": "Hi"}]}
    assert count_tokens_request(body, FLASH) == {
        "generateContentRequest": {"model": f"models/{FLASH}", "contents": [user("Hi")]}
    }
    assert count_tokens_request({"input": ""}, FLASH) is None
    assert count_tokens_request({"input": []}, FLASH) is None


def test_count_tokens_response() -> None:
    upstream = {
        "totalTokens": 31,
        "cachedContentTokenCount": 10,
        "promptTokensDetails": [
            {"modality": "TEXT", "tokenCount": 25},
            {"modality": "IMAGE", "tokenCount": 6},
        ],
    }
    assert count_tokens_response(upstream) == {
        "input_tokens": 31,
        "input_tokens_details": {"cached_read_tokens": 10, "text_tokens": 25, "image_tokens": 6},
    }
    assert count_tokens_response({"totalTokens": 4}) == {
        "input_tokens": 4,
        "input_tokens_details": {"cached_read_tokens": 0},
    }


# ---------------------------------------------------------------------------------------------------------
# Whole answers
# ---------------------------------------------------------------------------------------------------------

RESPONSES_USAGE: Obj = {
    "input_tokens": 120,
    "input_tokens_details": {"cached_tokens": 100, "cached_read_tokens": 100, "cache_write_tokens": 0},
    "output_tokens": 13,
    "output_tokens_details": {"reasoning_tokens": 5},
    "total_tokens": 133,
}
CHAT_USAGE: Obj = {
    "prompt_tokens": 120,
    "completion_tokens": 13,
    "total_tokens": 133,
    "prompt_tokens_details": {"cached_tokens": 100, "cached_read_tokens": 100},
    "completion_tokens_details": {"reasoning_tokens": 5},
}


def test_text_answer_as_a_responses_object() -> None:
    request = {"input": "hi", "instructions": "Be brief.", "max_output_tokens": 50}
    result = gemini_to_responses_response(
        answer({"text": "Hel"}, {"text": "lo"}), request=request, model=FLASH
    )
    parsed = check_response(result)
    assert parsed.output_text == "Hello"
    assert (parsed.status, parsed.model, parsed.instructions, parsed.max_output_tokens) == (
        "completed",
        FLASH,
        "Be brief.",
        50,
    )
    assert result["usage"] == RESPONSES_USAGE


def test_thoughts_become_a_leading_reasoning_item() -> None:
    gemini = answer({"text": "Hmm.", "thought": True}, {"text": "Yes.", "thoughtSignature": "c2ln"})
    result = gemini_to_responses_response(gemini, request={"input": "x"}, model=FLASH)
    check_response(result)
    assert [item["type"] for item in result["output"]] == ["reasoning", "message"]
    assert result["output"][0]["summary"] == [{"type": "summary_text", "text": "Hmm."}]
    chat = gemini_to_chat_response(gemini, FLASH)
    assert chat["choices"][0]["message"]["reasoning"] == "Hmm."


def test_parallel_calls_answer_round_trips_its_signatures() -> None:
    gemini = answer({"text": "Checking."}, call_part("Paris", SIGNATURE), call_part("Tokyo"))
    result = gemini_to_responses_response(
        gemini, request={"input": "x", "tools": [WEATHER_TOOL]}, model=FLASH
    )
    check_response(result)
    calls = [item for item in result["output"] if item["type"] == "function_call"]
    assert [(c["name"], c["arguments"], c["status"]) for c in calls] == [
        ("get_weather", '{"city":"Paris"}', "completed"),
        ("get_weather", '{"city":"Tokyo"}', "completed"),
    ]
    assert calls[0]["call_id"].startswith("call_") and calls[0]["call_id"].endswith("_ts_" + SIGNATURE_IN_ID)
    assert "_ts_" not in calls[1]["call_id"] and calls[0]["call_id"] != calls[1]["call_id"]
    # Sent back as the next request's history, the calls carry Gemini's signatures again.
    history = [{"role": "user", "content": "x"}, *calls]
    history += [{"type": "function_call_output", "call_id": c["call_id"], "output": "ok"} for c in calls]
    contents = responses_to_gemini_request({"input": history}, FLASH)["contents"]
    assert contents[1]["parts"] == [call_part("Paris", SIGNATURE), call_part("Tokyo")]


def test_chat_answer_with_tool_calls() -> None:
    chat = gemini_to_chat_response(answer(call_part("Paris")), FLASH)
    check_chat(chat)
    choice = chat["choices"][0]
    assert choice["finish_reason"] == "tool_calls"
    assert choice["message"]["content"] is None
    (call,) = choice["message"]["tool_calls"]
    assert call["type"] == "function" and call["function"] == {
        "name": "get_weather",
        "arguments": '{"city":"Paris"}',
    }
    assert chat["usage"] == CHAT_USAGE
    assert (chat["object"], chat["model"], chat["id"]) == ("chat.completion", FLASH, "chatcmpl-r1")


def test_text_completion_answer() -> None:
    completion = gemini_to_text_response(answer({"text": "Once upon a time"}, finish="MAX_TOKENS"), FLASH)
    Completion.model_validate(completion)
    assert completion["choices"][0] == {
        "index": 0,
        "text": "Once upon a time",
        "finish_reason": "length",
        "logprobs": None,
    }
    assert completion["usage"] == CHAT_USAGE


FINISH_REASONS = [
    ("STOP", "stop", "completed", None),
    ("MAX_TOKENS", "length", "incomplete", "max_output_tokens"),
    ("SAFETY", "content_filter", "incomplete", "content_filter"),
    ("RECITATION", "content_filter", "incomplete", "content_filter"),
    ("LANGUAGE", "content_filter", "incomplete", "content_filter"),
    ("BLOCKLIST", "content_filter", "incomplete", "content_filter"),
    ("PROHIBITED_CONTENT", "content_filter", "incomplete", "content_filter"),
    ("SPII", "content_filter", "incomplete", "content_filter"),
    ("IMAGE_SAFETY", "content_filter", "incomplete", "content_filter"),
    ("OTHER", "stop", "completed", None),
    ("MALFORMED_FUNCTION_CALL", "stop", "completed", None),
    ("UNEXPECTED_TOOL_CALL", "stop", "completed", None),
    ("FINISH_REASON_UNSPECIFIED", "stop", "completed", None),
]


@pytest.mark.parametrize(
    ("native", "finish", "status", "reason"), FINISH_REASONS, ids=[f[0] for f in FINISH_REASONS]
)
def test_every_finish_reason(native: str, finish: str, status: str, reason: str | None) -> None:
    gemini = answer({"text": "partial"}, finish=native)
    assert gemini_to_chat_response(gemini, FLASH)["choices"][0]["finish_reason"] == finish
    result = gemini_to_responses_response(gemini, request={"input": "x"}, model=FLASH)
    check_response(result)
    assert result["status"] == status
    assert result["incomplete_details"] == (None if reason is None else {"reason": reason})
    stream = GeminiToChatStream(model=FLASH)
    chunks = stream.feed(gemini) + stream.finish()
    assert [c["choices"][0]["finish_reason"] for c in chunks if c["choices"]] == [None, finish]


def test_blocked_prompt_is_content_filter() -> None:
    gemini = {
        "promptFeedback": {"blockReason": "SAFETY"},
        "usageMetadata": {"promptTokenCount": 9, "totalTokenCount": 9},
    }
    chat = gemini_to_chat_response(gemini, FLASH)
    assert chat["choices"][0]["finish_reason"] == "content_filter"
    assert chat["choices"][0]["message"]["content"] == ""
    result = gemini_to_responses_response(gemini, request={"input": "x"}, model=FLASH)
    assert (result["status"], result["output"]) == ("incomplete", [])
    assert result["usage"]["input_tokens"] == 9


def test_answer_parts_chat_cannot_carry_are_400() -> None:
    gemini = answer({"inlineData": {"mimeType": "image/png", "data": "iVBO"}})
    err = bad_request(lambda: gemini_to_chat_response(gemini, FLASH))
    assert "inlineData" in err.message


def test_usage_counts_tool_prompts_and_fills_a_missing_total() -> None:
    meta = {"promptTokenCount": 10, "toolUsePromptTokenCount": 4, "candidatesTokenCount": 3}
    chat = gemini_to_chat_response(answer({"text": "x"}, usage=meta), FLASH)
    assert chat["usage"] == {
        "prompt_tokens": 14,
        "completion_tokens": 3,
        "total_tokens": 17,
        "prompt_tokens_details": {"cached_tokens": 0, "cached_read_tokens": 0},
        "completion_tokens_details": {"reasoning_tokens": 0},
    }
    assert "usage" not in gemini_to_chat_response(answer({"text": "x"}, usage=None), FLASH)


# ---------------------------------------------------------------------------------------------------------
# Streams
# ---------------------------------------------------------------------------------------------------------


def chunk(*parts: Obj, finish: str | None = None, usage: Obj | None = None) -> Obj:
    return answer(*parts, finish=finish, usage=usage)


TEXT_STREAM = [
    chunk({"text": "Hel"}, usage={"promptTokenCount": 120}),
    chunk({"text": "lo"}, usage={"promptTokenCount": 120}),
    chunk({"text": ""}, finish="STOP", usage=USAGE),
]


def run_chat(chunks: list[Obj], *, text: bool = False) -> list[Obj]:
    stream = GeminiToChatStream(model=FLASH, text_completion=text)
    out = stream.start()
    for c in chunks:
        out += stream.feed(c)
    return out + stream.finish()


def run_responses(chunks: list[Obj], request: Obj | None = None) -> list[Obj]:
    stream = GeminiToResponsesStream(request=request or {"input": "x"}, model=FLASH)
    events = stream.start()
    for c in chunks:
        events += stream.feed(c)
    events += stream.finish()
    check_events(events)
    return events


def test_chat_text_stream() -> None:
    chunks = run_chat(TEXT_STREAM)
    for c in chunks:
        check_chunks([c])
    assert [c["choices"][0]["delta"] if c["choices"] else c["usage"] for c in chunks] == [
        {"role": "assistant", "content": "Hel"},
        {"content": "lo"},
        {},
        CHAT_USAGE,
    ]
    assert [c["choices"][0]["finish_reason"] for c in chunks[:-1]] == [None, None, "stop"]
    assert len({c["id"] for c in chunks}) == 1


def test_chat_stream_parallel_calls_and_thoughts() -> None:
    chunks = run_chat(
        [
            chunk({"text": "Planning.", "thought": True}),
            chunk(call_part("Paris", SIGNATURE), call_part("Tokyo")),
            chunk(finish="STOP", usage=USAGE),
        ]
    )
    for c in chunks:
        check_chunks([c])
    deltas = [c["choices"][0]["delta"] for c in chunks if c["choices"]]
    assert deltas[0] == {"role": "assistant", "reasoning": "Planning."}
    calls = [d["tool_calls"][0] for d in deltas[1:3]]
    assert [(c["index"], c["function"]["name"], c["function"]["arguments"]) for c in calls] == [
        (0, "get_weather", '{"city":"Paris"}'),
        (1, "get_weather", '{"city":"Tokyo"}'),
    ]
    assert calls[0]["id"].endswith("_ts_" + SIGNATURE_IN_ID)
    assert chunks[-2]["choices"][0]["finish_reason"] == "tool_calls"


def partial(**call: Any) -> Obj:
    return {"functionCall": call}


# As Gemini streams one call's arguments (streamFunctionCallArguments): the name first, then values per
# JSONPath, strings continued across parts, then an empty functionCall to end it.
PARTIAL_CALL = [
    chunk({**partial(name="set_light", willContinue=True), "thoughtSignature": SIGNATURE}),
    chunk(partial(partialArgs=[{"jsonPath": "$.location", "stringValue": "Boston", "willContinue": True}],
                  willContinue=True)),
    chunk(partial(partialArgs=[{"jsonPath": "$.location", "stringValue": ", MA"},
                               {"jsonPath": "$.brightness", "numberValue": 50}], willContinue=True)),
    chunk(partial(partialArgs=[{"jsonPath": "$.schedule.days[1]", "stringValue": "Tue"},
                               {"jsonPath": "$.schedule['on']", "boolValue": True},
                               {"jsonPath": "$.scene", "nullValue": "NULL_VALUE"}], willContinue=True)),
    chunk(partial()),
    chunk(call_part("Tokyo")),
    chunk(finish="STOP", usage=USAGE),
]  # fmt: skip
PARTIAL_ARGS = {
    "location": "Boston, MA",
    "brightness": 50,
    "schedule": {"days": [None, "Tue"], "on": True},
    "scene": None,
}


def assembled_calls(chunks: list[Obj]) -> dict[int, Obj]:
    """Tool calls as an OpenAI client accumulates chat deltas: by index, arguments concatenated."""
    calls: dict[int, Obj] = {}
    for c in chunks:
        for call in c["choices"][0]["delta"].get("tool_calls", []) if c["choices"] else []:
            entry = calls.setdefault(call["index"], {"id": None, "name": "", "arguments": ""})
            entry["id"] = call.get("id") or entry["id"]
            entry["name"] += call.get("function", {}).get("name") or ""
            entry["arguments"] += call["function"].get("arguments") or ""
    return calls


def test_chat_stream_assembles_arguments_streamed_in_parts() -> None:
    chunks = run_chat(PARTIAL_CALL)
    check_chunks(chunks)
    calls = assembled_calls(chunks)
    assert [(i, c["name"], orjson.loads(c["arguments"])) for i, c in calls.items()] == [
        (0, "set_light", PARTIAL_ARGS),
        (1, "get_weather", {"city": "Tokyo"}),
    ]
    assert calls[0]["id"].endswith("_ts_" + SIGNATURE_IN_ID)
    # Announced when it starts, its arguments in one delta when it ends: two deltas, not one per part.
    assert sum(1 for c in chunks if c["choices"] and c["choices"][0]["delta"].get("tool_calls")) == 3
    assert chunks[-2]["choices"][0]["finish_reason"] == "tool_calls"


def test_responses_stream_assembles_arguments_streamed_in_parts() -> None:
    events = run_responses(PARTIAL_CALL, request={"input": "x", "tools": [WEATHER_TOOL]})
    calls = [i for i in events[-1]["response"]["output"] if i["type"] == "function_call"]
    assert [(c["name"], orjson.loads(c["arguments"])) for c in calls] == [
        ("set_light", PARTIAL_ARGS),
        ("get_weather", {"city": "Tokyo"}),
    ]
    done = [e["arguments"] for e in events if e["type"] == "response.function_call_arguments.done"]
    assert [orjson.loads(a) for a in done] == [PARTIAL_ARGS, {"city": "Tokyo"}]


A_SO_FAR = chunk(partial(name="f", partialArgs=[{"jsonPath": "$.a", "stringValue": "x"}], willContinue=True))


@pytest.mark.parametrize(
    ("ending", "args"),
    [
        ([chunk(finish="STOP")], {"a": "x"}),  # the finish reason ends it
        ([chunk({"text": "Done."}), chunk(finish="STOP")], {"a": "x"}),  # so does anything else starting
        ([], {"a": "x"}),  # and the end of the stream
        # a part with nothing more to come
        ([chunk(partial(partialArgs=[{"jsonPath": "$.b", "numberValue": 2}]))], {"a": "x", "b": 2}),
    ],
)
def test_a_call_streamed_in_parts_ends_when_gemini_says_or_moves_on(ending: list[Obj], args: Obj) -> None:
    calls = assembled_calls(run_chat([A_SO_FAR, *ending]))
    assert [(c["name"], orjson.loads(c["arguments"])) for c in calls.values()] == [("f", args)]


def test_an_end_marker_with_no_call_open_adds_nothing() -> None:
    chunks = run_chat([chunk({"text": "Hi"}), chunk(partial()), chunk(finish="STOP")])
    assert assembled_calls(chunks) == {}
    assert chunks[-1]["choices"][0]["finish_reason"] == "stop"


def test_arguments_that_do_not_fit_together_are_a_bad_response() -> None:
    for path in ("$.a[0]", "items"):
        stream = GeminiToChatStream(model=FLASH)
        stream.feed(chunk(partial(name="f", partialArgs=[{"jsonPath": "$.a", "stringValue": "x"}],
                                  willContinue=True)))  # fmt: skip
        with pytest.raises(BifrostError) as caught:
            stream.feed(chunk(partial(partialArgs=[{"jsonPath": path, "stringValue": "y"}])))
        assert caught.value.status_code == 502


def test_stream_ending_without_finish_reason_still_closes() -> None:
    chunks = run_chat([chunk({"text": "Hi"})])
    assert [c["choices"][0]["finish_reason"] for c in chunks] == [None, "stop"]


def test_text_completion_stream() -> None:
    chunks = run_chat(TEXT_STREAM, text=True)
    # OpenAI's chunks carry finish_reason null until the last one, which its Completion type refuses.
    Completion.model_validate(chunks[-2])
    assert [c["choices"][0]["text"] for c in chunks if c["choices"]] == ["Hel", "lo", ""]
    assert [c["choices"][0]["finish_reason"] for c in chunks if c["choices"]] == [None, None, "stop"]
    assert chunks[-1]["usage"] == CHAT_USAGE and chunks[-1]["object"] == "text_completion"


def test_responses_text_stream_follows_openai_order() -> None:
    events = run_responses(TEXT_STREAM)
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
    final = check_response(events[-1]["response"])
    assert final.output_text == "Hello"
    assert events[-1]["response"]["usage"] == RESPONSES_USAGE


def test_responses_stream_with_reasoning_and_parallel_calls() -> None:
    events = run_responses(
        [
            chunk({"text": "Planning.", "thought": True}),
            chunk({"text": "Checking both."}),
            chunk(call_part("Paris", SIGNATURE), call_part("Tokyo")),
            chunk(finish="STOP", usage=USAGE),
        ],
        request={"input": "x", "tools": [WEATHER_TOOL]},
    )
    types = [e["type"] for e in events]
    assert types.count("response.reasoning_summary_text.delta") == 1
    assert types.count("response.function_call_arguments.done") == 2
    final = events[-1]["response"]
    assert [item["type"] for item in final["output"]] == [
        "reasoning",
        "message",
        "function_call",
        "function_call",
    ]
    assert final["output"][2]["call_id"].endswith("_ts_" + SIGNATURE_IN_ID)
    assert final["status"] == "completed"


def test_responses_stream_max_tokens_is_incomplete() -> None:
    events = run_responses([chunk({"text": "Hel"}), chunk({"text": "lo"}, finish="MAX_TOKENS", usage=USAGE)])
    assert events[-1]["type"] == "response.incomplete"
    assert events[-1]["response"]["incomplete_details"] == {"reason": "max_output_tokens"}
    assert events[-1]["response"]["usage"] == RESPONSES_USAGE


def test_stream_answer_part_chat_cannot_carry_is_400() -> None:
    stream = GeminiToResponsesStream(request={"input": "x"}, model=FLASH)
    stream.start()
    err = bad_request(lambda: stream.feed(chunk({"executableCode": {"code": "1+1"}})))
    assert "executableCode" in err.message
