"""The gateway's one error type, and the constructors for every error it emits.

Every failure a client can see is a :class:`BifrostError`, serialised as Bifrost's ``BifrostError``
JSON shape (seed 001)::

    {"event_id", "type"?, "is_bifrost_error", "status_code",
     "error": {"type"?, "code"?, "message", "param"?},
     "extra_fields": {"provider"?, "model_requested"?, "request_type"?, ...}}

The tree of causes, mapped in one place (``providers/_http.py`` for upstream faults):

    BifrostError
    ├── caller faults (400): invalid JSON, missing model / input / prompt, unknown provider
    ├── 413 request body too large
    ├── upstream faults: the provider's own status and error body, passed through
    │   ├── 502 provider_connection_failed (refused, DNS, reset before a response)
    │   ├── 502 upstream_credentials_exhausted (every key answered 401/403)
    │   └── 504 request_timed_out
    └── governance (403/402/429, code in the top-level ``type``)
"""

from __future__ import annotations

import uuid
from typing import Any

import orjson

__all__ = ["BifrostError"]


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


def body_too_large(limit: int) -> BifrostError:
    return BifrostError(
        413,
        f"request body exceeds the limit of {limit} bytes (max_request_body_size_mb)",
        error_type="request_too_large",
        is_bifrost_error=False,
        allow_fallbacks=False,
    )


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


def credentials_exhausted(provider: str) -> BifrostError:
    return BifrostError(
        502,
        f"all keys for provider {provider} were rejected by the upstream",
        error_type="upstream_credentials_exhausted",
    )


def internal_error() -> BifrostError:
    return BifrostError(500, "internal gateway error", error_type="bifrost_internal")
