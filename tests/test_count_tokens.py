"""Request token counts, pinned against tiktoken's own encodings and OpenAI's published figures."""

from __future__ import annotations

import base64
import io
import math
import struct
import threading
import wave
import zlib
from collections.abc import Callable
from typing import Any

import pytest

from bifrost_asgi.errors import BifrostError
from bifrost_asgi.tokens import count as _count_tokens
from bifrost_asgi.tokens import encodings as _tokenizer
from bifrost_asgi.tokens.count import (
    ENUM_INIT,
    ENUM_ITEM,
    FUNC_END,
    FUNC_INIT_O200K,
    PROP_INIT,
    PROP_KEY,
    REPLY_PRIMING,
    THREAD_THRESHOLD_CHARS,
    TOKENS_PER_MESSAGE,
    TOKENS_PER_NAME,
    TokenCount,
    count_request_tokens,
    count_request_tokens_async,
    image_tokens,
)
from tests.test_tokenizer import reference_encoding

Body = dict[str, Any]


def count(body: Body, model: str = "gpt-4o", *, return_tokens: bool = True) -> TokenCount:
    return count_request_tokens(body, model, return_tokens=return_tokens)


def ref_tokens(encoding: str, *pieces: str) -> list[int]:
    enc = reference_encoding(encoding)
    return [t for piece in pieces for t in enc.encode_ordinary(piece)]


def message_framing(encoding: str, *roles: str) -> int:
    """The cookbook's per-message framing: 3 + the role's own tokens, per message, by tiktoken."""
    enc = reference_encoding(encoding)
    return sum(TOKENS_PER_MESSAGE + len(enc.encode_ordinary(role)) for role in roles)


# --- media built in the tests ------------------------------------------------------------------------------


def png(width: int, height: int) -> bytes:
    """A real 8-bit grayscale PNG (zlib-compressed mid-grey rows), built with the stdlib."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    rows = (b"\x00" + b"\x80" * width) * height
    ihdr = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", ihdr)
        + chunk(b"IDAT", zlib.compress(rows))
        + chunk(b"IEND", b"")
    )


def _segment(marker: int, payload: bytes) -> bytes:
    return bytes([0xFF, marker]) + struct.pack(">H", len(payload) + 2) + payload


def jpeg(width: int, height: int, *, padding: int = 0) -> bytes:
    """A baseline grayscale JPEG of uniform mid-grey: every 8x8 block is DC 0 + end-of-block.

    Single-code Huffman tables make each block two "0" bits. ``padding`` bytes of COM segments go
    before the frame header, as EXIF/ICC data would, to push SOF0 past the sniffer's first window.
    """
    comments = b""
    while padding > 0:
        size = min(padding, 65_000)
        comments += _segment(0xFE, b"x" * size)
        padding -= size
    one_code_table = b"\x01" + b"\x00" * 15 + b"\x00"  # one code of length 1, for symbol 0x00
    blocks = math.ceil(width / 8) * math.ceil(height / 8)
    bits = "00" * blocks
    bits += "1" * (-len(bits) % 8)
    scan = int(bits, 2).to_bytes(len(bits) // 8, "big").replace(b"\xff", b"\xff\x00")
    return b"".join(
        [
            b"\xff\xd8",
            _segment(0xE0, b"JFIF\x00\x01\x01\x00\x00\x01\x00\x01\x00\x00"),
            comments,
            _segment(0xDB, b"\x00" + b"\x01" * 64),
            _segment(0xC0, struct.pack(">BHHB", 8, height, width, 1) + b"\x01\x11\x00"),
            _segment(0xC4, b"\x00" + one_code_table),
            _segment(0xC4, b"\x10" + one_code_table),
            _segment(0xDA, b"\x01\x01\x00\x00\x3f\x00"),
            scan,
            b"\xff\xd9",
        ]
    )


def gif_header(width: int, height: int) -> bytes:
    return b"GIF89a" + struct.pack("<HHBBB", width, height, 0x80, 0, 0) + b"\x00\x00\x00\xff\xff\xff"


def _riff_webp(chunk: bytes, payload: bytes) -> bytes:
    body = b"WEBP" + chunk + struct.pack("<I", len(payload)) + payload
    return b"RIFF" + struct.pack("<I", len(body)) + body


def webp_vp8(width: int, height: int) -> bytes:
    return _riff_webp(b"VP8 ", b"\x10\x02\x00\x9d\x01\x2a" + struct.pack("<HH", width, height) + b"\x00" * 8)


def webp_vp8l(width: int, height: int) -> bytes:
    return _riff_webp(b"VP8L", b"\x2f" + struct.pack("<I", (width - 1) | (height - 1) << 14) + b"\x00" * 8)


def webp_vp8x(width: int, height: int) -> bytes:
    size = (width - 1).to_bytes(3, "little") + (height - 1).to_bytes(3, "little")
    return _riff_webp(b"VP8X", b"\x00" * 4 + size)


def data_url(raw: bytes, mime: str = "image/png") -> str:
    return f"data:{mime};base64,{base64.b64encode(raw).decode()}"


def wav(seconds: float, rate: int = 16_000) -> bytes:
    out = io.BytesIO()
    with wave.open(out, "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(rate)
        w.writeframes(b"\x00\x00" * int(rate * seconds))
    return out.getvalue()


def mp3(seconds: float, *, id3: int = 0) -> bytes:
    """MPEG-1 Layer III frame headers at 128 kbit/s (16,000 bytes/s), optionally after an ID3v2 tag."""
    frame = b"\xff\xfb\x90\x64" + b"\x00" * 413  # 417-byte frames, as a 128 kbit/s 44.1 kHz stream has
    audio = (frame * (int(16_000 * seconds) // len(frame) + 1))[: int(16_000 * seconds)]
    tag = b""
    if id3:
        size = bytes((id3 >> shift) & 0x7F for shift in (21, 14, 7, 0))  # syncsafe
        tag = b"ID3\x04\x00\x00" + size + b"\x00" * id3
    return tag + audio


def user_parts(*parts: dict[str, Any]) -> Body:
    return {"input": [{"role": "user", "content": list(parts)}]}


def image_part(url: str, detail: str | None = None) -> dict[str, Any]:
    part: dict[str, Any] = {"type": "input_image", "image_url": url}
    if detail is not None:
        part["detail"] = detail
    return part


# --- text: exact counts against tiktoken's own output -------------------------------------------------------

MULTI_TURN: Body = {
    "instructions": "You are terse. Answer in one line.",
    "input": [
        {"role": "user", "content": "What's 2 + 2?"},
        {"type": "message", "role": "assistant", "content": [{"type": "output_text", "text": "4."}]},
        {
            "type": "message",
            "role": "user",
            "content": [
                {"type": "input_text", "text": "And in base 3?"},
                {"type": "input_text", "text": " Show the digits."},
            ],
        },
    ],
}

TOOL_ROUND_TRIP: Body = {
    "input": [
        {"role": "user", "content": "Weather in Paris?"},
        {"type": "reasoning", "id": "rs_1", "summary": [{"type": "summary_text", "text": "Need the tool."}]},
        {
            "type": "function_call",
            "id": "fc_1",
            "call_id": "call_1",
            "name": "get_weather",
            "arguments": '{"city":"Paris"}',
        },
        {"type": "function_call_output", "call_id": "call_1", "output": '{"temp_c":18}'},
        {"type": "message", "role": "assistant", "content": [{"type": "refusal", "refusal": "No more."}]},
    ]
}

CHAT_MESSAGES: Body = {  # the seed-003 form: chat-style messages instead of input
    "messages": [
        {"role": "system", "content": "Be brief."},
        {"role": "user", "name": "ana", "content": [{"type": "text", "text": "Call the tool"}]},
        {
            "role": "assistant",
            "content": None,
            "tool_calls": [
                {"id": "c1", "type": "function", "function": {"name": "lookup", "arguments": '{"q":"x"}'}}
            ],
        },
        {"role": "tool", "tool_call_id": "c1", "content": "found"},
    ]
}

TEXT_CASES: list[tuple[str, str, Body, list[str], list[str], int]] = [
    # (id, model, body, text pieces in order, message roles, pinned input_tokens)
    ("plain", "gpt-4o", {"input": "Hello world"}, ["Hello world"], ["user"], 9),
    ("empty", "gpt-4o", {"input": ""}, [], ["user"], 7),
    (
        "non-ascii-emoji",
        "gpt-4o",
        {"input": "Grüße aus München — こんにちは 😀🚀👩‍👩‍👧‍👦"},
        ["Grüße aus München — こんにちは 😀🚀👩‍👩‍👧‍👦"],
        ["user"],
        29,
    ),
    (
        "non-ascii-emoji-cl100k",
        "gpt-4",
        {"input": "Grüße aus München — こんにちは 😀🚀👩‍👩‍👧‍👦"},
        ["Grüße aus München — こんにちは 😀🚀👩‍👩‍👧‍👦"],
        ["user"],
        37,
    ),
    (
        "special-token-text",
        "gpt-4",
        {"input": "<|endoftext|> hi <|endofprompt|>"},
        ["<|endoftext|> hi <|endofprompt|>"],
        ["user"],
        21,
    ),
    (
        "multi-turn",
        "gpt-4o",
        MULTI_TURN,
        ["You are terse. Answer in one line.", "What's 2 + 2?", "4.", "And in base 3?", " Show the digits."],
        ["system", "user", "assistant", "user"],
        47,
    ),
    (
        "tool-round-trip",
        "gpt-4o",
        TOOL_ROUND_TRIP,
        [
            "Weather in Paris?",
            "Need the tool.",
            "get_weather",
            '{"city":"Paris"}',
            '{"temp_c":18}',
            "No more.",
        ],
        ["user", "assistant", "assistant", "tool", "assistant"],
        47,
    ),
    (
        "chat-messages",
        "gpt-4o-mini",
        CHAT_MESSAGES,
        ["Be brief.", "ana", "Call the tool", "lookup", '{"q":"x"}', "found"],
        ["system", "user", "assistant", "tool"],
        34,
    ),
    ("p50k", "text-davinci-003", {"input": "Once upon a time"}, ["Once upon a time"], ["user"], 11),
    (
        "custom-tool-call",
        "gpt-4o",
        {
            "input": [
                {"type": "custom_tool_call", "call_id": "c1", "name": "run", "input": "ls -l"},
                {"type": "custom_tool_call_output", "call_id": "c1", "output": "a.txt"},
            ]
        },
        ["run", "ls -l", "a.txt"],
        ["assistant", "tool"],
        17,
    ),
    (
        "object-tool-output",
        "gpt-4o",
        {"input": [{"type": "function_call_output", "call_id": "c1", "output": {"t": 18}}]},
        ['{"t":18}'],
        ["tool"],
        12,
    ),
    (
        "reasoning",
        "gpt-4o",
        {
            "input": [
                {
                    "type": "reasoning",
                    "id": "r1",
                    "summary": [{"type": "summary_text", "text": "Think"}],
                    "content": [{"type": "reasoning_text", "text": "Deeply"}],
                }
            ]
        },
        ["Think", "Deeply"],
        ["assistant"],
        10,
    ),
    (
        "refusal",
        "gpt-4o",
        {
            "input": [
                {
                    "role": "assistant",
                    "content": [
                        {"type": "refusal", "refusal": "I can't."},
                        {"type": "refusal", "text": "Nor that."},
                    ],
                }
            ]
        },
        ["I can't.", "Nor that."],
        ["assistant"],
        13,
    ),
    (
        "other-items",
        "gpt-4o",
        {
            "input": [
                {"type": "web_search_call", "id": "w1", "status": "completed", "action": {"query": "news"}},
                {"type": "shell_call_output", "call_id": "s1", "output": "done"},
                {"type": "note", "role": "developer", "text": "kept"},
                {"content": "no role"},
            ]
        },
        ["news", "done", "developer", "kept", "no role"],  # an unknown item's role is among its strings
        ["assistant", "tool", "developer", "user"],
        26,
    ),
    (
        # p50k encodes "assistant" in two tokens, "tool" and "system" in one: the role an item gets counts.
        "other-items-roles",
        "text-davinci-003",
        {
            "input": [
                {"type": "web_search_call", "id": "w1", "action": {"query": "news"}},
                {"type": "shell_call_output", "call_id": "s1", "output": "done"},
                {"type": "note", "role": "system", "text": "kept"},
            ]
        },
        ["news", "done", "system", "kept"],
        ["assistant", "tool", "system"],
        20,
    ),
    (
        "object-custom-tool-output",
        "gpt-4o",
        {"input": [{"type": "custom_tool_call_output", "call_id": "c1", "output": {"t": 18}}]},
        ['{"t":18}'],
        ["tool"],
        12,
    ),
    (
        "unknown-content-part",
        "gpt-4o",
        {
            "messages": [
                {"role": "assistant", "content": [{"type": "output_audio", "id": "a1", "transcript": "Hi"}]}
            ]
        },
        ["Hi"],
        ["assistant"],
        8,
    ),
    (
        "chat-tool-calls",
        "gpt-4o",
        {
            "messages": [
                {
                    "role": "assistant",
                    "content": None,
                    "tool_calls": [
                        "junk",
                        {"id": "t1", "function": {"name": "f", "arguments": "{}"}},
                        {"id": "t2", "function": "g"},
                    ],
                },
                {"role": "user", "name": "", "content": "x"},
            ]
        },
        ["f", "{}", "x"],
        ["assistant", "user"],
        14,
    ),
]


@pytest.mark.parametrize(
    ("model", "body", "pieces", "roles", "pinned"),
    [case[1:] for case in TEXT_CASES],
    ids=[case[0] for case in TEXT_CASES],
)
def test_text_counts(model: str, body: Body, pieces: list[str], roles: list[str], pinned: int) -> None:
    result = count(body, model)
    encoding = result.encoding
    expected_tokens = ref_tokens(encoding, *pieces)
    extra_names = TOKENS_PER_NAME * sum(1 for m in body.get("messages", []) if m.get("name"))
    framing = message_framing(encoding, *roles) + extra_names + REPLY_PRIMING
    assert result.tokens == expected_tokens
    assert result.text_tokens == len(expected_tokens)
    assert result.framing_tokens == framing
    assert result.input_tokens == len(expected_tokens) + framing == pinned
    assert result.image_tokens == result.audio_tokens == result.file_tokens == 0
    assert result.exact and result.estimated == ()


def test_special_token_text_is_ordinary_text() -> None:
    text = "<|endoftext|><|fim_prefix|><|endofprompt|>"
    for model in ("gpt-4o", "gpt-4", "text-davinci-003"):
        result = count({"input": text}, model)
        assert result.tokens == reference_encoding(result.encoding).encode_ordinary(text)
        assert "<|endoftext|>" not in (result.token_strings or [])
    with pytest.raises(ValueError):  # what plain encode() would have done
        reference_encoding("o200k_base").encode(text)


def test_token_strings_follow_tokens_with_replacement() -> None:
    result = count({"instructions": "誕生日 🎂", "input": "café 😀"}, "gpt-4")
    assert result.tokens is not None and result.token_strings is not None
    enc = reference_encoding("cl100k_base")
    assert result.token_strings == [
        enc.decode_single_token_bytes(t).decode("utf-8", errors="replace") for t in result.tokens
    ]
    assert any("\ufffd" in s for s in result.token_strings)  # partial UTF-8 sequences are replaced
    assert enc.decode(result.tokens) == "誕生日 🎂café 😀"


@pytest.mark.parametrize("case", TEXT_CASES, ids=[c[0] for c in TEXT_CASES])
def test_without_tokens_the_count_is_the_same_and_nothing_is_built(case: tuple[Any, ...]) -> None:
    _, model, body, *_ = case
    with_tokens = count(body, model, return_tokens=True)
    without = count(body, model, return_tokens=False)
    assert without.tokens is None and without.token_strings is None
    assert without.input_tokens == with_tokens.input_tokens
    assert without.text_tokens == with_tokens.text_tokens


def test_details_text_tokens_add_up() -> None:
    result = count(
        user_parts({"type": "input_text", "text": "look"}, image_part(data_url(png(64, 64)), "low"))
    )
    assert result.details_text_tokens + result.image_tokens + result.audio_tokens == result.input_tokens
    assert result.details_text_tokens == result.text_tokens + result.framing_tokens + result.file_tokens


# --- OpenAI's own published, API-verified figures ----------------------------------------------------------

COOKBOOK_MESSAGES = [
    {
        "role": "system",
        "content": "You are a helpful, pattern-following assistant that translates corporate jargon "
        "into plain English.",
    },
    {"role": "system", "name": "example_user", "content": "New synergies will help drive top-line growth."},
    {
        "role": "system",
        "name": "example_assistant",
        "content": "Things working well together will increase revenue.",
    },
    {
        "role": "system",
        "name": "example_user",
        "content": "Let's circle back when we have more bandwidth to touch base on opportunities for "
        "increased leverage.",
    },
    {
        "role": "system",
        "name": "example_assistant",
        "content": "Let's talk later when we're less busy about how to do better.",
    },
    {
        "role": "user",
        "content": "This late pivot means we don't have time to boil the ocean for the client deliverable.",
    },
]

COOKBOOK_TOOLS = [
    {
        "type": "function",
        "function": {
            "name": "get_current_weather",
            "description": "Get the current weather in a given location",
            "parameters": {
                "type": "object",
                "properties": {
                    "location": {
                        "type": "string",
                        "description": "The city and state, e.g. San Francisco, CA",
                    },
                    "unit": {
                        "type": "string",
                        "description": "The unit of temperature to return",
                        "enum": ["celsius", "fahrenheit"],
                    },
                },
                "required": ["location"],
            },
        },
    }
]

COOKBOOK_TOOL_MESSAGES = [
    {
        "role": "system",
        "content": "You are a helpful assistant that can answer to questions about the weather.",
    },
    {"role": "user", "content": "What's the weather like in San Francisco?"},
]


@pytest.mark.parametrize(
    ("model", "expected"),
    [("gpt-3.5-turbo", 129), ("gpt-4-0613", 129), ("gpt-4o", 124), ("gpt-4o-mini", 124)],
)
def test_cookbook_messages_match_the_api(model: str, expected: int) -> None:
    # openai-cookbook "How to count tokens with tiktoken", section 6: usage.prompt_tokens from the API.
    assert count({"messages": COOKBOOK_MESSAGES}, model).input_tokens == expected


@pytest.mark.parametrize(
    ("model", "expected"), [("gpt-3.5-turbo", 105), ("gpt-4", 105), ("gpt-4o", 101), ("gpt-4o-mini", 101)]
)
def test_cookbook_tools_match_the_api(model: str, expected: int) -> None:
    # openai-cookbook "How to count tokens with tiktoken", section 7: usage.prompt_tokens from the API.
    body = {"messages": COOKBOOK_TOOL_MESSAGES, "tools": COOKBOOK_TOOLS}
    assert count(body, model).input_tokens == expected


def test_responses_shaped_tools_count_like_chat_shaped_ones() -> None:
    flat = [{"type": "function", **COOKBOOK_TOOLS[0]["function"]}]  # type: ignore[dict-item]
    chat = count({"messages": COOKBOOK_TOOL_MESSAGES, "tools": COOKBOOK_TOOLS})
    responses = count({"input": COOKBOOK_TOOL_MESSAGES, "tools": flat})
    assert responses.input_tokens == chat.input_tokens == 101
    assert responses.tokens == chat.tokens


def test_tool_framing_and_nested_schemas() -> None:
    tool = {
        "type": "function",
        "name": "book",
        "description": "Book a room.",
        "parameters": {
            "type": "object",
            "properties": {
                "guest": {
                    "type": "object",
                    "description": "Who stays",
                    "properties": {"name": {"type": "string"}, "age": {"type": ["integer", "null"]}},
                },
                "nights": {"anyOf": [{"type": "integer"}, {"type": "string"}], "description": "How long."},
                "rooms": {
                    "type": "array",
                    "items": {"type": "object", "properties": {"kind": {"enum": [1, 2]}}},
                },
            },
        },
    }
    result = count({"input": "hi", "tools": [tool]})
    pieces = [
        "book:Book a room",
        "guest:object:Who stays",
        "name:string:",
        "age:integer | null:",
        "nights:integer | string:How long",
        "rooms:array:",
        "1",
        "2",
        "kind::",
        "hi",
    ]
    assert result.tokens == ref_tokens("o200k_base", *pieces)
    tool_framing = FUNC_INIT_O200K + FUNC_END + PROP_INIT * 3 + PROP_KEY * 6 + ENUM_INIT + 2 * ENUM_ITEM
    assert result.framing_tokens == tool_framing + message_framing("o200k_base", "user") + REPLY_PRIMING
    assert result.exact


def test_tool_schema_shapes() -> None:
    tool = {  # no "type": a function tool, as the Responses API reads it
        "name": "pick",
        "parameters": {
            "properties": {
                "odd": 5,  # not an object: counted by its key alone
                "either": {"oneOf": [{"type": "integer"}, {"type": "null"}, "junk"]},
                "typed": {"type": "string", "anyOf": [{"type": "integer"}]},  # a type wins over variants
                "empty": {"type": "object", "properties": {}},  # no properties: no property framing
                "list": {"type": "array", "items": {"properties": {"deep": {"enum": [True, None, "x"]}}}},
            }
        },
    }
    result = count({"input": "hi", "instructions": "Be brief", "tools": [tool]})
    pieces = ["Be brief", "pick:", "odd::", "either:integer | null:", "typed:string:", "empty:object:",
              "list:array:", "true", "null", "x", "deep::", "hi"]  # fmt: skip
    assert result.tokens == ref_tokens("o200k_base", *pieces)
    tool_framing = FUNC_INIT_O200K + FUNC_END + PROP_INIT * 2 + PROP_KEY * 6 + ENUM_INIT + 3 * ENUM_ITEM
    framing = message_framing("o200k_base", "system", "user") + REPLY_PRIMING
    assert result.framing_tokens == tool_framing + framing
    assert (
        count({"input": "hi", "tools": [{"type": "web_search"}]}).framing_tokens
        == message_framing("o200k_base", "user") + REPLY_PRIMING
    )  # a hosted tool is no function


def test_hosted_tools_count_their_visible_text_and_are_estimates() -> None:
    tools = [
        {"type": "web_search", "search_context_size": "low"},
        {"type": "mcp", "server_label": "deepwiki"},
    ]
    result = count({"input": "hi", "tools": tools})
    assert result.tokens == ref_tokens("o200k_base", "low", "deepwiki", "hi")
    assert not result.exact and result.estimated == ("hosted_tool",)


@pytest.mark.parametrize(
    "text",
    [
        {"format": {"type": "json_schema", "name": "answer", "schema": {"type": "object", "properties": {}}}},
        {
            "format": {
                "type": "json_schema",
                "json_schema": {"name": "answer", "schema": {"type": "object", "properties": {}}},
            }
        },
    ],
    ids=["responses-shape", "chat-shape"],
)
def test_text_format_schema_is_counted(text: Body) -> None:
    result = count({"input": "hi", "text": text})
    assert result.tokens == ref_tokens("o200k_base", "answer", '{"type":"object","properties":{}}', "hi")
    assert result.estimated == ("text_format",)


@pytest.mark.parametrize("text", ["json_schema", {"format": {"type": "text"}}, {"verbosity": "low"}])
def test_text_without_a_schema_adds_nothing(text: Any) -> None:
    assert count({"input": "hi", "text": text}).input_tokens == count({"input": "hi"}).input_tokens


# --- images -------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("model", "detail", "raw", "expected"),
    [
        ("gpt-4o", "low", png(1024, 1024), 85),
        ("gpt-4o", "high", png(1024, 1024), 765),  # the guide's example: 4 tiles x 170 + 85
        ("gpt-4o", "auto", png(1024, 1024), 765),
        ("gpt-4o", None, png(1024, 1024), 765),  # no detail means auto
        ("gpt-4o", "high", png(512, 512), 255),
        ("gpt-4o", "high", png(100, 60), 255),  # small images are not scaled up
        ("gpt-4o", "high", jpeg(2048, 4096), 1105),  # the guide's example: 6 tiles
        ("gpt-4o", "low", jpeg(4096, 8192), 85),  # the guide's example: low is a fixed cost
        ("gpt-4o", "high", jpeg(1920, 1080, padding=70_000), 1105),  # SOF0 beyond the first sniff window
        ("gpt-4o", "high", jpeg(800, 600, padding=200_000), 765),  # SOF0 beyond the second: full decode
        ("gpt-4.1", "high", png(1024, 1024), 765),
        ("gpt-4o-mini", "low", png(1024, 1024), 2833),
        ("gpt-4o-mini", "high", png(512, 512), 8500),
        ("gpt-5", "high", png(1024, 1024), 630),
        ("o1", "high", jpeg(1024, 1024), 675),
        ("o3", "low", jpeg(1024, 1024), 75),
        ("gpt-4.1-mini", "low", png(1024, 1024), 1658),  # patches ignore detail: 1024 x 1.62
        ("gpt-4.1-mini", "high", jpeg(1800, 2400), 2352),  # the guide's example: 1452 patches x 1.62
        ("gpt-4.1-nano", "high", png(1024, 1024), 2519),
        ("o4-mini", "auto", png(1024, 1024), 1761),
        ("gpt-5-nano", "high", jpeg(1800, 2400), 3571),
    ],
)
def test_image_tokens_by_detail(model: str, detail: str | None, raw: bytes, expected: int) -> None:
    mime = "image/png" if raw.startswith(b"\x89PNG") else "image/jpeg"
    result = count(user_parts(image_part(data_url(raw, mime), detail)), model)
    assert result.image_tokens == expected
    assert result.input_tokens == expected + message_framing("o200k_base", "user") + REPLY_PRIMING
    patch_model = model.startswith(("gpt-4.1-", "gpt-5-", "o4-mini"))
    assert result.exact == (detail in ("low", "high") or patch_model)
    if not result.exact:
        assert result.estimated == ("image_detail_auto",)


@pytest.mark.parametrize(
    "raw",
    [gif_header(300, 200), webp_vp8(300, 200), webp_vp8l(300, 200), webp_vp8x(300, 200), png(300, 200)],
    ids=["gif", "webp-vp8", "webp-vp8l", "webp-vp8x", "png"],
)
def test_image_formats_are_measured(raw: bytes) -> None:
    assert _count_tokens._image_size(raw) == (300, 200)
    result = count(user_parts(image_part(data_url(raw), "high")), "gpt-4.1-mini")
    assert result.image_tokens == int(10 * 7 * 1.62)  # ceil(300/32) x ceil(200/32) patches
    assert result.exact


@pytest.mark.parametrize(
    "part",
    [
        image_part("https://example.com/cat.png", "high"),
        {"type": "input_image", "file_id": "file-abc", "detail": "high"},
        image_part("data:image/png;base64,not-an-image", "high"),
        image_part("data:image/svg+xml,<svg/>", "high"),
    ],
    ids=["remote-url", "file-id", "garbage", "not-base64"],
)
def test_unknown_image_size_assumes_1024_square(part: dict[str, Any]) -> None:
    result = count(user_parts(part))
    assert result.image_tokens == 765
    assert result.estimated == ("image_size_unknown",)


def test_chat_style_image_parts() -> None:
    url = data_url(jpeg(2048, 4096), "image/jpeg")
    nested = {"type": "image_url", "image_url": {"url": url, "detail": "low"}}
    bare = {"type": "image_url", "image_url": url}
    result = count(
        {"messages": [{"role": "user", "content": [{"type": "text", "text": "hi"}, nested, bare]}]}
    )
    assert result.image_tokens == 85 + 1105
    assert result.tokens == ref_tokens("o200k_base", "hi")


@pytest.mark.parametrize(
    ("size", "expected"),
    [((2049, 513), 1445), ((2050, 513), 765), ((513, 2050), 765), ((768, 768), 765), ((769, 1), 425)],
)
def test_tile_rounding(size: tuple[int, int], expected: int) -> None:
    # 2049x513 vs 2050x513 are the edge cases the OpenAI community forum measured (1453 and 773 billed,
    # each with 8 text tokens): scaled sizes round to the nearest pixel.
    assert image_tokens("gpt-4o", "high", *size) == expected


def test_unknown_models_use_the_default_tile_rule_as_an_estimate() -> None:
    result = count(user_parts(image_part(data_url(png(1024, 1024)), "high")), "claude-3-5-sonnet")
    assert result.image_tokens == 765
    assert result.encoding == "o200k_base"
    assert not result.exact and result.estimated == ("model",)


# --- files and audio ----------------------------------------------------------------------------------------


def test_file_data_is_estimated_at_four_bytes_per_token() -> None:
    part = {
        "type": "input_file",
        "filename": "a.pdf",
        "file_data": data_url(b"%PDF" + b"x" * 996, "application/pdf"),
    }
    result = count(user_parts(part))
    assert result.file_tokens == 250
    assert result.input_tokens == 250 + message_framing("o200k_base", "user") + REPLY_PRIMING
    assert result.estimated == ("file",)


def test_chat_style_file_with_bare_base64() -> None:
    part = {"type": "file", "file": {"filename": "a.txt", "file_data": base64.b64encode(b"y" * 10).decode()}}
    assert count(user_parts(part)).file_tokens == 3


@pytest.mark.parametrize(
    "part",
    [{"type": "input_file", "file_id": "file-1"}, {"type": "input_file", "file_url": "https://x/y.pdf"}],
)
def test_unmeasurable_files_add_nothing_but_say_so(part: dict[str, Any]) -> None:
    result = count(user_parts(part))
    assert result.file_tokens == 0 and result.estimated == ("file",)


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        (wav(1.5), 15),  # 48,000 data bytes at 32,000 bytes/s: 1.5 s x 10 tokens/s
        (wav(0.25, rate=8_000), 3),
        (mp3(2.0), 20),  # 32,000 bytes at 128 kbit/s: 2 s
        (mp3(2.0, id3=5_000), 20),  # the ID3 tag is skipped, not timed
        (b"\x00" * 8_000, 5),  # unknown container: 128 kbit/s assumed -> 0.5 s
    ],
    ids=["wav", "wav-8k", "mp3", "mp3-id3", "unknown"],
)
def test_audio_is_estimated_from_its_duration(raw: bytes, expected: int) -> None:
    part = {"type": "input_audio", "input_audio": {"data": base64.b64encode(raw).decode(), "format": "wav"}}
    result = count(user_parts(part))
    assert result.audio_tokens == expected
    assert result.input_tokens == expected + message_framing("o200k_base", "user") + REPLY_PRIMING
    assert result.estimated == ("audio",)


def test_media_parts_add_up_and_take_either_shape() -> None:
    audio = base64.b64encode(wav(1.5)).decode()
    parts: list[dict[str, Any]] = [
        {"type": "input_audio", "input_audio": {"data": audio, "format": "wav"}},
        {"type": "input_audio", "data": audio, "format": "wav"},  # the fields on the part itself
        {"type": "input_audio", "data": ["not", "base64"]},  # unmeasurable: no tokens, still an estimate
        {"type": "input_file", "file_data": base64.b64encode(b"y" * 40).decode()},
        {"type": "file", "file": {"file_data": base64.b64encode(b"y" * 80).decode()}},
        {"type": "input_file", "file_data": {"not": "a string"}},
        {"type": "image_url", "image_url": {"url": data_url(png(512, 512)), "detail": "high"}},
    ]
    result = count(user_parts(*parts))
    assert (result.audio_tokens, result.file_tokens) == (15 + 15, 10 + 20)
    assert result.image_tokens == 85 + 170  # one 512-pixel tile: the URL's own size, not the default
    assert set(result.estimated) == {"audio", "file"}


# --- other items and estimates ------------------------------------------------------------------------------


def test_other_items_count_their_visible_text() -> None:
    item = {
        "type": "web_search_call",
        "id": "ws_1",
        "status": "completed",
        "action": {"type": "search", "query": "bifrost gateway", "sources": [{"url": "https://x"}]},
    }
    output = {
        "type": "computer_call_output",
        "call_id": "c",
        "output": {"type": "input_image", "image_url": "u"},
    }
    result = count({"input": [item, output]})
    assert result.tokens == ref_tokens("o200k_base", "bifrost gateway", "https://x", "u")
    assert result.framing_tokens == message_framing("o200k_base", "assistant", "tool") + REPLY_PRIMING
    assert result.exact


def test_object_outputs_are_counted_as_json() -> None:
    item = {"type": "function_call_output", "call_id": "c", "output": {"ok": True}}
    assert count({"input": [item]}).tokens == ref_tokens("o200k_base", '{"ok":true}')


def test_function_call_output_with_content_parts() -> None:
    output = [{"type": "input_text", "text": "see"}, image_part(data_url(png(512, 512)), "low")]
    result = count({"input": [{"type": "function_call_output", "call_id": "c", "output": output}]})
    assert result.tokens == ref_tokens("o200k_base", "see") and result.image_tokens == 85


@pytest.mark.parametrize(
    ("body", "reason"),
    [
        ({"input": "hi", "previous_response_id": "resp_1"}, "previous_response_id"),
        ({"input": [{"type": "item_reference", "id": "msg_1"}]}, "item_reference"),
        (
            {"input": [{"type": "reasoning", "summary": [], "encrypted_content": "gAAA"}]},
            "encrypted_reasoning",
        ),
    ],
)
def test_unseen_context_makes_an_estimate(body: Body, reason: str) -> None:
    result = count(body)
    assert not result.exact and result.estimated == (reason,)


# --- bad input ----------------------------------------------------------------------------------------------


def _user(content: Any) -> Body:
    return {"input": [{"role": "user", "content": content}]}


@pytest.mark.parametrize(
    ("body", "message", "param"),
    [
        ({"model": "gpt-4o"}, "input is required for responses", "input"),
        ({"input": 5}, "input must be a string or an array of input items", "input"),
        ({"input": {"role": "user"}}, "input must be a string or an array of input items", "input"),
        ({"input": ["hi"]}, "input[0] must be an object", "input[0]"),
        (_user(5), "input[0].content must be a string or an array of content parts", "input[0].content"),
        (_user(["hi"]), "input[0].content[0] must be an object", "input[0].content[0]"),
        (
            _user([{"type": "input_text", "text": 5}]),
            "input[0].content[0].text must be a string",
            "input[0].content[0].text",
        ),
        ({"input": [{"role": 5, "content": "hi"}]}, "input[0].role must be a string", "input[0].role"),
        (
            {"input": [{"type": "function_call", "name": "f", "arguments": {}}]},
            "input[0].arguments must be a string",
            "input[0].arguments",
        ),
        (
            {"input": [{"type": "function_call", "name": 5, "arguments": "{}"}]},
            "input[0].name must be a string",
            "input[0].name",
        ),
        (
            {"input": [{"type": "custom_tool_call", "name": "f", "input": 5}]},
            "input[0].input must be a string",
            "input[0].input",
        ),
        (
            {"input": [{"type": "custom_tool_call", "name": 5, "input": "x"}]},
            "input[0].name must be a string",
            "input[0].name",
        ),
        (
            {"input": [{"type": "reasoning", "summary": 5}]},
            "input[0].summary must be a string or an array of content parts",
            "input[0].summary",
        ),
        (
            {"input": [{"type": "reasoning", "content": [5]}]},
            "input[0].content[0] must be an object",
            "input[0].content[0]",
        ),
        (
            {"input": [{"type": "function_call_output", "output": [5]}]},
            "input[0].output[0] must be an object",
            "input[0].output[0]",
        ),
        (
            _user([{"type": "refusal", "refusal": 5}]),
            "input[0].content[0].refusal must be a string",
            "input[0].content[0].refusal",
        ),
        (
            _user([{"type": "refusal", "text": 5}]),
            "input[0].content[0].text must be a string",
            "input[0].content[0].text",
        ),
        ({"messages": "hi"}, "messages must be an array of messages", "messages"),
        ({"messages": [None]}, "messages[0] must be an object", "messages[0]"),
        ({"input": "hi", "instructions": ["x"]}, "instructions must be a string", "instructions"),
        ({"input": "hi", "tools": {"type": "function"}}, "tools must be an array of tools", "tools"),
        ({"input": "hi", "tools": ["f"]}, "tools[0] must be an object", "tools[0]"),
        ({"input": "hi", "text": 5}, "text must be an object", "text"),
    ],
)
def test_bad_input_is_a_400_naming_the_field(body: Body, message: str, param: str) -> None:
    with pytest.raises(BifrostError) as caught:
        count(body)
    assert caught.value.status_code == 400
    assert caught.value.message == message
    assert caught.value.param == param


def test_a_body_that_is_not_an_object_is_a_400() -> None:
    with pytest.raises(BifrostError, match="request body must be a JSON object"):
        count_request_tokens(["hi"], "gpt-4o", return_tokens=False)  # type: ignore[arg-type]


# --- async: off the loop when it pays --------------------------------------------------------------------


@pytest.fixture
def thread_calls(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """The names of the loading and encoding functions that ran off the event loop's thread."""
    calls: list[str] = []
    loop_thread = threading.current_thread()

    def spying(func: Callable[..., Any]) -> Callable[..., Any]:
        def spy(*args: Any, **kwargs: Any) -> Any:
            if threading.current_thread() is not loop_thread:
                calls.append(func.__name__)
            return func(*args, **kwargs)

        return spy

    monkeypatch.setattr(_count_tokens, "_encode", spying(_count_tokens._encode))
    monkeypatch.setattr(_count_tokens, "get_encoding", spying(_tokenizer.get_encoding))
    return calls


async def test_short_texts_are_counted_inline(thread_calls: list[str]) -> None:
    count({"input": "warm"})  # the encoding is loaded, so nothing needs a thread
    body = {"input": "x " * (THREAD_THRESHOLD_CHARS // 2 - 10)}
    result = await count_request_tokens_async(body, "gpt-4o", return_tokens=True)
    assert result == count(body)
    assert thread_calls == []


async def test_long_texts_are_counted_in_a_worker_thread(thread_calls: list[str]) -> None:
    count({"input": "warm"})
    body = {"instructions": "Be brief.", "input": "word " * THREAD_THRESHOLD_CHARS}
    result = await count_request_tokens_async(body, "gpt-4o", return_tokens=True)
    assert result == count(body)
    assert thread_calls == ["_encode"]


async def test_a_first_load_happens_in_a_worker_thread(
    thread_calls: list[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(_count_tokens, "is_loaded", lambda name: False)
    result = await count_request_tokens_async({"input": "hi"}, "gpt-4", return_tokens=False)
    assert result.input_tokens == 8
    assert thread_calls == ["get_encoding"]


async def test_async_bad_input_raises_the_same_400() -> None:
    with pytest.raises(BifrostError, match=r"input\[0\] must be an object"):
        await count_request_tokens_async({"input": [1]}, "gpt-4o", return_tokens=True)


def _nested(depth: int) -> dict[str, Any]:
    schema: dict[str, Any] = {"type": "string"}
    for _ in range(depth):
        schema = {"type": "object", "properties": {"p": schema}}
    return schema


def _nested_items(depth: int) -> dict[str, Any]:
    schema: dict[str, Any] = {"type": "string"}
    for _ in range(depth):  # an array of objects at each level, as list-valued tool arguments are written
        schema = {"type": "object", "properties": {"p": {"type": "array", "items": schema}}}
    return schema


@pytest.mark.parametrize("nested", [_nested, _nested_items], ids=["properties", "array-items"])
def test_hostile_schema_depth_neither_crashes_nor_recurses_forever(nested: Callable[[int], Any]) -> None:
    tool = {"type": "function", "name": "f", "parameters": nested(2_000)}
    result = count({"input": "hi", "tools": [tool]})
    walked = _count_tokens._MAX_SCHEMA_DEPTH + 1  # depths 0..cap each add PROP_INIT + one PROP_KEY
    assert result.framing_tokens == (
        FUNC_INIT_O200K
        + FUNC_END
        + walked * (PROP_INIT + PROP_KEY)
        + message_framing("o200k_base", "user")
        + 3
    )


def test_a_function_without_a_name_counts_its_description_alone() -> None:
    for unnamed in (
        {"type": "function", "description": "Look it up."},
        {"name": 5, "description": "Look it up"},
    ):
        result = count({"input": "hi", "tools": [unnamed]})
        assert result.tokens == ref_tokens("o200k_base", ":Look it up", "hi")


@pytest.mark.parametrize(
    ("body", "param"),
    [
        ({"input": "hi", "text": {"format": {"type": "json_schema", "schema": _nested(300)}}}, "text.format"),
        ({"input": [{"type": "function_call_output", "output": _nested(300)}]}, "input[0].output"),
    ],
)
def test_json_too_deep_to_render_is_a_400(body: Body, param: str) -> None:
    with pytest.raises(BifrostError) as caught:
        count(body)
    assert caught.value.status_code == 400 and caught.value.param == param
    assert caught.value.message.startswith(f"{param} cannot be serialised as JSON: ")
    enum = {
        "input": "hi",
        "tools": [{"name": "f", "parameters": {"properties": {"k": {"enum": [_nested(300)]}}}}],
    }
    with pytest.raises(BifrostError) as caught:
        count(enum)
    assert caught.value.param == "tools"
