"""The gateway's one error type, and the named constructor for every error it emits.

Every failure a client can see is a :class:`BifrostError`, serialised as Bifrost's ``BifrostError``
JSON shape (seed 001)::

    {"event_id", "type"?, "is_bifrost_error", "status_code",
     "error": {"type"?, "code"?, "message", "param"?},
     "extra_fields": {"provider"?, "model_requested"?, "request_type"?, ...}}

Nothing else in the package calls ``BifrostError(...)``: every error is built here, by name, so its
status, type and retry policy are decided once. Causes are mapped where they arise (transport and
upstream faults in ``providers/http.py``, store faults in ``stores/``) by calling these constructors.

    BifrostError
    ├── caller faults (400, is_bifrost_error false; fallbacks do not apply)
    │   ├── invalid_request          bad JSON, missing model / input / prompt, wrong types
    │   ├── not_configured           a known provider without configuration
    │   ├── unsupported_operation    a provider that does not serve the route
    │   ├── body_too_large (413)     over max_request_body_size_mb
    │   └── http_error (404/405)     unknown path, wrong method
    ├── who is calling (401/403)
    │   ├── unauthorized             admin API, self-service without a session
    │   ├── invalid_token            a signed token that does not verify
    │   ├── csrf_failed              a session write without the CSRF token
    │   ├── forbidden                signed in, but not allowed (staff-only API)
    │   └── governance_error         virtual key missing / unknown / blocked, provider or model
    │                                blocked (403), rate limited (429), budget exceeded (402)
    ├── upstream faults (fallbacks apply)
    │   ├── upstream                 the provider's own status and error body, passed through
    │   │   └── answered_as_is       ... and, on a raw passthrough prefix, its very bytes and headers
    │   ├── connection_failed (502)  refused, DNS, reset before a response
    │   ├── timed_out (504)
    │   ├── pool_exhausted (503)     no free upstream connection in time
    │   ├── credentials_exhausted (502)  every key answered 401/403
    │   ├── bad_response (502)       an answer that is not what the provider's API promises
    │   ├── too_large_answer (502)   an answer or stream event over the configured size limit
    │   └── upstream_failed (500)    a stream that reported failure after it started
    └── the gateway's own faults
        ├── configuration_error (500)
        ├── store_unavailable (503)  governance counters unreachable (fail closed)
        ├── not_found (404)          a management-API record
        └── internal_error (500)     a bug of ours, never a traceback
"""

from __future__ import annotations

import uuid
from typing import Any

import orjson

from bifrost_asgi.types import Headers

__all__ = [
    "BifrostError",
    "MALFORMED",
    "answered_as_is",
    "bad_response",
    "body_too_large",
    "configuration_error",
    "connection_failed",
    "credentials_exhausted",
    "csrf_failed",
    "forbidden",
    "governance_error",
    "http_error",
    "internal_error",
    "invalid_request",
    "invalid_token",
    "not_configured",
    "not_found",
    "pool_exhausted",
    "store_unavailable",
    "stream_cut",
    "timed_out",
    "too_large_answer",
    "unauthorized",
    "unreadable",
    "unsupported_operation",
    "upstream",
    "upstream_failed",
]


class BifrostError(Exception):
    """An error in Bifrost's shape, raised anywhere in the pipeline and rendered once by the app.

    >>> raise BifrostError(400, "model is required", is_bifrost_error=False)
    """

    __slots__ = (
        "status_code",
        "message",
        "error_type",
        "code",
        "param",
        "top_type",
        "is_bifrost_error",
        "extra_fields",
        "retryable",
        "allow_fallbacks",
        "rotate_key",
        "dead_key",
        "retry_after",
        "answer",
    )

    def __init__(
        self,
        status_code: int,
        message: str,
        *,
        error_type: str | None = None,
        code: str | None = None,
        param: Any = None,
        top_type: str | None = None,
        is_bifrost_error: bool = True,
        extra_fields: dict[str, Any] | None = None,
        retryable: bool = False,
        allow_fallbacks: bool = True,
        rotate_key: bool = False,
        dead_key: bool = False,
    ) -> None:
        super().__init__(message)
        self.status_code = status_code
        self.message = message
        self.error_type = error_type
        self.code = code
        self.param = param
        self.top_type = top_type
        self.is_bifrost_error = is_bifrost_error
        self.extra_fields: dict[str, Any] = extra_fields or {}
        # Retry policy (spec §3): whether the same provider may be tried again, whether the key
        # should be rotated (429) or retired for this request (401/403), and whether fallbacks apply.
        self.retryable = retryable
        self.allow_fallbacks = allow_fallbacks
        self.rotate_key = rotate_key
        self.dead_key = dead_key
        # Seconds the upstream asked us to wait before retrying (its Retry-After header), if it said.
        self.retry_after: float | None = None
        # The upstream's own answer (headers, body) that a raw passthrough prefix sends instead of ours.
        self.answer: tuple[Headers, bytes] | None = None

    def __repr__(self) -> str:
        return f"BifrostError({self.status_code}, {self.message!r}, type={self.error_type!r})"

    def to_dict(self) -> dict[str, Any]:
        error: dict[str, Any] = {"message": self.message}
        if self.error_type is not None:
            error["type"] = self.error_type
        if self.code is not None:
            error["code"] = self.code
        if self.param is not None:
            error["param"] = self.param
        body: dict[str, Any] = {"event_id": str(uuid.uuid4())}
        if self.top_type is not None:
            body["type"] = self.top_type
        body["is_bifrost_error"] = self.is_bifrost_error
        body["status_code"] = self.status_code
        body["error"] = error
        body["extra_fields"] = self.extra_fields
        return body

    def to_json(self) -> bytes:
        return orjson.dumps(self.to_dict())


def invalid_request(message: str, *, param: str | None = None) -> BifrostError:
    """A caller fault: 400, ``is_bifrost_error: false`` as Bifrost's handlers send them."""
    return BifrostError(
        400,
        message,
        error_type="invalid_request_error",
        param=param,
        is_bifrost_error=False,
        allow_fallbacks=False,
    )


def not_configured(provider: str) -> BifrostError:
    """A known provider without configuration (spec §5.2: 400, ``is_bifrost_error: false``)."""
    return BifrostError(
        400,
        f"failed to get config for provider: {provider} is not configured in this gateway",
        error_type="invalid_request_error",
        is_bifrost_error=False,
    )


def unsupported_operation(operation: str, provider: str) -> BifrostError:
    return BifrostError(
        400, f"{operation} is not served by provider {provider}", error_type="unsupported_operation"
    )


def body_too_large(limit: int, setting: str = "max_request_body_size_mb") -> BifrostError:
    return BifrostError(
        413,
        f"request body exceeds the limit of {limit} bytes ({setting})",
        error_type="request_too_large",
        is_bifrost_error=False,
        allow_fallbacks=False,
    )


def http_error(status: int, message: str) -> BifrostError:
    """A path or method the gateway does not serve (404/405), in Bifrost's shape."""
    return BifrostError(status, message, is_bifrost_error=False)


# -- who is calling ---------------------------------------------------------------------------------


def unauthorized(message: str = "admin authentication required") -> BifrostError:
    return BifrostError(401, message, error_type="unauthorized", is_bifrost_error=False)


def invalid_token(message: str) -> BifrostError:
    return BifrostError(
        401, message, top_type="invalid_token", error_type="invalid_token", is_bifrost_error=False
    )


def csrf_failed(message: str) -> BifrostError:
    return BifrostError(403, message, error_type="csrf_failed", is_bifrost_error=False)


def forbidden(message: str) -> BifrostError:
    return BifrostError(403, message, error_type="forbidden", is_bifrost_error=False)


def governance_error(status: int, code: str, message: str) -> BifrostError:
    """Governance codes go in the top-level ``type`` (spec §5.2); fallbacks still apply (spec §3)."""
    return BifrostError(status, message, top_type=code, error_type=code, is_bifrost_error=False)


# -- upstream faults ----------------------------------------------------------------------------------

_RETRY_SAME_KEY = frozenset({500, 502, 503, 504, 529})
_KEY_FAULT = frozenset({401, 402, 403})


def upstream(
    status: int, message: str, *, error_type: str | None = None, code: str | None = None, param: Any = None
) -> BifrostError:
    """An upstream error answer, passed through with its retry class (spec §3): 5xx and 529 retry on the
    same key, 429 rotates the key, 401/402/403 retire it for this request; other 4xx are returned."""
    return BifrostError(
        status,
        message,
        error_type=error_type,
        code=code,
        param=param,
        retryable=status in _RETRY_SAME_KEY or status == 429 or status in _KEY_FAULT,
        rotate_key=status == 429,
        dead_key=status in _KEY_FAULT,
    )


def answered_as_is(err: BifrostError, headers: Headers, body: bytes) -> BifrostError:
    """An upstream error answer (``err``, already mapped from its status and body) that a raw
    passthrough prefix hands to the client as it came: neither retried nor falling back (Bifrost's
    passthrough returns the upstream's status, headers and body whatever they are)."""
    err.answer = (headers, body)
    err.retryable = err.rotate_key = err.dead_key = err.allow_fallbacks = False
    return err


def timed_out(timeout_s: float) -> BifrostError:
    return BifrostError(
        504,
        f"request timed out (default is 30 seconds). You can increase it by setting the "
        f"default_request_timeout_in_seconds in the network config (current: {timeout_s:g}s)",
        error_type="request_timed_out",
    )


def connection_failed(provider: str, detail: str) -> BifrostError:
    return BifrostError(
        502,
        f"failed to connect to provider {provider}: {detail}",
        error_type="provider_connection_failed",
        retryable=True,
    )


def pool_exhausted() -> BifrostError:
    return BifrostError(
        503, "no free upstream connection in time", error_type="request_dropped", retryable=True
    )


def credentials_exhausted(provider: str, count: int, last: str) -> BifrostError:
    return BifrostError(
        502,
        f"all {count} key(s) for provider {provider} were rejected by the upstream (last: {last})",
        error_type="upstream_credentials_exhausted",
    )


def bad_response(message: str) -> BifrostError:
    """An upstream answer that breaks its API's promises (not JSON, wrong shape, cut short)."""
    return BifrostError(502, message, error_type="provider_bad_response", retryable=True)


def too_large_answer(provider: str, what: str, limit: int) -> BifrostError:
    """An upstream answer (or one stream event) over the configured size limit."""
    return BifrostError(
        502, f"provider {provider} sent {what} larger than {limit} bytes", error_type="provider_bad_response"
    )


# What a translator raises when an upstream's answer is not the shape its API promises (a field missing,
# of another type, not JSON): mapped to `bad_response` where provider answers are read.
MALFORMED = (KeyError, TypeError, ValueError, AttributeError, IndexError)


def unreadable(provider: str, exc: BaseException) -> BifrostError:
    """An upstream answer a translator could not read (one of `MALFORMED` raised on it)."""
    return bad_response(
        f"provider {provider} returned an answer the gateway could not read ({type(exc).__name__})"
    )


def stream_cut(provider: str, what: str) -> BifrostError:
    """An upstream stream that ended before its terminal event."""
    return BifrostError(
        502, f"provider {provider} ended the stream before {what}", error_type="provider_connection_failed"
    )


def upstream_failed(message: str, code: str | None = None) -> BifrostError:
    """A stream that reported failure (``response.failed``) after it started."""
    return BifrostError(500, message, error_type="api_error", code=code)


# -- the gateway's own faults -------------------------------------------------------------------------


def configuration_error(message: str) -> BifrostError:
    return BifrostError(500, message, error_type="configuration_error")


def store_unavailable(detail: str) -> BifrostError:
    return BifrostError(
        503, f"governance store unavailable: {detail}", error_type="governance_store_unavailable"
    )


def not_found(what: str) -> BifrostError:
    return BifrostError(404, what, error_type="not_found", is_bifrost_error=False)


def internal_error(message: str = "internal gateway error") -> BifrostError:
    return BifrostError(500, message, error_type="bifrost_internal")
