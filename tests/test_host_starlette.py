"""A Starlette host app whose own users own the keys: BifrostMiddleware + AuthenticationMiddleware,
over a live uvicorn server, with the official SDK where a user would use it."""

from __future__ import annotations

import contextlib
import time
from collections.abc import AsyncIterator, Iterator
from typing import Any

import httpx
import openai
import pytest
from starlette.applications import Starlette
from starlette.authentication import AuthCredentials, AuthenticationBackend, BaseUser, SimpleUser
from starlette.middleware import Middleware
from starlette.middleware.authentication import AuthenticationMiddleware
from starlette.middleware.sessions import SessionMiddleware
from starlette.requests import HTTPConnection
from starlette.responses import PlainTextResponse
from starlette.routing import Mount, Route
from starlette.testclient import TestClient

from bifrost_asgi import BifrostMiddleware, GatewayConfig, Principal, create_app
from tests.conftest import LiveServer, gateway_config, serve
from tests.upstream import ANSWER, Upstream

ACTIVE = {"alice": True, "bob": True, "carol": False}
STAFF = {"root"}


class CookieUser(SimpleUser):
    @property
    def is_staff(self) -> bool:
        return self.username in STAFF


class CookieBackend(AuthenticationBackend):
    """Stands in for a real session: the cookie names the signed-in user."""

    async def authenticate(self, conn: HTTPConnection) -> tuple[AuthCredentials, BaseUser] | None:
        name = conn.cookies.get("user")
        if not name:
            return None
        return AuthCredentials(["authenticated"]), CookieUser(name)


class Directory:
    async def is_active(self, owner: str) -> bool:
        return ACTIVE.get(owner, owner in STAFF)


async def home(request: Any) -> PlainTextResponse:
    return PlainTextResponse("host home")


@pytest.fixture(scope="module")
def host(upstream_url: str) -> Iterator[LiveServer]:
    data = gateway_config(upstream_url)
    admin = {"is_enabled": True, "admin_username": "admin", "admin_password": "pw"}
    data["governance"] = {"store": {"type": "memory"}, "counters": {"type": "memory"}, "auth_config": admin}
    gateway = create_app(GatewayConfig.from_dict(data), owner_directory=Directory())

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        async with gateway.router.lifespan_context(gateway):  # closes the gateway's pool on shutdown
            yield

    app = Starlette(
        lifespan=lifespan,
        routes=[Route("/", home), Mount("/ai", app=gateway)],
        middleware=[Middleware(AuthenticationMiddleware, backend=CookieBackend()),
                    Middleware(BifrostMiddleware, path_prefix="/ai")],
    )  # fmt: skip
    live = serve(app)
    yield live
    live.stop()


@contextlib.contextmanager
def session(host: LiveServer, user: str) -> Iterator[httpx.Client]:
    """A browser: signs in, loads a host page (which sets the CSRF cookie), sends the token back."""
    with httpx.Client(base_url=host.url, cookies={"user": user}, timeout=10) as client:
        client.get("/")
        token = client.cookies.get("bifrost_csrf")
        assert token, "the host page must hand out a CSRF cookie"
        client.headers["x-csrftoken"] = token
        yield client


def responses_body(**extra: Any) -> dict[str, Any]:
    return {"model": "openai/gpt-4o-mini", "input": "hi", **extra}


def test_session_call_is_charged_to_the_users_default_key(host: LiveServer, upstream: Upstream) -> None:
    with session(host, "alice") as browser:
        r = browser.post("/ai/v1/responses", json=responses_body())
        assert r.status_code == 200, r.text
        assert r.json()["output"][0]["content"][0]["text"] == ANSWER
        streamed = browser.post("/ai/v1/responses", json=responses_body(stream=True))
        assert streamed.status_code == 200
        assert "event: response.completed" in streamed.text
        keys = browser.get("/ai/api/me/virtual-keys").json()["virtual_keys"]
    assert [k["name"] for k in keys] == ["default"]
    assert keys[0]["owner"] == "alice"


def test_session_write_without_csrf_token_is_refused(host: LiveServer) -> None:
    with httpx.Client(base_url=host.url, cookies={"user": "alice"}) as browser:
        r = browser.post("/ai/v1/responses", json=responses_body())
    assert r.status_code == 403
    assert r.json()["error"]["type"] == "csrf_failed"


def test_a_csrf_header_with_any_bytes_is_refused_not_a_crash(host: LiveServer) -> None:
    with httpx.Client(base_url=host.url, cookies={"user": "alice", "bifrost_csrf": "token"}) as browser:
        headers = [(b"x-csrftoken", "t\xf6ken".encode("latin-1"))]  # a header may carry any byte
        r = browser.post("/ai/v1/responses", json=responses_body(), headers=headers)
    assert r.status_code == 403
    assert r.json()["error"]["type"] == "csrf_failed"


def test_user_creates_a_key_and_uses_it_with_the_sdk_without_a_session(host: LiveServer) -> None:
    with session(host, "alice") as browser:
        created = browser.post("/ai/api/me/virtual-keys", json={"name": "laptop"}).json()["virtual_key"]
    value = created["value"]
    assert value.startswith("sk-bf-")
    client = openai.OpenAI(base_url=host.url + "/ai/v1", api_key=value, max_retries=0)
    resp = client.responses.create(model="openai/gpt-4o-mini", input="hi")
    assert resp.output_text == ANSWER
    with httpx.Client(base_url=host.url) as anonymous:  # no session, no CSRF: the key is enough
        assert (
            anonymous.post("/ai/v1/responses", json=responses_body(), headers={"x-bf-vk": value}).status_code
            == 200
        )


def test_users_cannot_use_or_see_each_others_keys(host: LiveServer) -> None:
    with session(host, "bob") as bob:
        bob_key = bob.post("/ai/api/me/virtual-keys", json={"name": "bob's"}).json()["virtual_key"]
    with session(host, "alice") as alice:
        r = alice.post("/ai/v1/responses", json=responses_body(), headers={"x-bf-vk": bob_key["value"]})
        assert r.status_code == 403
        assert r.json()["type"] == "virtual_key_blocked"
        listed = [k["id"] for k in alice.get("/ai/api/me/virtual-keys").json()["virtual_keys"]]
        assert bob_key["id"] not in listed
        assert alice.get(f"/ai/api/me/virtual-keys/{bob_key['id']}/usage").status_code == 404
        assert alice.delete(f"/ai/api/me/virtual-keys/{bob_key['id']}").status_code == 404


def test_an_inactive_users_key_is_refused(host: LiveServer) -> None:
    ACTIVE["carol"] = True
    try:
        with session(host, "carol") as carol:
            value = carol.post("/ai/api/me/virtual-keys", json={"name": "c"}).json()["virtual_key"]["value"]
    finally:
        ACTIVE["carol"] = False
    time.sleep(2.1)  # the owner check is cached as briefly as key lookups
    with httpx.Client(base_url=host.url) as anonymous:
        r = anonymous.post(
            "/ai/v1/responses", json=responses_body(), headers={"authorization": f"Bearer {value}"}
        )
    assert r.status_code == 403
    assert r.json()["error"]["message"] == "The virtual key's owner is inactive"


def test_revoked_own_key_stops_working(host: LiveServer) -> None:
    with session(host, "alice") as alice:
        key = alice.post("/ai/api/me/virtual-keys", json={"name": "temp"}).json()["virtual_key"]
        assert alice.delete(f"/ai/api/me/virtual-keys/{key['id']}").status_code == 200
    with httpx.Client(base_url=host.url) as anonymous:
        r = anonymous.post("/ai/v1/responses", json=responses_body(), headers={"x-bf-vk": key["value"]})
    assert r.status_code == 403


def test_admin_api_for_staff_session_or_basic_auth_only(host: LiveServer) -> None:
    with session(host, "alice") as alice:
        assert alice.get("/ai/api/governance/virtual-keys").status_code == 401
    with session(host, "root") as root:
        assert root.get("/ai/api/governance/virtual-keys").status_code == 200
    with httpx.Client(base_url=host.url, auth=("admin", "pw")) as admin:
        assert admin.get("/ai/api/governance/virtual-keys").status_code == 200


def test_me_routes_need_a_signed_in_user(host: LiveServer) -> None:
    with httpx.Client(base_url=host.url) as anonymous:
        assert anonymous.get("/ai/api/me/virtual-keys").status_code == 401


# -- a misordered middleware stack fails loudly ----------------------------------------------------------


class SessionUserBackend(AuthenticationBackend):
    """A backend that reads the session, as real ones do (so it needs SessionMiddleware outside it)."""

    async def authenticate(self, conn: HTTPConnection) -> tuple[AuthCredentials, BaseUser] | None:
        name = conn.session.get("user")
        return (AuthCredentials(["authenticated"]), CookieUser(name)) if name else None


async def sign_in(request: Any) -> PlainTextResponse:
    request.session["user"] = "alice"
    return PlainTextResponse("ok")


def host_with_add_middleware(*order: str) -> Starlette:
    """A host app whose stack is built with ``app.add_middleware`` calls in the given order."""
    config = {"providers": {"mock": {}}, "client": {"enforce_auth_on_inference": True},
              "governance": {"store": {"type": "memory"}, "counters": {"type": "memory"}}}  # fmt: skip
    gateway = create_app(GatewayConfig.from_dict(config))
    app = Starlette(routes=[Route("/", home), Route("/login", sign_in), Mount("/ai", app=gateway)])
    options: dict[str, tuple[Any, dict[str, Any]]] = {
        "session": (SessionMiddleware, {"secret_key": "s"}),
        "auth": (AuthenticationMiddleware, {"backend": SessionUserBackend()}),
        "bifrost": (BifrostMiddleware, {"path_prefix": "/ai"}),
    }  # fmt: skip
    for name in order:
        middleware, kwargs = options[name]
        app.add_middleware(middleware, **kwargs)
    return app


@pytest.mark.parametrize(
    "order", [("session", "auth", "bifrost"), ("auth", "bifrost", "session"), ("auth", "session", "bifrost")]
)
def test_a_misordered_stack_fails_on_its_first_request_naming_the_order(order: tuple[str, ...]) -> None:
    with TestClient(host_with_add_middleware(*order)) as client, pytest.raises(RuntimeError) as info:
        client.get("/")
    message = str(info.value)
    assert "SessionMiddleware, AuthenticationMiddleware, BifrostMiddleware" in message
    assert "add_middleware(BifrostMiddleware, ...), then add_middleware(AuthenticationMiddleware" in message


def test_add_middleware_in_reverse_order_serves_signed_in_users() -> None:
    with TestClient(host_with_add_middleware("bifrost", "auth", "session")) as client:
        client.get("/login")
        token = client.cookies["bifrost_csrf"]
        r = client.post(
            "/ai/v1/responses", json={"model": "mock/m", "input": "hi"}, headers={"x-csrftoken": token}
        )
        assert r.status_code == 200, r.text
        assert client.get("/ai/api/me/virtual-keys").json()["virtual_keys"][0]["owner"] == "alice"


def test_a_principal_loader_needs_no_authentication_middleware() -> None:
    async def loader(scope: Any) -> Principal | None:
        return Principal("token-user", "token")

    gateway = create_app(GatewayConfig.from_dict({"providers": {"mock": {}}}))
    app = Starlette(
        routes=[Mount("/ai", app=gateway)],
        middleware=[Middleware(BifrostMiddleware, path_prefix="/ai", principal=loader)],
    )
    with TestClient(app) as client:
        assert client.post("/ai/v1/responses", json={"model": "mock/m", "input": "hi"}).status_code == 200
