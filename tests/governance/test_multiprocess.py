"""Limits hold across worker processes: `bifrost-asgi serve --workers 4` with SQLite and with Redis.

200 simultaneous requests against a key whose request limit is 50 must see exactly 50 succeed, however
the requests are spread over the workers.
"""

from __future__ import annotations

import asyncio
import json
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests._procs import die_with_test_run, stop_process_group

KEY = "sk-bf-" + "m" * 43


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def _config(tmp_path: Path, counters: dict[str, Any]) -> Path:
    config = {
        "providers": {"mock": {}},
        "governance": {
            "store": {"type": "sqlite", "path": str(tmp_path / "bifrost.db")},
            "counters": counters,
            "virtual_keys": [
                {
                    "id": "vk-mp",
                    "name": "mp",
                    "value": KEY,
                    "allow_all_providers": True,
                    "rate_limit_id": "rl",
                }
            ],
            "rate_limits": [{"id": "rl", "request_max_limit": 50, "request_reset_duration": "1h"}],
        },
    }
    path = tmp_path / "config.json"
    path.write_text(json.dumps(config))
    return path


def _serve(config: Path, workers: int) -> Iterator[str]:
    port = _free_port()
    cmd = [sys.executable, "-m", "bifrost_asgi", "serve", "--config", str(config), "--port", str(port),
           "--workers", str(workers), "--log-level", "warning"]  # fmt: skip
    proc = subprocess.Popen(cmd, cwd=config.parent, start_new_session=True, preexec_fn=die_with_test_run)
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                if httpx.get(url + "/health", timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            if time.monotonic() > deadline or proc.poll() is not None:
                raise RuntimeError("gateway workers did not start")
            time.sleep(0.2)
        time.sleep(1.0)  # let every worker finish its startup, not just the first to answer
        yield url
    finally:
        stop_process_group(proc)


async def _burst(url: str, n: int) -> list[int]:
    limits = httpx.Limits(max_connections=n, max_keepalive_connections=n)
    body = {"model": "mock/mock-1", "messages": [{"role": "user", "content": "hi"}]}
    async with httpx.AsyncClient(limits=limits, timeout=60) as client:
        results = await asyncio.gather(
            *(
                client.post(url + "/v1/chat/completions", json=body, headers={"x-bf-vk": KEY})
                for _ in range(n)
            )
        )
    return [r.status_code for r in results]


@pytest.mark.parametrize("store", ["sqlite", "redis"])
def test_request_limit_is_exact_across_four_workers(
    tmp_path: Path, store: str, request: pytest.FixtureRequest
) -> None:
    counters: dict[str, Any] = {"type": "sqlite"}
    if store == "redis":  # only this case needs Redis: without it, the SQLite case still runs
        redis_url: str = request.getfixturevalue("redis_url")
        counters = {"type": "redis", "url": redis_url, "prefix": f"bifrost-test-{uuid.uuid4().hex}:"}
    config = _config(tmp_path, counters)
    for url in _serve(config, workers=4):
        codes = asyncio.run(_burst(url, 200))
        assert codes.count(200) == 50, codes
        assert codes.count(429) == 150
