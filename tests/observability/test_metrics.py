"""GET /metrics after known traffic, read with prometheus_client's own parser: Bifrost's names and labels,
the right counts from one worker and from two, admin credentials when auth is on, bounded labels."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from bifrost_asgi import GatewayConfig, create_app
from tests.conftest import gateway_config, serve
from tests.governance.test_multiprocess import _serve
from tests.upstream import USAGE_CHAT, Upstream

CHAT = "/v1/chat/completions"
HELLO = [{"role": "user", "content": "Hello"}]

Samples = list[tuple[str, dict[str, str], float]]


def samples(text: str) -> Samples:
    return [(s.name, s.labels, s.value) for f in text_string_to_metric_families(text) for s in f.samples]


def total(found: Samples, name: str, **labels: str) -> float:
    """The sum of ``name`` over every series whose labels include ``labels``."""
    return sum(v for n, lab, v in found if n == name and labels.items() <= lab.items())


@pytest.fixture
def metered_url(upstream_url: str, upstream: Upstream) -> Iterator[str]:
    config = gateway_config(upstream_url)
    config["client"] = {"prometheus_labels": ["team"]}
    live = serve(create_app(GatewayConfig.from_dict(config)))
    yield live.url
    live.stop()


def _chat(client: httpx.Client, body: dict[str, Any], **headers: str) -> httpx.Response:
    return client.post(CHAT, json=body, headers=headers)


def test_known_traffic_is_counted_under_bifrosts_names_and_labels(metered_url: str) -> None:
    with httpx.Client(base_url=metered_url, timeout=10) as client:
        for _ in range(3):
            ok = _chat(client, {"model": "openai/gpt-4o-mini", "messages": HELLO}, **{"x-bf-dim-team": "red"})
            assert ok.status_code == 200
        # The primary cannot be reached: one failed upstream attempt, then the fallback answers.
        fell = _chat(
            client, {"model": "refused/gpt-4o", "messages": HELLO, "fallbacks": ["openai/gpt-4o-mini"]}
        )
        assert fell.status_code == 200 and fell.headers["x-bifrost-fallback-index"] == "1"
        # Refused before any provider: a known provider this gateway has no configuration for.
        assert _chat(client, {"model": "cohere/command", "messages": HELLO}).status_code == 400
        assert _chat(client, {"messages": HELLO}).status_code == 400  # not even a request: HTTP only
        found = samples(client.get("/metrics").text)

    assert total(found, "http_requests_total", path=CHAT, method="POST", status="200") == 4
    assert total(found, "http_requests_total", path=CHAT, status="400") == 2
    assert total(found, "http_request_duration_seconds_count", path=CHAT) == 6
    assert total(found, "http_request_size_bytes_count", path=CHAT) == 6
    assert total(found, "http_response_size_bytes_sum", path=CHAT, status="200") > 0

    assert total(found, "bifrost_upstream_requests_total") == 5  # 3 + the failed primary + its fallback
    assert total(found, "bifrost_success_requests_total") == 4
    served = {"provider": "openai", "model": "gpt-4o-mini", "method": "chat_completion"}
    assert total(found, "bifrost_success_requests_total", team="red", fallback_index="0", **served) == 3
    assert total(found, "bifrost_success_requests_total", team="", fallback_index="1", **served) == 1
    assert total(found, "bifrost_success_requests_total", selected_key_name="primary") == 4
    assert total(found, "bifrost_input_tokens_total", **served) == 4 * int(str(USAGE_CHAT["prompt_tokens"]))
    assert total(found, "bifrost_output_tokens_total", **served) == 4 * int(
        str(USAGE_CHAT["completion_tokens"])
    )
    assert total(found, "bifrost_cost_total", **served) > 0
    assert total(found, "bifrost_upstream_latency_seconds_count", is_success="true") == 4
    assert total(found, "bifrost_upstream_latency_seconds_count", is_success="false") == 1

    assert total(found, "bifrost_error_requests_total") == 2
    unreachable = {"provider": "refused", "model": "gpt-4o", "status_code": "502"}
    assert (
        total(found, "bifrost_error_requests_total", error_type="provider_connection_failed", **unreachable)
        == 1
    )
    assert (
        total(found, "bifrost_error_requests_total", status_code="400", error_type="caller_invalid_request")
        == 1
    )
    # One overhead figure per request that got as far as a model: the 4 answered and the refused one.
    assert total(found, "bifrost_gateway_overhead_seconds_count") == 5
    assert (
        0
        < total(found, "bifrost_gateway_overhead_seconds_sum")
        < total(found, "http_request_duration_seconds_sum", path=CHAT)
    )
    assert not [n for n, _, _ in found if n.startswith("bifrost_cache_hits")]  # no cache yet: no series


def test_a_streams_waits_on_its_upstream_are_not_gateway_overhead(metered_url: str) -> None:
    body = {"model": "openai/slow-stream", "messages": HELLO, "stream": True}  # a chunk every 100 ms
    with httpx.Client(base_url=metered_url, timeout=10) as client:
        started = time.perf_counter()
        with client.stream("POST", CHAT, json=body) as answer:
            events = 0
            for line in answer.iter_lines():
                events += line.startswith("data:")
                if events == 5:
                    break
        streamed = time.perf_counter() - started
        deadline = time.monotonic() + 5
        while True:  # the gateway notices the client left and ends the request
            found = samples(client.get("/metrics").text)
            if total(found, "bifrost_gateway_overhead_seconds_count", model="slow-stream") or (
                time.monotonic() > deadline
            ):
                break
            time.sleep(0.05)
    assert total(found, "bifrost_gateway_overhead_seconds_count", model="slow-stream") == 1
    # The stream spent ~0.4 s waiting for its upstream's chunks; the gateway's own share is a sliver.
    assert streamed > 0.3
    assert total(found, "bifrost_gateway_overhead_seconds_sum", model="slow-stream") < streamed / 4


def test_metrics_need_the_admin_credentials_when_auth_is_on(tmp_path: Path) -> None:
    config = {
        "providers": {"mock": {}},
        "governance": {
            "store": {"type": "sqlite", "path": str(tmp_path / "b.db")},
            "auth_config": {"is_enabled": True, "admin_username": "admin", "admin_password": "pw"},
        },
    }
    live = serve(create_app(GatewayConfig.from_dict(config)))
    try:
        with httpx.Client(base_url=live.url) as client:
            refused = client.get("/metrics")
            assert refused.status_code == 401 and refused.headers["www-authenticate"].startswith("Basic")
            assert client.get("/metrics", auth=("admin", "wrong")).status_code == 401
            ok = client.get("/metrics", auth=("admin", "pw"))
        assert ok.status_code == 200 and ok.headers["content-type"].startswith("text/plain")
        assert "http_requests_total" in ok.text
    finally:
        live.stop()


def test_metrics_are_open_without_auth_and_absent_when_turned_off() -> None:
    on = create_app(GatewayConfig.from_dict({"providers": {"mock": {}}}))
    off = create_app(GatewayConfig.from_dict({"providers": {"mock": {}}, "telemetry": {"metrics": False}}))
    for app, status in ((on, 200), (off, 404)):
        live = serve(app)
        try:
            assert httpx.get(live.url + "/metrics").status_code == status
        finally:
            live.stop()


def test_client_chosen_label_values_are_bounded() -> None:
    config = {
        "providers": {"mock": {}},
        "client": {"prometheus_labels": ["team"]},
        "telemetry": {"max_label_values": 2},
    }
    live = serve(create_app(GatewayConfig.from_dict(config)))
    try:
        with httpx.Client(base_url=live.url) as client:
            for team in ("a", "b", "c", "d", "a"):
                _chat(client, {"model": "mock/m", "messages": HELLO}, **{"x-bf-prom-team": team})
            _chat(
                client,
                {"model": "mock/m", "messages": HELLO},
                **{"x-bf-prom-team": "b", "x-bf-dim-team": "a"},
            )
            found = samples(client.get("/metrics").text)
    finally:
        live.stop()
    teams = {lab["team"]: v for n, lab, v in found if n == "http_requests_total" and lab["path"] == CHAT}
    # The first two values keep their name; later ones share "_other"; x-bf-dim-* wins over x-bf-prom-*.
    assert teams == {"a": 3, "b": 1, "_other": 2}


# -- several workers ------------------------------------------------------------------------------------


@pytest.fixture
def two_workers(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, request: pytest.FixtureRequest
) -> Iterator[str]:
    """`bifrost-asgi serve --workers 2`, sharing metrics through a directory given or made by serve."""
    config = tmp_path / "config.json"
    config.write_text(json.dumps({"providers": {"mock": {}}, "telemetry": {"metrics_flush_seconds": 0.2}}))
    (tmp_path / "metrics").mkdir()
    if request.param:
        monkeypatch.setenv("PROMETHEUS_MULTIPROC_DIR", str(tmp_path / "metrics"))
    else:
        monkeypatch.delenv("PROMETHEUS_MULTIPROC_DIR", raising=False)
    yield from _serve(config, 2)


def _scrape(url: str) -> Samples:
    # A new connection each time: the kernel hands it to either worker.
    with httpx.Client(base_url=url, timeout=5) as client:
        return samples(client.get("/metrics").text)


@pytest.mark.parametrize("two_workers", [True, False], ids=["given-dir", "serve-makes-one"], indirect=True)
def test_two_workers_report_the_same_totals_whichever_answers_the_scrape(
    two_workers: str, tmp_path: Path
) -> None:
    for _ in range(40):
        with httpx.Client(base_url=two_workers, timeout=10) as client:  # new connections: both workers serve
            assert _chat(client, {"model": "mock/m", "messages": HELLO}).status_code == 200
    want = {"requests": 40.0, "success": 40.0}
    deadline = time.monotonic() + 15
    agreeing = 0
    while agreeing < 8:
        found = _scrape(two_workers)
        got = {
            "requests": total(found, "http_requests_total", path=CHAT, status="200"),
            "success": total(found, "bifrost_success_requests_total", provider="mock"),
        }
        agreeing = agreeing + 1 if got == want else 0
        assert time.monotonic() < deadline, f"workers never agreed on {want}: last scrape {got}"
        time.sleep(0.05)
    # With the directory given, both workers (they served requests or scrapes) left their figures there.
    assert len(list((tmp_path / "metrics").glob("bifrost-metrics-*.json"))) in (0, 2)


def test_http_sizes_are_the_bytes_exchanged_for_json_and_streams_and_counted_once(
    upstream_url: str, upstream: Upstream
) -> None:
    """The journey's endpoints record their own http_* figures (no wrapper on their fast path); a host
    middleware puts the app on Starlette's path, where the wrapper records them instead — never both."""
    from starlette.middleware import Middleware
    from starlette.types import ASGIApp, Receive, Scope, Send

    class Passing:
        def __init__(self, app: ASGIApp) -> None:
            self.app = app

        async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
            await self.app(scope, receive, send)

    for middleware in ([], [Middleware(Passing)]):
        app = create_app(GatewayConfig.from_dict(gateway_config(upstream_url)))
        app.user_middleware = middleware
        live = serve(app)
        try:
            with httpx.Client(base_url=live.url, timeout=10) as client:
                body = json.dumps({"model": "openai/gpt-4o-mini", "messages": HELLO}).encode()
                plain = client.post(CHAT, content=body, headers={"content-type": "application/json"})
                streamed = json.dumps({"model": "openai/gpt-4o-mini", "messages": HELLO, "stream": True})
                with client.stream("POST", CHAT, content=streamed.encode()) as stream:
                    received = b"".join(stream.iter_bytes())
                refused = client.post(CHAT, content=b"{not json")
                found = samples(client.get("/metrics").text)
        finally:
            live.stop()
        assert plain.status_code == 200 and refused.status_code == 400 and b"[DONE]" in received
        assert total(found, "http_requests_total", path=CHAT) == 3, middleware
        assert total(found, "http_request_size_bytes_sum", path=CHAT) == len(body) + len(streamed) + 9
        sent = len(plain.content) + len(received)
        assert total(found, "http_response_size_bytes_sum", path=CHAT, status="200") == sent
        assert total(found, "http_response_size_bytes_sum", path=CHAT, status="400") == len(refused.content)
