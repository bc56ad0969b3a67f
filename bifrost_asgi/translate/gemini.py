"""Translate OpenAI Responses, chat and text completions to Gemini ``generateContent`` and back.

Requests become a ``generateContent`` body (``contents`` with roles ``user``/``model``,
``systemInstruction``, ``tools[].functionDeclarations``, ``toolConfig``, ``generationConfig``). Answers
(whole, or ``streamGenerateContent?alt=sse`` chunks) become a chat completion first, and Responses objects
and events are built from that with the Responses <-> chat translator, so both APIs share one event
machine and one set of item shapes.

Everything here is pure: no I/O and no shared state; the clock is read only for timestamps.

Mapping decisions, each for a reason:

- Every ``system``/``developer`` message (and ``instructions``) joins the one ``systemInstruction``, in
  order: Gemini has no other place for them. Adjacent contents of the same role are merged, so parallel
  tool results answer their calls in one turn, as Gemini requires.
- Gemini function calls carry no ids. Each gets a minted ``call_<hex>`` id; when the call carries a
  ``thoughtSignature`` (Gemini 3 rejects history whose calls lack theirs), the signature rides in the id
  as ``call_<hex>_ts_<urlsafe base64>`` (Bifrost's separator) and is restored when the client sends the
  call back. ``function_call_output`` / ``tool`` messages are matched to the call's *name* through the
  call ids earlier in the same request; an output for an unknown call id is a 400. For Gemini 3 models a
  model turn whose first call has no signature (a conversation started elsewhere) gets Google's
  documented ``skip_thought_signature_validator`` sentinel.
- Images: ``data:`` URLs become ``inlineData``; http(s) URLs become ``fileData`` with a ``mimeType``
  taken from the file extension (omitted, as Gemini allows, when the extension says nothing). ``detail``
  is a resolution hint Gemini sets per request, not per image, and is not sent.
- Tool parameter and response schemas are JSON Schema; Gemini takes an OpenAPI 3.0 subset. Keywords it
  has a field for are kept (``type`` upper-cased), ``oneOf`` becomes ``anyOf``, ``const`` a one-value
  ``enum``, ``["x", "null"]`` types ``nullable``, local ``$ref``s are inlined. Keywords that only annotate
  or narrow validation are removed (Gemini rejects them): ``additionalProperties``, ``$schema``, ``$id``,
  ``$comment``, ``$defs``/``definitions`` (after inlining), ``strict``, ``exclusiveMinimum``/``Maximum``,
  ``multipleOf``, ``uniqueItems``, ``patternProperties``, ``unevaluatedProperties``, ``readOnly``,
  ``writeOnly``, ``deprecated``, ``examples`` (the first becomes ``example``), formats Gemini does not
  know, non-string enums, and any other keyword. Keywords that change the shape of valid values are a
  400: ``allOf``, ``not``, ``if``/``then``/``else``, ``prefixItems``, ``dependentSchemas``, recursive or
  non-local ``$ref``. An object schema without properties is sent without ``parameters`` (Gemini
  rejects an OBJECT with no properties). ``strict`` on a tool is not sent: Gemini has no strict mode.
- Reasoning: ``reasoning.effort`` / ``reasoning_effort`` becomes ``thinkingLevel`` on Gemini 3 models
  (``none`` -> ``minimal``, ``xhigh`` -> ``high``; Gemini checks the level per model) and a
  ``thinkingBudget`` on earlier ones (see ``_THINKING_BUDGETS``). Thoughts are returned
  (``includeThoughts``) whenever reasoning is asked for, as Bifrost does: a Responses ``reasoning`` with
  an effort (other than ``none``) or a summary, a chat ``reasoning_effort`` (other than ``none``); they
  come back as reasoning summaries / ``reasoning``.
  Reasoning input items (and a chat assistant's ``reasoning``) are skipped: Gemini only reads thoughts
  back through signatures. A chat message's ``name`` is not sent either: Gemini turns have no author,
  nor is a ``cache_control`` on a part, message or tool: Gemini caches prompts implicitly.
- Function-call arguments streamed in parts (``partialArgs``: a value per JSONPath, strings continued
  by ``willContinue``) are assembled into one call: announced when its name arrives, its arguments sent
  whole when it ends (see :class:`GeminiToChatStream`). Parts that do not fit one JSON object are a 502.
- Usage: ``promptTokenCount`` (+ ``toolUsePromptTokenCount``) is the input and already includes
  ``cachedContentTokenCount``, reported as ``cached_tokens`` and ``cached_read_tokens``; output is
  ``candidatesTokenCount + thoughtsTokenCount``, with the thoughts as ``reasoning_tokens``.
- finishReason: STOP -> ``stop`` (``tool_calls`` when the turn called functions), MAX_TOKENS ->
  ``length`` (Responses: incomplete, ``max_output_tokens``), the safety family (SAFETY, RECITATION,
  LANGUAGE, BLOCKLIST, PROHIBITED_CONTENT, SPII, IMAGE_*) and a blocked prompt -> ``content_filter``
  (incomplete, ``content_filter``); anything else -> ``stop``, as Bifrost maps them.

What cannot be represented is a 400 naming it, never dropped: server-side state
(``previous_response_id``, ``conversation``, ``prompt``, ``item_reference``, ``background``), hosted tools
and ``file_id`` inputs, ``n`` > 1, logprobs, ``logit_bias``, ``parallel_tool_calls: false``, audio output,
unknown body fields, and answer parts chat cannot carry (generated images, code execution). The few
fields dropped on purpose are listed in ``_DROPPED`` with the reason.
"""

from __future__ import annotations

import re
import time
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Final
from urllib.parse import urlsplit

import orjson

from bifrost_asgi.errors import bad_response, invalid_request
from bifrost_asgi.translate.inputs import chat_messages, one_prompt, unsendable_item
from bifrost_asgi.translate.responses_chat import (
    ChatToResponsesStream,
    _reject_stateful,
    chat_to_responses_response,
)

__all__ = [
    "GeminiToChatStream",
    "GeminiToResponsesStream",
    "chat_to_gemini_request",
    "count_tokens_request",
    "count_tokens_response",
    "gemini_to_chat_response",
    "gemini_to_responses_response",
    "gemini_to_text_response",
    "gemini_usage_to_chat",
    "gemini_usage_to_responses",
    "is_gemini3",
    "json_schema_to_gemini",
    "responses_to_gemini_request",
    "text_to_gemini_request",
]

Obj = dict[str, Any]

_SIGNATURE_SEPARATOR: Final = "_ts_"
# Google's documented stand-in for a signature Gemini 3 never issued (history from another model).
_SKIP_SIGNATURE: Final = "skip_thought_signature_validator"

# Fields dropped on purpose: none changes what the model is asked.
_DROPPED: Final[Mapping[str, str]] = {
    "metadata": "labels a stored response at OpenAI; Gemini stores nothing",
    "store": "nothing is stored upstream",
    "include": "asks for extra output (encrypted reasoning, logprobs) Gemini does not return",
    "truncation": "'auto' only matters on context overflow, which Gemini reports itself",
    "service_tier": "an OpenAI billing tier",
    "prompt_cache_key": "an OpenAI cache-routing hint; Gemini caches implicitly",
    "prompt_cache_retention": "an OpenAI cache-lifetime hint",
    "stream_options": "Gemini streams always carry usage",
    "top_logprobs": "logprobs are not translated back",
    "max_tool_calls": "caps hosted tool calls, which are rejected anyway",
    "user": "Gemini has no end-user field",
    "safety_identifier": "Gemini has no end-user field",
    "verbosity": "an OpenAI style hint with no Gemini counterpart",
}
_GATEWAY: Final = frozenset({"model", "stream", "fallbacks", "return_tokens"})
_RESPONSES_FIELDS: Final = frozenset(
    {
        *_GATEWAY, *_DROPPED, "input", "instructions", "tools", "tool_choice", "parallel_tool_calls",
        "text", "reasoning", "max_output_tokens", "temperature", "top_p", "top_k", "previous_response_id",
        "conversation", "prompt", "background",
    }
)  # fmt: skip
_CHAT_FIELDS: Final = frozenset(
    {
        *_GATEWAY, *_DROPPED, "messages", "tools", "tool_choice", "parallel_tool_calls", "max_tokens",
        "max_completion_tokens", "temperature", "top_p", "top_k", "stop", "n", "seed", "presence_penalty",
        "frequency_penalty", "response_format", "reasoning_effort", "logprobs", "logit_bias", "modalities",
    }
)  # fmt: skip
_TEXT_FIELDS: Final = frozenset(
    {
        *_GATEWAY, *_DROPPED, "prompt", "max_tokens", "temperature", "top_p", "top_k", "stop", "n", "seed",
        "presence_penalty", "frequency_penalty", "logprobs", "logit_bias", "echo", "suffix", "best_of",
    }
)  # fmt: skip
_SAMPLING: Final[Mapping[str, str]] = {
    "temperature": "temperature",
    "top_p": "topP",
    "top_k": "topK",
    "seed": "seed",
    "presence_penalty": "presencePenalty",
    "frequency_penalty": "frequencyPenalty",
}
# Budgets inside every Gemini 2.5 model's published range (flash-lite's minimum is 512).
_THINKING_BUDGETS: Final[Mapping[str, int]] = {
    "none": 0,
    "minimal": 512,
    "low": 2048,
    "medium": 8192,
    "high": 24576,
    "xhigh": 24576,
}
_THINKING_LEVELS: Final[Mapping[str, str]] = {
    "none": "minimal",
    "minimal": "minimal",
    "low": "low",
    "medium": "medium",
    "high": "high",
    "xhigh": "high",
}
_CONTENT_FILTER: Final = frozenset(
    {
        "SAFETY", "RECITATION", "LANGUAGE", "BLOCKLIST", "PROHIBITED_CONTENT", "SPII", "IMAGE_SAFETY",
        "IMAGE_PROHIBITED_CONTENT", "IMAGE_RECITATION",
    }
)  # fmt: skip
_GEMINI_VERSION: Final = re.compile(r"gemini-(\d+)")
# Signatures travel in call ids as unpadded URL-safe base64, so ids stay within [A-Za-z0-9_-].
_URLSAFE: Final = re.compile(r"[A-Za-z0-9_-]+")
_TERMINAL: Final = frozenset({"response.completed", "response.incomplete", "response.failed"})
# A fixed table rather than `mimetypes`, whose answers depend on the host's mime database.
_MIME_BY_EXTENSION: Final[Mapping[str, str]] = {
    "png": "image/png", "jpg": "image/jpeg", "jpeg": "image/jpeg", "webp": "image/webp",
    "gif": "image/gif", "heic": "image/heic", "heif": "image/heif", "pdf": "application/pdf",
    "txt": "text/plain", "wav": "audio/wav", "mp3": "audio/mp3", "aac": "audio/aac", "ogg": "audio/ogg",
    "flac": "audio/flac", "mp4": "video/mp4", "mov": "video/mov", "webm": "video/webm",
}  # fmt: skip


def _new_id(prefix: str) -> str:
    return f"{prefix}_{uuid.uuid4().hex[:24]}"


def is_gemini3(model: str) -> bool:
    """Gemini 3 and later: thinking levels instead of budgets, strict thought signatures."""
    match = _GEMINI_VERSION.match(model.lower().rsplit("/", 1)[-1])
    return match is not None and int(match.group(1)) >= 3


# ---------------------------------------------------------------------------------------------------------
# Request: the conversation
# ---------------------------------------------------------------------------------------------------------


@dataclass(slots=True)
class _Conversation:
    """Contents being built, the system instruction, and which function each call id named."""

    system: list[Obj] = field(default_factory=list)
    contents: list[Obj] = field(default_factory=list)
    call_names: dict[str, str] = field(default_factory=dict)

    def add(self, role: str, parts: list[Obj]) -> None:
        if not parts:
            return
        last = self.contents[-1] if self.contents else None
        if last is not None and last["role"] == role:
            last["parts"].extend(parts)
        else:
            self.contents.append({"role": role, "parts": parts})

    def add_call(self, call_id: str, name: str, arguments: Any, where: str) -> None:
        self.call_names[call_id] = name
        self.add("model", [_function_call_part(call_id, name, arguments, where)])

    def add_result(self, call_id: Any, output: Any, where: str) -> None:
        if not isinstance(call_id, str):
            raise invalid_request(f"{where}: a tool result needs the call id it answers", param=where)
        name = self.call_names.get(call_id)
        if name is None:
            # Gemini matches results to calls by function name, which only the call itself carries.
            raise invalid_request(
                f"{where}: tool result for call id {call_id!r} has no matching function call earlier in "
                f"the conversation; gemini needs the call to know the function's name",
                param=where,
            )
        response = {"name": name, "response": _function_output(output, where)}
        self.add("user", [{"functionResponse": response}])


def _check_fields(body: Obj, known: frozenset[str]) -> None:
    unknown = sorted(key for key in body if key not in known)
    if unknown:
        raise invalid_request(
            f"{', '.join(unknown)}: not supported for gemini models (no Gemini counterpart)", param=unknown[0]
        )


def _text_part(text: Any, where: str) -> list[Obj]:
    if not isinstance(text, str):
        raise invalid_request(f"{where}.text must be a string", param=where)
    # Gemini rejects empty text parts; an empty string adds nothing to the conversation.
    return [{"text": text}] if text else []


def _function_call_part(call_id: str, name: str, arguments: Any, where: str) -> Obj:
    try:
        args = orjson.loads(arguments) if isinstance(arguments, str) and arguments.strip() else {}
    except orjson.JSONDecodeError:
        raise invalid_request(f"{where}: function call arguments are not valid JSON", param=where) from None
    if not isinstance(args, dict):
        raise invalid_request(f"{where}: function call arguments must be a JSON object", param=where)
    part: Obj = {"functionCall": {"name": name, "args": args}}
    signature = _signature_of(call_id, where)
    if signature is not None:
        part["thoughtSignature"] = signature
    return part


def _signature_of(call_id: str, where: str) -> str | None:
    _, sep, encoded = call_id.partition(_SIGNATURE_SEPARATOR)
    if not sep:
        return None
    if not _URLSAFE.fullmatch(encoded):
        raise invalid_request(
            f"{where}: call id {call_id!r} carries a damaged thought signature", param=where
        )
    standard = encoded.replace("-", "+").replace("_", "/")
    return standard + "=" * (-len(standard) % 4)


def _signature_in_id(signature: str) -> str:
    return signature.rstrip("=").replace("+", "-").replace("/", "_")


def _function_output(output: Any, where: str) -> Obj:
    if isinstance(output, list):
        output = "".join(_output_text(part, f"{where}.output[{i}]") for i, part in enumerate(output))
    if not isinstance(output, str):
        raise invalid_request(f"{where}: tool output must be a string or a list of text parts", param=where)
    try:
        value = orjson.loads(output)
    except orjson.JSONDecodeError:
        value = None
    # Gemini wants an object; a JSON object result is sent as is, anything else under "output".
    return value if isinstance(value, dict) else {"output": output}


def _output_text(part: Any, where: str) -> str:
    kind = part.get("type") if isinstance(part, dict) else None
    if kind not in ("input_text", "output_text", "text"):
        raise invalid_request(f"{where}: tool output can only carry text for gemini models", param=where)
    text = part.get("text")
    if not isinstance(text, str):
        raise invalid_request(f"{where}.text must be a string", param=where)
    return text


# -- media ------------------------------------------------------------------------------------------------


def _media_part(url: Any, where: str) -> Obj:
    if not isinstance(url, str) or not url:
        raise invalid_request(
            f"{where}: needs a URL or data: URI; file_id is not supported for gemini models", param=where
        )
    if url.startswith("data:"):
        return {"inlineData": _inline_data(url, where)}
    if url.startswith(("http://", "https://")):
        return {"fileData": _file_data(url)}
    raise invalid_request(f"{where}: only http(s) URLs and data: URIs can be sent to gemini", param=where)


def _inline_data(url: str, where: str) -> Obj:
    header, sep, data = url.partition(",")
    mime = header[5:].split(";", 1)[0]
    if not sep or not header.endswith(";base64") or not mime:
        raise invalid_request(f"{where}: data URIs must be data:<mime type>;base64,<data>", param=where)
    return {"mimeType": mime, "data": data}


def _file_data(url: str) -> Obj:
    mime = _mime_of(urlsplit(url).path)
    return {"mimeType": mime, "fileUri": url} if mime else {"fileUri": url}


def _mime_of(path: str) -> str | None:
    _, dot, extension = path.rpartition(".")
    return _MIME_BY_EXTENSION.get(extension.lower()) if dot else None


def _file_part(file: Obj, where: str) -> Obj:
    data, url = file.get("file_data"), file.get("file_url")
    if isinstance(data, str) and data.startswith("data:"):
        return {"inlineData": _inline_data(data, where)}
    if isinstance(data, str) and data:
        # Bare base64 (the chat API's form): the file name must say what it is.
        mime = _mime_of(str(file.get("filename") or ""))
        if mime is None:
            raise invalid_request(f"{where}: cannot tell the file's type; send a data: URI", param=where)
        return {"inlineData": {"mimeType": mime, "data": data}}
    if isinstance(url, str) and url:
        return _media_part(url, where)
    raise invalid_request(
        f"{where}: files need file_data or file_url; file_id is not supported for gemini models", param=where
    )


def _audio_part(audio: Any, where: str) -> Obj:
    if not isinstance(audio, dict) or not isinstance(audio.get("data"), str):
        raise invalid_request(f"{where}: input_audio needs data and format", param=where)
    return {"inlineData": {"mimeType": f"audio/{audio.get('format') or 'wav'}", "data": audio["data"]}}


def _user_part(part: Any, where: str) -> list[Obj]:
    """One content part of a user (or system) message, in either API's vocabulary."""
    kind = part.get("type") if isinstance(part, dict) else None
    if kind in ("input_text", "output_text", "text"):
        return _text_part(part.get("text"), where)
    if kind == "input_image":
        return [_media_part(part.get("image_url"), where)]
    if kind == "image_url":
        image = part.get("image_url")
        return [_media_part(image.get("url") if isinstance(image, dict) else image, where)]
    if kind == "input_file":
        return [_file_part(part, where)]
    if kind == "file" and isinstance(part.get("file"), dict):
        return [_file_part(part["file"], where)]
    if kind == "input_audio":
        return [_audio_part(part.get("input_audio"), where)]
    raise invalid_request(f"{where}: content part type {kind!r} cannot be sent to gemini", param=where)


def _parts(content: Any, where: str) -> list[Obj]:
    if isinstance(content, str):
        return _text_part(content, where)
    if content is None:
        return []
    if not isinstance(content, list):
        raise invalid_request(f"{where}.content must be a string or a list of parts", param=where)
    return [p for i, part in enumerate(content) for p in _user_part(part, f"{where}.content[{i}]")]


def _system_parts(content: Any, where: str) -> list[Obj]:
    parts = _parts(content, where)
    if any("text" not in part for part in parts):
        raise invalid_request(f"{where}: gemini system instructions can only carry text", param=where)
    return parts


def _assistant_parts(content: Any, where: str) -> list[Obj]:
    if not isinstance(content, list):
        return _parts(content, where)
    parts: list[Obj] = []
    for index, part in enumerate(content):
        at = f"{where}.content[{index}]"
        kind = part.get("type") if isinstance(part, dict) else None
        if kind == "refusal":
            parts += _text_part(part.get("refusal"), at)
        elif kind in ("output_text", "input_text", "text"):
            parts += _text_part(part.get("text"), at)
        else:
            raise invalid_request(f"{at}: assistant messages can only carry text or refusal parts", param=at)
    return parts


def _sign_first_calls(contents: list[Obj]) -> None:
    """Gemini 3 rejects a model turn whose first function call lacks a signature."""
    for content in contents:
        if content["role"] != "model":
            continue
        calls = [part for part in content["parts"] if "functionCall" in part]
        if calls and "thoughtSignature" not in calls[0]:
            calls[0]["thoughtSignature"] = _SKIP_SIGNATURE


# ---------------------------------------------------------------------------------------------------------
# Request: JSON Schema -> Gemini Schema
# ---------------------------------------------------------------------------------------------------------

_SCHEMA_TYPES: Final[Mapping[str, str]] = {
    "string": "STRING", "number": "NUMBER", "integer": "INTEGER", "boolean": "BOOLEAN",
    "array": "ARRAY", "object": "OBJECT", "null": "NULL",
}  # fmt: skip
_SCHEMA_COPIED: Final = (
    "title", "description", "minItems", "maxItems", "minProperties", "maxProperties", "minLength",
    "maxLength", "pattern", "example", "default", "minimum", "maximum", "required", "propertyOrdering",
)  # fmt: skip
_SCHEMA_REJECTED: Final = ("allOf", "not", "if", "then", "else", "prefixItems", "dependentSchemas")
# The only formats Gemini's Schema documents, per type.
_SCHEMA_FORMATS: Final[Mapping[str, frozenset[str]]] = {
    "STRING": frozenset({"enum", "date-time"}),
    "NUMBER": frozenset({"float", "double"}),
    "INTEGER": frozenset({"int32", "int64"}),
}


def json_schema_to_gemini(schema: Any, where: str) -> Obj:
    """Convert a JSON Schema to Gemini's OpenAPI subset (the rules are in the module docstring)."""
    if not isinstance(schema, dict):
        raise invalid_request(f"{where} must be a JSON Schema object", param=where)
    defs = schema.get("$defs") or schema.get("definitions") or {}
    return _SchemaConverter(defs if isinstance(defs, dict) else {}, where).convert(schema, where, ())


@dataclass(frozen=True, slots=True)
class _SchemaConverter:
    defs: Obj
    where: str

    def convert(self, node: Any, at: str, refs: tuple[str, ...]) -> Obj:
        if not isinstance(node, dict):
            raise invalid_request(f"{at}: a schema must be an object", param=self.where)
        if "$ref" in node:
            return self._inline(node, at, refs)
        for keyword in _SCHEMA_REJECTED:
            if keyword in node:
                raise invalid_request(
                    f"{at}: JSON Schema keyword {keyword!r} cannot be expressed in a gemini schema",
                    param=self.where,
                )
        out: Obj = {key: node[key] for key in _SCHEMA_COPIED if key in node}
        self._type(node, out, at)
        self._enum(node, out)
        self._children(node, out, at, refs)
        if "example" not in out and isinstance(node.get("examples"), list) and node["examples"]:
            out["example"] = node["examples"][0]
        fmt = node.get("format")
        if isinstance(fmt, str) and fmt in _SCHEMA_FORMATS.get(str(out.get("type")), ()):
            out["format"] = fmt
        return out

    def _inline(self, node: Obj, at: str, refs: tuple[str, ...]) -> Obj:
        ref = node["$ref"]
        prefix = next((p for p in ("#/$defs/", "#/definitions/") if str(ref).startswith(p)), None)
        name = str(ref)[len(prefix) :] if prefix else ""
        if not name or name not in self.defs:
            raise invalid_request(f"{at}: $ref {ref!r} is not a local definition", param=self.where)
        if name in refs:
            raise invalid_request(
                f"{at}: recursive $ref {ref!r} cannot be expressed for gemini", param=self.where
            )
        merged = {**self.defs[name], **{k: v for k, v in node.items() if k != "$ref"}}
        return self.convert(merged, at, (*refs, name))

    def _type(self, node: Obj, out: Obj, at: str) -> None:
        kind = node.get("type")
        kinds = kind if isinstance(kind, list) else [kind] if kind is not None else []
        real = [k for k in kinds if k != "null"]
        if any(k not in _SCHEMA_TYPES for k in real):
            raise invalid_request(f"{at}: unknown schema type {kind!r}", param=self.where)
        if len(real) == 1:
            out["type"] = _SCHEMA_TYPES[real[0]]
        elif len(real) > 1:
            out["anyOf"] = [{"type": _SCHEMA_TYPES[k]} for k in real]
        if "null" in kinds or node.get("nullable") is True:
            out["nullable"] = True

    def _enum(self, node: Obj, out: Obj) -> None:
        values = [node["const"]] if "const" in node else node.get("enum")
        if not isinstance(values, list):
            return
        if None in values:
            out["nullable"] = True
            values = [v for v in values if v is not None]
        # Gemini enums are strings only; other enums only narrow validation and are not sent.
        if values and all(isinstance(v, str) for v in values):
            out["enum"] = values
            out.setdefault("type", "STRING")

    def _children(self, node: Obj, out: Obj, at: str, refs: tuple[str, ...]) -> None:
        properties = node.get("properties")
        if isinstance(properties, dict):
            out["properties"] = {
                name: self.convert(sub, f"{at}.properties.{name}", refs) for name, sub in properties.items()
            }
        items = node.get("items")
        if isinstance(items, list):
            raise invalid_request(f"{at}: tuple-style items cannot be expressed for gemini", param=self.where)
        if isinstance(items, dict):
            out["items"] = self.convert(items, f"{at}.items", refs)
        variants = node.get("anyOf", node.get("oneOf"))
        if isinstance(variants, list):
            out["anyOf"] = [self.convert(v, f"{at}.anyOf[{i}]", refs) for i, v in enumerate(variants)]


# ---------------------------------------------------------------------------------------------------------
# Request: tools, output format, generation config
# ---------------------------------------------------------------------------------------------------------


def _declaration(name: Any, description: Any, parameters: Any, where: str) -> Obj:
    if not isinstance(name, str) or not name:
        raise invalid_request(f"{where}.name is required", param=where)
    declaration: Obj = {"name": name}
    if isinstance(description, str) and description:
        declaration["description"] = description
    if parameters is not None:
        schema = json_schema_to_gemini(parameters, f"{where}.parameters")
        if schema.get("type") != "OBJECT" or schema.get("properties"):
            declaration["parameters"] = schema
    return declaration


def _responses_tool(tool: Any, where: str) -> Obj:
    kind = tool.get("type") if isinstance(tool, dict) else None
    if kind != "function":
        raise invalid_request(
            f"{where}: tool type {kind!r} is not supported for gemini models; only function tools can be "
            f"sent",
            param=where,
        )
    return _declaration(tool.get("name"), tool.get("description"), tool.get("parameters"), where)


def _chat_tool(tool: Any, where: str) -> Obj:
    kind = tool.get("type") if isinstance(tool, dict) else None
    function = tool.get("function") if isinstance(tool, dict) else None
    if kind != "function" or not isinstance(function, dict):
        raise invalid_request(
            f"{where}: tool type {kind!r} is not supported for gemini models; only function tools can be "
            f"sent",
            param=where,
        )
    return _declaration(function.get("name"), function.get("description"), function.get("parameters"), where)


def _add_tools(body: Obj, request: Obj, convert: Callable[[Any, str], Obj]) -> None:
    tools = body.get("tools") or []
    if not isinstance(tools, list):
        raise invalid_request("tools must be a list", param="tools")
    if not tools:
        return  # tool_choice and parallel_tool_calls without tools constrain nothing
    if body.get("parallel_tool_calls") is False:
        raise invalid_request(
            "parallel_tool_calls: false cannot be expressed for gemini models (Gemini may always call "
            "several functions in one turn)",
            param="parallel_tool_calls",
        )
    declarations = [convert(tool, f"tools[{index}]") for index, tool in enumerate(tools)]
    request["tools"] = [{"functionDeclarations": declarations}]
    config = _function_calling_config(body.get("tool_choice"))
    if config is not None:
        request["toolConfig"] = {"functionCallingConfig": config}


def _function_calling_config(choice: Any) -> Obj | None:
    modes = {"auto": "AUTO", "none": "NONE", "required": "ANY"}
    if choice is None:
        return None
    if isinstance(choice, str) and choice in modes:
        return {"mode": modes[choice]}
    if isinstance(choice, dict) and choice.get("type") == "function":
        function = choice.get("function")
        name = choice.get("name") or (function.get("name") if isinstance(function, dict) else None)
        if isinstance(name, str):
            return {"mode": "ANY", "allowedFunctionNames": [name]}
    if (
        isinstance(choice, dict)
        and choice.get("type") == "allowed_tools"
        and choice.get("mode") == "required"
    ):
        names = [t.get("name") for t in choice.get("tools") or [] if isinstance(t, dict)]
        if names and all(isinstance(n, str) for n in names):
            return {"mode": "ANY", "allowedFunctionNames": names}
    kind = choice.get("type") if isinstance(choice, dict) else choice
    raise invalid_request(f"tool_choice {kind!r} cannot be expressed for gemini models", param="tool_choice")


def _output_format(fmt: Any, where: str) -> Obj:
    kind = fmt.get("type") if isinstance(fmt, dict) else None
    if kind == "text":
        return {}
    if kind == "json_object":
        return {"responseMimeType": "application/json"}
    if kind == "json_schema" and isinstance(fmt, dict):
        # Chat nests the schema under json_schema; Responses puts it on the format itself.
        nested = fmt.get("json_schema")
        holder: Obj = nested if isinstance(nested, dict) else fmt
        schema = json_schema_to_gemini(holder.get("schema"), f"{where}.schema")
        return {"responseMimeType": "application/json", "responseSchema": schema}
    raise invalid_request(f"{where} type {kind!r} is not supported for gemini models", param=where)


def _thinking(effort: Any, include_thoughts: bool, model: str) -> Obj | None:
    config: Obj = {}
    if effort is not None:
        if effort not in _THINKING_BUDGETS:
            raise invalid_request(f"reasoning effort {effort!r} is not supported", param="reasoning")
        if is_gemini3(model):
            config["thinkingLevel"] = _THINKING_LEVELS[effort]
        else:
            config["thinkingBudget"] = _THINKING_BUDGETS[effort]
    if include_thoughts and effort != "none":
        config["includeThoughts"] = True
    return config or None


def _sampling(body: Obj, config: Obj) -> None:
    for key, name in _SAMPLING.items():
        if body.get(key) is not None:
            config[name] = body[key]
    stop = body.get("stop")
    if stop is not None:
        config["stopSequences"] = [stop] if isinstance(stop, str) else stop
    for key in ("n", "best_of"):
        if body.get(key) not in (None, 1):
            raise invalid_request(f"{key} > 1 is not supported for gemini models", param=key)
    for key in ("logprobs", "echo", "logit_bias", "suffix"):
        # Off-values (false, 0, {}, "") ask for nothing; anything else asks for output Gemini won't give.
        if body.get(key) is not None and body[key] not in (False, {}, ""):
            raise invalid_request(f"{key} is not supported for gemini models", param=key)


def _finish_request(conv: _Conversation, config: Obj, model: str) -> Obj:
    if is_gemini3(model):
        _sign_first_calls(conv.contents)
    request: Obj = {"contents": conv.contents}
    if conv.system:
        request["systemInstruction"] = {"parts": conv.system}
    if config:
        request["generationConfig"] = config
    return request


# ---------------------------------------------------------------------------------------------------------
# Request: the three APIs
# ---------------------------------------------------------------------------------------------------------


def responses_to_gemini_request(body: dict[str, Any], model: str) -> dict[str, Any]:
    """Build the ``generateContent`` body for a Responses request.

    >>> responses_to_gemini_request({"input": "hi"}, "gemini-2.5-flash")
    {'contents': [{'role': 'user', 'parts': [{'text': 'hi'}]}]}
    """
    _check_fields(body, _RESPONSES_FIELDS)
    _reject_stateful(body)
    conv = _Conversation()
    instructions = body.get("instructions")
    if instructions is not None and not isinstance(instructions, str):
        raise invalid_request("instructions must be a string", param="instructions")
    conv.system += _text_part(instructions or "", "instructions")
    source = body.get("input")
    if isinstance(source, str):
        conv.add("user", _text_part(source, "input"))
    elif isinstance(source, list):
        for index, item in enumerate(source):
            _responses_item(conv, item, f"input[{index}]")
    else:
        raise invalid_request("input is required for responses", param="input")
    config = _responses_config(body, model)
    request = _finish_request(conv, config, model)
    _add_tools(body, request, _responses_tool)
    return request


def _responses_item(conv: _Conversation, item: Any, where: str) -> None:
    if not isinstance(item, dict):
        raise invalid_request(f"{where} must be an object", param=where)
    kind = item.get("type", "message" if "role" in item else None)
    if kind == "message":
        _message(conv, item.get("role"), item.get("content"), where)
    elif kind == "function_call":
        call_id, name = item.get("call_id"), item.get("name")
        if not isinstance(call_id, str) or not isinstance(name, str):
            raise invalid_request(f"{where}: function_call needs call_id and name", param=where)
        conv.add_call(call_id, name, item.get("arguments"), where)
    elif kind == "function_call_output":
        conv.add_result(item.get("call_id"), item.get("output"), where)
    elif kind == "reasoning":
        return  # Gemini reads earlier thoughts only through signatures, which travel in call ids
    else:
        raise unsendable_item(kind, where, "gemini")


def _message(conv: _Conversation, role: Any, content: Any, where: str) -> None:
    if role in ("system", "developer"):
        conv.system += _system_parts(content, where)
    elif role == "user":
        conv.add("user", _parts(content, where))
    elif role == "assistant":
        conv.add("model", _assistant_parts(content, where))
    else:
        raise invalid_request(f"{where}.role must be one of user, system, developer, assistant", param=where)


def _responses_config(body: Obj, model: str) -> Obj:
    config: Obj = {}
    _sampling(body, config)
    if body.get("max_output_tokens") is not None:
        config["maxOutputTokens"] = body["max_output_tokens"]
    text = body.get("text")
    if isinstance(text, dict) and text.get("format") is not None:
        config.update(_output_format(text["format"], "text.format"))
    reasoning = body.get("reasoning")
    if isinstance(reasoning, dict):
        asked = reasoning.get("effort") is not None or reasoning.get("summary") is not None
        thinking = _thinking(reasoning.get("effort"), asked, model)
        if thinking:
            config["thinkingConfig"] = thinking
    return config


def chat_to_gemini_request(body: dict[str, Any], model: str) -> dict[str, Any]:
    """Build the ``generateContent`` body for a chat completions request.

    >>> chat_to_gemini_request({"messages": [{"role": "user", "content": "hi"}]}, "gemini-2.5-flash")
    {'contents': [{'role': 'user', 'parts': [{'text': 'hi'}]}]}
    """
    _check_fields(body, _CHAT_FIELDS)
    conv = _Conversation()
    for message, where in chat_messages(body):
        _chat_message(conv, message, where)
    request = _finish_request(conv, _chat_config(body, model), model)
    _add_tools(body, request, _chat_tool)
    return request


def _chat_message(conv: _Conversation, message: Any, where: str) -> None:
    if not isinstance(message, dict):
        raise invalid_request(f"{where} must be an object", param=where)
    role = message.get("role")
    if role == "tool":
        conv.add_result(message.get("tool_call_id"), message.get("content"), where)
        return
    if role != "assistant":
        _message(conv, role, message.get("content"), where)
        return
    parts = _assistant_parts(message.get("content"), where)
    parts += _text_part(message.get("refusal") or "", where)
    conv.add("model", parts)
    for index, call in enumerate(message.get("tool_calls") or []):
        at = f"{where}.tool_calls[{index}]"
        function = call.get("function") if isinstance(call, dict) else None
        call_id = call.get("id") if isinstance(call, dict) else None
        if not isinstance(function, dict) or not isinstance(call_id, str) or not function.get("name"):
            raise invalid_request(f"{at}: tool calls need id and function.name", param=at)
        conv.add_call(call_id, str(function["name"]), function.get("arguments"), at)


def _chat_config(body: Obj, model: str) -> Obj:
    config: Obj = {}
    _sampling(body, config)
    limit = body.get("max_completion_tokens", body.get("max_tokens"))
    if limit is not None:
        config["maxOutputTokens"] = limit
    if body.get("response_format") is not None:
        config.update(_output_format(body["response_format"], "response_format"))
    modalities = body.get("modalities")
    if modalities is not None and modalities != ["text"]:
        raise invalid_request("only text output is supported for gemini models", param="modalities")
    effort = body.get("reasoning_effort")
    thinking = _thinking(effort, effort is not None, model)
    if thinking:
        config["thinkingConfig"] = thinking
    return config


def text_to_gemini_request(body: dict[str, Any], model: str) -> dict[str, Any]:
    """Build the ``generateContent`` body for a text completion: the prompt is one user message."""
    _check_fields(body, _TEXT_FIELDS)
    why = "prompt must be a single string for gemini models (several prompts would be several completions)"
    prompt = one_prompt(body, why)
    conv = _Conversation()
    conv.add("user", _text_part(prompt, "prompt"))
    config: Obj = {}
    _sampling(body, config)
    if body.get("max_tokens") is not None:
        config["maxOutputTokens"] = body["max_tokens"]
    return _finish_request(conv, config, model)


# ---------------------------------------------------------------------------------------------------------
# Count tokens
# ---------------------------------------------------------------------------------------------------------


def count_tokens_request(body: dict[str, Any], model: str) -> dict[str, Any] | None:
    """The ``countTokens`` body for a Responses-shaped (or ``messages``) body; None when nothing to count."""
    fields = dict(body)
    if fields.get("input") is None and isinstance(fields.get("messages"), list):
        translated = chat_to_gemini_request(fields, model)
    else:
        if fields.get("input") in ("", []):
            fields["input"] = []
        translated = responses_to_gemini_request(fields, model)
    if not translated["contents"] and "systemInstruction" not in translated:
        return None
    inner = {"model": f"models/{model}"}
    inner.update(
        {
            k: translated[k]
            for k in ("contents", "systemInstruction", "tools", "toolConfig")
            if k in translated
        }
    )
    return {"generateContentRequest": inner}


def count_tokens_response(upstream: dict[str, Any]) -> dict[str, Any]:
    """``{"input_tokens", "input_tokens_details"}`` from a ``countTokens`` answer."""
    details: Obj = {"cached_read_tokens": _int(upstream, "cachedContentTokenCount")}
    for entry in upstream.get("promptTokensDetails") or []:
        if isinstance(entry, dict) and isinstance(entry.get("modality"), str):
            details[f"{entry['modality'].lower()}_tokens"] = _int(entry, "tokenCount")
    return {"input_tokens": _int(upstream, "totalTokens"), "input_tokens_details": details}


# ---------------------------------------------------------------------------------------------------------
# Response: usage, finish reasons, parts
# ---------------------------------------------------------------------------------------------------------


def _int(obj: Mapping[str, Any], key: str) -> int:
    value = obj.get(key)
    return value if isinstance(value, int) and not isinstance(value, bool) else 0


@dataclass(frozen=True, slots=True)
class _Tokens:
    input: int
    cached: int
    output: int
    reasoning: int
    total: int


def _tokens(meta: Any) -> _Tokens | None:
    if not isinstance(meta, dict):
        return None
    prompt = _int(meta, "promptTokenCount") + _int(meta, "toolUsePromptTokenCount")
    reasoning = _int(meta, "thoughtsTokenCount")
    output = _int(meta, "candidatesTokenCount") + reasoning
    total = _int(meta, "totalTokenCount") or prompt + output
    return _Tokens(prompt, _int(meta, "cachedContentTokenCount"), output, reasoning, total)


def gemini_usage_to_chat(meta: Any) -> dict[str, Any] | None:
    """Chat ``usage`` from Gemini's ``usageMetadata``."""
    t = _tokens(meta)
    if t is None:
        return None
    return {
        "prompt_tokens": t.input,
        "completion_tokens": t.output,
        "total_tokens": t.total,
        "prompt_tokens_details": {"cached_tokens": t.cached, "cached_read_tokens": t.cached},
        "completion_tokens_details": {"reasoning_tokens": t.reasoning},
    }


def gemini_usage_to_responses(meta: Any) -> dict[str, Any] | None:
    """Responses ``usage`` from Gemini's ``usageMetadata``."""
    t = _tokens(meta)
    if t is None:
        return None
    return {
        "input_tokens": t.input,
        # cache_write_tokens: OpenAI's field (required by its SDK); Gemini caches are written separately.
        "input_tokens_details": {
            "cached_tokens": t.cached,
            "cached_read_tokens": t.cached,
            "cache_write_tokens": 0,
        },
        "output_tokens": t.output,
        "output_tokens_details": {"reasoning_tokens": t.reasoning},
        "total_tokens": t.total,
    }


def _finish_reason(native: str | None, called: bool) -> str:
    if native == "MAX_TOKENS":
        return "length"
    if native in _CONTENT_FILTER:
        return "content_filter"
    return "tool_calls" if called else "stop"


def _first_candidate(response: Obj) -> Obj:
    candidates = response.get("candidates")
    first = candidates[0] if isinstance(candidates, list) and candidates else None
    return first if isinstance(first, dict) else {}


def _native_finish(response: Obj, candidate: Obj) -> str | None:
    reason = candidate.get("finishReason")
    if isinstance(reason, str):
        return reason
    feedback = response.get("promptFeedback")
    # A blocked prompt has no candidates, only the reason it was blocked.
    if isinstance(feedback, dict) and feedback.get("blockReason"):
        return "SAFETY"
    return None


@dataclass(slots=True)
class _Delta:
    """What one batch of Gemini parts says, in chat terms."""

    text: str = ""
    reasoning: str = ""
    calls: list[Obj] = field(default_factory=list)


def _read_parts(candidate: Obj) -> list[tuple[str, Any]]:
    """The parts of a candidate as (kind, value): text, reasoning or a chat tool call."""
    content = candidate.get("content")
    parts = content.get("parts") if isinstance(content, dict) else None
    out: list[tuple[str, Any]] = []
    for part in parts if isinstance(parts, list) else []:
        if not isinstance(part, dict):
            continue
        if isinstance(part.get("functionCall"), dict):
            out.append(("call", part))
        elif isinstance(part.get("text"), str):
            if part["text"]:
                out.append(("reasoning" if part.get("thought") else "text", part["text"]))
        elif not set(part) <= {"thoughtSignature", "thought"}:
            kinds = ", ".join(sorted(k for k in part if k not in ("thoughtSignature", "thought")))
            raise invalid_request(f"gemini answered with a {kinds} part, which cannot be represented here")
    return out


def _tool_call(part: Obj) -> Obj:
    call = part["functionCall"]
    call_id = _new_id("call")
    signature = part.get("thoughtSignature")
    if isinstance(signature, str) and signature:
        call_id += _SIGNATURE_SEPARATOR + _signature_in_id(signature)
    args = call.get("args")
    return {
        "id": call_id,
        "type": "function",
        "function": {"name": str(call.get("name") or ""), "arguments": orjson.dumps(args or {}).decode()},
    }


def _collect(parts: list[tuple[str, Any]]) -> _Delta:
    delta = _Delta()
    for kind, value in parts:
        if kind == "text":
            delta.text += value
        elif kind == "reasoning":
            delta.reasoning += value
        else:
            delta.calls.append(_tool_call(value))
    return delta


# ---------------------------------------------------------------------------------------------------------
# Response: whole answers
# ---------------------------------------------------------------------------------------------------------


def gemini_to_chat_response(response: dict[str, Any], model: str) -> dict[str, Any]:
    """Turn a ``generateContent`` answer into a chat completion."""
    candidate = _first_candidate(response)
    delta = _collect(_read_parts(candidate))
    message: Obj = {"role": "assistant", "content": delta.text or (None if delta.calls else "")}
    message["refusal"] = None
    if delta.reasoning:
        message["reasoning"] = delta.reasoning
    if delta.calls:
        message["tool_calls"] = delta.calls
    finish = _finish_reason(_native_finish(response, candidate), bool(delta.calls))
    body: Obj = {
        "id": _response_id(response, "chatcmpl"),
        "object": "chat.completion",
        "created": int(time.time()),
        "model": model,
        "choices": [{"index": 0, "message": message, "finish_reason": finish, "logprobs": None}],
    }
    usage = gemini_usage_to_chat(response.get("usageMetadata"))
    if usage is not None:
        body["usage"] = usage
    return body


def _response_id(response: Obj, prefix: str) -> str:
    upstream = response.get("responseId")
    return f"{prefix}-{upstream}" if isinstance(upstream, str) and upstream else _new_id(prefix)


def gemini_to_responses_response(
    response: dict[str, Any], *, request: dict[str, Any], model: str
) -> dict[str, Any]:
    """Turn a ``generateContent`` answer into the Responses object OpenAI would return for ``request``."""
    body = chat_to_responses_response(gemini_to_chat_response(response, model), request=request, model=model)
    body["usage"] = gemini_usage_to_responses(response.get("usageMetadata"))
    return body


def gemini_to_text_response(response: dict[str, Any], model: str) -> dict[str, Any]:
    """Turn a ``generateContent`` answer into a text completion."""
    candidate = _first_candidate(response)
    delta = _collect(_read_parts(candidate))
    finish = _finish_reason(_native_finish(response, candidate), False)
    body: Obj = {
        "id": _response_id(response, "cmpl"),
        "object": "text_completion",
        "created": int(time.time()),
        "model": model,
        "choices": [{"index": 0, "text": delta.text, "finish_reason": finish, "logprobs": None}],
    }
    usage = gemini_usage_to_chat(response.get("usageMetadata"))
    if usage is not None:
        body["usage"] = usage
    return body


# ---------------------------------------------------------------------------------------------------------
# Response: streams
# ---------------------------------------------------------------------------------------------------------


# One step of a JSONPath (RFC 9535) as Gemini writes them: .name, [index], ['name'] or ["name"].
_PATH_STEP: Final = re.compile(r"""\.([^.\[\]]+)|\[(\d+)\]|\['([^']*)'\]|\["([^"]*)"\]""")
_PARTIAL_VALUES: Final = ("stringValue", "numberValue", "boolValue")


def _json_path(path: Any) -> list[str | int]:
    steps: list[str | int] = []
    text = path if isinstance(path, str) else ""
    position = 1 if text.startswith("$") else len(text) + 1
    while position < len(text):
        match = _PATH_STEP.match(text, position)
        if match is None:
            break
        name, index, single, double = match.groups()
        steps.append(int(index) if index is not None else name or single or double or "")
        position = match.end()
    if not steps or position != len(text):
        raise bad_response(f"gemini streamed a function argument at an unreadable path {path!r}")
    return steps


@dataclass(slots=True)
class _PartialCall:
    """A function call whose arguments Gemini streams in parts (``partialArgs``, one value per JSONPath;
    a string continued by ``willContinue`` is concatenated), assembled into one object."""

    index: int
    args: Obj = field(default_factory=dict)
    continued: set[str] = field(default_factory=set)  # paths whose string value is still arriving

    def apply(self, partials: Any) -> None:
        for partial in partials if isinstance(partials, list) else []:
            if isinstance(partial, dict):
                self._apply(partial)

    def _apply(self, partial: Obj) -> None:
        path = str(partial.get("jsonPath"))
        given = [partial[k] for k in _PARTIAL_VALUES if k in partial] or [None] * ("nullValue" in partial)
        if given:
            holder, key = self._holder(_json_path(path))
            value = given[0]
            if path in self.continued and isinstance(value, str) and isinstance(_get(holder, key), str):
                value = _get(holder, key) + value
            _set(holder, key, value)
        if partial.get("willContinue") is True:
            self.continued.add(path)
        else:
            self.continued.discard(path)

    def _holder(self, steps: list[str | int]) -> tuple[Any, str | int]:
        node: Any = self.args
        for step, following in zip(steps, steps[1:], strict=False):
            child = _get(node, step)
            if child is None:
                child = [] if isinstance(following, int) else {}
                _set(node, step, child)
            node = child
        return node, steps[-1]


def _get(node: Any, key: str | int) -> Any:
    if isinstance(node, dict) and isinstance(key, str):
        return node.get(key)
    if isinstance(node, list) and isinstance(key, int):
        return node[key] if key < len(node) else None
    raise bad_response("gemini streamed function arguments that do not fit together")


def _set(node: Any, key: str | int, value: Any) -> None:
    _get(node, key)  # the same shape check
    if isinstance(node, list) and isinstance(key, int):
        node.extend([None] * (key + 1 - len(node)))
    node[key] = value


class GeminiToChatStream:
    """Turns ``streamGenerateContent`` chunks into chat.completion.chunk (or text_completion) dicts.

    Each Gemini part becomes one chunk; a function call that arrives whole is one complete tool call
    delta with its own index. A call whose arguments stream in parts (``partialArgs``) is announced (id
    and name) when it starts and gets its assembled arguments in one more delta when it ends: at an empty
    ``functionCall``, at a part that says no more follows, or when anything else starts. The finish
    reason goes out when Gemini sends it, and usage (which Gemini repeats, growing, on every chunk) once,
    on a final choice-less chunk, as OpenAI's ``include_usage``.

    >>> stream = GeminiToChatStream(model="gemini-2.5-flash")
    >>> candidate = {"content": {"parts": [{"text": "Hi"}]}, "finishReason": "STOP"}
    >>> chunks = stream.feed({"candidates": [candidate]})
    >>> [c["choices"][0]["finish_reason"] for c in chunks]
    [None, 'stop']
    """

    def __init__(self, *, model: str, text_completion: bool = False) -> None:
        self._model = model
        self._text = text_completion
        self._id = _new_id("cmpl" if text_completion else "chatcmpl")
        self._created = int(time.time())
        self._started = False
        self._calls = 0
        self._partial: _PartialCall | None = None
        self._finish: str | None = None
        self._usage: Any = None

    @property
    def usage_metadata(self) -> Any:
        """The last ``usageMetadata`` seen (Gemini's counts so far)."""
        return self._usage

    def start(self) -> list[dict[str, Any]]:
        return []

    def feed(self, chunk: dict[str, Any]) -> list[dict[str, Any]]:
        if chunk.get("usageMetadata") is not None:
            self._usage = chunk["usageMetadata"]
        if self._finish is not None:
            return []
        candidate = _first_candidate(chunk)
        # Thoughts are never requested for text completions, so only chat chunks carry them.
        parts = [(k, v) for k, v in _read_parts(candidate) if not (self._text and k == "reasoning")]
        out: list[Obj] = []
        for kind, value in parts:
            out += (
                self._call_chunks(value)
                if kind == "call"
                else [*self._end_call(), self._part_chunk(kind, value)]
            )
        native = _native_finish(chunk, candidate)
        if native is not None:
            out += self._end_call()
            self._finish = _finish_reason(native, self._calls > 0)
            out.append(self._chunk({}, self._finish))
        return out

    def finish(self) -> list[dict[str, Any]]:
        out = self._end_call()
        if self._finish is None:
            # The stream ended cleanly without a finish reason: close the choice so clients see an end.
            self._finish = _finish_reason(None, self._calls > 0)
            out.append(self._chunk({}, self._finish))
        usage = gemini_usage_to_chat(self._usage)
        if usage is not None:
            out.append({**self._base(), "choices": [], "usage": usage})
        return out

    def _part_chunk(self, kind: str, value: Any) -> Obj:
        if kind == "text":
            return self._chunk({"content": value}, None)
        return self._chunk({"reasoning": value}, None)

    def _call_chunks(self, part: Obj) -> list[Obj]:
        call = part["functionCall"]
        partials, more = call.get("partialArgs"), call.get("willContinue") is True
        if call.get("name") and partials is None and not more:
            return [*self._end_call(), self._tool_chunk(_tool_call(part))]  # the whole call at once
        out = self._begin_call(part) if call.get("name") else []
        if self._partial is None:
            return out  # an end marker with nothing to end
        self._partial.apply(partials)
        if not more and not self._partial.continued:
            out += self._end_call()
        return out

    def _begin_call(self, part: Obj) -> list[Obj]:
        """Announce a call whose arguments follow in parts; they are sent when it ends."""
        out = self._end_call()
        tool = _tool_call(part)
        tool["function"]["arguments"] = ""
        self._partial = _PartialCall(self._calls)
        return [*out, self._tool_chunk(tool)]

    def _tool_chunk(self, tool: Obj) -> Obj:
        call = {"index": self._calls, **tool}
        self._calls += 1
        return self._chunk({"tool_calls": [call]}, None)

    def _end_call(self) -> list[Obj]:
        """The assembled arguments of the call streaming in parts, if one is."""
        partial, self._partial = self._partial, None
        if partial is None:
            return []
        arguments = {"index": partial.index, "function": {"arguments": orjson.dumps(partial.args).decode()}}
        return [self._chunk({"tool_calls": [arguments]}, None)]

    def _base(self) -> Obj:
        kind = "text_completion" if self._text else "chat.completion.chunk"
        return {"id": self._id, "object": kind, "created": self._created, "model": self._model}

    def _chunk(self, delta: Obj, finish: str | None) -> Obj:
        if self._text:
            choice: Obj = {
                "index": 0,
                "text": delta.get("content", ""),
                "finish_reason": finish,
                "logprobs": None,
            }
        else:
            if not self._started:
                delta = {"role": "assistant", **delta}
            choice = {"index": 0, "delta": delta, "finish_reason": finish, "logprobs": None}
        self._started = True
        return {**self._base(), "choices": [choice]}


class GeminiToResponsesStream:
    """Turns ``streamGenerateContent`` chunks into OpenAI's Responses event sequence.

    The chunks go through :class:`GeminiToChatStream` and the Responses <-> chat event machine, so the
    events are exactly those the chat translation emits; the final event's usage is Gemini's own, with
    its cached and thought counts.
    """

    def __init__(self, *, request: dict[str, Any], model: str) -> None:
        self._chat = GeminiToChatStream(model=model)
        self._events = ChatToResponsesStream(request=request, model=model)

    def start(self) -> list[dict[str, Any]]:
        return self._events.start()

    def feed(self, chunk: dict[str, Any]) -> list[dict[str, Any]]:
        return [event for c in self._chat.feed(chunk) for event in self._events.feed(c)]

    def finish(self) -> list[dict[str, Any]]:
        events = [event for c in self._chat.finish() for event in self._events.feed(c)]
        events += self._events.finish()
        usage = gemini_usage_to_responses(self._chat.usage_metadata)
        for event in events:
            if event["type"] in _TERMINAL:
                event["response"]["usage"] = usage
        return events
