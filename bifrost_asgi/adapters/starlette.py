"""`BifrostMiddleware`: hands the host app's signed-in user to the mounted gateway (pure ASGI).

Place it on the host app, inside Starlette's ``AuthenticationMiddleware`` (or give it your own
``principal`` callable), and mount the gateway under ``path_prefix``. Requests under the prefix get a
`Principal` in the scope; the gateway charges them to the user's default virtual key (or the key they
send, which must be theirs).

Session-authenticated (cookie) writes are protected against CSRF with a double-submit token: the
middleware sets a ``bifrost_csrf`` cookie on every host response that has none, and a state-changing
request under the prefix that relies on the session must echo it in ``X-CSRFToken``. Calls that carry
a virtual key are not cookie-authenticated and need no token.
"""

from __future__ import annotations

import secrets
from collections.abc import Awaitable, Callable, MutableMapping
from http.cookies import SimpleCookie
from typing import Any

from bifrost_asgi.adapters.auth import double_submit_failure, needs_csrf_token
from bifrost_asgi.adapters.principal import PRINCIPAL_SCOPE_KEY, Principal
from bifrost_asgi.errors import csrf_failed
from bifrost_asgi.types import Scope

__all__ = ["BifrostMiddleware"]

PrincipalLoader = Callable[[Scope], Awaitable[Principal | None]]


async def principal_from_starlette_user(scope: Scope) -> Principal | None:
    """Starlette's ``AuthenticationMiddleware`` sets ``scope["user"]``; a signed-in user is the principal."""
    user = scope.get("user")
    if user is None or not getattr(user, "is_authenticated", False):
        return None
    identity = getattr(user, "identity", None)
    if identity in (None, ""):
        return None
    is_admin = bool(getattr(user, "is_admin", False) or getattr(user, "is_staff", False))
    return Principal(str(identity), "session", is_admin, str(getattr(user, "display_name", "")))


class BifrostMiddleware:
    """Pass the host's user to the gateway mounted at ``path_prefix``.

    >>> app = Starlette(routes=[Mount("/ai", app=create_app(config))],
    ...                 middleware=[Middleware(SessionMiddleware, secret_key=...),
    ...                             Middleware(AuthenticationMiddleware, backend=MyBackend()),
    ...                             Middleware(BifrostMiddleware, path_prefix="/ai")])
    """

    def __init__(
        self,
        app: Callable[[Scope, Any, Any], Awaitable[None]],
        *,
        path_prefix: str = "/ai",
        principal: PrincipalLoader | None = None,
        csrf_cookie: str = "bifrost_csrf",
        csrf_header: str = "x-csrftoken",
        secure_cookie: bool = False,
    ) -> None:
        self.app = app
        self.prefix = path_prefix.rstrip("/")
        self.load_principal = principal or principal_from_starlette_user
        self.csrf_cookie = csrf_cookie
        self.csrf_header = csrf_header.lower().encode()
        self.secure_cookie = secure_cookie

    async def __call__(self, scope: Scope, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        if self.load_principal is principal_from_starlette_user:
            require_authentication_outside(scope)
        path: str = scope["path"]
        if path == self.prefix or path.startswith(self.prefix + "/"):
            await self._gateway_request(scope, receive, send)
            return
        await self.app(scope, receive, self._with_csrf_cookie(scope, send))

    async def _gateway_request(self, scope: Scope, receive: Any, send: Any) -> None:
        principal = await self.load_principal(scope)
        if principal is not None:
            if needs_csrf_token(principal, scope["method"], scope["headers"]) and not self._csrf_ok(scope):
                await _refuse_csrf(send)
                return
            scope = {**scope, PRINCIPAL_SCOPE_KEY: principal}
        await self.app(scope, receive, send)

    def _csrf_ok(self, scope: Scope) -> bool:
        cookie = _cookies(scope).get(self.csrf_cookie)
        header = next((v.decode("latin-1") for k, v in scope["headers"] if k == self.csrf_header), None)
        return double_submit_failure(cookie, header) is None

    def _with_csrf_cookie(self, scope: Scope, send: Any) -> Any:
        """Give every browser a CSRF cookie to echo; pages read it with JavaScript, so it is not HttpOnly."""
        if self.csrf_cookie in _cookies(scope):
            return send

        async def wrapped(message: MutableMapping[str, Any]) -> None:
            if message["type"] == "http.response.start":
                attrs = "; Path=/; SameSite=Lax" + ("; Secure" if self.secure_cookie else "")
                cookie = f"{self.csrf_cookie}={secrets.token_urlsafe(32)}{attrs}".encode()
                message = {**message, "headers": [*message.get("headers", []), (b"set-cookie", cookie)]}
            await send(message)

        return wrapped


MIDDLEWARE_ORDER = (
    "BifrostMiddleware needs Starlette's AuthenticationMiddleware to run before it, and found no user in the "
    "request (scope['user'] is unset): signed-in users would be treated as anonymous. Order the stack "
    "outermost first: SessionMiddleware, AuthenticationMiddleware, BifrostMiddleware. In "
    "Starlette(middleware=[...]) list them in that order; app.add_middleware() wraps everything added "
    "before, so call it in the reverse order: add_middleware(BifrostMiddleware, ...), then "
    "add_middleware(AuthenticationMiddleware, ...), then add_middleware(SessionMiddleware, ...). If your "
    "app authenticates some other way, pass BifrostMiddleware(principal=<async loader>) instead."
)


def require_authentication_outside(scope: Scope) -> None:
    """Refuse a stack where AuthenticationMiddleware does not wrap BifrostMiddleware.

    AuthenticationMiddleware sets ``scope["user"]`` on every request, anonymous ones included, so its
    absence means it is missing or inside us: every signed-in user would silently get 401 "virtual key
    is missing". The first request fails instead, with the order to use.
    """
    if "user" not in scope:
        raise RuntimeError(MIDDLEWARE_ORDER)


def _cookies(scope: Scope) -> dict[str, str]:
    raw = b"; ".join(v for k, v in scope["headers"] if k == b"cookie")
    jar: SimpleCookie = SimpleCookie()
    try:
        jar.load(raw.decode("latin-1"))
    except Exception:  # a malformed cookie header is just "no cookies"
        return {}
    return {k: m.value for k, m in jar.items()}


async def _refuse_csrf(send: Any) -> None:
    err = csrf_failed(
        "CSRF check failed: session-authenticated requests must send the bifrost_csrf cookie's value in "
        "the X-CSRFToken header (or authenticate with a virtual key instead)"
    )
    await send(
        {"type": "http.response.start", "status": 403, "headers": [(b"content-type", b"application/json")]}
    )
    await send({"type": "http.response.body", "body": err.to_json()})
