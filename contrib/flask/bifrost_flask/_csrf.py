"""CSRF protection for session-authenticated gateway calls.

A browser sends the host's session cookie with any cross-site POST, and a session call spends the
signed-in user's budget, so a state-changing call that relies on the session must prove it came from
the host's own pages:

- with Flask-WTF's ``CSRFProtect`` on the app, its session-bound token (``{{ csrf_token() }}`` in the
  page, echoed in ``X-CSRFToken``), checked by Flask-WTF itself;
- otherwise a double-submit cookie: every host response sets ``bifrost_csrf`` when the browser has none,
  and the page's JavaScript echoes its value in ``X-CSRFToken``. Another site can make the browser send
  the cookie, but cannot read it to set the header.

Calls that carry a virtual key (or come from a request_loader / a token) are not authenticated by a
cookie and need no token; Flask-WTF's global check is turned off for the gateway's blueprint so that
they are not refused.
"""

from __future__ import annotations

import importlib
import re
import secrets
from typing import Any

from flask import Blueprint, current_app, g, request
from flask.wrappers import Response
from werkzeug.exceptions import BadRequest

from bifrost_asgi.adapters import Principal, double_submit_failure, encode_headers, needs_csrf_token
from bifrost_asgi.errors import BifrostError, csrf_failed

__all__ = ["csrf_refusal", "csrf_token", "exempt_from_flask_wtf", "set_csrf_cookie"]

# What secrets.token_urlsafe(32) produces; anything else in the cookie is replaced, not trusted.
_TOKEN = re.compile(r"[A-Za-z0-9_-]{43}")


def csrf_refusal(principal: Principal | None) -> BifrostError | None:
    """The 403 for a session-authenticated write without a valid token; None when the call may go on."""
    if not current_app.config["BIFROST_CSRF_ENABLED"]:
        return None
    if not needs_csrf_token(principal, request.method, encode_headers(request.headers.items())):
        return None
    wtf = _flask_wtf()
    reason = _flask_wtf_reason(wtf) if wtf is not None else _double_submit_reason()
    if reason is None:
        return None
    return csrf_failed(
        f"CSRF check failed: {reason} Session-authenticated calls must send the page's CSRF token in "
        f"the {_header_name()} header (or authenticate with a virtual key instead)."
    )


def csrf_token() -> str:
    """The token the current page must echo in the CSRF header."""
    wtf = _flask_wtf()
    if wtf is not None:
        return str(importlib.import_module("flask_wtf.csrf").generate_csrf())
    cookie = request.cookies.get(current_app.config["BIFROST_CSRF_COOKIE_NAME"], "")
    if _TOKEN.fullmatch(cookie):
        return cookie
    if "bifrost_csrf" not in g:
        g.bifrost_csrf = secrets.token_urlsafe(32)  # set as the cookie by set_csrf_cookie
    return str(g.bifrost_csrf)


def set_csrf_cookie(response: Response) -> Response:
    """after_app_request: give a browser without one the double-submit cookie (never HttpOnly: the
    page's JavaScript reads it)."""
    config = current_app.config
    if not config["BIFROST_CSRF_ENABLED"] or _flask_wtf() is not None:
        return response
    if _TOKEN.fullmatch(request.cookies.get(config["BIFROST_CSRF_COOKIE_NAME"], "")):
        return response
    response.set_cookie(
        config["BIFROST_CSRF_COOKIE_NAME"],
        csrf_token(),
        path="/",
        secure=bool(config["SESSION_COOKIE_SECURE"]),
        httponly=False,
        samesite="Lax",
    )
    return response


def exempt_from_flask_wtf(blueprint: Blueprint) -> None:
    """Keep Flask-WTF's app-wide check off the gateway's blueprint: this module checks session calls
    itself, and key-authenticated calls have no token to show."""
    wtf = _flask_wtf()
    if wtf is not None:
        wtf.exempt(blueprint)


def _flask_wtf() -> Any | None:
    """The app's Flask-WTF CSRFProtect, if it has one (Flask-WTF is untyped: Any)."""
    return current_app.extensions.get("csrf")


def _flask_wtf_reason(wtf: Any) -> str | None:
    if not current_app.config.get("WTF_CSRF_ENABLED", True):
        return None  # the host turned Flask-WTF's CSRF off (commonly in its tests): follow it
    try:
        wtf.protect()
    except BadRequest as exc:  # Flask-WTF's CSRFError
        return str(exc.description)
    return None


def _double_submit_reason() -> str | None:
    cookie = request.cookies.get(current_app.config["BIFROST_CSRF_COOKIE_NAME"])
    return double_submit_failure(cookie, request.headers.get(_header_name()))


def _header_name() -> str:
    return str(current_app.config["BIFROST_CSRF_HEADER_NAME"])
