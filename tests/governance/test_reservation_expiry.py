"""Reservations nobody settles (a worker killed mid-request) expire (issue 16): on every store, and across
a real killed `bifrost-asgi serve` process."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Iterator
from dataclasses import replace
from pathlib import Path

import httpx
import pytest

from bifrost_asgi.stores.batching import BatchingCounterStore
from bifrost_asgi.stores.counters import RESERVATION_TTL, SLOTS, Claim, CounterStore
from tests._procs import die_with_test_run, stop_process_group
from tests.governance.test_counter_stores import T0, StoreSpec, limit
from tests.governance.test_counter_stores import shared_spec as shared_spec  # noqa: F401  (store fixtures)
from tests.governance.test_counter_stores import spec as spec  # noqa: F401
from tests.governance.test_multiprocess import _free_port

SLOT = RESERVATION_TTL / SLOTS


@pytest.fixture(params=["direct", "batched"])
async def store(spec: StoreSpec, request: pytest.FixtureRequest) -> AsyncIterator[CounterStore]:  # noqa: F811
    made: CounterStore = spec.make()
    if request.param == "batched" and spec.kind != "memory":
        made = BatchingCounterStore(made)  # type: ignore[arg-type]
    yield made
    await made.aclose()


async def test_an_unsettled_reservation_expires_after_the_ttl(store: CounterStore) -> None:
    gone = Claim(limit("requests", 1, "1d"), 1, at=T0)  # its worker died: never settled
    assert (await store.admit([gone], T0)).ok
    assert not (await store.admit([Claim(gone.limit, 1, at=T0 + 60)], T0 + 60)).ok  # held meanwhile
    later = T0 + RESERVATION_TTL + SLOT
    [state] = await store.read([gone.limit], later)
    assert (state.used, state.reserved) == (0, 0)
    assert (await store.admit([Claim(gone.limit, 1, at=later)], later)).ok  # the limit is whole again


async def test_settling_after_expiry_releases_nothing_twice(store: CounterStore) -> None:
    lim = limit("tokens", 1000, "1d")
    old = Claim(lim, 100, at=T0)
    assert (await store.admit([old], T0)).ok
    later = T0 + RESERVATION_TTL + SLOT
    fresh = Claim(lim, 50, at=later)
    assert (await store.admit([fresh], later)).ok  # the old one expired as this was admitted
    await store.settle([old], [80], later)  # a slow request that did finish: charged, releases nothing
    [state] = await store.read([lim], later)
    assert (state.used, state.reserved) == (80, 50)  # the fresh reservation is intact


async def test_a_settled_reservation_is_released_in_its_own_slot(store: CounterStore) -> None:
    lim = limit("tokens", 1000, "1d")
    first, second = Claim(lim, 100, at=T0), Claim(lim, 40, at=T0 + 3 * SLOT)
    assert (await store.admit([first], T0)).ok
    assert (await store.admit([second], T0 + 3 * SLOT)).ok
    await store.settle([first], [90], T0 + 3 * SLOT)
    # The first slot expires now; only the second request's reservation is left, and it is not released.
    [state] = await store.read([lim], T0 + RESERVATION_TTL + SLOT)
    assert (state.used, state.reserved) == (90, 40)


async def test_a_reservation_held_across_a_window_reset_is_released_when_settled(store: CounterStore) -> None:
    lim = limit("tokens", 1000, "1m")
    claim = Claim(lim, 100, at=T0)
    assert (await store.admit([claim], T0)).ok
    await store.settle([claim], [70], T0 + 90)  # a long request: its window ended meanwhile
    [state] = await store.read([lim], T0 + 90)
    assert (state.used, state.reserved) == (70, 0)


async def test_a_request_that_outlived_its_reservation_is_charged_on_every_limit(store: CounterStore) -> None:
    key, team = limit("tokens", 1000, "1d"), limit("tokens", 5000, "1d")
    claims = [Claim(key, 100, at=T0), Claim(team, 100, at=T0)]
    assert (await store.admit(claims, T0)).ok
    later = T0 + RESERVATION_TTL + SLOT  # both reservations expired; the request still finished
    await store.settle(claims, [80, 80], later)
    assert [(s.used, s.reserved) for s in await store.read([key, team], later)] == [(80, 0), (80, 0)]


async def test_budget_reservations_under_a_dollar_in_one_slot_are_each_released(store: CounterStore) -> None:
    lim = limit("budget", 10, "1d")
    first, second = Claim(lim, 0.5, at=T0), Claim(lim, 0.25, at=T0 + 1)  # the same slot
    assert (await store.admit([first], T0)).ok
    assert (await store.admit([second], T0 + 1)).ok
    await store.settle([first], [0.125], T0 + 2)
    [state] = await store.read([lim], T0 + 2)
    assert (state.used, state.reserved) == (0.125, 0.25)
    await store.settle([second], [0.0625], T0 + 3)
    [state] = await store.read([lim], T0 + 3)
    assert (state.used, state.reserved) == (0.1875, 0)


@pytest.mark.parametrize("batched", [False, True], ids=["direct", "batched"])
async def test_a_configured_ttl_holds_settles_and_expires_reservations(
    shared_spec: StoreSpec,  # noqa: F811
    batched: bool,
) -> None:
    made = replace(shared_spec, ttl=60).make()  # counters.reservation_ttl_seconds: 60, so slots of 4 s
    store: CounterStore = BatchingCounterStore(made) if batched else made  # type: ignore[arg-type]
    try:
        lim = limit("tokens", 1000, "1d")
        settled, gone = Claim(lim, 100, at=T0), Claim(lim, 300, at=T0)
        assert (await store.admit([settled], T0)).ok
        assert (await store.admit([gone], T0)).ok
        await store.settle([settled], [80], T0 + 1)  # released from the slot it was held in
        [state] = await store.read([lim], T0 + 63)  # held until its slot is a whole ttl old
        assert (state.used, state.reserved) == (80, 300)
        [state] = await store.read([lim], T0 + 64)
        assert (state.used, state.reserved) == (80, 0)  # the unsettled one expired after 60 s, not 900
    finally:
        await store.aclose()


# -- a real worker, killed mid-request --------------------------------------------------------------------


# Long enough that the second server is up before the dead worker's reservation lapses, even on a loaded
# machine (a 3 s ttl raced a slow start under load).
TTL = 8


@pytest.fixture
def killable(tmp_path: Path, upstream_url: str) -> Iterator[Path]:
    config = {
        "providers": {"openai": {"keys": [{"value": "sk-t"}], "network_config": {"base_url": upstream_url}}},
        "governance": {
            "store": {"type": "sqlite", "path": str(tmp_path / "g.db")},
            "counters": {"type": "sqlite", "reservation_ttl_seconds": TTL},
            "virtual_keys": [
                {"id": "vk", "name": "vk", "value": "sk-bf-" + "k" * 43, "allow_all_providers": True,
                 "rate_limit_id": "one"}
            ],
            "rate_limits": [{"id": "one", "request_max_limit": 1, "request_reset_duration": "1d"}],
        },
    }  # fmt: skip
    path = tmp_path / "config.json"
    path.write_text(json.dumps(config))
    yield path


def _start(config: Path) -> tuple[subprocess.Popen[bytes], str]:
    port = _free_port()
    cmd = [sys.executable, "-m", "bifrost_asgi", "serve", "--config", str(config), "--port", str(port),
           "--log-level", "warning"]  # fmt: skip
    proc = subprocess.Popen(cmd, start_new_session=True, preexec_fn=die_with_test_run)
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 30
    while True:
        try:
            if httpx.get(url + "/health", timeout=1).status_code == 200:
                return proc, url
        except httpx.HTTPError:
            pass
        assert time.monotonic() < deadline and proc.poll() is None, "the gateway did not start"
        time.sleep(0.1)


def test_a_killed_workers_reservation_expires(killable: Path) -> None:
    key = {"x-bf-vk": "sk-bf-" + "k" * 43}
    chat = {"model": "openai/slow-stream", "messages": [{"role": "user", "content": "hi"}], "stream": True}
    first, url = _start(killable)
    try:
        with (
            httpx.Client(timeout=10) as client,
            client.stream("POST", url + "/v1/chat/completions", json=chat, headers=key) as stream,
        ):
            assert stream.status_code == 200
            next(stream.iter_raw())  # admitted and streaming: the one request of the limit is reserved
            os.killpg(first.pid, signal.SIGKILL)  # the worker dies mid-request; nobody settles
    except httpx.HTTPError:
        pass
    first.wait()
    second, url = _start(killable)
    try:
        quick = {**chat, "model": "openai/gpt-4o-mini", "stream": False}
        assert httpx.post(url + "/v1/chat/completions", json=quick, headers=key).status_code == 429
        time.sleep(TTL + TTL / 15 + 0.5)  # the reservation's ttl (and one slot) later
        assert httpx.post(url + "/v1/chat/completions", json=quick, headers=key).status_code == 200
    finally:
        stop_process_group(second)
