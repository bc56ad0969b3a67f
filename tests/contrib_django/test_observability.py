"""Django: the gateway's spans inside the host's request span (across the bridge to the gateway's loop
thread), with the signed-in user; the signals for usage and for keys made and revoked by every path."""

from __future__ import annotations

import threading
import time
from typing import Any

import pytest
from django.contrib.auth.models import AbstractBaseUser
from django.test import Client
from opentelemetry import trace
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from bifrost_asgi.stores import LogRecord
from bifrost_django import signals
from bifrost_django.models import UsageLog, VirtualKey
from tests.observability.test_metrics import samples, total
from tests.otel import nested_request

pytestmark = pytest.mark.django_db(transaction=True)  # the gateway's own threads use the database

MOCK = {"model": "mock/mock-1", "input": "hi"}


def test_gateway_spans_are_children_of_the_host_span(
    client: Client, django_user_model: Any, spans: InMemorySpanExporter
) -> None:
    user = django_user_model.objects.create_user("ada", password="pw")
    client.force_login(user)
    # What Django's instrumentation does: the view runs inside the host's current span.
    with trace.get_tracer("host").start_as_current_span("django host") as host:
        r = client.post("/ai/v1/responses", MOCK, content_type="application/json")
    assert r.status_code == 200, r.content
    request = nested_request(spans, host, "responses mock/mock-1", "responses mock-1")
    assert request.attributes is not None and request.attributes["enduser.id"] == str(user.pk)


def test_signals_for_usage_and_for_keys_made_and_revoked_every_way(
    admin_client: Client, django_user_model: Any
) -> None:
    got: list[tuple[str, Any, Any]] = []
    lock = threading.Lock()

    def usage(sender: Any, record: LogRecord, **kwargs: Any) -> None:
        with lock:
            got.append(("usage", sender, record))

    def created(sender: Any, key: VirtualKey, **kwargs: Any) -> None:
        got.append(("created", sender, key))

    def revoked(sender: Any, key: VirtualKey, **kwargs: Any) -> None:
        got.append(("revoked", sender, key))

    signals.usage_recorded.connect(usage)
    signals.key_created.connect(created)
    signals.key_revoked.connect(revoked)
    try:
        owner: AbstractBaseUser = django_user_model.objects.create_user("bo", password="pw")
        key, value = VirtualKey.objects.create_key(name="script", owner=owner, allow_all_providers=True)
        r = Client().post("/ai/v1/responses", MOCK, content_type="application/json", HTTP_X_BF_VK=value)
        assert r.status_code == 200, r.content
        deadline = time.monotonic() + 5
        while not _usage_of(got, key.pk) and time.monotonic() < deadline:
            time.sleep(0.02)
        key.revoke()
        key.revoke()  # already revoked: no second signal
        other, _ = VirtualKey.objects.create_key(name="other")
        action = {"action": "revoke_keys", "_selected_action": [other.pk]}
        assert admin_client.post("/admin/bifrost/virtualkey/", action).status_code == 302
    finally:
        signals.usage_recorded.disconnect(usage)
        signals.key_created.disconnect(created)
        signals.key_revoked.disconnect(revoked)
    assert [(n, s, k.name) for n, s, k in got if n == "created"] == [
        ("created", VirtualKey, "script"),
        ("created", VirtualKey, "other"),
    ]
    assert [(s, k.name) for n, s, k in got if n == "revoked"] == [
        (VirtualKey, "script"),
        (VirtualKey, "other"),
    ]
    ((sender, record),) = _usage_of(got, key.pk)
    assert sender is UsageLog and isinstance(record, LogRecord) and record.owner == str(owner.pk)


def _usage_of(got: list[tuple[str, Any, Any]], key_id: str) -> list[tuple[Any, LogRecord]]:
    return [(s, r) for n, s, r in list(got) if n == "usage" and r.virtual_key_id == key_id]


def test_metrics_are_served_at_the_mount(client: Client, django_user_model: Any) -> None:
    client.force_login(django_user_model.objects.create_user("cy", password="pw"))
    before = total(
        samples(client.get("/ai/metrics").content.decode()), "http_requests_total", path="/v1/responses"
    )
    assert client.post("/ai/v1/responses", MOCK, content_type="application/json").status_code == 200
    r = client.get("/ai/metrics")
    assert r.status_code == 200 and r["content-type"].startswith("text/plain")
    assert total(samples(r.content.decode()), "http_requests_total", path="/v1/responses") == before + 1
