"""The management API behind admin auth: Bifrost's governance API (``governance_api``) and usage-log API
(``logs_api``), spec §6.1, §9.

Every route under ``/api/governance`` and ``/api/logs`` needs one of: ``Authorization: Basic`` with
``governance.auth_config``'s credentials, an admin JWT (``governance.jwt_auth``), or a host-app admin
principal from a framework adapter (`adapters.auth.is_admin_path` gates the same paths in the adapters).
A refused request reaches no handler.

>>> routes = admin_routes(lambda: gateway, auth=config.governance.auth_config)
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import logging
from collections.abc import Awaitable, Callable

from pydantic import ValidationError
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from bifrost_asgi.adapters.principal import PRINCIPAL_SCOPE_KEY, Principal
from bifrost_asgi.config import ConfigError
from bifrost_asgi.errors import BifrostError, unauthorized
from bifrost_asgi.governance.config import AuthConfig
from bifrost_asgi.governance.jwt import looks_like_jwt
from bifrost_asgi.routes.governance_api import GovernanceAPI
from bifrost_asgi.routes.logs_api import LogsAPI
from bifrost_asgi.routes.management import AdminBackend, BackendGetter, Context, error_response, invalid

__all__ = ["AdminBackend", "admin_endpoint", "admin_routes"]

log = logging.getLogger("bifrost_asgi.admin")

_REALM = 'Basic realm="bifrost"'

Handler = Callable[[Request], Awaitable[Response]]


# -- auth --------------------------------------------------------------------------------------------


def _digest(text: str) -> bytes:
    # Comparing fixed-length digests keeps compare_digest from leaking the expected length.
    return hashlib.sha256(text.encode()).digest()


class _BasicAuth:
    """Checks ``Authorization: Basic``. Holds digests of the credentials, never the password itself."""

    def __init__(self, username: str, password: str) -> None:
        self._user = _digest(username)
        self._password = _digest(password)

    def allows(self, header: str | None) -> bool:
        credentials = _basic_credentials(header)
        if credentials is None:
            return False
        user_ok = hmac.compare_digest(_digest(credentials[0]), self._user)
        password_ok = hmac.compare_digest(_digest(credentials[1]), self._password)
        return user_ok & password_ok  # both compared every time: timing says nothing about which failed


class _Open:
    def allows(self, header: str | None) -> bool:
        return True


class _Closed:
    """Only admin tokens or staff principals get in (signed tokens configured, Basic auth off)."""

    def allows(self, header: str | None) -> bool:
        return False


def _basic_credentials(header: str | None) -> tuple[str, str] | None:
    scheme, _, token = (header or "").partition(" ")
    if scheme.lower() != "basic":
        return None
    try:
        decoded = base64.b64decode(token.strip(), validate=True).decode("utf-8")
    except (binascii.Error, UnicodeDecodeError):
        return None
    user, sep, password = decoded.partition(":")
    return (user, password) if sep else None


def _guard(auth: AuthConfig | None, other_admin_auth: bool) -> _BasicAuth | _Open | _Closed:
    if (auth is None or not auth.is_enabled) and other_admin_auth:
        return _Closed()
    if auth is None or not auth.is_enabled:
        # Once, at startup: an open management API is a choice the operator must see.
        log.warning(
            "the management API (/api/logs, /api/governance/*) is open to anyone who can reach it: "
            "set governance.auth_config.is_enabled with admin_username and admin_password"
        )
        return _Open()
    password = auth.admin_password.get_secret_value() if auth.admin_password else ""
    if not auth.admin_username or not password:
        raise ConfigError("governance.auth_config: is_enabled needs both admin_username and admin_password")
    return _BasicAuth(auth.admin_username, password)


# -- the gate ----------------------------------------------------------------------------------------


class _Gate:
    """Auth first, then the handler; a `BifrostError` or a `ValidationError` becomes its response."""

    def __init__(self, ctx: Context, guard: _BasicAuth | _Open | _Closed) -> None:
        self._ctx = ctx
        self._guard = guard

    def __call__(self, handler: Handler) -> Handler:
        async def endpoint(request: Request) -> Response:
            # A host-app admin (a staff user, via a framework adapter) needs no Basic credentials.
            principal = request.scope.get(PRINCIPAL_SCOPE_KEY)
            is_admin = isinstance(principal, Principal) and principal.is_admin
            if not is_admin:
                try:
                    is_admin = await self._admin_token(request.headers.get("authorization"))
                except BifrostError as exc:
                    return error_response(exc, {"www-authenticate": _REALM})
            if not is_admin and not self._guard.allows(request.headers.get("authorization")):
                # The same answer for a missing header, a bad one and wrong credentials: nothing to probe.
                return error_response(unauthorized(), {"www-authenticate": _REALM})
            try:
                return await handler(request)
            except ValidationError as exc:
                return error_response(invalid(exc))
            except BifrostError as exc:
                return error_response(exc)

        return endpoint

    async def _admin_token(self, header: str | None) -> bool:
        """An admin JWT (seed 003) grants the management API when governance.jwt_auth is configured."""
        if not header or header[:7].lower() != "bearer " or not looks_like_jwt(header[7:].strip()):
            return False
        gov = (await self._ctx.backend()).governance
        if gov is None or gov.tokens is None:
            return False
        return gov.tokens.verify(header[7:].strip()).is_admin


def admin_routes(
    get_backend: BackendGetter, *, auth: AuthConfig | None, other_admin_auth: bool = False
) -> list[Route]:
    """The management routes, for the gateway's Starlette app (or any other).

    ``get_backend`` is called on every request and may be async (e.g. to start the gateway lazily when
    the host does not forward lifespan events). ``auth`` is ``governance.auth_config``; with auth
    enabled but no credentials this raises `ConfigError`, with auth disabled it logs one warning.
    ``other_admin_auth``: admins can prove themselves otherwise (signed tokens are configured, or a host
    app's staff users come through an adapter), so with Basic auth off the API is closed to everyone
    else rather than open.
    """
    ctx = Context(get_backend)
    gate = _Gate(ctx, _guard(auth, other_admin_auth))
    table = GovernanceAPI(ctx).routes() + LogsAPI(ctx).routes()
    return [Route(path, gate(handler), methods=[method]) for method, path, handler in table]


def admin_endpoint(
    get_backend: BackendGetter, handler: Handler, *, auth: AuthConfig | None, other_admin_auth: bool = False
) -> Handler:
    """``handler`` behind the management API's credentials (a host admin or an admin token also pass).
    Without Basic auth enabled it is open, as Bifrost's ``/metrics`` is, unless ``other_admin_auth``
    closes it as it closes the management API."""
    open_ = auth is None or not auth.is_enabled
    guard = _Closed() if open_ and other_admin_auth else _Open() if open_ else _guard(auth, False)
    return _Gate(Context(get_backend), guard)(handler)
