"""Who is calling, in Flask terms: the signed-in Flask-Login user (or a user-supplied loader) as a
`Principal`, and whether a key's owner may still use it (the gateway's `OwnerDirectory`).
"""

from __future__ import annotations

import asyncio
import functools
import importlib
from collections.abc import Callable
from typing import Any

from flask import Flask, current_app, session

from bifrost_asgi.adapters import Principal
from bifrost_asgi.errors import BifrostError, governance_error

__all__ = [
    "AdminCheck",
    "FlaskOwnerDirectory",
    "OwnerCheck",
    "PrincipalLoader",
    "flask_login_owner_active",
    "login_principal",
    "principal_source",
]

PrincipalLoader = Callable[[], Principal | None]
# An attribute name on the user object ("is_admin") or a callable taking the user.
AdminCheck = str | Callable[[Any], bool]
# Takes a key's owner (a user id, as a string); true when the user exists and is active.
OwnerCheck = Callable[[str], bool]


def principal_source(loader: PrincipalLoader | None, is_admin: AdminCheck) -> PrincipalLoader:
    """The user-supplied loader when there is one, else Flask-Login's ``current_user``."""
    if loader is not None:
        return loader
    return functools.partial(login_principal, is_admin)


def login_principal(is_admin: AdminCheck) -> Principal | None:
    """Flask-Login's signed-in user as a principal; None for anonymous calls or apps without Flask-Login.

    A principal loader may also refuse the call by raising `BifrostError`, as this one does for a user
    deactivated while signed in: 403 ``virtual_key_blocked``, as their keys get, rather than 401 "virtual
    key is missing", which would tell them to send a key.
    """
    if getattr(current_app, "login_manager", None) is None:
        return None
    # Flask-Login ships no type information: the module (and so current_user) is Any.
    user = importlib.import_module("flask_login").current_user
    if not user.is_authenticated:
        # The session still names a user whom Flask-Login no longer accepts: UserMixin counts an inactive
        # user as not authenticated, and a user_loader may return None for one (or for a deleted user).
        if session.get("_user_id") is not None:
            raise _inactive()
        return None
    if not user.is_active:  # a user class whose is_authenticated ignores is_active
        raise _inactive()
    # Flask-Login keeps the signed-in user's id in the cookie session (after a remember-me login too).
    # A user found by a request_loader (an API token header) came with no cookie: no CSRF token needed.
    if session.get("_user_id") is not None:
        return Principal(str(user.get_id()), "session", admin_flag(user, is_admin))
    return Principal(str(user.get_id()), "token", admin_flag(user, is_admin))


def _inactive() -> BifrostError:
    return governance_error(403, "virtual_key_blocked", "This account is inactive")


def admin_flag(user: Any, check: AdminCheck) -> bool:
    """``is_admin`` for the principal: the named attribute (missing means no), or the callable's answer."""
    if callable(check):
        return bool(check(user))
    return bool(getattr(user, check, False))


def flask_login_owner_active(user_id: str) -> bool:
    """The default owner check: Flask-Login's user_loader finds the user, and the user is active."""
    manager = getattr(current_app, "login_manager", None)
    # Flask-Login has no public getter for the function registered with @login_manager.user_loader.
    loader = getattr(manager, "_user_callback", None)
    if loader is None:
        raise RuntimeError(
            "bifrost_flask cannot tell whether a virtual key's owner is still active: register a "
            "Flask-Login user_loader, or pass owner_active=<callable(user_id) -> bool> to Bifrost()"
        )
    user = loader(user_id)
    return user is not None and bool(user.is_active)


class FlaskOwnerDirectory:
    """The gateway's `OwnerDirectory` for one Flask app: a sync check run in a worker thread.

    >>> directory = FlaskOwnerDirectory(app, lambda user_id: db.session.get(User, user_id).active)
    >>> await directory.is_active("42")

    The check runs inside an app context (so it can use the app's database session) and never on the
    event loop, which serves every request of the process: a slow query must not stall the others.
    """

    def __init__(self, app: Flask, check: OwnerCheck | None = None) -> None:
        self._app = app
        self._check = check or flask_login_owner_active

    async def is_active(self, owner: str) -> bool:
        return await asyncio.to_thread(self._is_active, owner)

    def _is_active(self, owner: str) -> bool:
        with self._app.app_context():
            return bool(self._check(owner))
