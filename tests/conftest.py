from __future__ import annotations

import os
import socket
import threading
import time
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any

import pytest
import uvicorn

from bifrost_asgi import GatewayConfig, create_app
from bifrost_asgi.gateway import Gateway
from tests.otel import spans  # noqa: F401  (the fixture: an OpenTelemetry SDK for one test)
from tests.upstream import Upstream

_ENV_PREFIXES = ("BIFROST_", "OPENAI_", "ANTHROPIC_")
_PROXY_VARS = ("HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY", "NO_PROXY", "http_proxy", "https_proxy", "all_proxy")


@pytest.fixture(autouse=True)
def _clean_env(monkeypatch: pytest.MonkeyPatch) -> None:
    """Tests never see the developer's keys or proxies."""
    for name in list(os.environ):
        if name.startswith(_ENV_PREFIXES) or name in _PROXY_VARS:
            monkeypatch.delenv(name, raising=False)


@dataclass
class LiveServer:
    url: str
    server: uvicorn.Server
    thread: threading.Thread

    def stop(self) -> None:
        self.server.should_exit = True
        self.thread.join(timeout=10)


def serve(app: Any) -> LiveServer:
    """Run ``app`` under a real uvicorn server on a free loopback port, in a background thread."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    # The stdlib loop: tests must not depend on whether uvloop happens to be installed.
    config = uvicorn.Config(
        app, log_level="warning", lifespan="on", ws="none", loop="asyncio", timeout_graceful_shutdown=2
    )
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    deadline = time.monotonic() + 10
    while not server.started:
        if time.monotonic() > deadline or not thread.is_alive():
            raise RuntimeError("uvicorn did not start")
        time.sleep(0.01)
    return LiveServer(f"http://127.0.0.1:{port}", server, thread)


@pytest.fixture(scope="session")
def upstream_app() -> Upstream:
    return Upstream()


@pytest.fixture(scope="session")
def upstream_url(upstream_app: Upstream) -> Iterator[str]:
    live = serve(upstream_app)
    yield live.url
    live.stop()


@pytest.fixture
def upstream(upstream_app: Upstream) -> Upstream:
    upstream_app.state.reset()
    return upstream_app


def gateway_config(upstream_url: str) -> dict[str, Any]:
    """Providers used across the integration tests, all pointing at the upstream-shaped server."""
    fast_retry = {"max_retries": 2, "retry_backoff_initial": 1, "retry_backoff_max": 5}
    return {
        "providers": {
            "openai": {
                "keys": [{"name": "primary", "value": "sk-test-primary", "models": []}],
                "network_config": {"base_url": upstream_url, **fast_retry},
            },
            "groq": {
                "keys": [{"value": "gsk-test"}],
                "network_config": {"base_url": upstream_url, **fast_retry},
            },
            "mock": {"keys": [{"value": "unused", "models": ["mock-1"]}]},
            "shorttimeout": {
                "kind": "openai",
                "keys": [{"value": "sk-t"}],
                "network_config": {"base_url": upstream_url, "default_request_timeout_in_seconds": 0.3},
            },
            "rotator": {
                "kind": "openai",
                # The dead key is nearly always chosen first, so every request meets it.
                "keys": [
                    {"name": "dead", "value": "bad-key", "weight": 1000},
                    {"name": "good", "value": "sk-good", "weight": 1},
                ],
                "network_config": {"base_url": upstream_url},
            },
            "allbad": {
                "kind": "openai",
                "keys": [{"name": "a", "value": "bad-key"}, {"name": "b", "value": "bad-key"}],
                "network_config": {"base_url": upstream_url},
            },
            "limited": {
                "kind": "openai",
                "keys": [{"name": "l", "value": "limited-key"}],
                "network_config": {"base_url": upstream_url, **fast_retry},
            },
            "refused": {
                "kind": "openai",
                "keys": [{"value": "sk-x"}],
                "network_config": {"base_url": "http://127.0.0.1:9", **fast_retry},
            },
        }
    }


@pytest.fixture(scope="session")
def gateway_url(upstream_url: str) -> Iterator[str]:
    app = create_app(GatewayConfig.from_dict(gateway_config(upstream_url)))
    live = serve(app)
    yield live.url
    live.stop()


@asynccontextmanager
async def started(config: dict[str, Any]) -> AsyncIterator[tuple[Any, Gateway]]:
    """The gateway app for ``config``, started in this event loop (for in-process ASGI clients whose
    test then reads the gateway's own stores), and closed afterwards: (the app, its gateway)."""
    app = create_app(GatewayConfig.from_dict(config))
    gw: Gateway = app.state.gateway
    await gw.start()
    try:
        yield app, gw
    finally:
        await gw.aclose()
