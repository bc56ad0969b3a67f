"""The Flask extension over real HTTP: the host app under gunicorn (2 worker processes) and under
werkzeug's threaded server, its gateway calling the upstream-shaped test server.

Each flow a host relies on: a signed-in browser session calls /ai/v1/responses (JSON and stream) and is
charged to the user's default key, streams arrive chunk by chunk, a client that goes away cancels the
upstream, the openai SDK works with a user's key and no session, a deactivated user's key is refused,
CSRF guards session writes, users cannot reach each other's keys, and one loop serves every request.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

pytest.importorskip("flask")
pytest.importorskip("flask_login")

import httpx  # noqa: E402
import openai  # noqa: E402
import orjson  # noqa: E402
from werkzeug.serving import BaseWSGIServer, WSGIRequestHandler, make_server  # noqa: E402

from tests._procs import die_with_test_run  # noqa: E402
from tests.contrib_flask.hostapp import UserTable, create_app  # noqa: E402
from tests.schemas import assert_valid, bifrost_error_validator  # noqa: E402
from tests.upstream import ANSWER, GPT_4O_MINI_COST, Upstream  # noqa: E402

REPO = Path(__file__).resolve().parents[2]
_CLEARED_ENV = ("BIFROST_", "OPENAI_", "ANTHROPIC_", "HTTP_PROXY", "HTTPS_PROXY", "http_proxy", "https_proxy")


@dataclass
class Host:
    url: str
    users: UserTable


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def _wait_until_up(url: str, alive: Callable[[], bool], log: Path | None = None) -> None:
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        if not alive():
            raise RuntimeError(f"the host app exited during startup: {log.read_text() if log else ''}")
        try:
            if httpx.get(url + "/", timeout=1).status_code == 200:
                return
        except httpx.TransportError:
            pass
        time.sleep(0.1)
    raise RuntimeError(f"the host app did not answer at {url}")


def _gunicorn(upstream_url: str, data_dir: Path) -> Iterator[str]:
    pytest.importorskip("gunicorn")
    port = _free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith(_CLEARED_ENV)}
    env.update(HOSTAPP_UPSTREAM_URL=upstream_url, HOSTAPP_DATA_DIR=str(data_dir), PYTHONPATH=str(REPO))
    cmd = [sys.executable, "-m", "gunicorn", "-w", "2", "-b", f"127.0.0.1:{port}", "--graceful-timeout", "5",
           "tests.contrib_flask.hostapp:create_app()"]  # fmt: skip
    log_path = data_dir / "gunicorn.log"
    log = log_path.open("wb")
    proc = subprocess.Popen(
        cmd, cwd=REPO, env=env, stdout=log, stderr=subprocess.STDOUT, preexec_fn=die_with_test_run
    )
    try:
        url = f"http://127.0.0.1:{port}"
        _wait_until_up(url, lambda: proc.poll() is None, log_path)
        yield url
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        log.close()


class _QuietHandler(WSGIRequestHandler):
    def log_request(self, code: int | str = "-", size: int | str = "-") -> None:
        pass  # one access-log line per request would drown a failure's output


def _werkzeug(upstream_url: str, data_dir: Path) -> Iterator[str]:
    app = create_app(upstream_url, data_dir)
    server: BaseWSGIServer = make_server("127.0.0.1", 0, app, threaded=True, request_handler=_QuietHandler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        url = f"http://127.0.0.1:{server.port}"
        _wait_until_up(url, thread.is_alive)
        yield url
    finally:
        server.shutdown()
        thread.join(timeout=10)
        app.extensions["hostapp.bifrost"].close(app)


@pytest.fixture(scope="module", params=["gunicorn", "werkzeug"])
def host(
    request: pytest.FixtureRequest, upstream_url: str, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Host]:
    data_dir = tmp_path_factory.mktemp(f"flask-{request.param}")
    serve = _gunicorn if request.param == "gunicorn" else _werkzeug
    for url in serve(upstream_url, data_dir):
        yield Host(url, UserTable(data_dir / "users.db"))


# -- helpers -----------------------------------------------------------------------------------------


def new_user(host: Host) -> str:
    """A user of this test only, so that usage counts start at zero."""
    name = f"user-{uuid.uuid4().hex[:8]}"
    host.users.add(name)
    return name


def signed_in(host: Host, user: str) -> tuple[httpx.Client, str]:
    """A browser-like client signed in as ``user``, and the CSRF token its pages would echo."""
    client = httpx.Client(base_url=host.url, timeout=30)
    r = client.post(f"/login/{user}")
    assert r.status_code == 200, r.text
    token: str = r.json()["csrf"]
    assert client.cookies.get("bifrost_csrf") == token  # the double-submit cookie came with the page
    return client, token


def create_key(client: httpx.Client, csrf: str, name: str) -> dict[str, Any]:
    r = client.post("/ai/api/me/virtual-keys", json={"name": name}, headers={"X-CSRFToken": csrf})
    assert r.status_code == 200, r.text
    key: dict[str, Any] = r.json()["virtual_key"]
    return key


def default_key_id(client: httpx.Client) -> str:
    keys = client.get("/ai/api/me/virtual-keys").json()["virtual_keys"]
    (default,) = [k for k in keys if k["name"] == "default"]
    key_id: str = default["id"]
    return key_id


def month_requests(client: httpx.Client, key_id: str) -> int:
    this_month = client.get("/ai/api/me/usage").json()["this_month"]
    requests: int = this_month["by_key"].get(key_id, {}).get("requests", 0)
    return requests


def eventually(check: Callable[[], bool], timeout: float = 10.0) -> None:
    """Usage logs are written in batches and owner checks are cached briefly: poll, with a deadline."""
    deadline = time.monotonic() + timeout
    while not check():
        assert time.monotonic() < deadline, "condition not met in time"
        time.sleep(0.05)


def sse_events(body: str) -> list[dict[str, Any]]:
    return [orjson.loads(line[6:]) for line in body.splitlines() if line.startswith("data: ")]


def sdk(host: Host, api_key: str) -> openai.OpenAI:
    return openai.OpenAI(base_url=host.url + "/ai/v1", api_key=api_key, max_retries=0, timeout=30)


def chat(model: str, **extra: Any) -> dict[str, Any]:
    return {"model": model, "messages": [{"role": "user", "content": "hi"}], **extra}


# -- session calls -----------------------------------------------------------------------------------


def test_session_call_is_charged_to_the_users_default_key(host: Host, upstream: Upstream) -> None:
    client, csrf = signed_in(host, new_user(host))
    body = {"model": "openai/gpt-4o-mini", "input": "hi"}
    r = client.post("/ai/v1/responses", json=body, headers={"X-CSRFToken": csrf})
    assert r.status_code == 200, r.text
    assert r.json()["output"][0]["content"][0]["text"] == ANSWER
    # The gateway, not the browser, holds the provider credential; the host's cookies never go upstream.
    (sent,) = upstream.state.requests
    assert sent.headers["authorization"] == "Bearer sk-test-primary"
    assert "cookie" not in sent.headers
    key_id = default_key_id(client)  # created by that first call, owned by the user
    assert client.post("/ai/v1/responses", json=body, headers={"X-CSRFToken": csrf}).status_code == 200
    eventually(lambda: month_requests(client, key_id) == 2)


def test_session_stream_is_charged_to_the_users_default_key(host: Host) -> None:
    client, csrf = signed_in(host, new_user(host))
    body = {"model": "openai/gpt-4o-mini", "input": "hi", "stream": True}
    r = client.post("/ai/v1/responses", json=body, headers={"X-CSRFToken": csrf})
    assert r.status_code == 200, r.text
    assert r.headers["content-type"].startswith("text/event-stream")
    events = sse_events(r.text)
    assert events[-1]["type"] == "response.completed"
    assert "".join(e["delta"] for e in events if e["type"] == "response.output_text.delta") == ANSWER
    key_id = default_key_id(client)
    eventually(lambda: month_requests(client, key_id) == 1)
    usage = client.get("/ai/api/me/usage").json()["this_month"]["by_key"][key_id]
    # The upstream's reported usage, priced.
    assert (usage["tokens"], usage["cost"]) == (17, pytest.approx(GPT_4O_MINI_COST))


def test_stream_chunks_arrive_before_the_upstream_finishes(host: Host, upstream: Upstream) -> None:
    client, csrf = signed_in(host, "alice")
    started = time.monotonic()
    # The slow stream sends a chunk every 100 ms for 30 s: a buffered answer would arrive after 30 s.
    with client.stream(
        "POST", "/ai/v1/chat/completions", json=chat("openai/slow-stream", stream=True),
        headers={"X-CSRFToken": csrf},
    ) as r:  # fmt: skip
        assert r.status_code == 200
        chunks = r.iter_raw()
        arrivals = []
        for _ in range(3):
            assert next(chunks).startswith(b"data: ")
            arrivals.append(time.monotonic() - started)
            assert upstream.state.open_streams == 1  # the upstream is still streaming
    assert arrivals[0] < 5
    assert arrivals[2] - arrivals[0] >= 0.1  # one by one, as the upstream sent them
    # Leave nothing streaming behind for the next test's counts.
    eventually(lambda: upstream.state.open_streams == 0)


def test_client_disconnect_mid_stream_cancels_the_upstream(host: Host, upstream: Upstream) -> None:
    client, csrf = signed_in(host, "alice")
    with client.stream(
        "POST", "/ai/v1/chat/completions", json=chat("openai/slow-stream", stream=True),
        headers={"X-CSRFToken": csrf},
    ) as r:  # fmt: skip
        next(r.iter_raw())
    client.close()  # the connection goes away mid-stream
    eventually(lambda: upstream.state.cancelled_streams == 1 and upstream.state.open_streams == 0)


# -- keys --------------------------------------------------------------------------------------------


def test_key_call_with_the_openai_sdk_needs_no_session(host: Host) -> None:
    client, csrf = signed_in(host, "bob")
    key = create_key(client, csrf, "laptop")
    api = sdk(host, key["value"])  # no cookies, no CSRF token
    assert api.responses.create(model="openai/gpt-4o-mini", input="hi").output_text == ANSWER
    messages: list[Any] = [{"role": "user", "content": "hi"}]
    stream = api.chat.completions.create(model="openai/gpt-4o-mini", messages=messages, stream=True)
    assert "".join(c.choices[0].delta.content or "" for c in stream if c.choices) == ANSWER
    eventually(lambda: month_requests(client, key["id"]) == 2)
    with pytest.raises(openai.AuthenticationError):  # no key and no session: nobody to charge
        sdk(host, "unused").responses.create(model="openai/gpt-4o-mini", input="hi")


def test_a_deactivated_users_key_is_refused(host: Host) -> None:
    client, csrf = signed_in(host, "carol")
    api = sdk(host, create_key(client, csrf, "script")["value"])
    assert api.responses.create(model="openai/gpt-4o-mini", input="hi").output_text == ANSWER
    host.users.set_active("carol", False)
    try:

        def refused() -> bool:
            try:
                api.responses.create(model="openai/gpt-4o-mini", input="hi")
            except openai.PermissionDeniedError as exc:
                assert isinstance(exc.body, dict)  # the SDK keeps the BifrostError's "error" object
                return exc.body.get("type") == "virtual_key_blocked"
            return False

        eventually(refused)  # owners are re-checked within seconds of a change
        # Still signed in from before: the session does not outlive the deactivation either.
        r = client.post("/ai/v1/responses", json={"model": "openai/gpt-4o-mini", "input": "hi"},
                        headers={"X-CSRFToken": csrf})  # fmt: skip
        assert r.status_code == 403, r.text
    finally:
        host.users.set_active("carol", True)


def test_csrf_is_enforced_for_session_calls(host: Host, upstream: Upstream) -> None:
    client, csrf = signed_in(host, "alice")
    body = {"model": "openai/gpt-4o-mini", "input": "hi"}
    for headers in ({}, {"X-CSRFToken": "x" * 43}):
        r = client.post("/ai/v1/responses", json=body, headers=headers)
        assert r.status_code == 403, r.text
        assert_valid(bifrost_error_validator(), r.json())
        assert r.json()["error"]["type"] == "csrf_failed"
    assert upstream.state.requests == []  # refused before the gateway spent anything
    assert client.get("/ai/v1/models").status_code == 200  # reads need no token
    assert client.post("/ai/v1/responses", json=body, headers={"X-CSRFToken": csrf}).status_code == 200


def test_users_cannot_use_or_list_each_others_keys(host: Host) -> None:
    bob, bob_csrf = signed_in(host, "bob")
    bobs = create_key(bob, bob_csrf, "bob's")
    alice, alice_csrf = signed_in(host, "alice")
    listed = alice.get("/ai/api/me/virtual-keys").json()["virtual_keys"]
    assert bobs["id"] not in [k["id"] for k in listed]
    assert all(k["owner"] == "alice" for k in listed)
    r = alice.post("/ai/v1/responses", json={"model": "openai/gpt-4o-mini", "input": "hi"},
                   headers={"Authorization": f"Bearer {bobs['value']}"})  # fmt: skip
    assert r.status_code == 403, r.text
    assert alice.get(f"/ai/api/me/virtual-keys/{bobs['id']}/usage").status_code == 404
    gone = alice.delete(f"/ai/api/me/virtual-keys/{bobs['id']}", headers={"X-CSRFToken": alice_csrf})
    assert gone.status_code == 404
    assert sdk(host, bobs["value"]).responses.create(model="openai/gpt-4o-mini", input="hi").output_text
    assert alice.get("/ai/api/governance/virtual-keys").status_code == 401  # not an admin


def test_one_loop_serves_every_request_of_a_process(host: Host) -> None:
    client, csrf = signed_in(host, "alice")
    loops: dict[int, set[int]] = {}
    for _ in range(12):
        r = client.post("/ai/v1/responses", json={"model": "mock/mock-1", "input": "hi"},
                        headers={"X-CSRFToken": csrf})  # fmt: skip
        assert r.status_code == 200, r.text
        seen = httpx.get(host.url + "/loop").json()
        loops.setdefault(seen["pid"], set()).add(seen["loop"])
    assert all(len(ids) == 1 for ids in loops.values()), loops
