"""A budget shared by a team's keys, or by a customer's teams, holds across the worker processes of
`bifrost-asgi serve --workers 4`, with SQLite and with Redis counters: of 200 simultaneous requests spread
over four keys, exactly the 50 the budget is worth succeed."""

from __future__ import annotations

import asyncio
import json
import uuid
from pathlib import Path

import httpx
import pytest

from tests.governance._admin_gateway import CHAT
from tests.governance.test_hierarchy_limits import KEYS, config
from tests.governance.test_multiprocess import _serve


async def _burst(url: str, n: int) -> list[int]:
    limits = httpx.Limits(max_connections=n, max_keepalive_connections=n)
    async with httpx.AsyncClient(limits=limits, timeout=60) as client:
        calls = [client.post(url + "/v1/chat/completions", json=CHAT, headers={"x-bf-vk": KEYS[i % 4]})
                 for i in range(n)]  # fmt: skip
        return [r.status_code for r in await asyncio.gather(*calls)]


@pytest.mark.parametrize("shared_by", ["team", "customer"])
@pytest.mark.parametrize("store", ["sqlite", "redis"])
def test_a_shared_budget_is_exact_across_four_workers(
    tmp_path: Path, store: str, shared_by: str, request: pytest.FixtureRequest
) -> None:
    counters = {"type": "sqlite"}
    if store == "redis":
        counters = {"type": "redis", "url": request.getfixturevalue("redis_url"),
                    "prefix": f"bifrost-test-{uuid.uuid4().hex}:"}  # fmt: skip
    path = tmp_path / "config.json"
    path.write_text(json.dumps(config(counters, tmp_path, shared_by)))
    for url in _serve(path, workers=4):
        codes = asyncio.run(_burst(url, 200))
        assert codes.count(200) == 50, codes
        assert codes.count(402) == 150
