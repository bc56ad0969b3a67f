"""Count the input tokens of a Responses (or chat-style ``messages``) request locally, framework-free.

Everything the model will see is counted: ``instructions``; ``input`` as a string or the full item array
(messages with string or part content, function calls and their outputs, reasoning summaries, any other
item's visible text); ``tools`` (name, description, JSON-schema parameters); the ``text.format`` JSON
schema; images by OpenAI's published formula; files and audio estimated. Text is encoded with tiktoken's
``encode_ordinary``, so special-token text such as ``"<|endoftext|>"`` in user content counts as the
ordinary text it is and never raises.

Two phases keep the event loop free: :class:`_Collector` walks the body (cheap, pure Python) into a list
of text pieces plus fixed token amounts; :func:`_encode` runs tiktoken over the pieces. The async entry
point runs the second phase in a worker thread when the text is long enough to be worth the hand-off.

>>> count_request_tokens({"input": "Hello world"}, "gpt-4o", return_tokens=False).input_tokens
9
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import concurrent.futures
import math
import os
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

import orjson
import tiktoken

from bifrost_asgi.errors import invalid_request
from bifrost_asgi.tokens.encodings import (
    encoding_for_model,
    get_encoding,
    is_loaded,
    normalise_model,
    thread_encoding,
    token_strings,
)

__all__ = [
    "THREAD_THRESHOLD_CHARS",
    "TokenCount",
    "count_request_tokens",
    "count_request_tokens_async",
    "image_tokens",
]

# =====================================================================================================
# Counting constants: every fixed amount we add on top of the encoded text, in one place.
#
# Message and tool framing: openai-cookbook, examples/How_to_count_tokens_with_tiktoken.ipynb,
# num_tokens_from_messages() and num_tokens_for_tools(); the notebook checks both against the API's
# usage.prompt_tokens for gpt-3.5-turbo, gpt-4, gpt-4o and gpt-4o-mini. The Responses API renders
# instructions and items into the same chat format, so we apply the same framing to it.
TOKENS_PER_MESSAGE = 3  # <|start|>{role}<|message|>{content}<|end|>; the role's own tokens are added too
TOKENS_PER_NAME = 1  # a chat message's optional "name" (its text is counted as well)
REPLY_PRIMING = 3  # every reply is primed with <|start|>assistant<|message|>
FUNC_INIT_O200K = 7  # per function tool, o200k_base models (gpt-4o, gpt-4o-mini in the cookbook)
FUNC_INIT_OTHER = 10  # per function tool, cl100k_base models (gpt-3.5-turbo, gpt-4 in the cookbook)
PROP_INIT = 3  # once per function whose parameters have properties
PROP_KEY = 3  # per property
ENUM_INIT = -3  # per property with an enum (the enum replaces the type)
ENUM_ITEM = 3  # per enum value (its text is counted as well)
FUNC_END = 12  # once, when any function tool is present
#
# Images: OpenAI "Images and vision" guide, section "Calculating costs"
# (https://platform.openai.com/docs/guides/images-vision#calculating-costs).
#  * Tile models: low = base; high = base + tile x (512 px tiles after fitting in 2048x2048 and scaling
#    the shortest side down to 768). Scaled sizes are rounded to whole pixels.
TILE_RULES: tuple[tuple[str, int, int], ...] = (  # (model prefix, base tokens, tile tokens), first match
    ("gpt-4o-mini", 2833, 5667),
    ("gpt-5", 70, 140),  # gpt-5, gpt-5-chat-latest (the patch models below are matched first)
    ("o1", 75, 150),  # o1, o1-pro
    ("o3", 75, 150),
    ("computer-use-preview", 65, 129),
)
DEFAULT_TILE_RULE = (85, 170)  # gpt-4o, gpt-4.1, gpt-4.5, and our assumption for every unlisted model
#  * Patch models: 32 px patches, scaled down to at most 1536 patches, times a per-model multiplier; the
#    guide gives no detail-dependence for them. Fractional results are truncated.
PATCH_MULTIPLIERS: tuple[tuple[str, float], ...] = (
    ("gpt-4.1-mini", 1.62),
    ("gpt-4.1-nano", 2.46),
    ("gpt-5-mini", 1.62),
    ("gpt-5-nano", 2.46),
    ("o4-mini", 1.72),
)
PATCH_SIZE = 32
MAX_PATCHES = 1536
#  * "auto" detail is counted as "high" (the guide does not publish how auto chooses; high is the
#    conservative side) and the count is marked as an estimate.
#  * Unknown dimensions (remote URL, file_id, undecodable data) are assumed to be 1024x1024, the guide's
#    own worked example (765 tokens at high detail on gpt-4o); the count is marked as an estimate.
DEFAULT_IMAGE_SIZE = (1024, 1024)
#
# Audio (estimate): "Audio tokens in user messages are 1 token per 100 ms of audio" (OpenAI, Realtime
# "Managing costs", https://platform.openai.com/docs/guides/realtime-costs). Duration comes from the WAV
# header, or from the first MP3 frame's bitrate; anything else assumes 128 kbit/s.
AUDIO_TOKENS_PER_SECOND = 10
DEFAULT_AUDIO_BYTES_PER_SECOND = 16_000
#
# Files (estimate): decoded bytes / 4, the same ratio Bifrost itself uses for its Bedrock estimate
# (estimatedBytesPerToken = 4). Files given only by file_id / file_url cannot be measured: they add
# nothing and mark the count as an estimate.
FILE_BYTES_PER_TOKEN = 4
# =====================================================================================================

# Measured with bench/count_tokens_threshold.py (o200k_base, Python 3.11, tiktoken 0.14) on the shared
# 2-core dev box, six runs under varying background load (load average 0.8-1.7):
#   * hand-off: an anyio.to_thread.run_sync no-op round trip, timed from the loop: median 118-410 us
#     (p90 130-770 us), above the 50-100 us typical of an idle machine;
#   * counting: 0.09-0.13 us per character of text (prose/code/CJK/emoji mix), ~90% of it tiktoken's
#     encode: 1 K chars ~ 95-150 us, 2 K ~ 175-275 us, 4 K ~ 350-580 us, 170 K ~ 13-23 ms;
#   * crossover, hand-off median / cost per char: 1,200-3,800 characters.
# Below the threshold a worker thread would make the request slower and free the loop for less time than
# the hand-off itself takes; above it the loop is freed for longer than the hand-off costs. tiktoken
# releases the GIL while encoding: beside a worker encoding 170 KB the main thread kept 0.5-1.0 of its
# solo speed (a GIL-holding encode would freeze it near 0), so the worker really runs beside the loop.
# 3,072 sits in the upper half of the measured range, where a loaded server lives, and keeps the common
# ~2 KB request inline.
THREAD_THRESHOLD_CHARS = 3072
# Returning every token (and its string) costs ~60 bytes of Python objects per token, and the JSON
# answer as much again: above this much text a count is answered without them (a 400 says so), so a
# request's memory stays a small multiple of its size.
MAX_RETURN_TOKENS_CHARS = 1_000_000
# Long texts are encoded in pieces of about this many characters, cut where the encodings' pre-tokenizer
# cuts anyway (so the count is exact), so one encode never holds millions of tokens at once.
PIECE_CHARS = 256 * 1024

# JSON objects arrive as dicts: isinstance against a concrete type first skips the slow ABC check.
_OBJECT = (dict, Mapping)
_TEXT_PART_TYPES = frozenset({"input_text", "output_text", "text", "reasoning_text", "summary_text"})
# Identifiers and opaque blobs: in the request, but not text the model reads.
_HIDDEN_KEYS = frozenset({"type", "id", "status", "call_id", "encrypted_content", "signature"})
_DETAILS = frozenset({"low", "high", "auto"})
# Schemas nested deeper than this are not walked further: real tool schemas stay far shallower, and the
# limit keeps a hostile body from exhausting the stack.
_MAX_SCHEMA_DEPTH = 32
# (encoding, role) -> the role's token count, for the roles OpenAI defines. Any other role string comes
# from the caller and is encoded each time, so a client cannot grow this dict.
_KNOWN_ROLES = frozenset({"system", "developer", "user", "assistant", "tool", "function"})
_ROLE_TOKENS: dict[tuple[str, str], int] = {}


# At most this many threads encode large inputs at once. More threads than CPUs only switch between
# each other (measured: 16 concurrent 170 KB requests on one CPU, 52-59 RPS with a thread each, 83-90 RPS
# with one); each also holds its own twin of the encoding (~40 MB for o200k_base), hence the cap.
MAX_TOKENIZER_THREADS = 4
_POOL: concurrent.futures.ThreadPoolExecutor | None = None


def _pool() -> concurrent.futures.ThreadPoolExecutor:
    """The threads that load encodings and encode large inputs, created on first use."""
    global _POOL
    if _POOL is None:
        _POOL = concurrent.futures.ThreadPoolExecutor(
            max_workers=min(_usable_cpus(), MAX_TOKENIZER_THREADS), thread_name_prefix="bifrost-tokenize"
        )
    return _POOL


def _usable_cpus() -> int:
    if hasattr(os, "sched_getaffinity"):  # Linux: honours taskset and container CPU sets
        return max(1, len(os.sched_getaffinity(0)))
    return os.cpu_count() or 1


@dataclass(slots=True)
class TokenCount:
    """The input-token count of one request.

    ``input_tokens == text_tokens + framing_tokens + file_tokens + image_tokens + audio_tokens``.
    ``text_tokens`` is the encoded text only, so ``len(tokens) == text_tokens`` when tokens are returned;
    a CountTokensResponse's ``input_tokens_details.text_tokens`` is :attr:`details_text_tokens` (framing
    and file estimates are text-side tokens too, so the details add up to ``input_tokens``).
    ``exact`` is true only when the model's own encoding was used and nothing was estimated
    (``estimated`` names what was: ``model``, ``image_detail_auto``, ``image_size_unknown``, ``audio``,
    ``file``, ``hosted_tool``, ``text_format``, ``item_reference``, ``previous_response_id``, ...).

    >>> count_request_tokens({"input": "hi"}, "gpt-4o", return_tokens=True).token_strings
    ['hi']
    """

    input_tokens: int
    text_tokens: int
    image_tokens: int
    audio_tokens: int
    tokens: list[int] | None
    token_strings: list[str] | None
    encoding: str
    exact: bool
    framing_tokens: int = 0
    file_tokens: int = 0
    estimated: tuple[str, ...] = ()

    @property
    def details_text_tokens(self) -> int:
        """Every non-image, non-audio token: encoded text + framing + file estimates."""
        return self.input_tokens - self.image_tokens - self.audio_tokens


def count_request_tokens(body: Mapping[str, Any], model: str, *, return_tokens: bool) -> TokenCount:
    """Count ``body``'s input tokens for ``model`` (sync, pure; loads the encoding on first use)."""
    name, exact = encoding_for_model(model)
    collector = _collect(body, model, get_encoding(name))
    _check_return_tokens(collector, return_tokens)
    return _encode(collector, exact, return_tokens)


async def count_request_tokens_async(
    body: Mapping[str, Any], model: str, *, return_tokens: bool
) -> TokenCount:
    """:func:`count_request_tokens` without blocking the event loop on a first load or a long text."""
    name, exact = encoding_for_model(model)
    loop = asyncio.get_running_loop()
    enc = get_encoding(name) if is_loaded(name) else await loop.run_in_executor(_pool(), get_encoding, name)
    collector = _collect(body, model, enc)
    _check_return_tokens(collector, return_tokens)
    if collector.text_chars() < THREAD_THRESHOLD_CHARS:
        return _encode(collector, exact, return_tokens)
    return await loop.run_in_executor(_pool(), _encode, collector, exact, return_tokens, True)


def _collect(body: Mapping[str, Any], model: str, enc: tiktoken.Encoding) -> _Collector:
    if not isinstance(body, _OBJECT):
        raise invalid_request("request body must be a JSON object")
    collector = _Collector(enc, normalise_model(model))
    collector.add_body(body)
    return collector


def _encode(collector: _Collector, exact: bool, return_tokens: bool, in_worker: bool = False) -> TokenCount:
    # A worker thread encodes with its own twin of the encoding (see _tokenizer.thread_encoding).
    encode = (thread_encoding(collector.enc) if in_worker else collector.enc).encode_ordinary
    tokens: list[int] | None = None
    strings: list[str] | None = None
    if return_tokens:
        tokens = []
        for text in collector.texts:
            tokens.extend(encode(text))
        strings = token_strings(collector.enc, tokens)
        text_tokens = len(tokens)
    else:
        text_tokens = sum(count_text(encode, text) for text in collector.texts)
    return collector.result(text_tokens, tokens, strings, exact)


def _check_return_tokens(collector: _Collector, return_tokens: bool) -> None:
    if return_tokens and collector.text_chars() > MAX_RETURN_TOKENS_CHARS:
        raise invalid_request(
            f"tokens and token_strings are returned for up to {MAX_RETURN_TOKENS_CHARS} characters of text; "
            'send "return_tokens": false to count a longer input',
            param="return_tokens",
        )


def count_text(encode: Callable[[str], list[int]], text: str) -> int:
    """``len(encode(text))``, computed piece by piece for long texts so memory stays bounded."""
    if len(text) <= PIECE_CHARS:
        return len(encode(text))
    return sum(len(encode(piece)) for piece in text_pieces(text))


def text_pieces(text: str, size: int = PIECE_CHARS) -> Iterator[str]:
    """``text`` in pieces of about ``size`` characters, each cut where every tiktoken encoding's
    pre-tokenizer starts a new piece anyway — before the space of " word" between two letters, or after
    a lone newline between two non-spaces — so encoding the pieces gives exactly the tokens of the whole
    (tested on random mixtures for every shipped encoding)."""
    start = 0
    while len(text) - start > size:
        cut = _cut(text, start + size)
        if cut < 0:
            break
        yield text[start:cut]
        start = cut
    yield text[start:]


def _cut(text: str, pos: int) -> int:
    """The first safe cut at or after ``pos``, or -1."""
    end = len(text) - 1
    while (i := text.find(" ", pos, end)) > 0:
        if text[i - 1].isalpha() and text[i + 1].isalpha():
            return i
        pos = i + 1
    i = text.find("\n", max(pos, 1), end)
    while i >= 0:
        # A lone newline between two non-spaces: every encoding makes it a piece of its own.
        if not text[i - 1].isspace() and not text[i + 1].isspace():
            return i + 1
        i = text.find("\n", i + 1, end)
    return -1


@dataclass(slots=True)
class _Collector:
    """Walks a request body into text pieces (to encode) and fixed token amounts (already counted)."""

    enc: tiktoken.Encoding
    model: str
    texts: list[str] = field(default_factory=list)
    framing: int = 0
    image: int = 0
    audio: int = 0
    file: int = 0
    estimated: list[str] = field(default_factory=list)

    def text_chars(self) -> int:
        return sum(map(len, self.texts))

    def result(
        self, text_tokens: int, tokens: list[int] | None, strings: list[str] | None, exact: bool
    ) -> TokenCount:
        estimated = tuple(dict.fromkeys(self.estimated if exact else ["model", *self.estimated]))
        total = text_tokens + self.framing + self.file + self.image + self.audio
        return TokenCount(
            input_tokens=total,
            text_tokens=text_tokens,
            image_tokens=self.image,
            audio_tokens=self.audio,
            tokens=tokens,
            token_strings=strings,
            encoding=self.enc.name,
            exact=not estimated,
            framing_tokens=self.framing,
            file_tokens=self.file,
            estimated=estimated,
        )

    # --- the body ------------------------------------------------------------------------------------

    def add_body(self, body: Mapping[str, Any]) -> None:
        # Prompt order: system text (instructions, tool definitions, response format), then the turns.
        instructions = _optional(body, "instructions", str, "a string")
        if instructions:
            self.open_message("system")
            self.add_text(instructions)
        self.add_tools(_optional(body, "tools", list, "an array of tools"))
        self.add_text_format(body.get("text"))
        self.add_turns(body)
        if body.get("previous_response_id"):
            self.estimated.append("previous_response_id")  # earlier turns live upstream, unseen
        self.framing += REPLY_PRIMING

    def add_turns(self, body: Mapping[str, Any]) -> None:
        if body.get("input") is not None:
            self.add_input(body["input"])
        elif body.get("messages") is not None:
            self.add_items(body["messages"], "messages")
        else:
            raise invalid_request("input is required for responses", param="input")

    def add_input(self, value: Any) -> None:
        if isinstance(value, str):  # Bifrost: a string input is one user message
            self.open_message("user")
            self.add_text(value)
        elif isinstance(value, list):
            self.add_items(value, "input")
        else:
            raise invalid_request("input must be a string or an array of input items", param="input")

    def add_items(self, items: Any, path: str) -> None:
        if not isinstance(items, list):
            raise invalid_request(f"{path} must be an array of messages", param=path)
        for i, item in enumerate(items):
            if not isinstance(item, _OBJECT):
                raise invalid_request(f"{path}[{i}] must be an object", param=f"{path}[{i}]")
            self.add_item(item, f"{path}[{i}]")

    # --- items ---------------------------------------------------------------------------------------

    def add_item(self, item: Mapping[str, Any], path: str) -> None:
        kind = item.get("type")
        if kind is None or kind == "message":
            self.add_message(item, path)
        elif kind == "function_call":
            self.open_message("assistant")
            self.add_text(_opt_str(item, "name", path), _opt_str(item, "arguments", path))
        elif kind == "custom_tool_call":
            self.open_message("assistant")
            self.add_text(_opt_str(item, "name", path), _opt_str(item, "input", path))
        elif kind in ("function_call_output", "custom_tool_call_output"):
            self.open_message("tool")
            self.add_output(item.get("output"), f"{path}.output")
        elif kind == "reasoning":
            self.add_reasoning(item, path)
        elif kind == "item_reference":
            self.estimated.append("item_reference")  # the referenced item is stored upstream
        else:
            self.open_message(_generic_role(item, kind))
            self.add_text(*_visible_strings(item))

    def add_message(self, item: Mapping[str, Any], path: str) -> None:
        role = item.get("role", "user")
        if not isinstance(role, str):
            raise invalid_request(f"{path}.role must be a string", param=f"{path}.role")
        self.open_message(role)
        name = item.get("name")
        if isinstance(name, str) and name:
            self.add_text(name)
            self.framing += TOKENS_PER_NAME
        self.add_content(item.get("content"), f"{path}.content")
        self.add_chat_tool_calls(item.get("tool_calls"))

    def add_chat_tool_calls(self, calls: Any) -> None:
        """A chat-style assistant message's ``tool_calls``: the function name and its JSON arguments."""
        if not isinstance(calls, list):
            return
        for call in calls:
            function = call.get("function") if isinstance(call, _OBJECT) else None
            if isinstance(function, _OBJECT):
                self.add_text(*(v for k in ("name", "arguments") if isinstance(v := function.get(k), str)))

    def add_reasoning(self, item: Mapping[str, Any], path: str) -> None:
        self.open_message("assistant")
        for key in ("summary", "content"):
            parts = item.get(key)
            if parts is not None:
                self.add_content(parts, f"{path}.{key}")
        if item.get("encrypted_content"):
            self.estimated.append("encrypted_reasoning")

    def add_output(self, output: Any, path: str) -> None:
        if output is None or isinstance(output, str | list):
            self.add_content(output, path)
        else:  # an object output reaches the model as its JSON text
            self.add_text(_json_text(output, path))

    # --- content -------------------------------------------------------------------------------------

    def add_content(self, content: Any, path: str) -> None:
        if content is None:
            return
        if isinstance(content, str):
            self.add_text(content)
            return
        if not isinstance(content, list):
            raise invalid_request(f"{path} must be a string or an array of content parts", param=path)
        for j, part in enumerate(content):
            if not isinstance(part, _OBJECT):
                raise invalid_request(f"{path}[{j}] must be an object", param=f"{path}[{j}]")
            self.add_part(part, f"{path}[{j}]")

    def add_part(self, part: Mapping[str, Any], path: str) -> None:
        kind = part.get("type")
        if kind in _TEXT_PART_TYPES:
            self.add_text(_opt_str(part, "text", path))
        elif kind == "refusal":
            self.add_text(_opt_str(part, "refusal", path) or _opt_str(part, "text", path))
        elif kind == "input_image":
            self.add_image(part.get("image_url"), part.get("detail"))
        elif kind == "image_url":  # chat style: {"image_url": {"url", "detail"}} or a bare URL string
            spec = part.get("image_url")
            url, detail = (spec.get("url"), spec.get("detail")) if isinstance(spec, _OBJECT) else (spec, None)
            self.add_image(url, detail)
        elif kind in ("input_file", "file"):
            spec = part.get("file")
            self.add_file(spec if isinstance(spec, _OBJECT) else part)
        elif kind == "input_audio":
            spec = part.get("input_audio")
            self.add_audio(spec if isinstance(spec, _OBJECT) else part)
        else:
            self.add_text(*_visible_strings(part))

    def add_image(self, url: Any, detail: Any) -> None:
        size = _data_url_image_size(url) if isinstance(url, str) else None
        if size is None:
            self.estimated.append("image_size_unknown")
            size = DEFAULT_IMAGE_SIZE
        level = detail if detail in _DETAILS else "auto"
        if level == "auto" and _patch_multiplier(self.model) is None:
            self.estimated.append("image_detail_auto")
        self.image += image_tokens(self.model, level, *size)

    def add_file(self, spec: Mapping[str, Any]) -> None:
        self.estimated.append("file")
        data = spec.get("file_data")
        if isinstance(data, str) and data:
            self.file += math.ceil(_base64_size(_data_url_payload(data)) / FILE_BYTES_PER_TOKEN)

    def add_audio(self, spec: Mapping[str, Any]) -> None:
        self.estimated.append("audio")
        data = spec.get("data")
        if isinstance(data, str) and data:
            seconds = _audio_seconds(_data_url_payload(data))
            self.audio += math.ceil(seconds * AUDIO_TOKENS_PER_SECOND)

    # --- tools and response format -------------------------------------------------------------------

    def add_tools(self, tools: list[Any] | None) -> None:
        """Function tools by the cookbook's num_tokens_for_tools; hosted tools by their visible text."""
        functions = 0
        for i, tool in enumerate(tools or ()):
            if not isinstance(tool, _OBJECT):
                raise invalid_request(f"tools[{i}] must be an object", param=f"tools[{i}]")
            function = _function_of(tool)
            if function is not None:
                functions += 1
                self.add_function(function)
            else:  # web_search, file_search, mcp, ...: OpenAI injects unpublished instructions
                self.estimated.append("hosted_tool")
                self.add_text(*_visible_strings(tool))
        if functions:
            self.framing += FUNC_END

    def add_function(self, function: Mapping[str, Any]) -> None:
        self.framing += FUNC_INIT_O200K if self.enc.name == "o200k_base" else FUNC_INIT_OTHER
        name = function.get("name")
        self.add_text(f"{name if isinstance(name, str) else ''}:{_description(function)}")
        parameters = function.get("parameters")
        if isinstance(parameters, _OBJECT):
            self.add_properties(parameters)

    def add_properties(self, schema: Mapping[str, Any], depth: int = 0) -> None:
        properties = schema.get("properties")
        if not isinstance(properties, _OBJECT) or not properties or depth > _MAX_SCHEMA_DEPTH:
            return
        self.framing += PROP_INIT
        for key, prop in properties.items():
            self.add_property(str(key), prop if isinstance(prop, _OBJECT) else {}, depth)

    def add_property(self, key: str, prop: Mapping[str, Any], depth: int) -> None:
        self.framing += PROP_KEY
        enum = prop.get("enum")
        if isinstance(enum, list):
            self.framing += ENUM_INIT + ENUM_ITEM * len(enum)
            self.add_text(*(v if isinstance(v, str) else _json_text(v, "tools") for v in enum))
        self.add_text(f"{key}:{_type_label(prop)}:{_description(prop)}")
        # Beyond the cookbook (flat schemas only): nested objects and arrays of objects are counted by
        # the same rule, one level of PROP_INIT per nested property list.
        self.add_properties(prop, depth + 1)
        items = prop.get("items")
        if isinstance(items, _OBJECT):
            self.add_properties(items, depth + 1)

    def add_text_format(self, text: Any) -> None:
        if text is None or isinstance(text, str):  # seed 003 types `text` as a plain string
            return
        if not isinstance(text, _OBJECT):
            raise invalid_request("text must be an object", param="text")
        fmt = text.get("format")
        if not isinstance(fmt, _OBJECT) or fmt.get("type") != "json_schema":
            return
        # Responses puts name/schema on the format; the chat shape (seed 001) nests them in json_schema.
        nested = fmt.get("json_schema")
        spec: Mapping[str, Any] = nested if isinstance(nested, _OBJECT) else fmt
        self.estimated.append("text_format")  # OpenAI does not publish how the schema is rendered
        self.add_text(*(v for k in ("name", "description") if isinstance(v := spec.get(k), str)))
        if spec.get("schema") is not None:
            self.add_text(_json_text(spec["schema"], "text.format"))

    # --- primitives ----------------------------------------------------------------------------------

    def open_message(self, role: str) -> None:
        key = (self.enc.name, role)
        n = _ROLE_TOKENS.get(key)
        if n is None:
            n = len(self.enc.encode_ordinary(role))
            if role in _KNOWN_ROLES:
                _ROLE_TOKENS[key] = n
        self.framing += TOKENS_PER_MESSAGE + n

    def add_text(self, *texts: str) -> None:
        self.texts.extend(t for t in texts if t)


# --- request helpers ------------------------------------------------------------------------------------


def _optional(body: Mapping[str, Any], key: str, kind: type[Any], what: str) -> Any:
    value = body.get(key)
    if value is not None and not isinstance(value, kind):
        raise invalid_request(f"{key} must be {what}", param=key)
    return value


def _opt_str(obj: Mapping[str, Any], key: str, path: str) -> str:
    value = obj.get(key)
    if value is None:
        return ""
    if not isinstance(value, str):
        raise invalid_request(f"{path}.{key} must be a string", param=f"{path}.{key}")
    return value


def _generic_role(item: Mapping[str, Any], kind: Any) -> str:
    role = item.get("role")
    if isinstance(role, str):
        return role
    return "tool" if isinstance(kind, str) and kind.endswith("_output") else "assistant"


def _visible_strings(value: Any) -> list[str]:
    """Every string in ``value`` except identifiers and opaque blobs (see ``_HIDDEN_KEYS``)."""
    out: list[str] = []
    stack = [value]
    while stack:
        node = stack.pop()
        if isinstance(node, str):
            out.append(node)
        elif isinstance(node, _OBJECT):
            stack.extend(reversed([v for k, v in node.items() if k not in _HIDDEN_KEYS]))
        elif isinstance(node, list):
            stack.extend(reversed(node))
    return out


def _function_of(tool: Mapping[str, Any]) -> Mapping[str, Any] | None:
    nested = tool.get("function")
    if isinstance(nested, _OBJECT):  # chat shape: {"type": "function", "function": {...}}
        return nested
    return tool if tool.get("type", "function") == "function" else None


def _description(obj: Mapping[str, Any]) -> str:
    desc = obj.get("description")
    if not isinstance(desc, str):
        return ""
    return desc[:-1] if desc.endswith(".") else desc  # the cookbook drops one trailing period


def _type_label(prop: Mapping[str, Any]) -> str:
    """``type`` as written; a type list or an anyOf/oneOf of types joined with `` | ``."""
    variants = prop.get("anyOf") or prop.get("oneOf")
    if "type" not in prop and isinstance(variants, list):
        return " | ".join(_plain_type(v.get("type")) for v in variants if isinstance(v, _OBJECT))
    return _plain_type(prop.get("type"))


def _plain_type(kind: Any) -> str:
    if isinstance(kind, str):
        return kind
    if isinstance(kind, list):
        return " | ".join(k for k in kind if isinstance(k, str))
    return ""


def _json_text(value: Any, path: str) -> str:
    try:
        return orjson.dumps(value).decode()
    except orjson.JSONEncodeError as exc:  # deeper than orjson's 254 levels, or a non-JSON value
        raise invalid_request(f"{path} cannot be serialised as JSON: {exc}", param=path) from exc


# --- images ---------------------------------------------------------------------------------------------


def image_tokens(model: str, detail: str, width: int, height: int) -> int:
    """OpenAI's published image cost for ``model`` (normalised name) at ``detail`` low/high/auto.

    >>> image_tokens("gpt-4o", "high", 1024, 1024), image_tokens("gpt-4o", "low", 4096, 8192)
    (765, 85)
    >>> image_tokens("gpt-4.1-mini", "high", 1800, 2400)  # 1452 patches x 1.62
    2352
    """
    multiplier = _patch_multiplier(model)
    if multiplier is not None:
        return int(_patch_count(width, height) * multiplier + 1e-9)
    base, tile = _tile_rule(model)
    if detail == "low":
        return base
    return base + tile * _tile_count(width, height)


def _patch_multiplier(model: str) -> float | None:
    return next((m for prefix, m in PATCH_MULTIPLIERS if model.startswith(prefix)), None)


def _tile_rule(model: str) -> tuple[int, int]:
    return next(((b, t) for prefix, b, t in TILE_RULES if model.startswith(prefix)), DEFAULT_TILE_RULE)


def _tile_count(width: int, height: int) -> int:
    w, h = float(width), float(height)
    if max(w, h) > 2048:
        scale = 2048 / max(w, h)
        w, h = round(w * scale), round(h * scale)
    if min(w, h) > 768:
        scale = 768 / min(w, h)
        w, h = round(w * scale), round(h * scale)
    return math.ceil(w / 512) * math.ceil(h / 512)


def _patch_count(width: int, height: int) -> int:
    w, h = float(width), float(height)
    if _ceil_div(w, PATCH_SIZE) * _ceil_div(h, PATCH_SIZE) > MAX_PATCHES:
        r = math.sqrt(PATCH_SIZE**2 * MAX_PATCHES / (w * h))
        # Shrink once more so one side fits a whole number of patches (the guide's step B).
        r *= min(
            math.floor(w * r / PATCH_SIZE) / (w * r / PATCH_SIZE),
            math.floor(h * r / PATCH_SIZE) / (h * r / PATCH_SIZE),
        )
        w, h = w * r, h * r
    return min(_ceil_div(w, PATCH_SIZE) * _ceil_div(h, PATCH_SIZE), MAX_PATCHES)


def _ceil_div(value: float, size: int) -> int:
    # The epsilon absorbs float error: 1800 x 0.5866... must give 33 patches, not 34.
    return math.ceil(value / size - 1e-9)


# --- data URLs and media headers ------------------------------------------------------------------------
# Only as many base64 characters as a header needs are decoded: a 5 MB photo costs microseconds.
_SNIFF_WINDOWS = (4096, 131_072)
_HEAD_BYTES = 4096  # enough for any WAV header and the first MP3 frame after an ID3 tag's start


def _data_url_payload(value: str) -> str:
    """The base64 payload of ``data:<type>;base64,<payload>``, or ``value`` itself if it is bare base64."""
    if value.startswith("data:"):
        header, _, payload = value.partition(",")
        return payload if header.endswith(";base64") else ""
    return value


def _base64_size(payload: str) -> int:
    return len(payload) * 3 // 4 - payload[-2:].count("=")


def _b64_window(payload: str, start: int, length: int) -> bytes:
    """Decode bytes ``[start, start + length)`` of a base64 payload without decoding the rest."""
    first = start // 3 * 4
    end = min(len(payload), first + (length + 5) // 3 * 4)
    chunk = payload[first : end - (end - first) % 4]
    try:
        raw = base64.b64decode(chunk)
    except (binascii.Error, ValueError):
        return b""
    return raw[start % 3 : start % 3 + length]


def _data_url_image_size(url: str) -> tuple[int, int] | None:
    if not url.startswith("data:"):
        return None
    payload = _data_url_payload(url)
    for window in (*_SNIFF_WINDOWS, len(payload)):
        size = _image_size(_b64_window(payload, 0, window * 3 // 4))
        if size is not None or window >= len(payload):
            return size
    return None


def _image_size(raw: bytes) -> tuple[int, int] | None:
    """(width, height) from a PNG, GIF, WEBP or JPEG header; None if unknown or cut short."""
    size: tuple[int, int] | None = None
    if raw.startswith(b"\x89PNG\r\n\x1a\n") and len(raw) >= 24:
        size = int.from_bytes(raw[16:20], "big"), int.from_bytes(raw[20:24], "big")
    elif raw[:6] in (b"GIF87a", b"GIF89a") and len(raw) >= 10:
        size = int.from_bytes(raw[6:8], "little"), int.from_bytes(raw[8:10], "little")
    elif raw[:4] == b"RIFF" and raw[8:12] == b"WEBP":
        size = _webp_size(raw)
    elif raw[:2] == b"\xff\xd8":
        size = _jpeg_size(raw)
    return size if size is not None and size[0] > 0 and size[1] > 0 else None


def _webp_size(raw: bytes) -> tuple[int, int] | None:
    chunk = raw[12:16]
    if chunk == b"VP8 " and len(raw) >= 30:  # lossy: 14-bit sizes after the 0x9d012a start code
        return int.from_bytes(raw[26:28], "little") & 0x3FFF, int.from_bytes(raw[28:30], "little") & 0x3FFF
    if chunk == b"VP8L" and len(raw) >= 25:  # lossless: two 14-bit (size - 1) fields after 0x2f
        bits = int.from_bytes(raw[21:25], "little")
        return (bits & 0x3FFF) + 1, ((bits >> 14) & 0x3FFF) + 1
    if chunk == b"VP8X" and len(raw) >= 30:  # extended: 24-bit (canvas size - 1) fields
        return int.from_bytes(raw[24:27], "little") + 1, int.from_bytes(raw[27:30], "little") + 1
    return None


_JPEG_SOF = frozenset(range(0xC0, 0xD0)) - {0xC4, 0xC8, 0xCC}  # start-of-frame markers (not DHT/JPG/DAC)


def _jpeg_size(raw: bytes) -> tuple[int, int] | None:
    i = 2
    while i + 4 <= len(raw):
        if raw[i] != 0xFF:
            return None
        marker = raw[i + 1]
        if marker == 0xFF:  # fill byte
            i += 1
        elif marker == 0x01 or 0xD0 <= marker <= 0xD9:  # stand-alone markers carry no length
            i += 2
        elif marker in _JPEG_SOF:
            if i + 9 > len(raw):
                return None
            return int.from_bytes(raw[i + 7 : i + 9], "big"), int.from_bytes(raw[i + 5 : i + 7], "big")
        else:
            i += 2 + int.from_bytes(raw[i + 2 : i + 4], "big")
    return None


# --- audio ----------------------------------------------------------------------------------------------
_MP3_KBPS_V1 = (0, 32, 40, 48, 56, 64, 80, 96, 112, 128, 160, 192, 224, 256, 320)  # MPEG-1 Layer III
_MP3_KBPS_V2 = (0, 8, 16, 24, 32, 40, 48, 56, 64, 80, 96, 112, 128, 144, 160)  # MPEG-2/2.5 Layer III


def _audio_seconds(payload: str) -> float:
    # The header, not the declared format, decides: clients mislabel wav/mp3 often enough.
    size = _base64_size(payload)
    head = _b64_window(payload, 0, _HEAD_BYTES)
    if head[:4] == b"RIFF" and head[8:12] == b"WAVE":
        seconds = _wav_seconds(head, size)
        if seconds is not None:
            return seconds
    start, rate = _mp3_byte_rate(payload, head)
    return max(0, size - start) / (rate or DEFAULT_AUDIO_BYTES_PER_SECOND)


def _wav_seconds(head: bytes, size: int) -> float | None:
    """Duration from the ``fmt `` byte rate and the ``data`` chunk size (capped at the bytes present)."""
    byte_rate, i = 0, 12
    while i + 8 <= len(head):
        chunk, length = head[i : i + 4], int.from_bytes(head[i + 4 : i + 8], "little")
        if chunk == b"fmt " and i + 20 <= len(head):
            byte_rate = int.from_bytes(head[i + 16 : i + 20], "little")
        elif chunk == b"data":
            return min(length, size - i - 8) / byte_rate if byte_rate else None
        i += 8 + length + (length & 1)  # RIFF chunks are padded to even sizes
    return None


def _mp3_byte_rate(payload: str, head: bytes) -> tuple[int, int | None]:
    """(offset of the audio frames, byte rate of the first MPEG Layer III frame header or None)."""
    start = 0
    if head[:3] == b"ID3" and len(head) >= 10:  # skip an ID3v2 tag (syncsafe size), possibly with cover art
        start = 10 + sum((b & 0x7F) << (7 * (3 - k)) for k, b in enumerate(head[6:10]))
        head = _b64_window(payload, start, _HEAD_BYTES)
    return start, _mp3_frame_byte_rate(head)


def _mp3_frame_byte_rate(raw: bytes) -> int | None:
    for i in range(len(raw) - 3):
        if raw[i] != 0xFF or raw[i + 1] & 0xE0 != 0xE0:
            continue
        version, layer, index = (raw[i + 1] >> 3) & 3, (raw[i + 1] >> 1) & 3, raw[i + 2] >> 4
        if version != 1 and layer == 1 and 0 < index < 15:  # a Layer III frame with a valid bitrate
            return (_MP3_KBPS_V1 if version == 3 else _MP3_KBPS_V2)[index] * 125
    return None
