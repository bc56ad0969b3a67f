"""The shared backend: an entry one worker process kept in Redis is served by another."""

from __future__ import annotations

import json
import uuid
from pathlib import Path
from typing import Any

import httpx

from tests.cache.conftest import Cached, with_cache
from tests.conftest import gateway_config
from tests.governance.test_multiprocess import _serve
from tests.upstream import ANSWER, Upstream

CHAT = {"model": "openai/gpt-4o-mini", "messages": [{"role": "user", "content": "shared?"}]}


def test_a_hit_kept_by_another_worker_process_is_served(
    tmp_path: Path, upstream_url: str, upstream: Upstream, redis_url: str, cached_gateway: Any
) -> None:
    store = {"type": "redis", "url": redis_url, "prefix": f"bifrost-test-{uuid.uuid4().hex}:"}
    data = with_cache(gateway_config(upstream_url), store=store)
    config = tmp_path / "config.json"
    config.write_text(json.dumps(data))
    headers = {"x-bf-cache-key": "shared"}
    for url in _serve(config, workers=1):  # another process: `bifrost-asgi serve`
        first = httpx.post(url + "/v1/chat/completions", json=CHAT, headers=headers, timeout=30)
        assert first.headers["x-bifrost-cache-hit"] == "false"

    here: Cached = cached_gateway(data)  # this process, sharing only Redis with that one
    second = httpx.post(here.url + "/v1/chat/completions", json=CHAT, headers=headers, timeout=30)
    assert second.headers["x-bifrost-cache-hit"] == "true"
    assert second.json()["choices"][0]["message"]["content"] == ANSWER
    assert len(upstream.state.requests) == 1
