"""No secret ever leaves the gateway (issue 11).

Real-looking provider keys and a virtual key, traffic through every route of a real ``bifrost-asgi
serve`` (answers, streams, errors, an upstream that echoes its key, keys in query strings, the
management API, raw responses asked for), then a grep of every response body and header, every line the
server logged and every file of its database: none holds a provider key or the virtual key.
"""

from __future__ import annotations

import json
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests._procs import die_with_test_run, stop_process_group
from tests.conftest import LiveServer, serve
from tests.fault_upstream import FaultUpstream

PROVIDER_KEYS = {
    "openai": "sk-proj-SECRETOPENAI0123456789abcdefghij",
    "groq": "gsk_SECRETGROQ0123456789abcdefghijkl",
    "anthropic": "sk-ant-api03-SECRETANTHROPIC0123456789ab",
    "gemini": "AIzaSySECRETGEMINI0123456789abcdefgh",
}
VK = "sk-bf-" + "S3cr3tV1rtualK3y" * 2 + "abcdefghijk"
ADMIN = ("admin", "admin-password-not-a-secret-here")
SECRETS = [*PROVIDER_KEYS.values(), VK]


@pytest.fixture(scope="module")
def upstream() -> Iterator[LiveServer]:
    live = serve(FaultUpstream())
    yield live
    live.stop()


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture
def gateway(upstream: LiveServer, tmp_path: Path) -> Iterator[tuple[str, Path]]:
    providers: dict[str, Any] = {
        name: {
            "keys": [{"value": key}],
            "network_config": {"base_url": upstream.url},
            "send_back_raw_response": True,
        }
        for name, key in PROVIDER_KEYS.items()
    }
    providers["groq"]["kind"] = "openai-compatible"
    config = {
        "providers": providers,
        "client": {"enforce_auth_on_inference": True},
        "governance": {
            "store": {"type": "sqlite", "path": str(tmp_path / "bifrost.db")},
            "logs": {"flush_interval_ms": 10},
            "auth_config": {"is_enabled": True, "admin_username": ADMIN[0], "admin_password": ADMIN[1]},
            "virtual_keys": [{"id": "vk-1", "name": "one", "value": VK, "allow_all_providers": True}],
        },
    }
    (tmp_path / "config.json").write_text(json.dumps(config))
    port = _free_port()
    log = (tmp_path / "server.log").open("wb")
    cmd = [sys.executable, "-m", "bifrost_asgi", "serve", "--config", str(tmp_path / "config.json"),
           "--port", str(port), "--log-level", "debug"]  # fmt: skip
    proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
                            preexec_fn=die_with_test_run)  # fmt: skip
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                if httpx.get(url + "/health", timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            assert time.monotonic() < deadline and proc.poll() is None, "the gateway did not start"
            time.sleep(0.1)
        yield url, tmp_path
    finally:
        stop_process_group(proc)
        log.close()


def _traffic(url: str) -> list[httpx.Response]:
    seen: list[httpx.Response] = []
    vk_headers = [{"x-bf-vk": VK}, {"authorization": f"Bearer {VK}"}, {"x-api-key": VK}, {"api-key": VK}]
    raw = {"x-bf-send-back-raw-response": "true"}
    with httpx.Client(base_url=url, timeout=30) as c:
        for i, provider in enumerate(PROVIDER_KEYS):
            headers = {**vk_headers[i % len(vk_headers)], **raw}
            for model in ("ok", "echo-key", "cut", "wrong-shape"):
                for stream in (False, True):
                    chat = {"model": f"{provider}/{model}", "messages": [{"role": "user", "content": "hi"}],
                            "stream": stream}  # fmt: skip
                    seen.append(c.post("/v1/chat/completions", json=chat, headers=headers))
                    responses = {"model": f"{provider}/{model}", "input": "hi", "stream": stream}
                    seen.append(c.post("/v1/responses", json=responses, headers=headers))
            count = {"model": f"{provider}/ok", "input": "hi"}
            seen.append(c.post("/v1/responses/input_tokens", json=count, headers=headers))
        messages = {"model": "echo-key", "max_tokens": 5, "messages": [{"role": "user", "content": "hi"}]}
        seen.append(c.post("/anthropic/v1/messages", json=messages, headers={"x-api-key": VK}))
        seen.append(c.post("/anthropic/v1/messages", json={**messages, "model": "openai/echo-key"},
                           headers={"x-api-key": VK}))  # fmt: skip
        in_query = {"model": "openai/ok", "messages": [{"role": "user", "content": "hi"}]}
        seen.append(c.post(f"/v1/chat/completions?x-bf-vk={VK}&key={PROVIDER_KEYS['gemini']}", json=in_query))
        seen.append(c.get(f"/v1/models?api_key={VK}"))
        time.sleep(0.3)  # the usage logs are written in batches
        seen.append(c.get("/api/logs", auth=ADMIN))
        seen.append(c.get("/api/governance/virtual-keys", auth=ADMIN))
        seen.append(c.get("/api/governance/virtual-keys/vk-1", auth=ADMIN))
    return seen


def test_no_secret_reaches_an_answer_a_log_line_or_a_database_file(gateway: tuple[str, Path]) -> None:
    url, folder = gateway
    answers = _traffic(url)
    assert {r.status_code for r in answers} >= {200, 401, 502}  # the traffic did reach every path
    echoed = [r for r in answers if r.status_code == 502 and "Incorrect API key" in r.text]
    assert echoed and all("[REDACTED]" in r.text for r in echoed)  # the upstreams did echo their keys
    for r in answers:
        text = r.text + "\n".join(f"{k}: {v}" for k, v in r.headers.items())
        assert not [s for s in SECRETS if s in text], (r.request.url, r.text[:300])
    time.sleep(0.3)
    stored = b"".join(p.read_bytes() for p in folder.iterdir() if p.name.startswith("bifrost.db"))
    assert b"one" in stored  # the key's record and the logs are there
    assert not [s for s in SECRETS if s.encode() in stored]
    logged = (folder / "server.log").read_text()
    assert "GET /v1/models?api_key=[REDACTED]" in logged  # the access log was written, and redacted
    assert not [s for s in SECRETS if s in logged]
