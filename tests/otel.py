"""An OpenTelemetry SDK for one test: spans kept in memory, the global tracer provider restored after.

OpenTelemetry lets the global provider be set once per process; its own test utilities reset the same
two globals between tests, as `spans` does, so the rest of the suite runs without an SDK (untraced).
"""

from __future__ import annotations

import time
from collections.abc import Iterator

import pytest
from opentelemetry import trace
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.util._once import Once

from bifrost_asgi.observability.tracing import look_again


def _reset_globals() -> None:
    trace._TRACER_PROVIDER_SET_ONCE = Once()
    trace._TRACER_PROVIDER = None


@pytest.fixture
def spans() -> Iterator[InMemorySpanExporter]:
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    _reset_globals()
    trace.set_tracer_provider(provider)
    look_again()  # a gateway that served untraced requests a moment ago sees the SDK at once
    try:
        yield exporter
    finally:
        provider.shutdown()
        _reset_globals()


def by_name(exporter: InMemorySpanExporter) -> dict[str, list[ReadableSpan]]:
    found: dict[str, list[ReadableSpan]] = {}
    for span in exporter.get_finished_spans():
        found.setdefault(span.name, []).append(span)
    return found


def parent_of(span: ReadableSpan) -> int | None:
    return span.parent.span_id if span.parent is not None else None


def finished(
    exporter: InMemorySpanExporter, *names: str, timeout: float = 5.0
) -> dict[str, list[ReadableSpan]]:
    """The finished spans by name, once every span in ``names`` has ended: the gateway ends its request
    span after the answer's last byte (and the usage log), so a client can be a moment ahead of it."""
    deadline = time.monotonic() + timeout
    while True:
        found = by_name(exporter)
        if all(name in found for name in names) or time.monotonic() > deadline:
            return found
        time.sleep(0.01)


def nested_request(
    exporter: InMemorySpanExporter, host: trace.Span, request: str, attempt: str
) -> ReadableSpan:
    """The gateway's request span named ``request``, after checking it is a child of the ``host`` span (in
    its trace) and the parent of the one upstream call's span named ``attempt``."""
    found = finished(exporter, request, attempt)
    (gateway,) = found[request]
    (call,) = found[attempt]
    assert gateway.context.trace_id == host.get_span_context().trace_id
    assert parent_of(gateway) == host.get_span_context().span_id
    assert parent_of(call) == gateway.context.span_id
    return gateway
