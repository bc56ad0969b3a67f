"""The Django app over real servers: every test runs under uvicorn (ASGI) and gunicorn (WSGI), each with
two worker processes, on SQLite and on PostgreSQL.

Signed-in users call the gateway with Django's sessions and CSRF; scripts call it with their virtual
keys through the openai SDK; counters, keys and usage logs land in the site's database.
"""

from __future__ import annotations

import asyncio
import sqlite3
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, TypeVar

import httpx
import pytest

pytest.importorskip("django")

from openai import OpenAI, PermissionDeniedError  # noqa: E402

from tests.upstream import ANSWER, GPT_4O_MINI_COST, Upstream  # noqa: E402

from .live import Browser, Database, Site, start_site  # noqa: E402

T = TypeVar("T")
RESPONSES = "/ai/v1/responses"
MY_KEYS = "/ai/api/me/virtual-keys"
UPSTREAM_TOKENS = 17  # tests/upstream.py reports 12 input + 5 output tokens


def wait_for(probe: Callable[[], T | None], timeout: float = 10.0) -> T:
    """``probe()``'s first non-empty answer: usage logs and counters settle just after the response."""
    deadline = time.monotonic() + timeout
    while True:
        found = probe()
        if found:
            return found
        if time.monotonic() > deadline:
            raise AssertionError(f"gave up after {timeout}s waiting for {probe}")
        time.sleep(0.05)


class People:
    """Signed-in browsers and SDK clients for one test, all closed when it ends (passed or failed)."""

    def __init__(self, site: Site) -> None:
        self.site = site
        self._open: list[Browser | OpenAI] = []

    def sign_in(self, prefix: str = "user-", *, staff: bool = False) -> tuple[Browser, str]:
        username, user_id = self.site.create_user(prefix, staff=staff)
        return self.browser(username), user_id

    def browser(self, username: str) -> Browser:
        browser = self.site.browser(username)
        self._open.append(browser)
        return browser

    def sdk(self, key: str) -> OpenAI:
        client = OpenAI(api_key=key, base_url=f"{self.site.url}/ai/v1", max_retries=0)
        self._open.append(client)
        return client

    def close(self) -> None:
        for opened in self._open:
            opened.close()


@pytest.fixture
def people(site: Site) -> Iterator[People]:
    crowd = People(site)
    yield crowd
    crowd.close()


def new_key(browser: Browser, name: str = "script") -> tuple[str, str]:
    """Create one of the signed-in user's keys: (id, plaintext)."""
    response = browser.call("POST", MY_KEYS, {"name": name})
    assert response.status_code == 200, response.text
    key = response.json()["virtual_key"]
    return key["id"], key["value"]


def limits(browser: Browser, key_id: str) -> dict[str, dict[str, Any]]:
    response = browser.call("GET", f"{MY_KEYS}/{key_id}/usage")
    assert response.status_code == 200, response.text
    return {row["kind"]: row for row in response.json()["limits"]}


def logs_of(staff: Browser, key_id: str) -> list[dict[str, Any]]:
    response = staff.call("GET", "/ai/api/logs", csrf=False)
    assert response.status_code == 200, response.text
    return [row for row in response.json()["logs"] if row["virtual_key_id"] == key_id]


def refusal(client: OpenAI) -> PermissionDeniedError | None:
    """The 403 a call gets, or None when it is served (key and owner lookups are cached briefly)."""
    try:
        client.responses.create(model="mock/mock-1", input="hi")
    except PermissionDeniedError as exc:
        return exc
    return None


def text_of(response: dict[str, Any]) -> str:
    return "".join(part["text"] for item in response["output"] for part in item["content"])


# -- a signed-in session ------------------------------------------------------------------------------


@pytest.mark.parametrize("stream", [False, True], ids=["json", "stream"])
def test_a_signed_in_user_is_charged_to_their_default_key(site: Site, people: People, stream: bool) -> None:
    alice, alice_id = people.sign_in("alice-")
    staff, _ = people.sign_in("staff-", staff=True)
    body = {"model": "openai/gpt-4o-mini", "input": "Hello", "stream": stream}
    if stream:
        events = list(alice.stream(RESPONSES, body))
        text = "".join(e["delta"] for e in events if e["type"] == "response.output_text.delta")
        assert events[-1]["type"] == "response.completed"
    else:
        response = alice.call("POST", RESPONSES, body)
        assert response.status_code == 200, response.text
        assert response.headers["content-encoding"] == "gzip"  # the site's middleware still applies
        text = text_of(response.json())
    assert text == ANSWER

    [key] = alice.call("GET", MY_KEYS).json()["virtual_keys"]
    assert (key["name"], key["owner"], key["is_active"]) == ("default", alice_id, True)
    assert "key_hash" not in key and "value" not in key
    used = wait_for(lambda: (rows := limits(alice, key["id"]))["requests"]["used"] and rows)
    assert used["requests"]["used"] == 1 and used["requests"]["reserved"] == 0
    assert used["tokens"]["used"] == UPSTREAM_TOKENS
    assert used["budget"]["used"] == pytest.approx(GPT_4O_MINI_COST)  # the upstream's usage, priced

    [row] = wait_for(lambda: logs_of(staff, key["id"]))
    assert (row["owner"], row["provider"], row["model"]) == (alice_id, "openai", "gpt-4o-mini")
    assert (row["status"], row["stream"], row["total_tokens"]) == ("success", stream, UPSTREAM_TOKENS)


def test_usage_is_visible_to_its_user(site: Site, people: People) -> None:
    alice, alice_id = people.sign_in("alice-")
    assert alice.call("POST", RESPONSES, {"model": "mock/mock-1", "input": "hi"}).status_code == 200
    [key] = alice.call("GET", MY_KEYS).json()["virtual_keys"]

    def month() -> dict[str, Any] | None:
        usage = alice.call("GET", "/ai/api/me/usage").json()
        totals: dict[str, Any] = usage["this_month"]["by_key"][key["id"]]
        return usage if totals["requests"] == 1 else None

    usage = wait_for(month)
    assert usage["user_id"] == alice_id
    assert [k["virtual_key_id"] for k in usage["keys"]] == [key["id"]]


# -- a key, no session --------------------------------------------------------------------------------


def test_a_key_works_without_a_session_through_the_openai_sdk(site: Site, people: People) -> None:
    alice, _ = people.sign_in("alice-")
    key_id, value = new_key(alice)
    assert value.startswith("sk-bf-")
    client = people.sdk(value)

    response = client.responses.create(model="openai/gpt-4o-mini", input="Hello")
    assert response.output_text == ANSWER
    chunks = client.chat.completions.create(
        model="openai/gpt-4o-mini", messages=[{"role": "user", "content": "Hi"}], stream=True
    )
    assert "".join(c.choices[0].delta.content or "" for c in chunks if c.choices) == ANSWER
    with client.responses.stream(model="openai/gpt-4o-mini", input="Hello") as events:
        assert events.get_final_response().output_text == ANSWER
    assert "openai/gpt-4o-mini" in {m.id for m in client.models.list()}

    # Charged to the key it sent, not to the user's default key (which was never created).
    used = wait_for(lambda: (rows := limits(alice, key_id))["requests"]["used"] == 3 and rows)
    assert used["tokens"]["used"] == 3 * UPSTREAM_TOKENS
    assert [k["name"] for k in alice.call("GET", MY_KEYS).json()["virtual_keys"]] == ["script"]


@pytest.fixture(scope="module", params=["uvicorn", "gunicorn"])
def enforcing_site(
    request: pytest.FixtureRequest, upstream_url: str, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Site]:
    """A site that requires a virtual key (or a session) on every inference call, under each server."""
    directory = tmp_path_factory.mktemp(f"enforcing-{request.param}")
    database = Database.sqlite(directory)
    live = start_site(str(request.param), database, upstream_url, directory, DJTEST_ENFORCE_AUTH="1")
    try:
        yield live
    finally:
        live.stop()
        database.drop()


def in_header(header: str, key: str) -> dict[str, str]:
    return {header: f"Bearer {key}" if header == "Authorization" else key}


@pytest.mark.parametrize("header", ["x-bf-vk", "Authorization", "x-api-key", "x-goog-api-key", "api-key"])
def test_every_virtual_key_header_is_accepted_without_csrf(enforcing_site: Site, header: str) -> None:
    site = enforcing_site
    crowd = People(site)
    try:
        alice, _ = crowd.sign_in("alice-")
        key_id, value = new_key(alice)
        body = {"model": "mock/mock-1", "input": "hi"}
        keyless = httpx.post(site.url + RESPONSES, json=body)
        assert (keyless.status_code, keyless.json()["type"]) == (401, "virtual_key_required")

        served = httpx.post(site.url + RESPONSES, json=body, headers=in_header(header, value))
        assert served.status_code == 200, served.text
        # Charged to the key the header carried.
        used = wait_for(lambda: (rows := limits(alice, key_id))["requests"]["used"] and rows)
        assert (used["requests"]["used"], used["requests"]["reserved"]) == (1, 0)

        unknown = httpx.post(site.url + RESPONSES, json=body, headers=in_header(header, "sk-bf-" + "u" * 43))
        assert (unknown.status_code, unknown.json()["type"]) == (403, "virtual_key_not_found")

        # The signed-in user's own key with their session cookie: the key authenticates, no token needed.
        own = alice.call("POST", RESPONSES, body, csrf=False, headers=in_header(header, value))
        assert own.status_code == 200, own.text
        used = wait_for(lambda: (rows := limits(alice, key_id))["requests"]["used"] == 2 and rows)
        assert used["requests"]["reserved"] == 0
        assert [k["name"] for k in alice.call("GET", MY_KEYS).json()["virtual_keys"]] == ["script"]
    finally:
        crowd.close()


def test_a_deactivated_users_keys_are_refused(site: Site, people: People) -> None:
    username, _ = site.create_user("carol-")
    carol = people.browser(username)
    _, value = new_key(carol)
    client = people.sdk(value)
    assert client.responses.create(model="mock/mock-1", input="hi").output_text

    site.set_active(username, False)
    error = wait_for(lambda: refusal(client))
    body: Any = error.body
    assert (error.status_code, body["type"]) == (403, "virtual_key_blocked")

    site.set_active(username, True)
    wait_for(lambda: refusal(client) is None)


# -- CSRF ----------------------------------------------------------------------------------------------


def test_session_calls_need_the_csrf_token(site: Site, people: People) -> None:
    alice, _ = people.sign_in("alice-")
    body = {"model": "mock/mock-1", "input": "hi"}

    missing = alice.call("POST", RESPONSES, body, csrf=False)
    assert missing.status_code == 403
    assert missing.json()["error"]["type"] == "csrf_failed"
    assert "CSRF token missing" in missing.json()["error"]["message"]
    wrong = alice.call("POST", RESPONSES, body, csrf=False, headers={"X-CSRFToken": "x" * 32})
    assert wrong.status_code == 403 and wrong.json()["error"]["type"] == "csrf_failed"
    assert alice.call("POST", MY_KEYS, {"name": "k"}, csrf=False).status_code == 403  # self-service too
    assert alice.call("GET", "/ai/v1/models", csrf=False).status_code == 200  # reads need no token

    assert alice.call("POST", RESPONSES, body).status_code == 200
    # No call was charged while refused: only the one that passed created the default key.
    assert len(alice.call("GET", MY_KEYS).json()["virtual_keys"]) == 1


def test_anonymous_calls_are_not_session_calls(site: Site) -> None:
    # No session cookie, so no CSRF token is needed; the test settings do not require keys.
    response = httpx.post(site.url + RESPONSES, json={"model": "mock/mock-1", "input": "hi"})
    assert response.status_code == 200
    assert httpx.get(site.url + MY_KEYS).status_code == 401


# -- users and their keys ------------------------------------------------------------------------------


def test_a_user_can_neither_use_nor_see_another_users_keys(site: Site, people: People) -> None:
    alice, _ = people.sign_in("alice-")
    bob, _ = people.sign_in("bob-")
    bob_key, bob_value = new_key(bob, "bob's")
    alice_key, _ = new_key(alice, "alice's")

    stolen = alice.call(
        "POST",
        RESPONSES,
        {"model": "mock/mock-1", "input": "hi"},
        headers={"Authorization": f"Bearer {bob_value}"},
    )
    assert stolen.status_code == 403
    assert stolen.json()["type"] == "virtual_key_blocked"

    listed = alice.call("GET", MY_KEYS).json()["virtual_keys"]
    assert [k["id"] for k in listed] == [alice_key]
    assert alice.call("GET", f"{MY_KEYS}/{bob_key}/usage").status_code == 404
    assert alice.call("DELETE", f"{MY_KEYS}/{bob_key}").status_code == 404
    assert [k["revoked_at"] for k in bob.call("GET", MY_KEYS).json()["virtual_keys"]] == [None]


def test_a_revoked_key_stops_working(site: Site, people: People) -> None:
    alice, _ = people.sign_in("alice-")
    key_id, value = new_key(alice)
    client = people.sdk(value)
    assert client.responses.create(model="mock/mock-1", input="hi").output_text
    revoked = alice.call("DELETE", f"{MY_KEYS}/{key_id}")
    assert revoked.status_code == 200 and revoked.json()["virtual_key"]["revoked_at"]
    error = wait_for(lambda: refusal(client))
    body: Any = error.body
    assert (error.status_code, body["type"]) == (403, "virtual_key_blocked")


def test_the_management_api_is_for_staff(site: Site, people: People) -> None:
    alice, alice_id = people.sign_in("alice-")
    staff, _ = people.sign_in("staff-", staff=True)
    assert httpx.get(site.url + "/ai/api/logs").status_code == 401
    assert alice.call("GET", "/ai/api/logs").status_code == 403
    assert alice.call("GET", "/ai/api/governance/virtual-keys").status_code == 403
    _, alice_value = new_key(alice)
    # A key does not make its owner staff, even with their session.
    keyed = alice.call("GET", "/ai/api/logs", headers={"Authorization": f"Bearer {alice_value}"})
    assert keyed.status_code == 403

    keys = staff.call("GET", f"/ai/api/governance/virtual-keys?owner={alice_id}")
    assert keys.status_code == 200 and keys.json()["count"] == 1


# -- streaming -------------------------------------------------------------------------------------------


def test_a_client_that_leaves_mid_stream_cancels_the_upstream_call(
    site: Site, people: People, upstream: Upstream
) -> None:
    alice, _ = people.sign_in("alice-")
    body = {"model": "openai/slow-stream", "messages": [{"role": "user", "content": "hi"}], "stream": True}
    headers = {"X-CSRFToken": alice.csrf, "Content-Type": "application/json"}
    with alice.http.stream("POST", "/ai/v1/chat/completions", json=body, headers=headers) as response:
        assert response.status_code == 200
        first = next(response.iter_lines())
        assert first.startswith("data: ")
    # The upstream sends a chunk every 100 ms for 30 s unless the gateway hangs up on it.
    wait_for(lambda: upstream.state.cancelled_streams == 1, timeout=10)
    assert upstream.state.open_streams == 0


# -- limits across worker processes ----------------------------------------------------------------------


async def _burst(url: str, value: str, count: int) -> list[int]:
    limits = httpx.Limits(max_connections=count, max_keepalive_connections=count)
    body = {"model": "mock/mock-1", "messages": [{"role": "user", "content": "hi"}]}
    headers = {"Authorization": f"Bearer {value}"}
    async with httpx.AsyncClient(limits=limits, timeout=120) as client:
        responses = await asyncio.gather(
            *(client.post(url + "/ai/v1/chat/completions", json=body, headers=headers) for _ in range(count))
        )
    return [r.status_code for r in responses]


def test_a_request_limit_holds_exactly_across_workers(site: Site, people: People) -> None:
    assert_limit_holds(site, people)


def test_redis_counters_hold_the_limit_too(upstream_url: str, redis_url: str, tmp_path: Path) -> None:
    database = Database.sqlite(tmp_path)
    site = start_site("uvicorn", database, upstream_url, tmp_path, DJTEST_COUNTERS=f"redis:{redis_url}")
    crowd = People(site)
    try:
        assert_limit_holds(site, crowd)
    finally:
        crowd.close()
        site.stop()
        database.drop()


def assert_limit_holds(site: Site, people: People) -> None:
    """200 simultaneous calls with a key limited to 50 requests: exactly 50 are served."""
    staff, _ = people.sign_in("staff-", staff=True)
    _, owner_id = site.create_user("owner-")
    limit = {"request_max_limit": 50, "request_reset_duration": "1h"}
    created = staff.call(
        "POST",
        "/ai/api/governance/virtual-keys",
        {"name": "limited", "owner": owner_id, "allow_all_providers": True, "rate_limit": limit},
    )
    assert created.status_code == 200, created.text
    key = created.json()["virtual_key"]

    codes = asyncio.run(_burst(site.url, key["value"], 200))
    assert codes.count(200) == 50, sorted(set(codes))
    assert codes.count(429) == 150
    usage = staff.call("GET", f"/ai/api/governance/virtual-keys/{key['id']}/usage").json()
    [requests] = [row for row in usage["limits"] if row["kind"] == "requests"]
    assert (requests["used"], requests["reserved"]) == (50, 0)


# -- shutdown ----------------------------------------------------------------------------------------------


@pytest.mark.parametrize("server", ["uvicorn", "gunicorn"])
def test_usage_waiting_to_be_written_is_written_when_the_server_stops(
    server: str, upstream_url: str, tmp_path: Path
) -> None:
    database = Database.sqlite(tmp_path)
    # Records wait ten minutes before a periodic write: only the exit flush can write this one.
    site = start_site(server, database, upstream_url, tmp_path, DJTEST_FLUSH_MS="600000")
    try:
        response = httpx.post(site.url + RESPONSES, json={"model": "mock/mock-1", "input": "hi"})
        assert response.status_code == 200
        request_id = response.headers["x-request-id"]
    finally:
        site.stop()
    with sqlite3.connect(database.name) as db:
        rows = db.execute("SELECT request_id FROM bifrost_usagelog").fetchall()
    database.drop()
    assert rows == [(request_id,)], site.logs()
