"""What `bifrost-asgi serve` adds to uvicorn: redacted access logs and a deadline for a connection's
first request (issue 11)."""

from __future__ import annotations

import asyncio
import gc
import logging
import socket
import threading
import time
from collections.abc import Iterator
from typing import Any

import pytest
import uvicorn

from bifrost_asgi import GatewayConfig, create_app
from bifrost_asgi.cli.main import YOUNG_COLLECTION_THRESHOLD, _server_options, app_factory, main
from bifrost_asgi.cli.server import (
    H11Protocol,
    HttpToolsProtocol,
    RedactQuery,
    access_log_config,
    redact_query,
)


@pytest.mark.parametrize(
    ("path", "expected"),
    [
        ("/v1/models", "/v1/models"),
        ("/v1/models?x-bf-vk=sk-bf-abc&limit=3", "/v1/models?x-bf-vk=[REDACTED]&limit=3"),
        ("/v1beta/models?key=AIzaSyXYZ", "/v1beta/models?key=[REDACTED]"),
        ("/x?api_key=whatever&API-KEY=b", "/x?api_key=[REDACTED]&API-KEY=[REDACTED]"),
        ("/x?note=sk-live-123", "/x?note=[REDACTED]"),  # a key-like value under any name
        ("/x?token=abc&page=2", "/x?token=[REDACTED]&page=2"),
        ("/x?q=hello+world", "/x?q=hello+world"),
    ],
)
def test_key_like_query_values_are_redacted(path: str, expected: str) -> None:
    assert redact_query(path) == expected


def test_the_access_log_filter_rewrites_the_path_argument() -> None:
    record = logging.LogRecord("uvicorn.access", logging.INFO, "", 0, '%s - "%s %s HTTP/%s" %d', None, None)
    record.args = ("127.0.0.1:1", "GET", "/v1/models?x-bf-vk=sk-bf-secret", "1.1", 200)
    assert RedactQuery().filter(record)
    assert record.getMessage() == '127.0.0.1:1 - "GET /v1/models?x-bf-vk=[REDACTED] HTTP/1.1" 200'
    config = access_log_config()
    assert config["handlers"]["access"]["filters"] == ["redact_query"]


def test_serve_options_wire_the_protocol_limits_and_log_config() -> None:
    class Args:
        host, port, log_level, timeout_keep_alive, limit_concurrency = "127.0.0.1", 9, "info", 2.5, 7

    options = _server_options(Args())  # type: ignore[arg-type]
    assert options["timeout_keep_alive"] == 2.5 and options["limit_concurrency"] == 7
    assert options["http"].startswith("bifrost_asgi.cli.server:")
    assert options["log_config"]["filters"]["redact_query"]
    threshold = gc.get_threshold()
    try:
        assert app_factory().state.gateway.config.providers.keys() == {"mock"}  # no config: the mock only
        assert gc.get_freeze_count() > 10_000  # each worker keeps its startup heap out of full collections
        assert gc.get_threshold()[0] == YOUNG_COLLECTION_THRESHOLD  # and collects its young less often
    finally:
        gc.unfreeze()
        gc.set_threshold(*threshold)


def test_serve_freezes_the_startup_heap_and_collects_the_young_generation_less_often(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """What startup built (the price catalog, modules, the config) is frozen before serving: a full
    collection then walks only what requests left behind, not ~65,000 objects each time. And the young
    generation is collected every 10,000 allocations rather than every 700."""
    seen: dict[str, int] = {}
    monkeypatch.setattr(
        uvicorn,
        "run",
        lambda app, **options: seen.update(frozen=gc.get_freeze_count(), young=gc.get_threshold()[0]),
    )
    threshold = gc.get_threshold()
    try:
        assert main(["serve", "--log-level", "warning"]) == 0
    finally:
        gc.unfreeze()
        gc.set_threshold(*threshold)
    assert seen["frozen"] > 10_000
    # The young generation is collected every 10,000 allocations, not CPython's 700: under load each
    # collection walked the requests in flight only to promote them (BENCHMARKS.md).
    assert seen["young"] == YOUNG_COLLECTION_THRESHOLD > threshold[0]


@pytest.fixture(params=[H11Protocol, HttpToolsProtocol], ids=["h11", "httptools"])
def server(request: pytest.FixtureRequest) -> Iterator[int]:
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    port = int(sock.getsockname()[1])
    app = create_app(GatewayConfig.from_dict({"providers": {"mock": {}}}))
    config = uvicorn.Config(
        app, http=request.param, timeout_keep_alive=1, log_level="warning", lifespan="off", loop="asyncio"
    )
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    while not server.started:
        time.sleep(0.01)
    yield port
    server.should_exit = True
    thread.join(timeout=10)


def _closed_within(port: int, send: bytes, seconds: float) -> bool:
    with socket.create_connection(("127.0.0.1", port)) as s:
        if send:
            s.sendall(send)
        s.settimeout(seconds)
        try:
            while s.recv(4096):
                pass
        except TimeoutError:
            return False
        return True


def test_a_connection_that_never_sends_a_request_is_closed(server: int) -> None:
    assert _closed_within(server, b"", 5.0)  # the 1 s deadline, not forever


def test_a_request_that_never_completes_its_headers_is_closed(server: int) -> None:
    assert _closed_within(server, b"GET /health HTTP/1.1\r\nHost: x\r\n", 5.0)


async def test_a_request_in_time_is_served(server: int) -> None:
    reader, writer = await asyncio.open_connection("127.0.0.1", server)
    writer.write(b"GET /health HTTP/1.1\r\nHost: x\r\n\r\n")
    await writer.drain()
    answer: Any = await asyncio.wait_for(reader.read(4096), 5)
    assert answer.startswith(b"HTTP/1.1 200")
    writer.close()
