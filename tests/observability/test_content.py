"""Content logging: off by default; on for a deployment or for listed keys, with the host's redaction and
every provider credential scrubbed; never listed by /api/logs; rows past retention are deleted."""

from __future__ import annotations

import json
import sqlite3
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from bifrost_asgi import GatewayConfig, create_app
from bifrost_asgi.stores import LogRecord, SQLiteLogStore
from tests.conftest import gateway_config, serve
from tests.upstream import ANSWER, Upstream

LOGGED = "sk-bf-" + "c" * 43  # a key whose content is kept
QUIET = "sk-bf-" + "q" * 43  # a key whose content is not
PROMPT = [{"role": "user", "content": "My card is 4111 1111 1111 1111 and the key is sk-test-primary"}]


def _config(upstream_url: str, db: Path, logs: dict[str, Any], **client: Any) -> GatewayConfig:
    config = gateway_config(upstream_url)
    config["client"] = client
    config["governance"] = {
        "store": {"type": "sqlite", "path": str(db)},
        "logs": {"flush_interval_ms": 20, **logs},
        "virtual_keys": [
            {"id": "vk-logged", "name": "logged", "value": LOGGED, "allow_all_providers": True},
            {"id": "vk-quiet", "name": "quiet", "value": QUIET, "allow_all_providers": True},
        ],
    }
    return GatewayConfig.from_dict(config)


def _stored(db: Path) -> dict[str, str | None]:
    """virtual key id -> the content column, read straight from the database."""
    deadline = time.monotonic() + 5
    while True:
        with sqlite3.connect(db) as conn:
            rows = dict(conn.execute("SELECT virtual_key_id, content FROM bifrost_logs").fetchall())
        if len(rows) >= 2 or time.monotonic() > deadline:
            return rows
        time.sleep(0.02)


@pytest.fixture
def gateway(upstream_url: str, upstream: Upstream, tmp_path: Path) -> Iterator[Callable[..., str]]:
    lives = []

    def start(logs: dict[str, Any], redact: Any = None, **client: Any) -> str:
        app = create_app(_config(upstream_url, tmp_path / "b.db", logs, **client), redact_content=redact)
        lives.append(live := serve(app))
        return live.url

    yield start
    for live in lives:
        live.stop()


def _chat_with_each_key(url: str) -> None:
    for key in (LOGGED, QUIET):
        body = {"model": "openai/gpt-4o-mini", "messages": PROMPT}
        assert (
            httpx.post(url + "/v1/chat/completions", json=body, headers={"x-bf-vk": key}).status_code == 200
        )


def test_content_is_not_kept_by_default(gateway: Callable[..., str], tmp_path: Path) -> None:
    _chat_with_each_key(gateway({}))
    assert _stored(tmp_path / "b.db") == {"vk-logged": None, "vk-quiet": None}


def test_content_of_listed_keys_is_kept_redacted_and_never_listed(
    gateway: Callable[..., str], tmp_path: Path
) -> None:
    def redact(content: dict[str, Any]) -> dict[str, Any]:
        text = content["input"]["messages"][0]["content"]
        content["input"]["messages"][0]["content"] = text.replace("4111 1111 1111 1111", "[card]")
        return content

    url = gateway({"content_virtual_keys": ["vk-logged"]}, redact)
    _chat_with_each_key(url)
    stored = _stored(tmp_path / "b.db")
    assert stored["vk-quiet"] is None
    content = json.loads(stored["vk-logged"] or "null")
    said = "My card is [card] and the key is [REDACTED]"  # the host's redaction, then the provider key
    assert content == {"input": {"messages": [{"role": "user", "content": said}]}, "output": ANSWER}
    listed = httpx.get(url + "/api/logs").json()["logs"]
    assert len(listed) == 2 and all("content" not in entry for entry in listed)


def test_a_redaction_hook_can_keep_nothing(gateway: Callable[..., str], tmp_path: Path) -> None:
    _chat_with_each_key(gateway({"content": True}, lambda content: None))
    assert _stored(tmp_path / "b.db") == {"vk-logged": None, "vk-quiet": None}


def test_rows_past_retention_are_deleted(gateway: Callable[..., str], tmp_path: Path) -> None:
    old = LogRecord(id="old", timestamp=time.time() - 3 * 86400, object="chat_completion", content="{}")
    recent = LogRecord(id="recent", timestamp=time.time() - 86400 / 2, object="chat_completion")
    store = SQLiteLogStore(str(tmp_path / "b.db"))
    store._write([old, recent])
    url = gateway({"content": True}, log_retention_days=1)
    _chat_with_each_key(url)  # the log writer's first flush also applies retention
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline:
        ids = {entry["id"] for entry in httpx.get(url + "/api/logs").json()["logs"]}
        if "old" not in ids and len(ids) == 3:
            break
        time.sleep(0.05)
    assert "old" not in ids and "recent" in ids and len(ids) == 3
