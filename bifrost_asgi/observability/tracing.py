"""OpenTelemetry spans inside the host's own trace.

    host request span (Django, Flask, FastAPI, Starlette: whatever instrumented the host)
      └─ "chat openai/gpt-4o"          one per gateway request (INTERNAL), GenAI attributes, vk, user
           ├─ "chat gpt-4o" (CLIENT)    one per upstream call: fallback index, retry number, provider, model
           └─ ...                       traceparent of this span goes upstream (W3C Trace Context)

Only ``opentelemetry-api`` is needed: without an SDK the global tracer provider is a proxy with nothing
behind it, and then no span is even started (`Tracing.tracer` answers None), so a host that does not trace
pays one clock read per request (it looks for an SDK again each second). Exporters are the host's choice.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from contextvars import ContextVar
from typing import Any

from opentelemetry import trace
from opentelemetry.propagate import inject
from opentelemetry.trace import NoOpTracerProvider, ProxyTracerProvider, Tracer, TracerProvider

__all__ = ["Tracing", "finish_reasons", "look_again", "operation_name", "trace_headers"]

# Set while an upstream call's span is current: only then is traceparent added to the upstream request.
_PROPAGATE: ContextVar[bool] = ContextVar("bifrost_asgi.propagate", default=False)
_SCOPE = "bifrost_asgi"


class Tracing:
    """Where spans come from: the provider given to `create_app`, else the global one (checked per request,
    so a host that configures its SDK after building the gateway is traced from then on)."""

    def __init__(self, provider: TracerProvider | None = None) -> None:
        self._fixed = provider.get_tracer(_SCOPE) if provider is not None else None
        self._global: tuple[TracerProvider, Tracer] | None = None

    def tracer(self) -> Tracer | None:
        if self._fixed is not None:
            return self._fixed
        if self._global is None and time.monotonic() < _untraced_until:
            return None  # no SDK when last looked, under a second ago
        provider = trace.get_tracer_provider()
        if isinstance(provider, ProxyTracerProvider | NoOpTracerProvider):
            _no_sdk_seen()
            return None  # no SDK configured: no spans, no cost
        cached = self._global
        if cached is None or cached[0] is not provider:
            cached = self._global = (provider, provider.get_tracer(_SCOPE))
        return cached[1]


# Without an SDK, asking OpenTelemetry for the global provider reads the environment each time (~2-3 µs of
# a request, measured in place: BENCHMARKS.md); the answer "no SDK" is kept for a second instead, so a
# host that configures its SDK after the gateway has started is traced within a second.
_LOOK_AGAIN_SECONDS = 1.0
_untraced_until = 0.0


def _no_sdk_seen() -> None:
    global _untraced_until
    _untraced_until = time.monotonic() + _LOOK_AGAIN_SECONDS


def look_again() -> None:
    """Look for the global tracer provider on the next request (after the host has just set one)."""
    global _untraced_until
    _untraced_until = 0.0


def propagating(on: bool) -> Any:
    """Mark the current upstream call as traced (returns the token to reset it with)."""
    return _PROPAGATE.set(on)


def stop_propagating(token: Any) -> None:
    _PROPAGATE.reset(token)


def trace_headers(headers: Mapping[str, str]) -> Mapping[str, str]:
    """``headers`` plus ``traceparent`` (and ``tracestate``, baggage) of the current upstream call's span,
    when the gateway is tracing it; else ``headers`` itself, untouched."""
    if not _PROPAGATE.get():
        return headers
    carrier = dict(headers)
    inject(carrier)
    return carrier


# GenAI semantic conventions: gen_ai.operation.name by our request type.
_OPERATIONS = {
    "chat_completion": "chat",
    "chat_completion_stream": "chat",
    "text_completion": "text_completion",
    "text_completion_stream": "text_completion",
    "responses": "responses",
    "responses_stream": "responses",
    "count_tokens": "count_tokens",
    "messages_count_tokens": "count_tokens",
    "messages": "chat",
    "messages_stream": "chat",
    "embedding": "embeddings",
    "embeddings": "embeddings",
}


def operation_name(request_type: str) -> str:
    return _OPERATIONS.get(request_type, request_type)


def finish_reasons(body: Mapping[str, Any]) -> list[str]:
    """``gen_ai.response.finish_reasons`` from an answer in any of our shapes: chat and text choices,
    a Responses status (with the incomplete reason), an Anthropic stop_reason."""
    choices = body.get("choices")
    if isinstance(choices, list):
        return [str(c["finish_reason"]) for c in choices if isinstance(c, dict) and c.get("finish_reason")]
    stop = body.get("stop_reason")
    if isinstance(stop, str):
        return [stop]
    status = body.get("status")
    if isinstance(status, str):
        details = body.get("incomplete_details")
        reason = details.get("reason") if isinstance(details, dict) else None
        return [str(reason) if status == "incomplete" and reason else status]
    return []
