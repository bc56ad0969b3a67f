"""Governance under store faults (issue 16): Redis paused mid-load fails closed with clean 503s and
recovers without a restart or a leaked reservation; SQLite with 4 workers at c=64 never reports a locked
database."""

from __future__ import annotations

import asyncio
import shutil
import signal
import subprocess
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from bifrost_asgi import GatewayConfig, create_app
from bifrost_asgi.errors import BifrostError
from bifrost_asgi.governance.engine import Governance
from bifrost_asgi.stores.batching import AdmitOp, SettleOp
from bifrost_asgi.stores.counters import Claim
from bifrost_asgi.stores.leases import LEASE_SECONDS
from bifrost_asgi.stores.redis_counters import RedisCounterStore
from tests.governance.test_counter_stores import T0, limit
from tests.governance.test_multiprocess import KEY, _config, _free_port, _serve


@pytest.fixture
def private_redis(tmp_path: Path) -> Iterator[tuple[subprocess.Popen[bytes], str]]:
    """A Redis server of this test's own, so pausing it disturbs nobody else."""
    binary = shutil.which("redis-server")
    if binary is None:
        pytest.skip("redis-server is not installed")
    port = _free_port()
    proc = subprocess.Popen(
        [binary, "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no",
         "--dir", str(tmp_path)],
        stdout=subprocess.DEVNULL,
    )  # fmt: skip
    url = f"redis://127.0.0.1:{port}/0"
    deadline = time.monotonic() + 10
    import redis

    while True:
        try:
            redis.Redis.from_url(url).ping()
            break
        except redis.ConnectionError:
            assert time.monotonic() < deadline, "redis-server did not start"
            time.sleep(0.05)
    yield proc, url
    proc.send_signal(signal.SIGCONT)
    proc.terminate()
    proc.wait(timeout=10)


async def test_a_paused_redis_fails_closed_and_recovers_without_a_leak(
    private_redis: tuple[subprocess.Popen[bytes], str], upstream_url: str, tmp_path: Path
) -> None:
    proc, url = private_redis
    config = {
        "providers": {"openai": {"keys": [{"value": "sk-t"}], "network_config": {"base_url": upstream_url}}},
        "governance": {
            "store": {"type": "sqlite", "path": str(tmp_path / "g.db")},
            "counters": {"type": "redis", "url": url, "timeout_seconds": 0.5},
            "virtual_keys": [{"id": "vk", "name": "vk", "value": KEY, "allow_all_providers": True,
                              "rate_limit_id": "rl"}],
            "rate_limits": [{"id": "rl", "request_max_limit": 100000, "request_reset_duration": "1d"}],
        },
    }  # fmt: skip
    app = create_app(GatewayConfig.from_dict(config))
    gov: Governance = app.state.gateway.governance
    body = {"model": "openai/gpt-4o-mini", "messages": [{"role": "user", "content": "hi"}]}
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app), base_url="http://gw", timeout=30
    ) as c:

        async def burst(n: int) -> list[Any]:
            answers = await asyncio.gather(
                *(c.post("/v1/chat/completions", json=body, headers={"x-bf-vk": KEY}) for _ in range(n))
            )
            return [
                (r.status_code, r.json().get("type") or r.json().get("error", {}).get("type"))
                for r in answers
            ]

        ok = await burst(20)
        assert {status for status, _ in ok} == {200}
        proc.send_signal(signal.SIGSTOP)  # Redis hangs: nothing answers, connections stay open
        # What this worker had leased before the outage it may still admit from, for at most
        # lease_seconds (those requests were reserved in Redis); then every request fails closed.
        leased = await burst(20)
        assert {status for status, _ in leased} <= {200, 503}
        await asyncio.sleep(2 * LEASE_SECONDS)
        outage = await burst(20)
        assert {status for status, _ in outage} == {503}  # fail closed, promptly, never a 500 or a hang
        assert {kind for _, kind in outage} == {"governance_store_unavailable"}
        proc.send_signal(signal.SIGCONT)
        recovered = await burst(20)
        codes = [status for status, _ in recovered]
    try:
        key = await gov.keys.get("vk")
        assert key is not None
        usage = await gov.usage(key)
    finally:
        await app.state.gateway.aclose()
    assert codes == [200] * 20  # recovered without a restart
    [requests] = [u for u in usage if u["kind"] == "requests"]
    # What succeeded (every queued settlement reached Redis once it was back), and nothing leaked.
    served = 40 + [status for status, _ in leased].count(200)
    assert (requests["used"], requests["reserved"]) == (served, 0)


def test_sqlite_with_four_workers_at_c64_never_reports_a_locked_database(tmp_path: Path) -> None:
    config = _config(tmp_path, {"type": "sqlite"})
    data = __import__("json").loads(config.read_text())
    data["governance"]["rate_limits"][0]["request_max_limit"] = 10**9
    config.write_text(__import__("json").dumps(data))
    body = {"model": "mock/mock-1", "messages": [{"role": "user", "content": "hi"}]}
    for url in _serve(config, workers=4):

        async def run(url: str = url) -> list[int]:
            limits = httpx.Limits(max_connections=64, max_keepalive_connections=64)
            async with httpx.AsyncClient(limits=limits, timeout=60) as client:
                sem = asyncio.Semaphore(64)

                async def one() -> int:
                    async with sem:
                        r = await client.post(
                            url + "/v1/chat/completions", json=body, headers={"x-bf-vk": KEY}
                        )
                        return r.status_code

                return await asyncio.gather(*(one() for _ in range(1000)))

        codes = asyncio.run(run())
        assert codes.count(200) == 1000, {c: codes.count(c) for c in set(codes)}


# -- a batch whose answer is lost: applied or not, nothing is counted twice and nothing leaks ---------------


def _lossy(store: Any, *, apply: bool) -> None:
    """Make the store's next batch lose its answer: after running it (``apply``), or before sending it."""
    import redis.exceptions

    real = store._batch

    async def once(*args: Any, **kwargs: Any) -> Any:
        store._batch = real
        if apply:
            await real(*args, **kwargs)
        raise redis.exceptions.TimeoutError("Timeout reading from socket")

    store._batch = once


@pytest.mark.parametrize("applied", [True, False], ids=["applied", "never-applied"])
async def test_a_lost_batch_answer_is_resolved_before_the_next(redis_url: str, applied: bool) -> None:
    store = RedisCounterStore(redis_url, prefix=f"lost:{uuid.uuid4().hex}:")
    try:
        lim = limit("tokens", 1000, "1h")
        held = (await store.admit([Claim(lim, 100)], T0)).claims  # an earlier request, still in flight
        _lossy(store, apply=applied)
        with pytest.raises(BifrostError) as err:  # its settlement and a new admission share the batch
            await store.run_batch([SettleOp.of(held, [30.0]), AdmitOp((Claim(lim, 200),))], T0 + 1)
        assert err.value.status_code == 503
        # The next batch first resolves the lost one: the settlement counts once, exactly (re-run only if
        # it never ran), and the admission whose caller got a 503 holds nothing.
        [after] = await store.run_batch([AdmitOp((Claim(lim, 1),))], T0 + 2)
        assert after is not None and after.ok
        [state] = await store.read([lim], T0 + 2)
        assert (state.used, state.reserved) == (30, 1)
        assert store._unresolved == []
    finally:
        await store.aclose()


async def test_a_cancelled_batch_is_never_applied_late(redis_url: str) -> None:
    """A batch script still in flight when its caller gave up (and cancelled it) must not count."""
    store = RedisCounterStore(redis_url, prefix=f"late:{uuid.uuid4().hex}:")
    try:
        lim = limit("requests", 5, "1h")
        sent: list[tuple[Any, Any]] = []
        real = store._batch

        async def delayed(*, keys: Any, args: Any) -> Any:
            sent.append((keys, args))  # "in flight": not yet run when the caller times out
            raise __import__("redis").exceptions.TimeoutError("Timeout reading from socket")

        store._batch = delayed  # type: ignore[assignment]
        with pytest.raises(BifrostError):
            await store.run_batch([AdmitOp((Claim(lim, 1),))], T0)
        store._batch = real
        await store.run_batch([], T0)  # resolution cancels it
        assert await real(keys=sent[0][0], args=sent[0][1]) == b"cancelled"  # the late arrival
        [state] = await store.read([lim], T0)
        assert (state.used, state.reserved) == (0, 0)
    finally:
        await store.aclose()


async def test_a_settlement_queued_while_redis_is_still_down_is_not_forgotten(redis_url: str) -> None:
    """A batch that cannot even start (an earlier lost batch cannot be resolved yet) is kept like a lost
    one: its settlements reach Redis once it is back (a worker's lease given back during an outage)."""
    import redis.exceptions

    store = RedisCounterStore(redis_url, prefix=f"down:{uuid.uuid4().hex}:")
    try:
        lim = limit("tokens", 1000, "1h")
        held = (await store.admit([Claim(lim, 100)], T0)).claims
        _lossy(store, apply=False)  # Redis goes away: this admission's answer is lost
        with pytest.raises(BifrostError):
            await store.run_batch([AdmitOp((Claim(lim, 5),))], T0)
        real = store._resolve_script

        async def down(*args: Any, **kwargs: Any) -> Any:
            raise redis.exceptions.ConnectionError("Connection refused")

        store._resolve_script = down  # type: ignore[assignment]
        with pytest.raises(BifrostError) as err:  # still down: the settlement cannot be sent
            await store.run_batch([SettleOp.of(held, [70.0])], T0 + 1)
        assert err.value.status_code == 503
        store._resolve_script = real  # back
        await store.run_batch([], T0 + 2)
        [state] = await store.read([lim], T0 + 2)
        assert (state.used, state.reserved) == (70, 0)
    finally:
        await store.aclose()
