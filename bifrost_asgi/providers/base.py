"""What every provider implements, and the small values that flow between the pipeline and providers."""

from __future__ import annotations

import enum
from collections.abc import AsyncIterator, Callable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Protocol, TypeVar

import httpx

from bifrost_asgi.errors import MALFORMED, bad_response, unreadable
from bifrost_asgi.sse import DEFAULT_MAX_EVENT

if TYPE_CHECKING:  # config imports the provider catalog, which imports this package
    from bifrost_asgi.config import KeyConfig, ProviderConfig
    from bifrost_asgi.multipart import Form


__all__ = [
    "FORM_GATEWAY_FIELDS",
    "GATEWAY_FIELDS",
    "MEDIA_OPS",
    "OBJECTS",
    "TERMINAL_EVENTS",
    "TEXT_FORMATS",
    "Call",
    "Chunk",
    "ChunkStream",
    "Op",
    "Provider",
    "ProviderFactory",
    "RawRoute",
    "Reply",
    "Shape",
    "StreamConverter",
    "aclose_stream",
    "answers_text",
    "check_shape",
    "client_body",
    "converted",
    "event_chunk",
]

# Body fields only the gateway understands; stripped before a body goes upstream (OpenAI rejects
# unknown parameters).
GATEWAY_FIELDS = ("fallbacks", "return_tokens")
# The same in a multipart form, where a list is repeated fields (``fallbacks`` or ``fallbacks[]``).
FORM_GATEWAY_FIELDS = (*GATEWAY_FIELDS, "fallbacks[]")
T = TypeVar("T")


class Op(enum.Enum):
    """What a provider is asked to do: the API shape of the body it receives and must answer in.

    The first four are the OpenAI-style operations every provider serves (their value is Bifrost's
    non-streaming ``request_type``). ``MESSAGES`` and ``MESSAGES_COUNT_TOKENS`` carry an Anthropic
    Messages body from the ``/anthropic`` integration, which only anthropic providers speak natively;
    every other provider gets that request translated to ``RESPONSES`` / ``COUNT_TOKENS``. Likewise
    ``GENERATE_CONTENT`` and ``GEMINI_COUNT_TOKENS`` carry a Gemini body from ``/genai``, spoken natively
    only by gemini providers (the model is the call's, not the body's).

    The media operations carry OpenAI's bodies for embeddings, images and audio; a provider that does
    not serve one raises ``errors.unsupported_operation``. ``IMAGE_EDIT``, ``TRANSCRIPTION`` and
    ``TRANSLATION`` bodies are multipart forms (``Call.form``); ``SPEECH`` answers audio bytes.
    ``TRANSLATION`` is OpenAI's ``/v1/audio/translations``, which Bifrost does not serve; its request type
    is ours.
    """

    RESPONSES = "responses"
    CHAT = "chat_completion"
    TEXT = "text_completion"
    COUNT_TOKENS = "count_tokens"
    MESSAGES = "messages"
    MESSAGES_COUNT_TOKENS = "messages_count_tokens"
    GENERATE_CONTENT = "generate_content"
    GEMINI_COUNT_TOKENS = "gemini_count_tokens"
    EMBEDDINGS = "embedding"
    IMAGE_GENERATION = "image_generation"
    IMAGE_EDIT = "image_edit"
    SPEECH = "speech"
    TRANSCRIPTION = "transcription"
    TRANSLATION = "translation"

    def request_type(self, stream: bool) -> str:
        return self.value + "_stream" if stream else self.value

    @property
    def usage_field(self) -> str:
        """Where an answer in this op's shape reports its usage."""
        return "usageMetadata" if self is Op.GENERATE_CONTENT else "usage"


# The media operations (embeddings, images, audio), which only some providers serve.
MEDIA_OPS = frozenset(
    {Op.EMBEDDINGS, Op.IMAGE_GENERATION, Op.IMAGE_EDIT, Op.SPEECH, Op.TRANSCRIPTION, Op.TRANSLATION}
)
# Transcript formats answered as text rather than JSON.
TEXT_FORMATS = frozenset({"text", "srt", "vtt"})


@dataclass(slots=True, frozen=True)
class RawRoute:
    """Where a raw passthrough request goes (``/anthropic_passthrough/...`` and the like): its method,
    its path below the provider's base URL and its query, all the client's. A call carrying one is sent
    there as the client's bytes with the provider's key, and answered with the upstream's bytes."""

    method: str
    path: str
    query: str


@dataclass(slots=True)
class Call:
    """One attempt at one provider: the client's parsed body plus what routing decided.

    ``body`` is shared between attempts and must not be mutated; ``raw`` is the client's bytes, which a
    provider speaking the same format forwards untouched when ``passthrough`` is true (the body names the
    upstream model already and carries no gateway-only fields). A multipart request (image edits, audio
    uploads) also has ``form``: the client's form read in place, which the provider re-encodes with its
    model (``form.encode``) so the uploaded files are never copied.
    """

    op: Op
    body: dict[str, Any]
    raw: bytes
    model: str
    stream: bool
    passthrough: bool
    headers: dict[str, str] = field(default_factory=dict)
    timeout: float = 30.0
    # Bounds on what the upstream may send back (client.max_upstream_response_size_mb and
    # max_stream_event_size_mb): a whole answer, and one stream event.
    max_answer_bytes: int = 100 * 1024 * 1024
    max_event_bytes: int = DEFAULT_MAX_EVENT
    # Set by providers that serve a model through a named deployment (Azure); reported in extra_fields.
    model_deployment: str | None = None
    form: Form | None = None
    # A raw passthrough request's own route (``op`` then names only the shape its usage is read in),
    # and, set by the provider once the upstream answered, that answer's headers for the client.
    raw_route: RawRoute | None = None
    answer_headers: list[tuple[bytes, bytes]] | None = None


@dataclass(slots=True)
class Reply:
    """A provider's non-streaming answer, already in the client's format.

    ``content``, when set, is the answer's bytes as the client gets them, and ``body`` then holds only
    what the gateway reads from it (its ``usage``): a large answer (embeddings, images) is passed on
    without being parsed and re-serialised, and one that is not JSON (a transcript as text, SRT or VTT)
    is passed on as it is.
    """

    body: dict[str, Any]
    headers: dict[str, str] = field(default_factory=dict)
    raw_request: Any = None
    raw_response: Any = None
    # Facts about how the answer was made that belong in the response's ``extra_fields`` (a local token
    # count says it is an estimate, and with which tokenizer).
    extra_fields: dict[str, Any] | None = None
    content: bytes | None = None
    status: int = 200  # a raw passthrough answer's own (2xx) status


@dataclass(slots=True)
class Chunk:
    """One outgoing stream event: either raw JSON bytes passed through, or an object we built.

    ``usage`` is set on the chunk that carries the final usage, so the pipeline can price it without
    parsing every chunk.
    """

    event: str | None
    data: bytes | None = None
    obj: dict[str, Any] | None = None
    usage: dict[str, Any] | None = None


# A provider's stream. Each item is a batch of events that became ready together (the complete events of
# one upstream read, or everything one upstream event translates into); the pipeline writes a batch with
# one send. One socket write per event was the largest cost of a stream (BENCHMARKS.md).
ChunkStream = AsyncIterator[list[Chunk]]


def answers_text(call: Call) -> bool:
    """Whether the call's answer is text (a transcript as text, SRT or VTT) rather than JSON."""
    return call.op in (Op.TRANSCRIPTION, Op.TRANSLATION) and call.body.get("response_format") in TEXT_FORMATS


def client_body(call: Call) -> dict[str, Any]:
    """The client's body without the gateway-only fields: what a translator or upstream may see."""
    return {k: v for k, v in call.body.items() if k not in GATEWAY_FIELDS}


async def aclose_stream(it: AsyncIterator[Any]) -> None:
    """Close a wrapped stream (and so its upstream connection) when it is an async generator."""
    aclose = getattr(it, "aclose", None)
    if aclose is not None:
        await aclose()


# Responses stream events that carry the final response object (and so its usage).
TERMINAL_EVENTS = frozenset({"response.completed", "response.incomplete", "response.failed"})


def event_chunk(op: Op, obj: dict[str, Any]) -> Chunk:
    """A translated stream event as a Chunk: Responses events are framed by their type, and the usage
    rides on the terminal event (Responses) or on the chunk that carries it (chat, text)."""
    if op is Op.RESPONSES:
        usage = obj["response"].get("usage") if obj["type"] in TERMINAL_EVENTS else None
        return Chunk(obj["type"], obj=obj, usage=usage if isinstance(usage, dict) else None)
    usage = obj.get("usage")
    return Chunk(None, obj=obj, usage=usage if isinstance(usage, dict) else None)


class StreamConverter(Protocol):
    """A stream translator (``translate/``): events in one API's shape in, the client's out."""

    def start(self) -> list[dict[str, Any]]: ...

    def feed(self, event: dict[str, Any]) -> list[dict[str, Any]]: ...

    def finish(self) -> list[dict[str, Any]]: ...


async def converted(
    events: AsyncIterator[T],
    converter: StreamConverter,
    op: Op,
    decode: Callable[[T], dict[str, Any]],
    source: str = "the upstream",
) -> ChunkStream:
    """Drive ``converter`` over an upstream's events, one batch per upstream event (so an error event
    still follows every event before it); the upstream is closed whatever happens."""
    try:
        if batch := [event_chunk(op, obj) for obj in converter.start()]:
            yield batch
        async for event in events:
            try:
                batch = [event_chunk(op, obj) for obj in converter.feed(decode(event))]
            except MALFORMED as exc:
                raise unreadable(source, exc) from None
            if batch:
                yield batch
        if batch := [event_chunk(op, obj) for obj in converter.finish()]:
            yield batch
    finally:
        await aclose_stream(events)


class Provider(Protocol):
    """A provider family. Implementations hold no per-request state and share the gateway's transport.

    ``uses_keys`` is false for providers that need no credentials (the offline mock, the local token
    counter): the configured keys then only list models, and no key is chosen or rotated.
    """

    name: str
    uses_keys: bool

    async def send(self, call: Call, key: KeyConfig | None) -> Reply: ...

    async def open_stream(self, call: Call, key: KeyConfig | None) -> ChunkStream:
        """Start the upstream stream and return its chunks.

        Must raise (a BifrostError) *before* returning when the upstream refuses the request, so that
        retries and fallbacks can still happen and the client gets a plain JSON error.
        """
        ...

    def models(self) -> list[str]: ...


# Builds a provider at startup: (name, its config, the gateway's shared transport, its base URL).
ProviderFactory = Callable[[str, "ProviderConfig", httpx.AsyncBaseTransport, str], Provider]


# -- shape checks on answers that get translated --------------------------------------------------------
#
# Translators are lenient readers (a missing field is an empty one); an answer whose fields have the wrong
# types would come out as an empty "success" and under-charged usage. Before translating, providers check
# the fields they read: a present field of the wrong type is a 502, never a finished-looking answer.

OBJECTS = "a list of objects"  # a shape value: a list whose items are all JSON objects
Shape = Mapping[str, "type | tuple[type, ...] | str"]


def check_shape(obj: Mapping[str, Any], shape: Shape, what: str) -> None:
    """Raise a 502 ``provider_bad_response`` when a field of ``obj`` named in ``shape`` is present with
    another type; token counts in any ``usage``-like field must be integers."""
    for name, kind in shape.items():
        value = obj.get(name)
        if value is None:
            continue
        if kind == OBJECTS:
            ok = isinstance(value, list) and all(isinstance(item, dict) for item in value)
        else:
            ok = isinstance(value, kind)  # type: ignore[arg-type]
        if not ok:
            raise bad_response(f"{what}: {name} is not {kind if kind == OBJECTS else _type_name(kind)}")
        if name in _USAGE_FIELDS:
            _check_counts(value, what)


_USAGE_FIELDS = frozenset({"usage", "usageMetadata"})


def _check_counts(usage: Mapping[str, Any], what: str) -> None:
    for name, value in usage.items():
        counted = name.endswith(("_tokens", "TokenCount"))
        if counted and value is not None and (not isinstance(value, int) or isinstance(value, bool)):
            raise bad_response(f"{what}: usage {name} is not an integer")


def _type_name(kind: object) -> str:
    kinds = kind if isinstance(kind, tuple) else (kind,)
    names = {dict: "an object", list: "an array", str: "a string", int: "an integer"}
    return " or ".join(names.get(k, getattr(k, "__name__", str(k))) for k in kinds)
