"""A signed-in user's own keys and usage: ``/api/me/...``, for the `Principal` a framework adapter put in
the scope. A user sees, creates and revokes only keys they own; another user's key answers 404, the same
as a key that does not exist, so ids cannot be probed.

    GET    /api/me/virtual-keys                  the user's keys (public records)
    POST   /api/me/virtual-keys                  {"name", "description"?}: a new key, plaintext shown once
    DELETE /api/me/virtual-keys/{id}             revoke one of the user's keys
    GET    /api/me/virtual-keys/{id}/usage       that key's limits and windows
    GET    /api/me/usage                         totals this month and every key's limits
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

import orjson
from pydantic import BaseModel, ConfigDict, Field, ValidationError
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from bifrost_asgi.adapters.principal import PRINCIPAL_SCOPE_KEY, Principal
from bifrost_asgi.errors import BifrostError, http_error, invalid_request, unauthorized
from bifrost_asgi.governance.engine import Governance
from bifrost_asgi.governance.models import VirtualKey
from bifrost_asgi.stores.log_query import month_usage

__all__ = ["self_service_routes"]

_HEADERS = {"cache-control": "no-store"}


class _NewKey(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str = Field(min_length=1, max_length=200)
    description: str = Field(default="", max_length=2000)


def _json(data: Any, status: int = 200) -> Response:
    return Response(orjson.dumps(data), status_code=status, media_type="application/json", headers=_HEADERS)


def _error(err: BifrostError) -> Response:
    return Response(
        err.to_json(), status_code=err.status_code, media_type="application/json", headers=_HEADERS
    )


class _SelfService:
    def __init__(self, get_backend: Callable[[], Awaitable[Any]]) -> None:
        self._get_backend = get_backend

    def endpoint(self, handler: Callable[[Request, Principal, Governance], Awaitable[Response]]) -> Any:
        async def endpoint(request: Request) -> Response:
            principal = request.scope.get(PRINCIPAL_SCOPE_KEY)
            if not isinstance(principal, Principal):
                return _error(unauthorized("sign in to manage your keys"))
            backend = await self._get_backend()
            gov: Governance | None = backend.governance
            if gov is None:
                return _error(http_error(404, "governance is not configured"))
            try:
                return await handler(request, principal, gov)
            except ValidationError as exc:
                first = exc.errors()[0]
                return _error(invalid_request(f"{'.'.join(map(str, first['loc']))}: {first['msg']}"))
            except BifrostError as exc:
                return _error(exc)

        return endpoint

    async def _own(self, request: Request, principal: Principal, gov: Governance) -> VirtualKey:
        key = await gov.keys.get(request.path_params["key_id"])
        if key is None or key.owner != principal.user_id:
            raise http_error(404, "Virtual key not found")
        return key

    async def list_keys(self, request: Request, principal: Principal, gov: Governance) -> Response:
        keys = [k.public() for k in await gov.keys.list_keys(principal.user_id)]
        return _json({"virtual_keys": keys, "count": len(keys)})

    async def create_key(self, request: Request, principal: Principal, gov: Governance) -> Response:
        try:
            raw = orjson.loads(await request.body() or b"{}")
        except orjson.JSONDecodeError as exc:
            raise invalid_request(f"invalid request format: {exc}") from None
        body = _NewKey.model_validate(raw)
        template = dict(gov.default_template)
        key, value = await gov.create_key(
            body.name, owner=principal.user_id, description=body.description, **template
        )
        return _json(
            {"message": "Virtual key created successfully", "virtual_key": {**key.public(), "value": value}}
        )

    async def revoke_key(self, request: Request, principal: Principal, gov: Governance) -> Response:
        key = await self._own(request, principal, gov)
        revoked = await gov.revoke_key(key.id)
        return _json({"message": "Virtual key revoked", "virtual_key": (revoked or key).public()})

    async def key_usage(self, request: Request, principal: Principal, gov: Governance) -> Response:
        key = await self._own(request, principal, gov)
        return _json({"virtual_key_id": key.id, "limits": await gov.usage(key)})

    async def usage(self, request: Request, principal: Principal, gov: Governance) -> Response:
        keys = await gov.keys.list_keys(principal.user_id)
        per_key = [{"virtual_key_id": k.id, "name": k.name, "limits": await gov.usage(k)} for k in keys]
        backend = await self._get_backend()
        totals = None
        if backend.logs is not None:
            totals = {
                "by_key": {k.id: await month_usage(backend.logs.store, k.id, gov.clock.now()) for k in keys}
            }
        return _json({"user_id": principal.user_id, "keys": per_key, "this_month": totals})


def self_service_routes(get_backend: Callable[[], Awaitable[Any]]) -> list[Route]:
    me = _SelfService(get_backend)
    keys = "/api/me/virtual-keys"
    return [
        Route(keys, me.endpoint(me.list_keys), methods=["GET"]),
        Route(keys, me.endpoint(me.create_key), methods=["POST"]),
        Route(keys + "/{key_id}", me.endpoint(me.revoke_key), methods=["DELETE"]),
        Route(keys + "/{key_id}/usage", me.endpoint(me.key_usage), methods=["GET"]),
        Route("/api/me/usage", me.endpoint(me.usage), methods=["GET"]),
    ]
