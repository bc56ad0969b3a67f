"""The Gemini dialect's translation (``/genai``): Gemini ``generateContent`` in and out, any provider behind.

A Gemini request for a model that Gemini does not serve (``openai/gpt-4o``, ``anthropic/claude-...``)
becomes an OpenAI Responses request, which every provider serves; the Responses answer (object or event
stream) becomes the ``GenerateContentResponse`` (or the chunks of ``streamGenerateContent?alt=sse``) that
Google's SDKs read. The inverse of :mod:`.gemini`, which serves OpenAI-shaped requests from Gemini.

Mapping decisions:

- ``systemInstruction`` → ``instructions`` (its text parts joined by newlines); ``contents`` turns with
  role ``user`` (or none) → user messages, ``model`` → assistant messages. Text parts of a turn form one
  message; ``inlineData`` / ``fileData`` become ``input_image`` (image types) or ``input_file`` (PDF)
  parts. Thought parts in the history are skipped: only Gemini reads its thoughts back.
- ``functionCall`` → a ``function_call`` item; its call id is the part's ``id`` when the client sent one
  (answers from this gateway carry it), else ``call_<name>_<n>``. A ``functionResponse`` answers the
  call with the same ``id``, or the oldest unanswered call of that name; its ``response`` is sent as the
  output's JSON text (a ``{"output": "<text>"}`` response as that text, the inverse of :mod:`.gemini`).
- Tools: ``functionDeclarations`` → function tools (``parameters`` in Gemini's OpenAPI subset are turned
  back into JSON Schema: lower-case types, ``nullable`` as a ``null`` type; ``parametersJsonSchema``
  passes as is), never strict. ``googleSearch`` → the Responses ``web_search`` tool, which each provider
  maps to its own search (or refuses with a 400 naming it). ``toolConfig.functionCallingConfig``: AUTO →
  auto, NONE → none, ANY → required (with one allowed function: that function).
- ``generationConfig``: ``maxOutputTokens`` → ``max_output_tokens``; ``temperature``, ``topP``;
  ``responseMimeType: application/json`` with ``responseJsonSchema`` / ``responseSchema`` → a
  ``json_schema`` text format (without a schema: ``json_object``); ``thinkingConfig`` → ``reasoning``
  (``thinkingLevel`` as the effort, a ``thinkingBudget`` as low up to 2048, medium up to 8192, else high;
  budget 0 turns reasoning off) with ``summary: auto`` when ``includeThoughts`` is set.
- Answers: reasoning summaries → ``thought`` text parts, message text → text parts, function calls →
  ``functionCall`` parts with the call id as ``id`` (Gemini's own field). ``finishReason``: completed →
  STOP, incomplete for ``max_output_tokens`` → MAX_TOKENS, for ``content_filter`` → SAFETY. Usage →
  ``usageMetadata``: ``promptTokenCount`` = input tokens, ``cachedContentTokenCount`` = cached reads,
  ``thoughtsTokenCount`` = reasoning tokens, ``candidatesTokenCount`` = the other output tokens.
- A 400 names what Responses cannot express: ``topK``, ``stopSequences``, ``candidateCount`` > 1,
  penalties, ``seed``, ``cachedContent``, non-text response modalities, code execution and other Gemini
  tools, media other than images and PDF. ``safetySettings`` and ``labels`` are dropped: they tune
  Google's own service.

Pure: no I/O.
"""

from __future__ import annotations

import uuid
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import orjson

from bifrost_asgi.errors import bad_response, invalid_request, upstream_failed

__all__ = [
    "ResponsesToGeminiStream",
    "gemini_to_responses_request",
    "gemini_count_to_responses_request",
    "responses_to_gemini_response",
    "responses_usage_to_gemini",
]

Obj = dict[str, Any]

# generationConfig fields Responses cannot express, and why.
_REJECTED_CONFIG: dict[str, str] = {
    "topK": "the Responses API has no top_k sampling",
    "stopSequences": "the Responses API has no stop sequences",
    "presencePenalty": "the Responses API has no presence penalty",
    "frequencyPenalty": "the Responses API has no frequency penalty",
    "seed": "the Responses API has no seeded sampling",
    "responseLogprobs": "log probabilities are not translated",
    "logprobs": "log probabilities are not translated",
    "speechConfig": "audio output is not translated",
    "mediaResolution": "a Gemini-only media setting",
}
_REJECTED_BODY: dict[str, str] = {
    "cachedContent": "cached contents are stored at Google",
}
_DROPPED_BODY = frozenset({"safetySettings", "labels", "model", "fallbacks"})
_HANDLED_BODY = frozenset({"contents", "systemInstruction", "tools", "toolConfig", "generationConfig"})
_BUDGET_EFFORTS = ((2048, "low"), (8192, "medium"))
_LEVELS = {"minimal": "minimal", "low": "low", "medium": "medium", "high": "high"}
_MEDIA_IMAGE = "image/"
_MEDIA_PDF = "application/pdf"


def _obj(value: Any) -> Obj:
    return value if isinstance(value, dict) else {}


def _list(value: Any) -> list[Any]:
    return value if isinstance(value, list) else []


def _int(value: Any) -> int:
    return value if isinstance(value, int) and not isinstance(value, bool) else 0


# ---------------------------------------------------------------------------------------------------------
# Request: Gemini -> Responses
# ---------------------------------------------------------------------------------------------------------


def gemini_to_responses_request(body: dict[str, Any], model: str, *, stream: bool) -> dict[str, Any]:
    """Build the Responses body for a parsed ``generateContent`` request for ``model``.

    >>> body = {"contents": [{"role": "user", "parts": [{"text": "hi"}]}]}
    >>> gemini_to_responses_request(body, "openai/gpt-4o", stream=False)["input"]
    [{'role': 'user', 'content': 'hi'}]
    """
    for key, why in _REJECTED_BODY.items():
        if body.get(key) is not None:
            raise invalid_request(f"{key} cannot be sent to this provider: {why}", param=key)
    unknown = sorted(k for k in body if k not in _HANDLED_BODY | _DROPPED_BODY | set(_REJECTED_BODY))
    if unknown:
        raise invalid_request(f"{unknown[0]}: unknown generateContent field", param=unknown[0])
    req: Obj = {"model": model, "input": _Conversation().convert(body.get("contents"))}
    instructions = _system_text(body.get("systemInstruction"))
    if instructions:
        req["instructions"] = instructions
    _add_tools(body, req)
    _add_config(_obj(body.get("generationConfig")), req)
    if stream:
        req["stream"] = True
    return req


def gemini_count_to_responses_request(body: dict[str, Any], model: str) -> dict[str, Any]:
    """The Responses count body for a ``countTokens`` request (``contents``, or a whole
    ``generateContentRequest``)."""
    inner = body.get("generateContentRequest")
    source = {k: v for k, v in inner.items() if k != "model"} if isinstance(inner, dict) else body
    if isinstance(inner, dict) or "contents" in body:
        return gemini_to_responses_request(source, model, stream=False)
    raise invalid_request("contents is required", param="contents")


def _system_text(system: Any) -> str:
    if system is None:
        return ""
    if isinstance(system, str):
        return system
    parts = _obj(system).get("parts")
    if not isinstance(parts, list):
        raise invalid_request("systemInstruction must be a content with parts", param="systemInstruction")
    texts = [p.get("text") for p in parts if isinstance(p, dict)]
    if any(not isinstance(t, str) for t in texts):
        raise invalid_request("systemInstruction can only carry text parts", param="systemInstruction")
    return "\n".join(t for t in texts if isinstance(t, str))


@dataclass(slots=True)
class _Conversation:
    """Responses items for Gemini contents, with function calls matched to their responses."""

    items: list[Obj] = field(default_factory=list)
    pending: dict[str, deque[str]] = field(default_factory=dict)  # function name -> unanswered call ids
    minted: int = 0

    def convert(self, contents: Any) -> list[Obj]:
        if not isinstance(contents, list) or not contents:
            raise invalid_request("contents is required", param="contents")
        for index, content in enumerate(contents):
            where = f"contents[{index}]"
            if not isinstance(content, dict) or not isinstance(content.get("parts"), list):
                raise invalid_request(f"{where} must be a content with parts", param=where)
            role = content.get("role") or "user"
            if role not in ("user", "model"):
                raise invalid_request(f"{where}.role must be user or model", param=where)
            self._turn(role, content["parts"], where)
        return self.items

    def _turn(self, role: str, parts: list[Any], where: str) -> None:
        message: list[Obj] = []
        for index, part in enumerate(parts):
            at = f"{where}.parts[{index}]"
            if not isinstance(part, dict):
                raise invalid_request(f"{at} must be an object", param=at)
            if "functionCall" in part or "functionResponse" in part:
                self._flush(role, message)
                message = []
                self._function_part(role, part, at)
            elif part.get("thought") is True:
                continue  # see the module docstring: only Gemini reads its thoughts back
            else:
                message += _content_part(role, part, at)
        self._flush(role, message)

    def _flush(self, role: str, parts: list[Obj]) -> None:
        if not parts:
            return
        if role == "model":
            self.items.append({"role": "assistant", "content": "".join(p["text"] for p in parts)})
        elif len(parts) == 1 and parts[0]["type"] == "input_text":
            self.items.append({"role": "user", "content": parts[0]["text"]})
        else:
            self.items.append({"role": "user", "content": parts})

    def _function_part(self, role: str, part: Obj, where: str) -> None:
        if "functionCall" in part and role == "model":
            call = _obj(part["functionCall"])
            name = _name(call, where)
            given = call.get("id")
            call_id = given if isinstance(given, str) and given else self._mint(name)
            self.pending.setdefault(name, deque()).append(call_id)
            arguments = orjson.dumps(call.get("args") or {}).decode()
            self.items.append(
                {"type": "function_call", "call_id": call_id, "name": name, "arguments": arguments}
            )
        elif "functionResponse" in part and role == "user":
            response = _obj(part["functionResponse"])
            call_id = self._answered(_name(response, where), response.get("id"), where)
            output = {"type": "function_call_output", "call_id": call_id, "output": _output(response)}
            self.items.append(output)
        else:
            raise invalid_request(f"{where}: a {role} turn cannot carry this function part", param=where)

    def _mint(self, name: str) -> str:
        self.minted += 1
        return f"call_{name}_{self.minted}"

    def _answered(self, name: str, call_id: Any, where: str) -> str:
        waiting = self.pending.get(name) or deque()
        if isinstance(call_id, str) and call_id:
            if call_id in waiting:
                waiting.remove(call_id)
            return call_id
        if not waiting:
            raise invalid_request(
                f"{where}: functionResponse {name!r} answers no earlier functionCall of that name",
                param=where,
            )
        return waiting.popleft()


def _name(call: Obj, where: str) -> str:
    name = call.get("name")
    if not isinstance(name, str) or not name:
        raise invalid_request(f"{where}: a function part needs a name", param=where)
    return name


def _output(response: Obj) -> str:
    value = response.get("response")
    if isinstance(value, dict) and set(value) == {"output"} and isinstance(value["output"], str):
        text: str = value["output"]
        return text
    return orjson.dumps(value if value is not None else {}).decode()


def _content_part(role: str, part: Obj, where: str) -> list[Obj]:
    if isinstance(part.get("text"), str):
        text = part["text"]
        return [{"type": "output_text" if role == "model" else "input_text", "text": text}] if text else []
    if role == "model":
        kinds = ", ".join(sorted(k for k in part if k not in ("thoughtSignature",)))
        raise invalid_request(
            f"{where}: a model turn part ({kinds}) cannot be sent to this provider", param=where
        )
    if isinstance(part.get("inlineData"), dict):
        data = part["inlineData"]
        return [
            _media(
                str(data.get("mimeType") or ""),
                f"data:{data.get('mimeType')};base64,{data.get('data')}",
                where,
            )
        ]
    if isinstance(part.get("fileData"), dict):
        data = part["fileData"]
        return [_media(str(data.get("mimeType") or ""), str(data.get("fileUri") or ""), where, url=True)]
    kinds = ", ".join(sorted(part))
    raise invalid_request(f"{where}: part ({kinds}) cannot be sent to this provider", param=where)


def _media(mime: str, source: str, where: str, *, url: bool = False) -> Obj:
    if mime.startswith(_MEDIA_IMAGE) or (url and not mime):
        return {"type": "input_image", "image_url": source, "detail": "auto"}
    if mime == _MEDIA_PDF:
        return {"type": "input_file", "file_url": source} if url else {
            "type": "input_file", "filename": "document.pdf", "file_data": source}  # fmt: skip
    raise invalid_request(
        f"{where}: media type {mime!r} cannot be sent to this provider (images and PDF can)", param=where
    )


# -- tools -------------------------------------------------------------------------------------------------


def _add_tools(body: Obj, req: Obj) -> None:
    tools = body.get("tools") or []
    if not isinstance(tools, list):
        raise invalid_request("tools must be a list", param="tools")
    out: list[Obj] = []
    for index, tool in enumerate(tools):
        out += _tool(tool, f"tools[{index}]")
    if out:
        req["tools"] = out
        _add_tool_choice(_obj(_obj(body.get("toolConfig")).get("functionCallingConfig")), req)


def _tool(tool: Any, where: str) -> list[Obj]:
    if not isinstance(tool, dict):
        raise invalid_request(f"{where} must be an object", param=where)
    out: list[Obj] = []
    for key, value in tool.items():
        if key == "functionDeclarations":
            out += [_function(d, f"{where}.functionDeclarations[{i}]") for i, d in enumerate(_list(value))]
        elif key in ("googleSearch", "googleSearchRetrieval"):
            out.append({"type": "web_search"})
        else:
            raise invalid_request(
                f"{where}: Gemini tool {key!r} cannot be sent to this provider (function declarations and "
                f"googleSearch can)",
                param=where,
            )
    return out


def _function(declaration: Any, where: str) -> Obj:
    decl = _obj(declaration)
    name = _name(decl, where)
    schema = decl.get("parametersJsonSchema")
    if schema is None:
        schema = gemini_schema_to_json(decl.get("parameters")) if decl.get("parameters") else None
    out: Obj = {
        "type": "function",
        "name": name,
        "parameters": schema or {"type": "object", "properties": {}},
    }
    if isinstance(decl.get("description"), str):
        out["description"] = decl["description"]
    out["strict"] = False  # Gemini has no strict mode; Responses would otherwise default to it
    return out


def gemini_schema_to_json(schema: Any) -> Any:
    """Gemini's OpenAPI 3.0 subset back to JSON Schema: lower-case types, ``nullable`` as a null type."""
    if isinstance(schema, list):
        return [gemini_schema_to_json(item) for item in schema]
    if not isinstance(schema, dict):
        return schema
    out: Obj = {}
    for key, value in schema.items():
        if key == "type" and isinstance(value, str):
            out["type"] = value.lower()
        elif key in ("properties", "$defs") and isinstance(value, dict):
            out[key] = {name: gemini_schema_to_json(sub) for name, sub in value.items()}
        elif key in ("items", "anyOf"):
            out[key] = gemini_schema_to_json(value)
        elif key not in ("nullable", "propertyOrdering"):
            out[key] = value
    if schema.get("nullable") is True and isinstance(out.get("type"), str):
        out["type"] = [out["type"], "null"]
    return out


def _add_tool_choice(config: Obj, req: Obj) -> None:
    mode = config.get("mode")
    allowed = [n for n in _list(config.get("allowedFunctionNames")) if isinstance(n, str)]
    if mode in (None, "MODE_UNSPECIFIED", "AUTO", "VALIDATED") and not allowed:
        return
    if mode == "NONE":
        req["tool_choice"] = "none"
    elif mode == "ANY" and len(allowed) == 1:
        req["tool_choice"] = {"type": "function", "name": allowed[0]}
    elif mode == "ANY" and not allowed:
        req["tool_choice"] = "required"
    else:
        raise invalid_request(
            "toolConfig.functionCallingConfig: only AUTO, NONE, and ANY with at most one allowed function "
            "can be sent to this provider",
            param="toolConfig",
        )


# -- generationConfig --------------------------------------------------------------------------------------


def _add_config(config: Obj, req: Obj) -> None:
    for key, why in _REJECTED_CONFIG.items():
        if config.get(key) is not None:
            raise invalid_request(f"generationConfig.{key} cannot be sent to this provider: {why}", param=key)
    if _int(config.get("candidateCount")) > 1:
        raise invalid_request(
            "generationConfig.candidateCount > 1 cannot be sent to this provider", param="candidateCount"
        )
    modalities = [m for m in _list(config.get("responseModalities")) if m != "TEXT"]
    if modalities:
        raise invalid_request(
            f"generationConfig.responseModalities {modalities[0]} cannot be sent to this provider",
            param="responseModalities",
        )
    if config.get("maxOutputTokens") is not None:
        req["max_output_tokens"] = config["maxOutputTokens"]
    for source, target in (("temperature", "temperature"), ("topP", "top_p")):
        if config.get(source) is not None:
            req[target] = config[source]
    _add_format(config, req)
    _add_reasoning(_obj(config.get("thinkingConfig")), req)


def _add_format(config: Obj, req: Obj) -> None:
    if config.get("responseMimeType") not in ("application/json", "text/x.enum"):
        return
    schema = config.get("responseJsonSchema")
    if schema is None and config.get("responseSchema") is not None:
        schema = gemini_schema_to_json(config["responseSchema"])
    if isinstance(schema, dict):
        req["text"] = {
            "format": {"type": "json_schema", "name": "response", "schema": schema, "strict": False}
        }
    else:
        req["text"] = {"format": {"type": "json_object"}}


def _add_reasoning(thinking: Obj, req: Obj) -> None:
    if not thinking:
        return
    budget = thinking.get("thinkingBudget")
    effort = _LEVELS.get(str(thinking.get("thinkingLevel", "")).lower())
    if effort is None and isinstance(budget, int) and budget != -1:
        if budget == 0:
            return
        effort = next((name for limit, name in _BUDGET_EFFORTS if budget <= limit), "high")
    reasoning: Obj = {"effort": effort or "medium"}
    if thinking.get("includeThoughts") is True:
        reasoning["summary"] = "auto"
    req["reasoning"] = reasoning


# ---------------------------------------------------------------------------------------------------------
# Answer: Responses -> GenerateContentResponse
# ---------------------------------------------------------------------------------------------------------


def responses_usage_to_gemini(usage: Any) -> Obj:
    """Responses usage as ``usageMetadata`` (candidates exclude the thoughts, as Gemini counts them)."""
    usage = _obj(usage)
    details = _obj(usage.get("input_tokens_details"))
    reasoning = _int(_obj(usage.get("output_tokens_details")).get("reasoning_tokens"))
    prompt, output = _int(usage.get("input_tokens")), _int(usage.get("output_tokens"))
    meta: Obj = {
        "promptTokenCount": prompt,
        "candidatesTokenCount": max(output - reasoning, 0),
        "totalTokenCount": _int(usage.get("total_tokens")) or prompt + output,
    }
    cached = _int(details.get("cached_read_tokens", details.get("cached_tokens")))
    if cached:
        meta["cachedContentTokenCount"] = cached
    if reasoning:
        meta["thoughtsTokenCount"] = reasoning
    return meta


def _finish_reason(response: Obj) -> str:
    reason = _obj(response.get("incomplete_details")).get("reason")
    if response.get("status") == "incomplete" or reason:
        return "SAFETY" if reason == "content_filter" else "MAX_TOKENS"
    return "STOP"


def _arguments(value: Any) -> Obj:
    try:
        args = orjson.loads(value) if isinstance(value, str) and value else {}
    except orjson.JSONDecodeError:
        args = None
    if not isinstance(args, dict):
        raise bad_response("the provider returned tool call arguments that are not a JSON object")
    return args


def _call_part(item: Obj) -> Obj:
    call_id, name = item.get("call_id"), item.get("name")
    return {"functionCall": {"id": call_id, "name": name, "args": _arguments(item.get("arguments"))}}


def _summary(item: Obj) -> str:
    return "\n\n".join(str(p.get("text", "")) for p in _list(item.get("summary")) if isinstance(p, dict))


def _parts(item: Obj) -> list[Obj]:
    kind = item.get("type")
    if kind == "message":
        texts = [p.get("text") if p.get("type") == "output_text" else p.get("refusal") for p in
                 _list(item.get("content")) if isinstance(p, dict)]  # fmt: skip
        return [{"text": t} for t in texts if isinstance(t, str) and t]
    if kind == "function_call":
        return [_call_part(item)]
    if kind == "reasoning" and _summary(item):
        return [{"text": _summary(item), "thought": True}]
    return []


def _response_id() -> str:
    return uuid.uuid4().hex[:24]


def _candidate(parts: list[Obj], finish: str | None) -> Obj:
    candidate: Obj = {"content": {"role": "model", "parts": parts}, "index": 0}
    if finish is not None:
        candidate["finishReason"] = finish
    return candidate


def responses_to_gemini_response(response: dict[str, Any], *, model: str) -> dict[str, Any]:
    """Turn a Responses object into the ``GenerateContentResponse`` Gemini would have returned.

    >>> resp = {"status": "completed", "output": [{"type": "message", "content": [
    ...     {"type": "output_text", "text": "hi"}]}], "usage": {"input_tokens": 3, "output_tokens": 1}}
    >>> responses_to_gemini_response(resp, model="openai/gpt-4o")["candidates"][0]["content"]["parts"]
    [{'text': 'hi'}]
    """
    output = [item for item in _list(response.get("output")) if isinstance(item, dict)]
    parts = [part for item in output for part in _parts(item)]
    return {
        "candidates": [_candidate(parts, _finish_reason(response))],
        "usageMetadata": responses_usage_to_gemini(response.get("usage")),
        "modelVersion": model,
        "responseId": _response_id(),
    }


# ---------------------------------------------------------------------------------------------------------
# Stream: Responses events -> streamGenerateContent chunks
# ---------------------------------------------------------------------------------------------------------


class ResponsesToGeminiStream:
    """Turns OpenAI Responses stream events into the chunks of ``streamGenerateContent?alt=sse``.

    Text and reasoning deltas become one chunk each (reasoning as ``thought`` parts), a function call one
    chunk with the whole call when it is done (Gemini sends calls whole), and the terminal event a last
    chunk with ``finishReason`` and ``usageMetadata``.

    >>> s = ResponsesToGeminiStream(model="m")
    >>> s.feed({"type": "response.output_text.delta", "delta": "Hi"})[0]["candidates"][0]["content"]
    {'role': 'model', 'parts': [{'text': 'Hi'}]}
    """

    def __init__(self, *, model: str) -> None:
        self._model = model
        self._id = _response_id()
        self._finished = False

    def feed(self, event: dict[str, Any]) -> list[dict[str, Any]]:
        """Gemini chunks for one parsed Responses event; raises BifrostError on a failed response."""
        if self._finished:
            return []
        handler = _HANDLERS.get(str(event.get("type")))
        return handler(self, event) if handler is not None else []

    def _chunk(self, parts: list[Obj], finish: str | None = None, usage: Any = None) -> Obj:
        chunk: Obj = {"candidates": [_candidate(parts, finish)], "modelVersion": self._model,
                      "responseId": self._id}  # fmt: skip
        if usage is not None:
            chunk["usageMetadata"] = usage
        return chunk

    def _on_text(self, event: Obj) -> list[Obj]:
        delta = event.get("delta")
        return [self._chunk([{"text": delta}])] if isinstance(delta, str) and delta else []

    def _on_reasoning(self, event: Obj) -> list[Obj]:
        delta = event.get("delta")
        return [self._chunk([{"text": delta, "thought": True}])] if isinstance(delta, str) and delta else []

    def _on_item_done(self, event: Obj) -> list[Obj]:
        item = _obj(event.get("item"))
        return [self._chunk([_call_part(item)])] if item.get("type") == "function_call" else []

    def _on_finished(self, event: Obj) -> list[Obj]:
        self._finished = True
        response = _obj(event.get("response"))
        usage = responses_usage_to_gemini(response.get("usage"))
        return [self._chunk([], _finish_reason(response), usage)]

    def _on_failed(self, event: Obj) -> list[Obj]:
        error = _obj(_obj(event.get("response")).get("error")) or event
        message = str(error.get("message") or "the provider reported a failed response")
        code = error.get("code")
        raise upstream_failed(message, str(code) if code is not None else None)


_Handler = Callable[[ResponsesToGeminiStream, Obj], list[Obj]]
_HANDLERS: dict[str, _Handler] = {
    "response.output_text.delta": ResponsesToGeminiStream._on_text,
    "response.refusal.delta": ResponsesToGeminiStream._on_text,
    "response.reasoning_summary_text.delta": ResponsesToGeminiStream._on_reasoning,
    "response.output_item.done": ResponsesToGeminiStream._on_item_done,
    "response.completed": ResponsesToGeminiStream._on_finished,
    "response.incomplete": ResponsesToGeminiStream._on_finished,
    "response.failed": ResponsesToGeminiStream._on_failed,
    "error": ResponsesToGeminiStream._on_failed,
}
