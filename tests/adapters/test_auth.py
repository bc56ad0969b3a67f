"""The rules every framework adapter applies before the gateway sees a call (bifrost_asgi.adapters.auth)."""

from __future__ import annotations

import pytest
from starlette.routing import Route

from bifrost_asgi import GatewayConfig, create_app
from bifrost_asgi.adapters import (
    Principal,
    carries_virtual_key,
    double_submit_failure,
    is_admin_path,
    needs_csrf_token,
)
from bifrost_asgi.routes.admin import AdminBackend, admin_routes

KEY = b"sk-bf-" + b"k" * 43


def test_the_admin_gate_covers_exactly_the_management_api() -> None:
    """Every route the gateway serves is gated iff it is a management route: a route added to the admin
    API outside the gate, or a public route inside it, fails here."""
    config = GatewayConfig.from_dict({"providers": {"mock": {}}, "governance": {"store": {"type": "memory"}}})
    served = [r.path for r in create_app(config).routes if isinstance(r, Route)]
    management = {r.path for r in admin_routes(_never_called, auth=None)}
    assert management and management <= set(served)
    assert {path for path in served if is_admin_path(path)} == management


def _never_called() -> AdminBackend:
    raise AssertionError("the routes are only listed here")


@pytest.mark.parametrize(
    ("path", "gated"),
    [
        ("/api/logs/", True),
        ("/api/logs/export", True),  # a path below the log search is the management API's too
        ("/api/governance", True),
        ("/api/governance/teams", True),
        ("/api/logsx", False),
        ("/api/governancex/virtual-keys", False),
        ("/api/me/virtual-keys", False),
        ("/ai/api/logs", False),  # paths are relative to the gateway's mount
    ],
)
def test_the_admin_gate_takes_everything_below_the_management_prefixes(path: str, gated: bool) -> None:
    assert is_admin_path(path) is gated


@pytest.mark.parametrize(
    ("headers", "carries"),
    [
        ([(b"authorization", b"Bearer " + KEY)], True),
        ([(b"x-api-key", KEY)], True),
        ([(b"x-goog-api-key", KEY)], True),
        ([(b"api-key", KEY)], True),
        ([(b"x-bf-vk", b"legacy-key-without-prefix")], True),
        ([(b"authorization", b"Bearer sk-provider-key")], False),  # a provider key, not a virtual key
        ([(b"x-api-key", b"dummy-the-sdk-requires")], False),
        ([(b"x-other", KEY)], False),
        ([], False),
    ],
)
def test_a_virtual_key_is_found_by_the_gateways_own_header_rules(
    headers: list[tuple[bytes, bytes]], carries: bool
) -> None:
    assert carries_virtual_key(headers) is carries


def test_only_session_writes_without_a_virtual_key_need_a_csrf_token() -> None:
    session, token = Principal("42", "session"), Principal("42", "token")
    assert needs_csrf_token(session, "POST", [])
    assert needs_csrf_token(session, "delete", [])
    assert not needs_csrf_token(session, "GET", [])
    assert not needs_csrf_token(session, "OPTIONS", [])
    assert not needs_csrf_token(session, "POST", [(b"x-api-key", KEY)])
    assert not needs_csrf_token(token, "POST", [])
    assert not needs_csrf_token(None, "POST", [])


@pytest.mark.parametrize(
    ("cookie", "header", "failure"),
    [
        ("t0ken", "t0ken", None),
        (None, "t0ken", "the CSRF token is missing."),
        ("t0ken", "", "the CSRF token is missing."),
        ("t0ken", "t0keN", "the CSRF token does not match."),
        ("\xe9t\xe9", "\xe9t\xe9", None),  # any character compares, never a TypeError
        ("\xe9t\xe9", "\xe8t\xe8", "the CSRF token does not match."),
    ],
)
def test_the_double_submit_check_compares_cookie_and_header(
    cookie: str | None, header: str | None, failure: str | None
) -> None:
    assert double_submit_failure(cookie, header) == failure
