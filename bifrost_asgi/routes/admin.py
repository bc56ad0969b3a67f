"""The management API: usage logs and virtual keys, behind Basic auth (spec §6.1, §9).

    GET    /api/logs                                   Bifrost's log search (filters, pages, stats)
    GET    /api/governance/virtual-keys[?owner=]       {"virtual_keys": [...], "count": n}
    POST   /api/governance/virtual-keys                {"message", "virtual_key": {..., "value"}}
    GET    /api/governance/virtual-keys/{id}           {"virtual_key": {...}}
    PUT    /api/governance/virtual-keys/{id}           partial update; never the hash; never un-revokes
    DELETE /api/governance/virtual-keys/{id}           revoke (permanent; the record stays)
    GET    /api/governance/virtual-keys/{id}/usage     each limit's window, plus this month's totals

The plaintext of a key appears in exactly one response, the one that created it; every other answer
carries the public record (no hash, a short ``value_hint``). Response shapes follow Bifrost's handlers
so its clients keep working. This is not the hot path: plain Starlette request handlers are enough.

>>> routes = admin_routes(lambda: gateway, auth=config.governance.auth_config)
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import hashlib
import hmac
import logging
from collections.abc import Awaitable, Callable, Mapping
from datetime import UTC, datetime
from typing import Any, Protocol

import orjson
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from bifrost_asgi.adapters.principal import PRINCIPAL_SCOPE_KEY, Principal
from bifrost_asgi.config import ConfigError
from bifrost_asgi.errors import BifrostError, body_too_large, invalid_request, not_found, unauthorized
from bifrost_asgi.governance.config import AuthConfig
from bifrost_asgi.governance.engine import Governance
from bifrost_asgi.governance.jwt import looks_like_jwt
from bifrost_asgi.governance.models import Budget, ProviderRule, RateLimit, VirtualKey
from bifrost_asgi.stores.log_query import month_usage
from bifrost_asgi.stores.logs import LogStore

__all__ = ["AdminBackend", "KeyCreate", "KeyUpdate", "admin_endpoint", "admin_routes"]

log = logging.getLogger("bifrost_asgi.admin")

_REALM = 'Basic realm="bifrost"'
_MAX_BODY = 1024 * 1024  # a key definition is a few kB; refuse to buffer more than this
# Responses may carry a key's plaintext (create) or usage figures: never let a proxy or browser keep them.
_HEADERS = {"cache-control": "no-store"}
_KEYS = "/api/governance/virtual-keys"


class LogSource(Protocol):
    """What holds the log store: the gateway's `LogWriter`."""

    @property
    def store(self) -> LogStore: ...


class AdminBackend(Protocol):
    """What the management API needs from the gateway; `Gateway` satisfies it as is."""

    @property
    def governance(self) -> Governance | None: ...

    @property
    def logs(self) -> LogSource | None: ...


BackendGetter = Callable[[], AdminBackend | Awaitable[AdminBackend]]


# -- request bodies ----------------------------------------------------------------------------------


class KeyUpdate(BaseModel):
    """``PUT`` body: only the fields sent are changed. Unknown fields (``key_hash``, ``value``, ``id``)
    are refused by name rather than ignored, so nobody believes they changed something they did not."""

    model_config = ConfigDict(extra="forbid")

    name: str | None = Field(default=None, min_length=1)
    description: str | None = None
    is_active: bool | None = None
    # Unix seconds or an RFC3339 time; null clears the expiry.
    expires_at: float | datetime | None = None
    provider_configs: tuple[ProviderRule, ...] | None = None
    allow_all_providers: bool | None = None
    budgets: tuple[Budget, ...] | None = None
    rate_limit: RateLimit | None = None
    team_id: str | None = None
    customer_id: str | None = None

    @field_validator("expires_at")
    @classmethod
    def _unix_seconds(cls, value: float | datetime | None) -> float | None:
        if isinstance(value, datetime):
            return (value if value.tzinfo else value.replace(tzinfo=UTC)).timestamp()
        return value

    def changes(self) -> dict[str, Any]:
        return {name: getattr(self, name) for name in self.model_fields_set}


class KeyCreate(KeyUpdate):
    """``POST`` body: a `VirtualKey` without what the server decides (id, prefix, hash, timestamps)."""

    name: str = Field(min_length=1)
    owner: str | None = None


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


# -- responses ---------------------------------------------------------------------------------------


def _json(data: Any, status: int = 200) -> Response:
    return Response(orjson.dumps(data), status, headers=_HEADERS, media_type="application/json")


def _error(exc: BifrostError, headers: Mapping[str, str] | None = None) -> Response:
    return Response(
        exc.to_json(), exc.status_code, headers={**_HEADERS, **(headers or {})}, media_type="application/json"
    )


def _unauthorized() -> BifrostError:
    # The same answer for a missing header, a bad one and wrong credentials: nothing to probe.
    return unauthorized()


def _invalid(exc: ValidationError) -> BifrostError:
    """The first problem, naming the field; never the submitted value (it may be anything)."""
    first = exc.errors(include_input=False, include_url=False)[0]
    where = ".".join(str(part) for part in first["loc"]) or "body"
    return invalid_request(f"{where}: {first['msg']}", param=where)


async def _body(request: Request) -> Any:
    size, chunks = 0, []
    async for chunk in request.stream():
        size += len(chunk)
        if size > _MAX_BODY:
            raise body_too_large(_MAX_BODY, "management API")
        chunks.append(chunk)
    try:
        return orjson.loads(b"".join(chunks))
    except orjson.JSONDecodeError as exc:
        raise invalid_request(f"invalid request format: {exc}") from None


# -- handlers ----------------------------------------------------------------------------------------

Handler = Callable[[Request], Awaitable[Response]]


class _Admin:
    def __init__(self, get_backend: BackendGetter, guard: _BasicAuth | _Open | _Closed) -> None:
        self._get_backend = get_backend
        self._guard = guard
        # Updates are read-modify-write on the key store: serialise them in this process so a PUT that
        # read a key before a DELETE revoked it cannot write the active record back.
        self._write_lock = asyncio.Lock()

    def endpoint(self, handler: Handler) -> Handler:
        """Auth first, then the handler; a `BifrostError` or a `ValidationError` becomes its response."""

        async def endpoint(request: Request) -> Response:
            # A host-app admin (a staff user, via a framework adapter) needs no Basic credentials.
            principal = request.scope.get(PRINCIPAL_SCOPE_KEY)
            is_admin = isinstance(principal, Principal) and principal.is_admin
            if not is_admin:
                try:
                    is_admin = await self._admin_token(request.headers.get("authorization"))
                except BifrostError as exc:
                    return _error(exc, {"www-authenticate": _REALM})
            if not is_admin and not self._guard.allows(request.headers.get("authorization")):
                return _error(_unauthorized(), {"www-authenticate": _REALM})
            try:
                return await handler(request)
            except ValidationError as exc:
                return _error(_invalid(exc))
            except BifrostError as exc:
                return _error(exc)

        return endpoint

    async def _admin_token(self, header: str | None) -> bool:
        """An admin JWT (seed 003) grants the management API when governance.jwt_auth is configured."""
        if not header or header[:7].lower() != "bearer " or not looks_like_jwt(header[7:].strip()):
            return False
        gov = (await self._backend()).governance
        if gov is None or gov.tokens is None:
            return False
        return gov.tokens.verify(header[7:].strip()).is_admin

    async def _backend(self) -> AdminBackend:
        got = self._get_backend()
        return await got if isinstance(got, Awaitable) else got

    async def _governance(self) -> Governance:
        gov = (await self._backend()).governance
        if gov is None:
            raise not_found("governance is not configured: add a `governance` section to config.json")
        return gov

    async def _key(self, gov: Governance, request: Request) -> VirtualKey:
        key = await gov.keys.get(request.path_params["key_id"])
        if key is None:
            raise not_found("Virtual key not found")
        return key

    # GET /api/logs
    async def search_logs(self, request: Request) -> Response:
        logs = (await self._backend()).logs
        if logs is None:
            raise not_found("usage logs are disabled (governance.logs.enabled, governance.store)")
        query: dict[str, list[str]] = {}
        for name, value in request.query_params.multi_items():
            query.setdefault(name, []).append(value)
        return _json(await logs.store.search(query))

    # GET /api/governance/virtual-keys
    async def list_keys(self, request: Request) -> Response:
        gov = await self._governance()
        owner = request.query_params.get("owner") or None
        keys = [k.public() for k in await gov.keys.list_keys(owner)]
        return _json({"virtual_keys": keys, "count": len(keys)})

    # POST /api/governance/virtual-keys
    async def create_key(self, request: Request) -> Response:
        gov = await self._governance()
        body = KeyCreate.model_validate(await _body(request))
        fields = body.changes()
        fields.pop("name")
        await _check_owners(gov, fields.get("team_id"), fields.get("customer_id"))
        key, value = await gov.create_key(body.name, **fields)
        log.info("virtual key created: id=%s name=%r owner=%r", key.id, key.name, key.owner)
        shown_once = {**key.public(), "value": value}
        return _json({"message": "Virtual key created successfully", "virtual_key": shown_once})

    # GET /api/governance/virtual-keys/{key_id}
    async def get_key(self, request: Request) -> Response:
        gov = await self._governance()
        return _json({"virtual_key": (await self._key(gov, request)).public()})

    # PUT /api/governance/virtual-keys/{key_id}
    async def update_key(self, request: Request) -> Response:
        gov = await self._governance()
        changes = KeyUpdate.model_validate(await _body(request)).changes()
        async with self._write_lock:
            key = await self._key(gov, request)
            if key.revoked_at is not None and changes.get("is_active"):
                raise invalid_request(
                    "is_active: this key was revoked; revocation is permanent, create a new key",
                    param="is_active",
                )
            # Validated again as a whole, so the merged record obeys every rule a new one does.
            updated = VirtualKey.model_validate({**key.model_dump(), **changes})
            await _check_owners(gov, updated.team_id, updated.customer_id)
            await gov.keys.put(updated)
            gov.forget(updated)  # this process applies the change at once; others within the cache TTL
        log.info("virtual key updated: id=%s fields=%s", key.id, sorted(changes))
        return _json({"message": "Virtual key updated successfully", "virtual_key": updated.public()})

    # DELETE /api/governance/virtual-keys/{key_id}
    async def revoke_key(self, request: Request) -> Response:
        gov = await self._governance()
        async with self._write_lock:
            key = await self._key(gov, request)
            if key.revoked_at is None:  # revoking twice keeps the first revocation time
                key = await gov.revoke_key(key.id) or key
                log.info("virtual key revoked: id=%s", key.id)
        return _json({"message": "Virtual key revoked", "virtual_key": key.public()})

    # GET /api/governance/virtual-keys/{key_id}/usage
    async def key_usage(self, request: Request) -> Response:
        backend = await self._backend()
        gov = await self._governance()
        key = await self._key(gov, request)
        totals = None
        if backend.logs is not None:
            totals = await month_usage(backend.logs.store, key.id, gov.clock.now())
        return _json({"virtual_key_id": key.id, "limits": await gov.usage(key), "this_month": totals})


async def _check_owners(gov: Governance, team_id: str | None, customer_id: str | None) -> None:
    if team_id and customer_id:
        raise invalid_request("team_id and customer_id are exclusive: set one", param="team_id")
    if team_id and await gov.keys.team(team_id) is None:
        raise invalid_request(f"team_id: no team {team_id!r}", param="team_id")
    if customer_id and await gov.keys.customer(customer_id) is None:
        raise invalid_request(f"customer_id: no customer {customer_id!r}", param="customer_id")


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
    admin = _Admin(get_backend, _guard(auth, other_admin_auth))
    ep = admin.endpoint
    return [
        Route("/api/logs", ep(admin.search_logs), methods=["GET"]),
        Route(_KEYS, ep(admin.list_keys), methods=["GET"]),
        Route(_KEYS, ep(admin.create_key), methods=["POST"]),
        Route(_KEYS + "/{key_id}", ep(admin.get_key), methods=["GET"]),
        Route(_KEYS + "/{key_id}", ep(admin.update_key), methods=["PUT"]),
        Route(_KEYS + "/{key_id}", ep(admin.revoke_key), methods=["DELETE"]),
        Route(_KEYS + "/{key_id}/usage", ep(admin.key_usage), methods=["GET"]),
    ]


def admin_endpoint(
    get_backend: BackendGetter, handler: Handler, *, auth: AuthConfig | None, other_admin_auth: bool = False
) -> Handler:
    """``handler`` behind the management API's credentials (a host admin or an admin token also pass).
    Without Basic auth enabled it is open, as Bifrost's ``/metrics`` is, unless ``other_admin_auth``
    closes it as it closes the management API."""
    open_ = auth is None or not auth.is_enabled
    guard = _Closed() if open_ and other_admin_auth else _Open() if open_ else _guard(auth, False)
    return _Admin(get_backend, guard).endpoint(handler)
