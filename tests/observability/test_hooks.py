"""The host's hooks in the core: usage records once written, budget thresholds as spending crosses them
(once each per window), keys created and revoked; a failing hook never fails the request."""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from bifrost_asgi import GatewayConfig, create_app
from bifrost_asgi.governance import VirtualKey
from bifrost_asgi.observability import BudgetThreshold, Hooks
from bifrost_asgi.pricing import PricingTable, usage_from_chat
from bifrost_asgi.stores import LogRecord
from tests.conftest import gateway_config, serve
from tests.upstream import USAGE_CHAT, Upstream

KEY = "sk-bf-" + "h" * 43
ADMIN = ("admin", "pw")


def _cost() -> float:
    usage = usage_from_chat(USAGE_CHAT)
    assert usage is not None
    priced = PricingTable.default().cost("openai", "gpt-4o-mini", usage)
    assert priced is not None
    return priced["total_cost"]


COST = _cost()
CHAT = {"model": "openai/gpt-4o-mini", "messages": [{"role": "user", "content": "hi"}]}


class Seen:
    """What the hooks received, from whichever thread called them."""

    def __init__(self) -> None:
        self.events: list[tuple[str, Any]] = []
        self.lock = threading.Lock()

    def add(self, name: str, payload: Any) -> None:
        with self.lock:
            self.events.append((name, payload))

    def of(self, name: str) -> list[Any]:
        with self.lock:
            return [p for n, p in self.events if n == name]

    def wait(self, name: str, count: int) -> list[Any]:
        deadline = time.monotonic() + 5
        while len(self.of(name)) < count and time.monotonic() < deadline:
            time.sleep(0.02)
        return self.of(name)


@pytest.fixture
def seen() -> Seen:
    return Seen()


@pytest.fixture
def url(upstream_url: str, upstream: Upstream, tmp_path: Path, seen: Seen) -> Iterator[str]:
    config = gateway_config(upstream_url)
    config["governance"] = {
        "store": {"type": "sqlite", "path": str(tmp_path / "b.db")},
        "logs": {"flush_interval_ms": 20},
        "auth_config": {"is_enabled": True, "admin_username": ADMIN[0], "admin_password": ADMIN[1]},
        "virtual_keys": [{"id": "vk-h", "name": "hooked", "value": KEY, "allow_all_providers": True}],
        # 1.5 requests' worth: the first request takes it past 50%, the second past 100%.
        "budgets": [{"id": "b", "max_limit": COST * 1.5, "reset_duration": "1d",
                     "virtual_key_id": "vk-h", "alert_percentages": [50, 100]}],
    }  # fmt: skip

    async def usage(record: LogRecord) -> None:  # an async hook, awaited on the gateway's loop
        seen.add("usage", record)

    def budget(event: BudgetThreshold) -> None:  # a plain function: run in a worker thread
        assert threading.current_thread() is not threading.main_thread()
        seen.add("budget", event)

    def broken(record: LogRecord) -> None:
        raise RuntimeError("the host's bug")

    hooks = Hooks(
        usage_recorded=[broken, usage],
        budget_threshold_crossed=budget,
        key_created=lambda key: seen.add("created", key),
        key_revoked=lambda key: seen.add("revoked", key),
    )
    live = serve(create_app(GatewayConfig.from_dict(config), hooks=hooks))
    yield live.url
    live.stop()


def test_usage_records_reach_the_hook_once_written(url: str, seen: Seen) -> None:
    r = httpx.post(url + "/v1/chat/completions", json=CHAT, headers={"x-bf-vk": KEY})
    assert r.status_code == 200  # the broken hook changed nothing
    (record,) = seen.wait("usage", 1)
    assert isinstance(record, LogRecord)
    assert (record.id, record.virtual_key_id, record.model) == (
        r.headers["x-request-id"],
        "vk-h",
        "gpt-4o-mini",
    )
    assert record.input_tokens == USAGE_CHAT["prompt_tokens"] and record.cost == pytest.approx(COST)
    logs = httpx.get(url + "/api/logs", auth=ADMIN).json()["logs"]
    assert [log["id"] for log in logs] == [record.id]  # the hook ran after the write


def test_budget_thresholds_fire_once_each_as_spending_crosses_them(url: str, seen: Seen) -> None:
    for _ in range(2):
        assert (
            httpx.post(url + "/v1/chat/completions", json=CHAT, headers={"x-bf-vk": KEY}).status_code == 200
        )
    events = seen.wait("budget", 2)
    assert [e.percent for e in events] == [50, 100]
    first, second = events
    assert (first.scope, first.scope_id, first.virtual_key_id) == ("vk", "vk-h", "vk-h")
    assert first.used == pytest.approx(COST) and second.used == pytest.approx(2 * COST)
    assert first.max_limit == pytest.approx(1.5 * COST)
    assert first.window_start == second.window_start < time.time() < first.window_end
    # Over budget now: refused, and no threshold fires again in this window.
    assert httpx.post(url + "/v1/chat/completions", json=CHAT, headers={"x-bf-vk": KEY}).status_code == 402
    time.sleep(0.3)
    assert len(seen.of("budget")) == 2


def test_keys_created_and_revoked_reach_the_hooks(url: str, seen: Seen) -> None:
    created = httpx.post(url + "/api/governance/virtual-keys", json={"name": "ci"}, auth=ADMIN).json()
    key_id = created["virtual_key"]["id"]
    (key,) = seen.of("created")
    assert isinstance(key, VirtualKey) and (key.id, key.name) == (key_id, "ci") and key.key_hash
    assert httpx.delete(url + f"/api/governance/virtual-keys/{key_id}", auth=ADMIN).status_code == 200
    assert httpx.delete(url + f"/api/governance/virtual-keys/{key_id}", auth=ADMIN).status_code == 200
    (revoked,) = seen.of("revoked")  # revoking a revoked key is not a second revocation
    assert revoked.id == key_id and revoked.revoked_at is not None


def test_unknown_events_are_refused_by_name() -> None:
    with pytest.raises(ValueError, match="usage_recorded"):
        Hooks(usage_recordd=lambda r: None)


def test_a_hook_only_runs_when_wanted() -> None:
    calls: list[Any] = []

    class Quiet:
        def wanted(self) -> bool:
            return False

        def __call__(self, payload: Any) -> None:
            calls.append(payload)

    hooks = Hooks(usage_recorded=Quiet())
    assert hooks.connected("usage_recorded") and not hooks.has("usage_recorded")
    asyncio.run(hooks.emit_records([LogRecord(id="x", timestamp=0.0, object="chat_completion")]))
    assert calls == []
