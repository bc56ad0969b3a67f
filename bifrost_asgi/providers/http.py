"""Mapping upstream failures to BifrostErrors: the one place that knows httpx's exception tree.

Retry classes follow spec §3: transport errors and 500/502/503/504/529 retry on the same key with
backoff; 429 rotates the key with backoff; 401/403/402 retire the key for this request and rotate
without backoff; other 4xx are the caller's and are returned as they are.
"""

from __future__ import annotations

import email.utils
import time
from collections.abc import AsyncIterator, Callable, Iterator, Mapping, Sequence
from typing import TYPE_CHECKING, Any

import httpx
import orjson

from bifrost_asgi.errors import (
    BifrostError,
    answered_as_is,
    bad_response,
    connection_failed,
    pool_exhausted,
    stream_cut,
    timed_out,
    too_large_answer,
    upstream,
)
from bifrost_asgi.jsonbytes import object_span
from bifrost_asgi.observability.tracing import trace_headers
from bifrost_asgi.providers.base import Call, Chunk, ChunkStream, Reply
from bifrost_asgi.providers.passthrough import StreamUsage, answer_headers

__all__ = [
    "HTTPProvider",
    "TRANSPORT_ERRORS",
    "URL",
    "Content",
    "forwarded_headers",
    "loads_object",
    "map_transport_error",
    "object_or_none",
    "object_within",
    "open_stream",
    "request",
    "upstream_error",
]

# Provider error codes that mean "this model or account", not "your request": they still fall back.
_NOT_CALLER_FAULT = frozenset(
    {
        "model_not_found",
        "insufficient_quota",
        "invalid_api_key",
        "billing_hard_limit_reached",
        "rate_limit_exceeded",
    }
)

if TYPE_CHECKING:  # config imports the provider catalog, which imports this package
    from bifrost_asgi.config import KeyConfig, ProviderConfig


def _transport_errors() -> tuple[type[BaseException], ...]:
    errors: list[type[BaseException]] = [httpx.HTTPError, TimeoutError, ConnectionError]
    try:  # the aiohttp transport lets some aiohttp errors through unmapped (total timeouts, ...)
        import aiohttp

        errors.append(aiohttp.ClientError)
    except ImportError:  # pragma: no cover - aiohttp is a dependency, but the core does not need it
        pass
    return tuple(errors)


# Everything an upstream exchange can raise that is the network's fault rather than ours.
TRANSPORT_ERRORS = _transport_errors()


def map_transport_error(exc: BaseException, provider: str, timeout: float) -> BifrostError:
    """Translate a transport failure (one of `TRANSPORT_ERRORS`) raised before or during a response."""
    if isinstance(exc, httpx.PoolTimeout):
        return pool_exhausted()
    if _is_timeout(exc):
        # Spec §3: a timeout is not retried on the same provider; it goes straight to fallbacks.
        return timed_out(timeout)
    detail = type(exc).__name__ if not str(exc) else f"{type(exc).__name__}: {exc}"
    return connection_failed(provider, detail)


def _is_timeout(exc: BaseException) -> bool:
    cause = exc.__cause__
    if cause is not None and type(cause).__module__.startswith("aiohttp"):
        # httpx-aiohttp maps every aiohttp connection error (refused, reset) to httpx.ConnectTimeout:
        # judge by the real cause, whose timeouts all derive from TimeoutError.
        return isinstance(cause, TimeoutError)
    return isinstance(exc, httpx.TimeoutException | TimeoutError)


def upstream_error(status: int, content: bytes, provider: str) -> BifrostError:
    """An upstream error response, with the provider's type/code/message kept verbatim (spec §5.1)."""
    error = _parse_error_body(content)
    message = str(error.get("message") or f"upstream returned HTTP {status}")
    code = error.get("code")
    err = upstream(
        status, message, error_type=_opt_str(error.get("type")), code=_opt_str(code), param=error.get("param")
    )
    if status in (400, 422) and error and code not in _NOT_CALLER_FAULT:
        # Newer Bifrost: a provider's explicit validation error is the caller's fault; another
        # provider would refuse the same body, so fallbacks are not tried.
        err.allow_fallbacks = False
    return err


def _parse_error_body(content: bytes) -> dict[str, Any]:
    try:
        body = orjson.loads(content)
    except orjson.JSONDecodeError:
        text = content.decode("utf-8", "replace").strip()
        return {"message": text[:500]} if text else {}
    if isinstance(body, dict):
        inner = body.get("error")
        if isinstance(inner, dict):
            return inner
        if isinstance(inner, str):
            return {"message": inner}
        if isinstance(body.get("message"), str):
            return body
    return {}


def _opt_str(value: Any) -> str | None:
    return None if value is None else str(value)


# -- the upstream calls every provider makes ------------------------------------------------------------
#
# Providers talk to the pooled transport directly rather than through an httpx.AsyncClient: the client
# layer (cookies, auth flows, redirects, event hooks, default headers, URL merging) is nothing a gateway
# uses, and measured at ~40% of the gateway's CPU per request (BENCHMARKS.md, "Where the time goes").

ErrorMapper = Callable[[int, bytes, str], BifrostError]
# An error answer is read only this far: its message is all we keep.
_MAX_ERROR_BODY = 1024 * 1024
URL = httpx.URL | str
# A request body: bytes, or pieces sent one after another (a multipart upload re-encoded as views into
# the client's bytes, so the file is not copied).
Content = bytes | Sequence[bytes | memoryview]

# httpx's per-request timeout extension, built once per distinct timeout (they come from the config).
_TIMEOUTS: dict[float, dict[str, float | None]] = {}


def _timeout_extension(timeout: float) -> dict[str, float | None]:
    ext = _TIMEOUTS.get(timeout)
    if ext is None:
        ext = httpx.Timeout(timeout).as_dict()
        if len(_TIMEOUTS) < 256:
            _TIMEOUTS[timeout] = ext
    return ext


async def _start(
    transport: httpx.AsyncBaseTransport,
    method: str,
    url: URL,
    content: Content | None,
    headers: Mapping[str, str],
    timeout: float,
) -> httpx.Response:
    extensions = {"timeout": _timeout_extension(timeout)}
    sent = trace_headers(headers)  # W3C traceparent, when the gateway traces this call
    if content is None or isinstance(content, bytes):
        request = httpx.Request(method, url, content=content, headers=sent, extensions=extensions)
    else:
        length = str(sum(len(piece) for piece in content))
        request = httpx.Request(
            method, url, stream=_Pieces(content), headers={**sent, "content-length": length},
            extensions=extensions,
        )  # fmt: skip
    return await transport.handle_async_request(request)


class _Pieces(httpx.AsyncByteStream, httpx.SyncByteStream):
    """A body sent as its pieces; iterable again for every attempt."""

    def __init__(self, pieces: Sequence[bytes | memoryview]) -> None:
        self._pieces = pieces

    async def __aiter__(self) -> AsyncIterator[bytes]:
        for piece in self._pieces:
            yield piece  # type: ignore[misc]  # a memoryview is bytes-like to every transport

    def __iter__(self) -> Iterator[bytes]:
        yield from (bytes(piece) for piece in self._pieces)


async def request(
    transport: httpx.AsyncBaseTransport,
    url: URL,
    content: Content | None,
    headers: Mapping[str, str],
    *,
    provider: str,
    timeout: float,
    error: ErrorMapper = upstream_error,
    method: str = "POST",
    max_bytes: int = 100 * 1024 * 1024,
) -> httpx.Response:
    """Send a request and read the answer (at most ``max_bytes``); transport failures and error
    statuses become BifrostErrors."""
    try:
        started = await _start(transport, method, url, content, headers, timeout)
        try:
            resp = await _read_bounded(started, max_bytes, provider)
        finally:
            await started.aclose()  # hands the connection back to the pool, even if the body broke off
    except TRANSPORT_ERRORS as exc:
        raise map_transport_error(exc, provider, timeout) from None
    if resp.status_code >= 400:
        raise _refused(resp, resp.content, provider, error)
    return resp


async def _read_bounded(resp: httpx.Response, limit: int, provider: str) -> httpx.Response:
    """The whole answer, refused as soon as it is known to exceed ``limit``."""
    length = resp.headers.get("content-length")
    if length is not None and length.isdigit():
        if int(length) > limit:
            raise too_large_answer(provider, "an answer", limit)
        await resp.aread()  # the common case: the size is known and fine
        return resp
    parts: list[bytes] = []
    size = 0
    async for part in resp.aiter_bytes():
        size += len(part)
        if size > limit:
            raise too_large_answer(provider, "an answer", limit)
        parts.append(part)
    # A fresh response holding what was read (aiter_bytes leaves the original without content).
    return httpx.Response(resp.status_code, headers=resp.headers, content=b"".join(parts))


def _refused(resp: httpx.Response, body: bytes, provider: str, error: ErrorMapper) -> BifrostError:
    err = error(resp.status_code, body, provider)
    if resp.status_code in (429, 503):
        err.retry_after = retry_after(resp.headers.get("retry-after"))
    return err


def retry_after(value: str | None) -> float | None:
    """Seconds from a Retry-After header (a number of seconds or an HTTP date), or None."""
    if not value:
        return None
    value = value.strip()
    try:
        seconds = float(value)
    except ValueError:
        try:
            when = email.utils.parsedate_to_datetime(value)
        except (TypeError, ValueError):
            return None
        seconds = when.timestamp() - time.time()
    return max(0.0, seconds) if seconds == seconds else None  # NaN is no answer


async def open_stream(
    transport: httpx.AsyncBaseTransport,
    url: URL,
    content: Content,
    headers: Mapping[str, str],
    *,
    provider: str,
    timeout: float,
    error: ErrorMapper = upstream_error,
) -> httpx.Response:
    """Start a streamed POST and check its status before any byte reaches the client (spec §2.1), so an
    upstream refusal is still a plain JSON error that retries and fallbacks can act on. The caller owns
    the returned response and must close it."""
    try:
        resp = await _start(transport, "POST", url, content, headers, timeout)
    except TRANSPORT_ERRORS as exc:
        raise map_transport_error(exc, provider, timeout) from None
    if resp.status_code >= 400:
        try:
            body = (await _read_bounded(resp, _MAX_ERROR_BODY, provider)).content
        except TRANSPORT_ERRORS:
            body = b""
        except BifrostError:  # an error body over the limit: its status still says what happened
            body = b""
        finally:
            await resp.aclose()
        raise _refused(resp, body, provider, error)
    return resp


def object_or_none(content: bytes) -> dict[str, Any] | None:
    """The JSON object in ``content``, or None when it is not one."""
    try:
        obj = orjson.loads(content)
    except orjson.JSONDecodeError:
        return None
    return obj if isinstance(obj, dict) else None


def object_within(content: bytes, key: str) -> dict[str, Any] | None:
    """The object value of ``key`` in a JSON answer (its usage), found without parsing the answer."""
    span = object_span(content, key)
    return object_or_none(content[span[0] : span[1]]) if span is not None else None


def loads_object(content: bytes, provider: str, what: str = "a body") -> dict[str, Any]:
    obj = object_or_none(content)
    if obj is None:
        raise bad_response(f"provider {provider} returned {what} that is not a JSON object")
    return obj


def forwarded_headers(
    headers: httpx.Headers, prefixes: tuple[str, ...], request_id_header: str | None = "x-request-id"
) -> dict[str, str]:
    """The upstream headers worth passing back (rate-limit state, timing). The provider's own request id
    is renamed, since ``x-request-id`` is the gateway's."""
    out = {k: v for k, v in headers.items() if k.startswith(prefixes)}
    upstream_id = headers.get(request_id_header) if request_id_header else None
    if upstream_id is not None:
        out["x-bifrost-provider-request-id"] = upstream_id
    return out


class HTTPProvider:
    """What every provider that calls an upstream over HTTP shares: its name, config and the gateway's
    pooled transport, and its request headers, built once per key so the hot path only looks them up.

    ``credential`` turns a key's secret into the header(s) the provider authenticates with;
    ``fixed`` headers go on every request (an API version, say); ``extra_headers`` from the config last.
    ``error`` maps the provider's error answers (its own body shape) to BifrostErrors.
    """

    uses_keys = True

    def __init__(
        self,
        name: str,
        config: ProviderConfig,
        transport: httpx.AsyncBaseTransport,
        credential: Callable[[str], dict[str, str]],
        fixed: Mapping[str, str] | None = None,
    ) -> None:
        self.name = name
        self.error: ErrorMapper = upstream_error
        self._config = config
        self._transport = transport
        extra = {k.lower(): v for k, v in config.network_config.extra_headers.items()}
        base = {"content-type": "application/json", "accept-encoding": "identity", **(fixed or {}), **extra}
        self._anon_headers = base
        self._key_headers = {id(k): {**base, **credential(k.value.get_secret_value())} for k in config.keys}

    def models(self) -> list[str]:
        return sorted({m for k in self._config.keys for m in k.models if m != "*"})

    def _headers(self, call: Call, key: KeyConfig | None) -> dict[str, str]:
        headers = self._key_headers[id(key)] if key is not None else self._anon_headers
        return {**headers, **call.headers} if call.headers else headers

    async def _post(self, url: URL, content: Content, call: Call, key: KeyConfig | None) -> httpx.Response:
        """POST ``content`` for ``call`` and read the answer (an error status raises)."""
        headers = self._headers(call, key)
        return await request(
            self._transport, url, content, headers,
            provider=self.name, timeout=call.timeout, error=self.error, max_bytes=call.max_answer_bytes,
        )  # fmt: skip

    async def _open(self, url: URL, content: Content, call: Call, key: KeyConfig | None) -> httpx.Response:
        """Start a streamed POST for ``call``; the caller owns (and closes) the response."""
        headers = self._headers(call, key)
        return await open_stream(
            self._transport, url, content, headers, provider=self.name, timeout=call.timeout, error=self.error
        )

    # -- raw passthrough (the *_passthrough prefixes; providers.passthrough says what passes) ----------

    # Where raw requests go: the upstream's base URL, for providers whose API a passthrough prefix
    # speaks (anthropic, openai, gemini); None: not served.
    raw_base: str | None = None

    def _raw_request(self, call: Call, key: KeyConfig | None) -> tuple[str, dict[str, str]]:
        route = call.raw_route
        assert route is not None and self.raw_base is not None
        url = self.raw_base + route.path + ("?" + route.query if route.query else "")
        ours = self._key_headers[id(key)] if key is not None else self._anon_headers
        headers = {**call.headers, **ours}  # the gateway's key and configured headers win
        if "content-type" in call.headers:
            headers["content-type"] = call.headers["content-type"]
        return url, headers

    async def _start_raw(self, call: Call, key: KeyConfig | None) -> httpx.Response:
        """Send a raw request; an error status is answered as it came (never retried: Bifrost's
        passthrough returns the upstream's status, headers and body whatever they are)."""
        url, headers = self._raw_request(call, key)
        assert call.raw_route is not None
        try:
            resp = await _start(self._transport, call.raw_route.method, url, call.raw, headers, call.timeout)
        except TRANSPORT_ERRORS as exc:
            raise map_transport_error(exc, self.name, call.timeout) from None
        if resp.status_code >= 300:
            body = await self._read_raw(resp, call.max_answer_bytes, call.timeout)
            err = _refused(resp, body, self.name, self.error)
            raise answered_as_is(err, answer_headers(resp.headers), body)
        return resp

    async def _read_raw(self, resp: httpx.Response, limit: int, timeout: float) -> bytes:
        try:
            return (await _read_bounded(resp, limit, self.name)).content
        except TRANSPORT_ERRORS as exc:
            raise map_transport_error(exc, self.name, timeout) from None
        finally:
            await resp.aclose()

    async def send_raw(self, call: Call, key: KeyConfig | None) -> Reply:
        """A raw request's whole answer (bounded), with the usage it reports in ``call.op``'s shape."""
        resp = await self._start_raw(call, key)
        content = await self._read_raw(resp, call.max_answer_bytes, call.timeout)
        usage = object_within(content, call.op.usage_field)
        call.answer_headers = answer_headers(resp.headers)
        return Reply(
            {call.op.usage_field: usage} if usage is not None else {},
            content=content,
            status=resp.status_code,
        )

    async def open_raw(self, call: Call, key: KeyConfig | None) -> ChunkStream:
        """A raw request's answer, streamed read by read as it came; its usage read on the way."""
        resp = await self._start_raw(call, key)
        call.answer_headers = answer_headers(resp.headers)
        return self._raw_chunks(resp, call)

    async def _raw_chunks(self, resp: httpx.Response, call: Call) -> ChunkStream:
        sse = resp.headers.get("content-type", "").startswith("text/event-stream")
        reader = StreamUsage(call.op if sse else None, call.max_event_bytes, self.name)
        try:
            async for data in resp.aiter_bytes():
                yield [Chunk(None, data=data, usage=reader.feed(data))]
        except TRANSPORT_ERRORS as exc:
            raise map_transport_error(exc, self.name, call.timeout) from None
        finally:
            await resp.aclose()
        if not reader.finished:
            raise stream_cut(self.name, "its final event")
