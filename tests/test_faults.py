"""Broken upstreams end in an honest error, on every provider family and dialect (issue 11).

The fault-injecting upstream (tests/fault_upstream.py) misbehaves as the model name asks. Whatever it
does, the gateway answers in the route's own error shape with the right status, never a 500 or a
fabricated success; a stream cut short ends in the dialect's error event and is logged as an error;
an upstream echoing its credential never gets it to the client or the logs.
"""

from __future__ import annotations

import gc
import os
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import StatusCode
from prometheus_client.parser import text_string_to_metric_families

from bifrost_asgi import GatewayConfig, create_app
from bifrost_asgi.gateway import Gateway
from bifrost_asgi.providers import Call, ChunkStream, Reply
from tests.conftest import LiveServer, serve
from tests.fault_upstream import FaultUpstream
from tests.otel import finished

KEYS = {
    "openai": "sk-proj-LIVEOPENAIKEY0123456789abcdef",
    "groq": "gsk_LIVEGROQKEY0123456789abcdef",
    "anthropic": "sk-ant-api03-LIVEANTHROPICKEY0123456789",
    "gemini": "AIzaSyLIVEGEMINIKEY0123456789abcdef",
}
PROVIDERS = ("openai", "groq", "anthropic", "gemini")
STREAM_FAULTS = ("cut", "not-json", "wrong-shape", "huge-event")
JSON_FAULTS = ("not-json", "wrong-shape", "huge-event")


@pytest.fixture(scope="module")
def fault() -> Iterator[tuple[LiveServer, FaultUpstream]]:
    app = FaultUpstream()
    live = serve(app)
    yield live, app
    live.stop()


def _config(url: str, logs: Path, **network: Any) -> dict[str, Any]:
    net = {
        "base_url": url,
        "max_retries": 1,
        "retry_backoff_initial": 1,
        "retry_backoff_max": 2000,
        **network,
    }
    providers: dict[str, Any] = {
        name: {"keys": [{"value": KEYS[name]}], "network_config": net} for name in PROVIDERS
    }
    providers["groq"]["kind"] = "openai-compatible"
    providers["mock"] = {}
    return {
        "providers": providers,
        "client": {"max_upstream_response_size_mb": 1, "max_stream_event_size_mb": 1},
        "governance": {"store": {"type": "memory"}, "logs": {"path": str(logs), "flush_interval_ms": 10}},
    }


@pytest.fixture
async def client(fault: tuple[LiveServer, FaultUpstream], tmp_path: Path) -> AsyncIterator[httpx.AsyncClient]:
    fault[1].state.reset()
    app = create_app(GatewayConfig.from_dict(_config(fault[0].url, tmp_path / "logs.db")))
    await app.state.gateway.start()
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app), base_url="http://gw", timeout=30
    ) as c:
        yield c
    await app.state.gateway.aclose()


def _gateway(client: httpx.AsyncClient) -> Gateway:
    transport = client._transport
    assert isinstance(transport, httpx.ASGITransport)
    gateway: Gateway = transport.app.state.gateway  # type: ignore[attr-defined]
    return gateway


async def _logs(client: httpx.AsyncClient) -> list[dict[str, Any]]:
    gw = _gateway(client)
    assert gw.logs is not None
    await gw.logs.flush()
    logs: list[dict[str, Any]] = (await gw.logs.store.search({}))["logs"]
    return logs


def _chat(model: str, stream: bool = False) -> dict[str, Any]:
    return {"model": model, "messages": [{"role": "user", "content": "hi"}], "stream": stream}


def _responses(model: str, stream: bool = False) -> dict[str, Any]:
    return {"model": model, "input": "hi", "stream": stream}


def _messages(model: str, stream: bool = False) -> dict[str, Any]:
    return {
        "model": model,
        "max_tokens": 10,
        "messages": [{"role": "user", "content": "hi"}],
        "stream": stream,
    }


# (route, body builder, model prefix) for every dialect and provider family.
ROUTES = [
    *[("/v1/chat/completions", _chat, f"{p}/") for p in PROVIDERS],
    *[("/v1/responses", _responses, f"{p}/") for p in PROVIDERS],
    ("/anthropic/v1/messages", _messages, ""),  # a bare model: anthropic, natively
    ("/anthropic/v1/messages", _messages, "openai/"),  # through the reverse translation
]
IDS = [f"{path.split('/')[-1]}-{prefix.rstrip('/') or 'native'}" for path, _, prefix in ROUTES]


def _passes_through(path: str, prefix: str) -> bool:
    """Bodies in the provider's own format go through untouched (openai: every OpenAI route; the
    compatible family: chat; anthropic: /anthropic): their shape is not the gateway's to judge."""
    own = (prefix == "openai/" and path.startswith("/v1/")) or (prefix == "groq/" and "chat" in path)
    return own or (prefix == "" and path.startswith("/anthropic"))


def _error_type(path: str, body: dict[str, Any]) -> str:
    if path.startswith("/anthropic"):
        assert body["type"] == "error"
        return str(body["error"]["type"])
    return str(body["error"]["type"])


@pytest.mark.parametrize(("path", "build", "prefix"), ROUTES, ids=IDS)
@pytest.mark.parametrize("kind", JSON_FAULTS)
async def test_a_malformed_or_huge_answer_is_a_502(
    client: httpx.AsyncClient, path: str, build: Any, prefix: str, kind: str
) -> None:
    r = await client.post(path, json=build(prefix + kind))
    if kind == "wrong-shape" and _passes_through(path, prefix):
        assert r.status_code == 200  # passed on as the upstream sent it
        return
    assert r.status_code == 502, r.text
    expected = "api_error" if path.startswith("/anthropic") else "provider_bad_response"
    assert _error_type(path, r.json()) == expected


@pytest.mark.parametrize(("path", "build", "prefix"), ROUTES[:-2], ids=IDS[:-2])
async def test_a_malformed_answer_falls_back(
    client: httpx.AsyncClient, path: str, build: Any, prefix: str
) -> None:
    body = {**build(prefix + "not-json"), "fallbacks": ["mock/mock-1"]}
    r = await client.post(path, json=body)
    assert r.status_code == 200, r.text
    assert r.headers["x-bifrost-provider"] == "mock"


class GarbledProvider:
    """A host's provider whose call succeeds with an answer the gateway cannot read (a list, where every
    answer is an object): only the step after the call, pricing and rendering it, finds that out."""

    uses_keys = False

    def __init__(self, name: str, config: Any, transport: Any, base_url: str) -> None:
        self.name = name

    def models(self) -> list[str]:
        return ["garbled-1"]

    async def send(self, call: Call, key: Any) -> Reply:
        return Reply(["not", "an", "object"])  # type: ignore[arg-type]

    async def open_stream(self, call: Call, key: Any) -> ChunkStream:
        raise AssertionError("not streamed here")


async def test_an_answer_that_cannot_be_read_is_a_failed_attempt_in_metrics_and_spans(
    spans: InMemorySpanExporter,
) -> None:
    """The call succeeded, its answer could not be rendered: the fallback answers, and the first target
    counts as a failed upstream request, its span ended as an error (not left open, never exported)."""
    config = {
        "providers": {"garbled": {"network_config": {"base_url": "http://garbled.invalid"}}, "mock": {}}
    }
    app = create_app(GatewayConfig.from_dict(config), providers={"garbled": GarbledProvider})
    await app.state.gateway.start()
    try:
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://gw") as client:
            # The answer is read (priced, translated into Anthropic's dialect) only after the call.
            body = {**_messages("garbled/garbled-1"), "fallbacks": ["mock/mock-1"]}
            r = await client.post("/anthropic/v1/messages", json=body)
            assert r.status_code == 200 and r.headers["x-bifrost-provider"] == "mock", r.text
            scraped = (await client.get("/metrics")).text
    finally:
        await app.state.gateway.aclose()
    found = finished(spans, "responses garbled/garbled-1", "responses garbled-1", "responses mock-1")
    (attempt,) = found["responses garbled-1"]  # one call: it succeeded, so it was not retried
    assert attempt.status.status_code is StatusCode.ERROR
    assert attempt.attributes["http.response.status_code"] == 502  # type: ignore[index]
    (served,) = found["responses mock-1"]
    assert served.status.status_code is StatusCode.UNSET

    metrics = {
        (s.name, s.labels.get("provider"), s.labels.get("error_type")): s.value
        for family in text_string_to_metric_families(scraped)
        for s in family.samples
    }
    assert metrics[("bifrost_upstream_requests_total", "garbled", None)] == 1
    assert metrics[("bifrost_error_requests_total", "garbled", "provider_server_error")] == 1
    assert metrics[("bifrost_success_requests_total", "mock", None)] == 1
    assert ("bifrost_success_requests_total", "garbled", None) not in metrics


@pytest.mark.parametrize(("path", "build", "prefix"), ROUTES, ids=IDS)
@pytest.mark.parametrize("kind", STREAM_FAULTS)
async def test_a_broken_stream_ends_in_an_error_and_is_logged_as_one(
    client: httpx.AsyncClient, path: str, build: Any, prefix: str, kind: str
) -> None:
    r = await client.post(path, json=build(prefix + kind, stream=True))
    assert r.status_code == 200
    text = r.text
    if kind in ("not-json", "wrong-shape") and _passes_through(path, prefix):
        assert "event: error" not in text  # passed on as sent; not the gateway's to judge
        return
    assert "data: [DONE]" not in text
    last = [block for block in text.strip().split("\n\n") if block][-1]
    assert "error" in last.split("\n")[0] or '"error"' in last, last
    if path == "/v1/responses":  # OpenAI's typed error event, with the BifrostError beside it
        event = orjson.loads(last.split("data: ", 1)[1])
        assert event["type"] == "error" and isinstance(event["sequence_number"], int)
        assert event["message"] and event["error"]["message"] == event["message"]
    logs = await _logs(client)
    assert [log["status"] for log in logs] == ["error"]


async def test_a_responses_stream_of_only_done_is_an_error(client: httpx.AsyncClient) -> None:
    r = await client.post("/v1/responses", json=_responses("openai/done-only", stream=True))
    assert r.status_code == 200 and "event: error" in r.text  # not an empty "success"
    assert [log["status"] for log in await _logs(client)] == ["error"]


async def test_a_complete_stream_is_a_success(client: httpx.AsyncClient) -> None:
    for path, build, prefix in ROUTES:
        r = await client.post(path, json=build(prefix + "ok", stream=True))
        assert r.status_code == 200 and "event: error" not in r.text, (path, prefix, r.text)
    assert {log["status"] for log in await _logs(client)} == {"success"}


@pytest.mark.parametrize("provider", PROVIDERS)
async def test_an_echoed_key_never_reaches_the_client_or_the_logs(
    client: httpx.AsyncClient, provider: str, tmp_path: Path
) -> None:
    for path, build in (("/v1/chat/completions", _chat), ("/v1/responses", _responses)):
        for stream in (False, True):
            r = await client.post(path, json=build(f"{provider}/echo-key", stream=stream))
            assert r.status_code == 502, r.text
            assert KEYS[provider] not in r.text and "[REDACTED]" in r.text
            assert all(KEYS[provider] not in v for v in r.headers.values())
    logs = await _logs(client)
    assert logs and all(KEYS[provider] not in orjson.dumps(log).decode() for log in logs)
    assert KEYS[provider].encode() not in (tmp_path / "logs.db").read_bytes()


async def test_retry_after_is_honoured(
    client: httpx.AsyncClient, fault: tuple[LiveServer, FaultUpstream]
) -> None:
    r = await client.post("/v1/chat/completions", json=_chat("openai/retry-after"))
    assert r.status_code == 200
    first, second = fault[1].state.times
    assert second - first >= 1.0  # the upstream asked for a second; our own backoff is 1 ms


async def test_retry_after_is_capped_by_the_maximum_backoff(
    fault: tuple[LiveServer, FaultUpstream], tmp_path: Path
) -> None:
    fault[1].state.reset()
    app = create_app(GatewayConfig.from_dict(_config(fault[0].url, tmp_path / "l.db", retry_backoff_max=50)))
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://gw") as c:
        await app.state.gateway.start()
        r = await c.post("/v1/chat/completions", json=_chat("openai/retry-after"))
        await app.state.gateway.aclose()
    assert r.status_code == 200
    first, second = fault[1].state.times
    assert second - first < 0.9  # capped at retry_backoff_max (50 ms), not the upstream's second


def _open_fds() -> int:
    return len(os.listdir("/proc/self/fd"))


def _rss_kb() -> int:
    with open("/proc/self/status") as f:
        return next(int(line.split()[1]) for line in f if line.startswith("VmRSS:"))


async def test_file_descriptors_and_memory_stay_flat_over_500_faulty_requests(
    fault: tuple[LiveServer, FaultUpstream], tmp_path: Path
) -> None:
    gateway = serve(create_app(GatewayConfig.from_dict(_config(fault[0].url, tmp_path / "logs.db"))))
    faults = [
        (path, build, prefix, kind) for path, build, prefix in ROUTES for kind in (*STREAM_FAULTS, "echo-key")
    ]
    try:
        async with httpx.AsyncClient(base_url=gateway.url, timeout=30) as c:

            async def burst(n: int) -> None:
                for i in range(n):
                    path, build, prefix, kind = faults[i % len(faults)]
                    r = await c.post(path, json=build(prefix + kind, stream=i % 2 == 0))
                    assert r.status_code < 500 or r.status_code == 502

            await burst(100)  # warm up: pools, caches, encodings
            gc.collect()
            fds, rss = _open_fds(), _rss_kb()
            await burst(500)
            gc.collect()
            assert _open_fds() <= fds + 2  # no leaked connections or files
            assert _rss_kb() - rss < 30 * 1024  # no leak (500 requests, several of 2 MB answers)
    finally:
        gateway.stop()
