"""The Flask extension through Flask's own test client: conventions, configuration, who the principal
is, CSRF (its own double-submit and Flask-WTF's), the bridge to the async gateway, and the owner check.
"""

from __future__ import annotations

import asyncio
import base64
import json
import logging
import os
import sqlite3
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

pytest.importorskip("flask")
pytest.importorskip("flask_login")

from flask import Flask, has_app_context  # noqa: E402
from flask.testing import FlaskClient  # noqa: E402

import bifrost_flask  # noqa: E402
from bifrost_asgi import ConfigError, GatewayConfig, Principal  # noqa: E402
from bifrost_asgi.adapters import LoopThread, SyncResponse, call_gateway_sync  # noqa: E402
from bifrost_flask import Bifrost  # noqa: E402
from bifrost_flask._auth import FlaskOwnerDirectory  # noqa: E402
from bifrost_flask._view import request_scope  # noqa: E402
from tests.contrib_flask.hostapp import UserTable, create_app, flask_login, gateway_config  # noqa: E402
from tests.schemas import assert_valid, bifrost_error_validator  # noqa: E402
from tests.upstream import Upstream  # noqa: E402

MOCK = {"model": "mock/mock-1", "input": "hi"}
REPO = Path(__file__).resolve().parents[2]


@pytest.fixture
def apps() -> Iterator[list[Flask]]:
    """Apps a test made; their gateways are shut down (loop thread stopped) afterwards."""
    made: list[Flask] = []
    yield made
    for app in made:
        if "bifrost" in app.extensions:
            app.extensions["bifrost"].runtime.close()


@pytest.fixture
def host(apps: list[Flask], upstream_url: str, tmp_path: Path) -> Callable[..., Flask]:
    def make(**kwargs: Any) -> Flask:
        app = create_app(upstream_url, tmp_path / f"host{len(apps)}", **kwargs)
        apps.append(app)
        return app

    return make


def bare_app(apps: list[Flask], tmp_path: Path, **config: Any) -> Flask:
    app = Flask(__name__, root_path=str(tmp_path), instance_path=str(tmp_path / "instance"))
    app.config.update(SECRET_KEY="s", **config)
    apps.append(app)
    return app


def sign_in(client: FlaskClient, user: str) -> str:
    r = client.post(f"/login/{user}")
    assert r.status_code == 200, r.text
    token: str = r.get_json()["csrf"]
    return token


def create_key(client: FlaskClient, csrf: str) -> dict[str, Any]:
    r = client.post("/ai/api/me/virtual-keys", json={"name": "k"}, headers={"X-CSRFToken": csrf})
    assert r.status_code == 200, r.text
    key: dict[str, Any] = r.get_json()["virtual_key"]
    return key


def error_type(r: Any) -> str:
    body = r.get_json()
    assert_valid(bifrost_error_validator(), body)
    kind: str = body["error"]["type"]
    return kind


def models(client: FlaskClient, prefix: str = "/ai") -> set[str]:
    r = client.get(prefix + "/v1/models")
    assert r.status_code == 200, r.text
    return {m["id"] for m in r.get_json()["data"]}


# -- conventions -------------------------------------------------------------------------------------


def test_one_extension_serves_many_apps_each_with_its_own_state(apps: list[Flask], tmp_path: Path) -> None:
    bifrost = Bifrost()  # the application-factory pattern: created once, registered on each app
    first = bare_app(apps, tmp_path / "a", BIFROST_URL_PREFIX="/gateway/")
    second = bare_app(apps, tmp_path / "b")
    for app in (first, second):
        bifrost.init_app(app)
    assert first.config["BIFROST_URL_PREFIX"] == "/gateway/"  # the app's own value is kept
    assert second.config["BIFROST_URL_PREFIX"] == "/ai"
    assert first.config["BIFROST_CSRF_ENABLED"] is True
    assert models(first.test_client(), "/gateway") == {"mock/mock-1"}  # no BIFROST_CONFIG: the offline mock
    assert first.test_client().get("/ai/v1/models").status_code == 404
    assert second.test_client().get("/ai/v1/models").status_code == 200
    assert first.extensions["bifrost"] is not second.extensions["bifrost"]
    with first.app_context():
        gateway_one = bifrost.gateway
    with second.app_context():
        assert bifrost.gateway is not gateway_one


def test_registering_twice_on_one_app_is_refused(apps: list[Flask], tmp_path: Path) -> None:
    app = bare_app(apps, tmp_path)
    Bifrost(app)
    with pytest.raises(RuntimeError, match="already registered"):
        Bifrost(app)


def test_an_extension_never_initialised_on_the_app_says_so(apps: list[Flask], tmp_path: Path) -> None:
    bifrost = Bifrost()
    app = bare_app(apps, tmp_path)
    uses: list[Callable[[], object]] = [
        bifrost.csrf_token, lambda: bifrost.gateway, lambda: bifrost.loop, bifrost.close,
    ]  # fmt: skip
    with app.test_request_context("/"):
        for use in uses:
            with pytest.raises(RuntimeError, match=r"init_app"):
                use()


# -- configuration -----------------------------------------------------------------------------------

PROVIDERS = {"providers": {"mock": {"keys": [{"value": "unused", "models": ["from-config"]}]}}}


@pytest.mark.parametrize("form", ["dict", "relative path", "absolute path", "GatewayConfig"])
def test_bifrost_config_takes_every_form(apps: list[Flask], tmp_path: Path, form: str) -> None:
    (tmp_path / "config.json").write_text(json.dumps(PROVIDERS))
    source: object = {
        "dict": PROVIDERS,
        "relative path": "config.json",  # relative to the app's root_path, as Flask's config.from_file
        "absolute path": tmp_path / "config.json",
        "GatewayConfig": GatewayConfig.from_dict(PROVIDERS),
    }[form]
    app = bare_app(apps, tmp_path, BIFROST_CONFIG=source)
    Bifrost(app)
    assert models(app.test_client()) == {"mock/from-config"}


def test_without_config_the_offline_mock_answers_and_keys_live_in_the_instance_folder(
    apps: list[Flask], tmp_path: Path
) -> None:
    app = bare_app(apps, tmp_path)
    Bifrost(app, principal_loader=lambda: Principal("u1", "token"))
    client = app.test_client()
    r = client.post("/ai/v1/responses", json={"model": "mock/gpt-4o-mini", "input": "hi"})
    assert r.status_code == 200, r.text
    assert "[mock]" in r.text
    assert (tmp_path / "instance" / "bifrost.db").is_file()
    assert [k["owner"] for k in client.get("/ai/api/me/virtual-keys").get_json()["virtual_keys"]] == ["u1"]


@pytest.mark.parametrize(
    ("config", "message"),
    [
        ({"BIFROST_CONFIG": 42}, "BIFROST_CONFIG: expected a dict"),
        ({"BIFROST_CONFIG": {"providers": {"openai": {"keys": "x"}}}}, "providers.openai.keys"),
        ({"BIFROST_CONFIG": "missing.json"}, "cannot read"),
        ({"BIFROST_URL_PREFIX": "ai"}, "BIFROST_URL_PREFIX"),
    ],
)
def test_invalid_config_is_refused_when_the_app_is_set_up(
    apps: list[Flask], tmp_path: Path, config: dict[str, Any], message: str
) -> None:
    app = bare_app(apps, tmp_path, **config)
    with pytest.raises(ConfigError, match=message):
        Bifrost(app)
    assert "bifrost" not in app.extensions


# -- who is calling ----------------------------------------------------------------------------------


def test_a_signed_in_user_is_charged_to_their_own_default_key(host: Callable[..., Flask]) -> None:
    client = host().test_client()
    csrf = sign_in(client, "alice")
    assert client.post("/ai/v1/responses", json=MOCK, headers={"X-CSRFToken": csrf}).status_code == 200
    (key,) = client.get("/ai/api/me/virtual-keys").get_json()["virtual_keys"]
    assert (key["name"], key["owner"]) == ("default", "alice")
    anonymous = host().test_client()  # enforce_auth_on_inference: nobody to charge
    assert anonymous.post("/ai/v1/responses", json=MOCK).status_code == 401
    assert anonymous.get("/ai/api/me/virtual-keys").status_code == 401


class MixinUser(flask_login.UserMixin):  # type: ignore[misc]  # Flask-Login ships no types
    """The usual Flask-Login user: UserMixin counts an inactive user as not authenticated."""

    def __init__(self, user_id: str, active: bool) -> None:
        self.id, self.active = user_id, active

    @property
    def is_active(self) -> bool:
        return self.active


@pytest.mark.parametrize("change", ["deactivated", "deleted"])
def test_a_user_deactivated_while_signed_in_is_told_so(
    apps: list[Flask], tmp_path: Path, change: str
) -> None:
    users = {"dora": MixinUser("dora", True)}
    app = bare_app(apps, tmp_path, BIFROST_CONFIG={"providers": {"mock": {}},
                                                  "client": {"enforce_auth_on_inference": True}})  # fmt: skip
    flask_login.LoginManager(app).user_loader(users.get)
    bifrost = Bifrost(app)

    @app.post("/login")
    def log_in() -> dict[str, str]:
        flask_login.login_user(users["dora"])
        return {"csrf": bifrost.csrf_token()}

    client = app.test_client()
    csrf = client.post("/login").get_json()["csrf"]
    assert client.post("/ai/v1/responses", json=MOCK, headers={"X-CSRFToken": csrf}).status_code == 200
    if change == "deactivated":
        users["dora"].active = False
    else:
        del users["dora"]
    r = client.post("/ai/v1/responses", json=MOCK, headers={"X-CSRFToken": csrf})
    assert r.status_code == 403, r.text
    assert r.get_json()["type"] == "virtual_key_blocked"
    assert r.get_json()["error"]["message"] == "This account is inactive"
    assert app.test_client().post("/ai/v1/responses", json=MOCK).status_code == 401  # never signed in


@pytest.mark.parametrize(("via", "status"), [("token", 200), ("session", 403)])
def test_a_principal_loader_replaces_flask_login(
    apps: list[Flask], tmp_path: Path, via: str, status: int
) -> None:
    principal = Principal("u7", "token") if via == "token" else Principal("u7", "session")
    app = bare_app(apps, tmp_path)
    Bifrost(app, principal_loader=lambda: principal)
    r = app.test_client().post("/ai/v1/responses", json=MOCK)  # no CSRF token
    assert r.status_code == status, r.text
    if via == "session":
        assert error_type(r) == "csrf_failed"


def test_a_flask_login_request_loader_user_needs_no_csrf_token(host: Callable[..., Flask]) -> None:
    app = host()
    users: UserTable = app.extensions["hostapp.users"]
    # A header the browser never sends on its own (an API token): not cookie-authenticated.
    app.login_manager.request_loader(lambda request: users.get(request.headers.get("X-Host-Token", "")))  # type: ignore[attr-defined]
    client = app.test_client()
    r = client.post("/ai/v1/responses", json=MOCK, headers={"X-Host-Token": "bob"})
    assert r.status_code == 200, r.text
    keys = client.get("/ai/api/me/virtual-keys", headers={"X-Host-Token": "bob"}).get_json()["virtual_keys"]
    assert [k["owner"] for k in keys] == ["bob"]


@pytest.mark.parametrize(
    ("options", "admin", "not_admin"),
    [({}, "root", "alice"), ({"is_admin": lambda user: user.id == "alice"}, "alice", "root")],
)
def test_admins_come_from_the_user_attribute_or_callable(
    host: Callable[..., Flask], options: dict[str, Any], admin: str, not_admin: str
) -> None:
    app = host(**options)
    for user, status in ((admin, 200), (not_admin, 401)):
        client = app.test_client()
        sign_in(client, user)
        assert client.get("/ai/api/governance/virtual-keys").status_code == status
    # The management API is never open to anonymous visitors of the host, even without auth_config.
    assert app.test_client().get("/ai/api/governance/virtual-keys").status_code == 401
    assert app.test_client().get("/ai/api/logs").status_code == 401
    assert app.test_client().get("/ai/api/logs/export").status_code == 401  # all below it, too


def test_with_admin_credentials_configured_basic_auth_works_too(
    host: Callable[..., Flask], upstream_url: str, tmp_path: Path
) -> None:
    config = gateway_config(upstream_url, tmp_path)
    admin = {"is_enabled": True, "admin_username": "ops", "admin_password": "pw"}
    config["governance"]["auth_config"] = admin
    app = host(config=config)
    basic = {"Authorization": "Basic " + base64.b64encode(b"ops:pw").decode()}
    assert app.test_client().get("/ai/api/governance/virtual-keys", headers=basic).status_code == 200
    assert app.test_client().get("/ai/api/governance/virtual-keys").status_code == 401
    client = app.test_client()
    sign_in(client, "root")
    assert client.get("/ai/api/governance/virtual-keys").status_code == 200


# -- CSRF --------------------------------------------------------------------------------------------


def test_the_csrf_cookie_is_set_once_on_any_host_page(host: Callable[..., Flask]) -> None:
    client = host().test_client()
    first = client.get("/")
    (cookie,) = [c for c in first.headers.getlist("Set-Cookie") if c.startswith("bifrost_csrf=")]
    token = cookie.split(";")[0].split("=", 1)[1]
    assert len(token) == 43
    attributes = {part.strip().lower() for part in cookie.split(";")[1:]}
    assert {"path=/", "samesite=lax"} <= attributes
    assert "httponly" not in attributes  # the page's JavaScript must read it
    assert not client.get("/").headers.getlist("Set-Cookie")  # the browser has one: kept
    client.set_cookie("bifrost_csrf", "not-a-token")
    assert "bifrost_csrf=" in client.get("/").headers["Set-Cookie"]  # a malformed one is replaced


def test_the_csrf_token_helper_gives_the_cookie_set_on_the_same_response(host: Callable[..., Flask]) -> None:
    client = host().test_client()
    csrf = sign_in(client, "alice")
    cookie = client.get_cookie("bifrost_csrf")
    assert cookie is not None and cookie.value == csrf
    r = client.post("/ai/v1/responses", json=MOCK, headers={"X-CSRFToken": "wrong" + csrf[5:]})
    assert r.status_code == 403 and error_type(r) == "csrf_failed"


def test_csrf_names_are_configurable_and_the_check_can_be_turned_off(
    apps: list[Flask], tmp_path: Path
) -> None:
    def session_user() -> Principal:
        return Principal("u1", "session")

    app = bare_app(apps, tmp_path / "a", BIFROST_CSRF_COOKIE_NAME="xsrf", BIFROST_CSRF_HEADER_NAME="X-XSRF")
    Bifrost(app, principal_loader=session_user)
    client = app.test_client()
    client.get("/ai/health")
    cookie = client.get_cookie("xsrf")
    assert cookie is not None
    for header, status in (("X-CSRFToken", 403), ("X-XSRF", 200)):
        r = client.post("/ai/v1/responses", json=MOCK, headers={header: cookie.value})
        assert r.status_code == status, r.text
    off = bare_app(apps, tmp_path / "b", BIFROST_CSRF_ENABLED=False)
    Bifrost(off, principal_loader=session_user)
    assert off.test_client().post("/ai/v1/responses", json=MOCK).status_code == 200


def test_a_call_with_a_virtual_key_needs_no_csrf_token(host: Callable[..., Flask]) -> None:
    app = host()
    client = app.test_client()
    key = create_key(client, sign_in(client, "alice"))
    # Still signed in, but the call authenticates with the key: a header no other site can set.
    r = client.post("/ai/v1/responses", json=MOCK, headers={"x-bf-vk": key["value"]})
    assert r.status_code == 200, r.text


@pytest.mark.parametrize("order", ["CSRFProtect first", "Bifrost first"])
def test_flask_wtf_csrfprotect_guards_session_calls_when_the_app_has_it(
    upstream_url: str, tmp_path: Path, apps: list[Flask], order: str
) -> None:
    csrf_module = pytest.importorskip("flask_wtf.csrf")
    app = Flask(__name__, instance_path=str(tmp_path))
    app.config.update(SECRET_KEY="s", BIFROST_CONFIG=gateway_config(upstream_url, tmp_path))
    apps.append(app)
    users = UserTable(tmp_path / "users.db")
    flask_login.LoginManager(app).user_loader(users.get)
    if order == "CSRFProtect first":
        csrf_module.CSRFProtect(app)
    bifrost = Bifrost(app)
    if order == "Bifrost first":
        csrf_module.CSRFProtect(app)

    @app.post("/login/<name>")
    def login(name: str) -> dict[str, str]:
        flask_login.login_user(users.get(name))
        return {"csrf": bifrost.csrf_token()}

    client = app.test_client()
    app.config["WTF_CSRF_CHECK_DEFAULT"] = False  # the login route itself is not what is under test
    token = client.post("/login/alice").get_json()["csrf"]
    app.config["WTF_CSRF_CHECK_DEFAULT"] = True
    assert client.get_cookie("bifrost_csrf") is None  # Flask-WTF's token, not the double-submit cookie
    r = client.post("/ai/v1/responses", json=MOCK)
    assert r.status_code == 403 and error_type(r) == "csrf_failed"  # our JSON, not Flask-WTF's 400 page
    assert "missing" in r.get_json()["error"]["message"]
    assert client.post("/ai/v1/responses", json=MOCK, headers={"X-CSRFToken": token}).status_code == 200
    key = create_key(client, token)
    # Flask-WTF's app-wide check is off for the gateway: key calls have no token to show.
    r = app.test_client().post("/ai/v1/responses", json=MOCK, headers={"x-bf-vk": key["value"]})
    assert r.status_code == 200, r.text
    app.config["WTF_CSRF_ENABLED"] = False  # the host turned Flask-WTF off (its tests do): followed
    assert client.post("/ai/v1/responses", json=MOCK).status_code == 200


# -- the bridge --------------------------------------------------------------------------------------


def test_the_scope_carries_the_principal_but_never_the_hosts_cookies(
    apps: list[Flask], tmp_path: Path
) -> None:
    app = bare_app(apps, tmp_path)
    Bifrost(app)
    headers = {"Cookie": "session=s3cr3t", "X-CSRFToken": "t0ken", "Authorization": "Bearer sk-bf-x"}
    principal = Principal("u1", "session")
    with app.test_request_context("/ai/v1/responses?x=1", base_url="http://host/app/", headers=headers):
        scope = request_scope(principal, "/ai")
    sent = dict(scope["headers"])  # type: ignore[call-overload]
    assert b"cookie" not in sent and b"x-csrftoken" not in sent
    assert sent[b"authorization"] == b"Bearer sk-bf-x"  # a virtual key is the gateway's business
    # ASGI: the full path, and the mount point as root_path (the gateway builds URLs from it).
    assert (scope["path"], scope["root_path"]) == ("/app/ai/v1/responses", "/app/ai")
    assert scope["query_string"] == b"x=1"
    assert scope["bifrost.principal"] == principal


def test_a_stream_is_not_buffered_and_closing_it_cancels_the_upstream(
    host: Callable[..., Flask], upstream: Upstream
) -> None:
    client = host().test_client()
    csrf = sign_in(client, "alice")
    body = {"model": "openai/slow-stream", "messages": [{"role": "user", "content": "hi"}], "stream": True}
    r = client.post("/ai/v1/chat/completions", json=body, headers={"X-CSRFToken": csrf}, buffered=False)
    assert r.status_code == 200
    assert "connection" not in r.headers and r.headers["X-Accel-Buffering"] == "no"
    first = next(iter(r.response))
    assert isinstance(first, bytes) and first.startswith(b"data: ")
    assert upstream.state.open_streams == 1  # the first chunk came while the upstream still streams
    r.close()  # what the WSGI server does when the client goes away
    deadline = time.monotonic() + 10
    while upstream.state.cancelled_streams == 0 and time.monotonic() < deadline:
        time.sleep(0.05)
    assert upstream.state.cancelled_streams == 1


def test_one_loop_serves_every_request_until_closed(
    host: Callable[..., Flask], monkeypatch: pytest.MonkeyPatch
) -> None:
    seen: list[LoopThread] = []

    def spy(loop: LoopThread, *args: Any) -> SyncResponse:
        seen.append(loop)
        return call_gateway_sync(loop, *args)

    monkeypatch.setattr("bifrost_flask._view.call_gateway_sync", spy)
    app = host()
    client = app.test_client()
    for _ in range(3):
        client.get("/ai/v1/models")
    assert len({id(loop.loop) for loop in seen}) == 1
    first = seen[0]
    app.extensions["hostapp.bifrost"].close(app)
    assert first.loop.is_closed()  # stopped, its worker threads joined
    app.extensions["hostapp.bifrost"].close(app)  # idempotent
    client.get("/ai/v1/models")
    assert seen[-1] is not first  # a request after close starts a fresh one


def test_a_forked_worker_builds_its_own_gateway_and_loop(
    host: Callable[..., Flask], monkeypatch: pytest.MonkeyPatch
) -> None:
    runtime = host().extensions["bifrost"].runtime
    built_in_parent = runtime.app  # gunicorn --preload: the app is set up before the fork
    monkeypatch.setattr("bifrost_asgi.adapters.runtime.os.getpid", lambda: -1)  # now in the child
    loop, app = runtime.get()
    assert app is not built_in_parent  # it may hold the parent's state: never shared with a child
    assert runtime.get() == (loop, app)
    runtime.close()


def test_a_gateway_failure_is_a_bifrost_error_without_details(
    host: Callable[..., Flask], monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    def broken(*args: Any) -> SyncResponse:
        raise RuntimeError("boom with sk-secret-value")

    monkeypatch.setattr("bifrost_flask._view.call_gateway_sync", broken)
    with caplog.at_level(logging.ERROR, logger="bifrost_flask"):
        r = host().test_client().get("/ai/v1/models")
    assert r.status_code == 500 and error_type(r) == "bifrost_internal"
    assert "sk-secret" not in r.text
    assert "boom" in caplog.text  # the traceback is for the server's log


def test_a_gateway_that_cannot_start_answers_500_and_retries_later(
    host: Callable[..., Flask], upstream_url: str, tmp_path: Path
) -> None:
    config = gateway_config(upstream_url, tmp_path)
    key = {"id": "k", "name": "k", "value": "sk-bf-" + "x" * 43, "rate_limit_id": "undeclared"}
    config["governance"]["virtual_keys"] = [key]  # seeded on startup: fails there
    app = host(config=config)
    for _ in range(2):
        r = app.test_client().get("/ai/v1/models")
        assert r.status_code == 500 and error_type(r) == "bifrost_internal"
    assert app.extensions["bifrost"].runtime._loop is None  # no loop thread left behind


# -- stores ------------------------------------------------------------------------------------------

REDIS_URL = "redis://127.0.0.1:6379/0"


def _redis_or_skip() -> str:
    """The local Redis server; missing is a skip on a laptop but a failure in CI (as tests/governance)."""
    try:
        import redis

        client = redis.Redis.from_url(REDIS_URL, socket_connect_timeout=1)
        try:
            client.ping()
        finally:
            client.close()
    except Exception as exc:  # ImportError or any connection failure: same verdict
        if os.environ.get("CI"):
            pytest.fail(f"Redis is required in CI but not usable at {REDIS_URL}: {exc!r}")
        pytest.skip(f"no Redis at {REDIS_URL}: {exc!r}")
    return REDIS_URL


@pytest.mark.parametrize("counters", ["sqlite", "redis"])
def test_a_users_limits_hold_with_sqlite_or_redis_counters(
    host: Callable[..., Flask], upstream_url: str, tmp_path: Path, counters: str
) -> None:
    config = gateway_config(upstream_url, tmp_path)
    governance = config["governance"]
    governance["default_user_key"] = {"rate_limit": {"request_max_limit": 2, "request_reset_duration": "1h"}}
    if counters == "redis":
        prefix = f"bifrost-flask-test-{uuid.uuid4().hex}:"  # a fresh window for every run
        governance["counters"] = {"type": "redis", "url": _redis_or_skip(), "prefix": prefix}
    client = host(config=config).test_client()
    csrf = sign_in(client, "alice")
    headers = {"X-CSRFToken": csrf}
    statuses = [client.post("/ai/v1/responses", json=MOCK, headers=headers).status_code for _ in range(3)]
    assert statuses == [200, 200, 429]  # the default key's limit, from governance.default_user_key


# -- key owners --------------------------------------------------------------------------------------


def test_the_default_owner_check_asks_the_flask_login_user_loader_off_the_loop(
    host: Callable[..., Flask],
) -> None:
    app = host()
    users: UserTable = app.extensions["hostapp.users"]
    calls: list[tuple[str, bool]] = []

    def loader(user_id: str) -> Any:
        calls.append((threading.current_thread().name, has_app_context()))
        return users.get(user_id)

    app.login_manager.user_loader(loader)  # type: ignore[attr-defined]
    directory = FlaskOwnerDirectory(app)
    users.set_active("carol", False)
    answers = asyncio.run(_ask(directory, ["alice", "carol", "nobody"]))
    assert answers == [True, False, False]
    # In a worker thread (a slow user table must not stall the loop), inside an app context.
    assert calls and all(thread != threading.current_thread().name and ctx for thread, ctx in calls)


async def _ask(directory: FlaskOwnerDirectory, owners: list[str]) -> list[bool]:
    return [await directory.is_active(owner) for owner in owners]


def test_an_owner_active_callable_decides_for_key_calls(host: Callable[..., Flask]) -> None:
    blocked = {"alice"}
    app = host(owner_active=lambda user_id: user_id not in blocked)
    client = app.test_client()
    key = create_key(client, sign_in(client, "alice"))
    r = app.test_client().post("/ai/v1/responses", json=MOCK, headers={"x-bf-vk": key["value"]})
    assert r.status_code == 403 and error_type(r) == "virtual_key_blocked"


def test_without_a_user_loader_the_owner_check_says_what_to_do(apps: list[Flask], tmp_path: Path) -> None:
    app = bare_app(apps, tmp_path)
    with pytest.raises(RuntimeError, match="owner_active"):
        asyncio.run(FlaskOwnerDirectory(app).is_active("u1"))


# -- packaging ---------------------------------------------------------------------------------------


def test_importing_the_adapter_without_flask_names_the_extra_to_install() -> None:
    code = "import sys\nsys.modules['flask'] = None\nimport bifrost_flask\n"
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert done.returncode != 0
    assert "ImportError: bifrost_flask needs Flask: pip install 'bifrost-asgi[flask]'" in done.stderr


def test_the_public_surface_is_pinned() -> None:
    assert bifrost_flask.__all__ == ["Bifrost", "Principal"]


def test_usage_logs_still_buffered_at_exit_are_written(upstream_url: str, tmp_path: Path) -> None:
    code = f"""
from pathlib import Path
from tests.contrib_flask.hostapp import create_app, gateway_config
config = gateway_config({upstream_url!r}, Path({str(tmp_path)!r}))
config["governance"]["logs"]["flush_interval_ms"] = 3_600_000  # nothing is written before exit
app = create_app({upstream_url!r}, {str(tmp_path)!r}, config=config)
client = app.test_client()
csrf = client.post("/login/alice").get_json()["csrf"]
r = client.post("/ai/v1/responses", json={MOCK!r}, headers={{"X-CSRFToken": csrf}})
assert r.status_code == 200, r.text
"""
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=REPO, timeout=60)
    assert done.returncode == 0, done.stderr
    assert "failed" not in done.stderr
    with sqlite3.connect(tmp_path / "bifrost.db") as db:
        assert db.execute("SELECT count(*) FROM bifrost_logs").fetchone() == (1,)
