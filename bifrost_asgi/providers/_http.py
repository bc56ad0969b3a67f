"""Mapping upstream failures to BifrostErrors: the one place that knows httpx's exception tree.

Retry classes follow spec §3: transport errors and 500/502/503/504/529 retry on the same key with
backoff; 429 rotates the key with backoff; 401/403/402 retire the key for this request and rotate
without backoff; other 4xx are the caller's and are returned as they are.
"""

from __future__ import annotations

from typing import Any

import httpx
import orjson

from bifrost_asgi._errors import BifrostError, connection_failed, timed_out

__all__ = ["map_transport_error", "upstream_error"]

_RETRY_SAME_KEY = frozenset({500, 502, 503, 504, 529})
_KEY_FAULT = frozenset({401, 402, 403})
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


def map_transport_error(exc: httpx.HTTPError, provider: str, timeout: float) -> BifrostError:
    """Translate an httpx exception raised before a response arrived."""
    if isinstance(exc, httpx.TimeoutException) and not isinstance(exc, httpx.PoolTimeout):
        # Spec §3: a timeout is not retried on the same provider; it goes straight to fallbacks.
        return timed_out(timeout)
    if isinstance(exc, httpx.PoolTimeout):
        return BifrostError(
            503, "no free upstream connection in time", error_type="request_dropped", retryable=True
        )
    detail = type(exc).__name__ if not str(exc) else f"{type(exc).__name__}: {exc}"
    return connection_failed(provider, detail)


def upstream_error(status: int, content: bytes, provider: str) -> BifrostError:
    """An upstream error response, with the provider's type/code/message kept verbatim (spec §5.1)."""
    error = _parse_error_body(content)
    message = str(error.get("message") or f"upstream returned HTTP {status}")
    code = error.get("code")
    err = BifrostError(
        status,
        message,
        error_type=_opt_str(error.get("type")),
        code=_opt_str(code),
        param=error.get("param"),
        retryable=status in _RETRY_SAME_KEY or status == 429 or status in _KEY_FAULT,
        rotate_key=status == 429,
        dead_key=status in _KEY_FAULT,
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
