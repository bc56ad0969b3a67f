"""Flask: the gateway's spans inside the host's request span (across the bridge to the gateway's loop
thread), with the signed-in user; the blinker signals for usage and keys, in an app context."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

pytest.importorskip("flask")
pytest.importorskip("flask_login")

from flask import Flask, current_app  # noqa: E402
from opentelemetry import trace  # noqa: E402
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter  # noqa: E402

from bifrost_asgi.governance import VirtualKey  # noqa: E402
from bifrost_asgi.stores import LogRecord  # noqa: E402
from bifrost_flask import signals  # noqa: E402
from tests.contrib_flask.hostapp import create_app  # noqa: E402
from tests.contrib_flask.test_extension import sign_in  # noqa: E402
from tests.observability.test_metrics import samples, total  # noqa: E402
from tests.otel import nested_request  # noqa: E402

MOCK = {"model": "mock/mock-1", "input": "hi"}


@pytest.fixture
def app(upstream_url: str, tmp_path: Path) -> Iterator[Flask]:
    made = create_app(upstream_url, tmp_path / "host")
    yield made
    made.extensions["bifrost"].runtime.close()


def test_gateway_spans_are_children_of_the_host_span(app: Flask, spans: InMemorySpanExporter) -> None:
    client = app.test_client()
    csrf = sign_in(client, "alice")
    # What Flask's instrumentation does: the request runs inside the host's current span.
    with trace.get_tracer("host").start_as_current_span("flask host") as host:
        r = client.post("/ai/v1/responses", json=MOCK, headers={"X-CSRFToken": csrf})
    assert r.status_code == 200, r.text
    request = nested_request(spans, host, "responses mock/mock-1", "responses mock-1")
    assert request.attributes is not None and request.attributes["enduser.id"] == "alice"
    assert request.attributes["gen_ai.system"] == "mock"


Receiver = Callable[..., None]


def test_signals_reach_receivers_in_an_app_context(app: Flask) -> None:
    got: list[tuple[str, Any, str, Any]] = []
    lock = threading.Lock()

    def receiver(name: str) -> Receiver:
        def receive(sender: Flask, **kwargs: Any) -> None:
            (payload,) = kwargs.values()
            with lock:
                got.append((name, sender, current_app.name, payload))

        return receive

    receivers = {name: receiver(name) for name in ("usage", "created", "revoked")}
    with (
        signals.usage_recorded.connected_to(receivers["usage"], app),
        signals.key_created.connected_to(receivers["created"], app),
        signals.key_revoked.connected_to(receivers["revoked"], app),
    ):
        client = app.test_client()
        csrf = sign_in(client, "bob")
        made = client.post("/ai/api/me/virtual-keys", json={"name": "k"}, headers={"X-CSRFToken": csrf})
        key_id = made.get_json()["virtual_key"]["id"]
        assert client.post("/ai/v1/responses", json=MOCK, headers={"X-CSRFToken": csrf}).status_code == 200
        revoked = client.delete(f"/ai/api/me/virtual-keys/{key_id}", headers={"X-CSRFToken": csrf})
        assert revoked.status_code == 200, revoked.text
        deadline = time.monotonic() + 5
        while not any(name == "usage" for name, *_ in got) and time.monotonic() < deadline:
            time.sleep(0.02)
    kinds = {
        name: [(sender, app_name, payload) for n, sender, app_name, payload in got if n == name]
        for name in receivers
    }
    # bob's default key (first call) and the key he made; the one he revoked; his one request.
    assert sorted(k.name for _, _, k in kinds["created"]) == ["default", "k"]
    assert all(sender is app and name == app.name for sender, name, _ in kinds["created"] + kinds["usage"])
    ((_, _, gone),) = kinds["revoked"]
    assert isinstance(gone, VirtualKey) and gone.id == key_id and gone.revoked_at is not None
    ((_, _, record),) = kinds["usage"]
    assert isinstance(record, LogRecord) and record.owner == "bob" and record.provider == "mock"


def test_metrics_are_served_at_the_mount(app: Flask) -> None:
    client = app.test_client()
    csrf = sign_in(client, "carol")
    assert client.post("/ai/v1/responses", json=MOCK, headers={"X-CSRFToken": csrf}).status_code == 200
    r = client.get("/ai/metrics")
    assert r.status_code == 200 and r.content_type.startswith("text/plain")
    found = samples(r.get_data(as_text=True))
    assert total(found, "bifrost_success_requests_total", provider="mock", method="responses") == 1
