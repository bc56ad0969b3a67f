"""Spans inside the host's trace (Starlette here; Django and Flask in their folders): the gateway's request
span is a child of the host's span, each upstream call a child of it with its fallback index and retry
number, the GenAI attributes are set, and each upstream request carries its own span's traceparent."""

from __future__ import annotations

import contextlib
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from opentelemetry import trace
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind, StatusCode
from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.routing import Mount

from bifrost_asgi import BifrostMiddleware, GatewayConfig, Principal, create_app
from bifrost_asgi.types import Scope
from tests.conftest import gateway_config, serve
from tests.otel import finished, parent_of
from tests.upstream import USAGE_CHAT, Upstream

KEY = "sk-bf-" + "t" * 43


class HostSpan:
    """What a host's instrumentation does: a SERVER span around each request, current while it runs."""

    def __init__(self, app: Any) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        with trace.get_tracer("host").start_as_current_span(f"host {scope['path']}", kind=SpanKind.SERVER):
            await self.app(scope, receive, send)


async def signed_in(scope: Scope) -> Principal:
    return Principal("u-42", via="token")


@pytest.fixture
def host_url(upstream_url: str, upstream: Upstream, tmp_path: Path) -> Iterator[str]:
    config = gateway_config(upstream_url)
    config["governance"] = {
        "store": {"type": "sqlite", "path": str(tmp_path / "b.db")},
        "virtual_keys": [{"id": "vk-t", "name": "tracer", "value": KEY, "allow_all_providers": True}],
    }
    gateway = create_app(GatewayConfig.from_dict(config))

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        async with gateway.router.lifespan_context(gateway):
            yield

    host = Starlette(
        lifespan=lifespan,
        routes=[Mount("/ai", app=gateway)],
        middleware=[
            Middleware(HostSpan),
            Middleware(BifrostMiddleware, path_prefix="/ai", principal=signed_in),
        ],
    )
    live = serve(host)
    yield live.url
    live.stop()


def test_gateway_spans_nest_in_the_host_span_and_traceparent_goes_upstream(
    host_url: str, upstream: Upstream, spans: InMemorySpanExporter
) -> None:
    flaky = f"flaky-{uuid.uuid4().hex[:8]}-1"  # the upstream answers 503 once, then 200: one retry
    body = {
        "model": "refused/gpt-4o",
        "messages": [{"role": "user", "content": "hi"}],
        "fallbacks": [f"openai/{flaky}"],
    }
    r = httpx.post(host_url + "/ai/v1/chat/completions", json=body, headers={"x-bf-vk": KEY}, timeout=10)
    assert r.status_code == 200, r.text

    found = finished(spans, "host /ai/v1/chat/completions", "chat refused/gpt-4o")
    (host,) = found["host /ai/v1/chat/completions"]
    (request,) = found["chat refused/gpt-4o"]
    assert request.context.trace_id == host.context.trace_id and parent_of(request) == host.context.span_id
    assert request.kind is SpanKind.INTERNAL

    attempts = sorted(
        found["chat gpt-4o"] + found[f"chat {flaky}"],
        key=lambda s: (s.attributes["bifrost.fallback_index"], s.attributes["bifrost.retry"]),  # type: ignore[index]
    )
    # The unreachable primary: its first call and two retries; then the fallback: a 503 and a retry.
    names = ("gen_ai.system", "bifrost.fallback_index", "bifrost.retry")
    shape = [tuple((s.attributes or {})[n] for n in names) for s in attempts]
    assert shape == [
        ("refused", 0, 0),
        ("refused", 0, 1),
        ("refused", 0, 2),
        ("openai", 1, 0),
        ("openai", 1, 1),
    ]
    assert all(parent_of(s) == request.context.span_id and s.kind is SpanKind.CLIENT for s in attempts)
    assert [s.status.status_code for s in attempts] == [StatusCode.ERROR] * 4 + [StatusCode.UNSET]
    assert attempts[3].attributes["http.response.status_code"] == 503  # type: ignore[index]

    assert dict(request.attributes or {}) | {"bifrost.request_id": "x"} == {
        "gen_ai.operation.name": "chat",
        "gen_ai.request.model": "refused/gpt-4o",
        "gen_ai.system": "openai",
        "gen_ai.response.model": flaky,
        "gen_ai.usage.input_tokens": USAGE_CHAT["prompt_tokens"],
        "gen_ai.usage.output_tokens": USAGE_CHAT["completion_tokens"],
        "gen_ai.response.finish_reasons": ("stop",),
        "bifrost.request_id": "x",
        "bifrost.request_type": "chat_completion",
        "bifrost.stream": False,
        "bifrost.fallback_index": 1,
        "bifrost.virtual_key.id": "vk-t",
        "bifrost.virtual_key.name": "tracer",
        "enduser.id": "u-42",
    }  # no bifrost.cost_usd: the flaky model has no price
    assert request.attributes["bifrost.request_id"] == r.headers["x-request-id"]  # type: ignore[index]

    # Each upstream request carried the traceparent of the attempt span that made it (W3C format).
    sent = [req.headers.get("traceparent") for req in upstream.state.requests]
    want = [
        f"00-{s.context.trace_id:032x}-{s.context.span_id:016x}-{s.context.trace_flags:02x}"
        for s in attempts[3:]
    ]
    assert sent == want


def test_a_stream_span_ends_with_the_stream_and_carries_its_usage(
    host_url: str, upstream: Upstream, spans: InMemorySpanExporter
) -> None:
    body = {"model": "openai/gpt-4o-mini", "messages": [{"role": "user", "content": "hi"}], "stream": True,
            "stream_options": {"include_usage": True}}  # fmt: skip
    with httpx.stream("POST", host_url + "/ai/v1/chat/completions", json=body, headers={"x-bf-vk": KEY}) as r:
        assert r.status_code == 200
        last = [line for line in r.iter_lines() if line][-1]
    assert last == "data: [DONE]"
    found = finished(spans, "chat openai/gpt-4o-mini")
    (request,) = found["chat openai/gpt-4o-mini"]
    (attempt,) = found["chat gpt-4o-mini"]
    assert parent_of(attempt) == request.context.span_id
    assert (
        attempt.end_time is not None and request.end_time is not None and attempt.end_time <= request.end_time
    )
    for span in (request, attempt):
        assert span.attributes["gen_ai.usage.output_tokens"] == USAGE_CHAT["completion_tokens"]  # type: ignore[index]
        assert span.attributes["bifrost.stream"] if span is request else True  # type: ignore[index]


def test_an_error_marks_the_request_span(host_url: str, spans: InMemorySpanExporter) -> None:
    body = {"model": "openai/status-400", "messages": [{"role": "user", "content": "hi"}]}
    r = httpx.post(host_url + "/ai/v1/chat/completions", json=body, headers={"x-bf-vk": KEY})
    assert r.status_code == 400
    (request,) = finished(spans, "chat openai/status-400")["chat openai/status-400"]
    assert request.status.status_code is StatusCode.ERROR
    assert request.attributes["http.response.status_code"] == 400  # type: ignore[index]


def test_without_an_sdk_nothing_is_traced_and_nothing_is_sent_upstream(
    host_url: str, upstream: Upstream
) -> None:
    body = {"model": "openai/gpt-4o-mini", "messages": [{"role": "user", "content": "hi"}]}
    assert (
        httpx.post(host_url + "/ai/v1/chat/completions", json=body, headers={"x-bf-vk": KEY}).status_code
        == 200
    )
    assert "traceparent" not in upstream.state.requests[0].headers
