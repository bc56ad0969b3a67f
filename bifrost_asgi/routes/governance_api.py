"""Bifrost's governance API: virtual keys, teams, customers, budgets, rate limits and provider-level limits
(``transports/bifrost-http/handlers/governance.go``), in its routes, shapes, messages and status codes.

    GET    /api/governance/virtual-keys[?owner=&team_id=&customer_id=&search=&limit=&offset=&from_memory=]
    POST   /api/governance/virtual-keys              {"message", "virtual_key": {..., "value"}}
    GET    /api/governance/virtual-keys/{id}         {"virtual_key": {...}}
    PUT    /api/governance/virtual-keys/{id}         partial update; never the hash; never un-revokes
    DELETE /api/governance/virtual-keys/{id}         revoke (permanent; the record stays)
    GET    /api/governance/virtual-keys/{id}/usage   each limit's window, plus this month's totals
    GET|POST /api/governance/teams, GET|PUT|DELETE /api/governance/teams/{id}
    GET|POST /api/governance/customers, GET|PUT|DELETE /api/governance/customers/{id}
    GET    /api/governance/budgets, /api/governance/rate-limits          every one, with its usage
    GET    /api/governance/providers[/{provider}], PUT|DELETE /api/governance/providers/{provider}

Where we differ from Bifrost, on purpose: deleting a key revokes it (the record stays, blocked for good);
a key's plaintext is shown once, at creation, never in a list; updating a key changes only the fields
sent (Bifrost detaches a key from its team when an update leaves ``team_id`` out).
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Sequence
from typing import Any, Literal, TypeVar

from starlette.requests import Request
from starlette.responses import Response

from bifrost_asgi.errors import invalid_request, not_found
from bifrost_asgi.governance.engine import Governance
from bifrost_asgi.governance.models import Customer, ProviderGovernance, Team, VirtualKey
from bifrost_asgi.routes.bodies import CustomerBody, KeyCreate, KeyUpdate, ProviderBody, TeamBody, new_id
from bifrost_asgi.routes.management import Context, Page, from_memory, json_response, page, read_json
from bifrost_asgi.routes.present import Presenter, scopes_of
from bifrost_asgi.stores.log_query import month_usage

__all__ = ["GovernanceAPI"]

log = logging.getLogger("bifrost_asgi.admin")

Handler = Callable[[Request], Awaitable[Response]]


class _Directory:
    """Every key, team and customer, read once per answer that embeds them in each other."""

    def __init__(self, keys: list[VirtualKey], teams: list[Team], customers: list[Customer]) -> None:
        self.keys = keys
        self.teams = {t.id: t for t in teams}
        self.customers = {c.id: c for c in customers}

    @classmethod
    async def read(cls, gov: Governance) -> _Directory:
        return cls(await gov.keys.list_keys(), await gov.keys.list_teams(), await gov.keys.list_customers())


class GovernanceAPI:
    """The handlers, over one management `Context`."""

    def __init__(self, ctx: Context) -> None:
        self.ctx = ctx

    def routes(self) -> list[tuple[str, str, Handler]]:
        keys, teams = "/api/governance/virtual-keys", "/api/governance/teams"
        customers, providers = "/api/governance/customers", "/api/governance/providers"
        return [
            ("GET", keys, self.list_keys),
            ("POST", keys, self.create_key),
            ("GET", keys + "/{key_id}", self.get_key),
            ("PUT", keys + "/{key_id}", self.update_key),
            ("DELETE", keys + "/{key_id}", self.revoke_key),
            ("GET", keys + "/{key_id}/usage", self.key_usage),
            ("GET", teams, self.list_teams),
            ("POST", teams, self.create_team),
            ("GET", teams + "/{team_id}", self.get_team),
            ("PUT", teams + "/{team_id}", self.update_team),
            ("DELETE", teams + "/{team_id}", self.delete_team),
            ("GET", customers, self.list_customers),
            ("POST", customers, self.create_customer),
            ("GET", customers + "/{customer_id}", self.get_customer),
            ("PUT", customers + "/{customer_id}", self.update_customer),
            ("DELETE", customers + "/{customer_id}", self.delete_customer),
            ("GET", "/api/governance/budgets", self.list_budgets),
            ("GET", "/api/governance/rate-limits", self.list_rate_limits),
            ("GET", providers, self.list_providers),
            ("GET", providers + "/{provider}", self.get_provider),
            ("PUT", providers + "/{provider}", self.update_provider),
            ("DELETE", providers + "/{provider}", self.delete_provider),
        ]

    async def _presenter(self, gov: Governance, records: Sequence[Any]) -> Presenter:
        presenter = Presenter(gov)
        await presenter.load(records)
        return presenter

    async def _check_owners(self, gov: Governance, team_id: str | None, customer_id: str | None) -> None:
        if team_id and await gov.keys.team(team_id) is None:
            raise invalid_request(f"team_id: no team {team_id!r}", param="team_id")
        if customer_id and await gov.keys.customer(customer_id) is None:
            raise invalid_request(f"customer_id: no customer {customer_id!r}", param="customer_id")

    # -- virtual keys --------------------------------------------------------------------------------

    async def _key(self, gov: Governance, request: Request) -> VirtualKey:
        return _found(await gov.keys.get(request.path_params["key_id"]), "Virtual key")

    async def _show_key(self, gov: Governance, key: VirtualKey) -> dict[str, Any]:
        team = await gov.keys.team(key.team_id) if key.team_id else None
        customer = await gov.keys.customer(key.customer_id) if key.customer_id else None
        presenter = await self._presenter(gov, [key, *(r for r in (team, customer) if r is not None)])
        teams = {team.id: team} if team else {}
        return presenter.key(key, teams, {customer.id: customer} if customer else {})

    async def list_keys(self, request: Request) -> Response:
        gov = await self.ctx.governance()
        params = request.query_params
        keys = await gov.keys.list_keys(params.get("owner") or None)
        if from_memory(request):
            keys.sort(key=lambda k: (k.created_at, k.id))
        for field in ("team_id", "customer_id"):
            if params.get(field):
                keys = [k for k in keys if getattr(k, field) == params[field]]
        window = page(request, "team_id", "customer_id")
        shown, total = window.apply(keys, lambda k: k.name)
        directory = _Directory(shown, await gov.keys.list_teams(), await gov.keys.list_customers())
        owners = [*directory.teams.values(), *directory.customers.values()]
        presenter = await self._presenter(gov, [*shown, *owners])
        rendered = [presenter.key(k, directory.teams, directory.customers) for k in shown]
        return json_response(window.answer("virtual_keys", rendered, total))

    async def create_key(self, request: Request) -> Response:
        gov = await self.ctx.governance()
        body = KeyCreate.model_validate(await read_json(request))
        fields = body.fields({"provider_configs": (), "budgets": (), "rate_limit": None})
        await self._check_owners(gov, fields.get("team_id"), fields.get("customer_id"))
        key, value = await gov.create_key(fields.pop("name"), **fields)
        log.info("virtual key created: id=%s name=%r owner=%r", key.id, key.name, key.owner)
        shown_once = {**await self._show_key(gov, key), "value": value}
        return json_response({"message": "Virtual key created successfully", "virtual_key": shown_once})

    async def get_key(self, request: Request) -> Response:
        gov = await self.ctx.governance()
        return json_response({"virtual_key": await self._show_key(gov, await self._key(gov, request))})

    async def update_key(self, request: Request) -> Response:
        gov = await self.ctx.governance()
        body = KeyUpdate.model_validate(await read_json(request))
        async with self.ctx.write_lock:
            key = await self._key(gov, request)
            if key.revoked_at is not None and body.is_active:
                raise invalid_request(
                    "is_active: this key was revoked; revocation is permanent, create a new key",
                    param="is_active",
                )
            current = {"provider_configs": key.provider_configs, "budgets": key.budgets,
                       "rate_limit": key.rate_limit}  # fmt: skip
            changes = body.fields(current)
            updated = _merged(key, changes)
            await self._check_owners(gov, updated.team_id, updated.customer_id)
            await gov.keys.put(updated)
            gov.forget(updated)  # this process applies the change at once; others within the cache TTL
        log.info("virtual key updated: id=%s fields=%s", key.id, sorted(body.model_fields_set))
        shown = await self._show_key(gov, updated)
        return json_response({"message": "Virtual key updated successfully", "virtual_key": shown})

    async def revoke_key(self, request: Request) -> Response:
        gov = await self.ctx.governance()
        async with self.ctx.write_lock:
            key = await self._key(gov, request)
            if key.revoked_at is None:  # revoking twice keeps the first revocation time
                key = await gov.revoke_key(key.id) or key
                log.info("virtual key revoked: id=%s", key.id)
        shown = await self._show_key(gov, key)
        return json_response({"message": "Virtual key revoked", "virtual_key": shown})

    async def key_usage(self, request: Request) -> Response:
        gov = await self.ctx.governance()
        key = await self._key(gov, request)
        logs = (await self.ctx.backend()).logs
        totals = None if logs is None else await month_usage(logs.store, key.id, gov.clock.now())
        return json_response({"virtual_key_id": key.id, "limits": await gov.usage(key), "this_month": totals})

    # -- teams ---------------------------------------------------------------------------------------

    async def _team(self, gov: Governance, request: Request) -> Team:
        return _found(await gov.keys.team(request.path_params["team_id"]), "Team")

    async def _show_team(self, gov: Governance, team: Team) -> dict[str, Any]:
        keys = [k for k in await gov.keys.list_keys() if k.team_id == team.id]
        customer = await gov.keys.customer(team.customer_id) if team.customer_id else None
        presenter = await self._presenter(gov, [team, *keys, *([customer] if customer else [])])
        return presenter.team(team, keys, customer)

    async def list_teams(self, request: Request) -> Response:
        gov = await self.ctx.governance()
        customer_id = request.query_params.get("customer_id")
        teams = [t for t in await gov.keys.list_teams() if not customer_id or t.customer_id == customer_id]
        memory = from_memory(request)
        window = Page.whole() if memory else page(request)
        shown, total = window.apply(teams, lambda t: t.name)
        directory = await _Directory.read(gov)
        presenter = await self._presenter(gov, [*shown, *directory.keys, *directory.customers.values()])
        customer = directory.customers.get
        rendered = [presenter.team(t, directory.keys, customer(t.customer_id or "")) for t in shown]
        return json_response(window.answer("teams", _by_id_if(memory, rendered), total))

    async def create_team(self, request: Request) -> Response:
        gov = await self.ctx.governance()
        body = TeamBody.model_validate(await read_json(request))
        fields = {**body.named("Team", required=True), **body.limits((), None)}
        customer_id = body.customer_id or None
        await self._check_owners(gov, None, customer_id)
        team = Team(id=new_id(), customer_id=customer_id, created_at=gov.clock.now(), **fields)
        await gov.keys.put_team(team)
        log.info("team created: id=%s name=%r", team.id, team.name)
        shown = await self._show_team(gov, team)
        return json_response({"message": "Team created successfully", "team": shown})

    async def get_team(self, request: Request) -> Response:
        gov = await self.ctx.governance()
        return json_response({"team": await self._show_team(gov, await self._team(gov, request))})

    async def update_team(self, request: Request) -> Response:
        gov = await self.ctx.governance()
        body = TeamBody.model_validate(await read_json(request))
        async with self.ctx.write_lock:
            team = await self._team(gov, request)
            changes = {**body.named("Team", required=False), **body.limits(team.budgets, team.rate_limit)}
            if "customer_id" in body.model_fields_set:
                changes["customer_id"] = body.customer_id or None  # "" detaches, as in Bifrost
                await self._check_owners(gov, None, changes["customer_id"])
            updated = _merged(team, changes)
            await gov.keys.put_team(updated)
            gov.forget_record("team", team.id)
        log.info("team updated: id=%s fields=%s", team.id, sorted(body.model_fields_set))
        shown = await self._show_team(gov, updated)
        return json_response({"message": "Team updated successfully", "team": shown})

    async def delete_team(self, request: Request) -> Response:
        """Bifrost detaches the team's keys (they keep working, without the team's limits) and drops the
        team with its budgets and rate limit."""
        gov = await self.ctx.governance()
        async with self.ctx.write_lock:
            team = await self._team(gov, request)
            await _detach_keys(gov, "team_id", team.id)
            await gov.keys.delete_team(team.id)
            gov.forget_record("team", team.id)
        log.info("team deleted: id=%s", team.id)
        return json_response({"message": "Team deleted successfully"})

    # -- customers -----------------------------------------------------------------------------------

    async def _customer(self, gov: Governance, request: Request) -> Customer:
        return _found(await gov.keys.customer(request.path_params["customer_id"]), "Customer")

    async def _show_customer(self, gov: Governance, customer: Customer) -> dict[str, Any]:
        directory = await _Directory.read(gov)
        teams = [t for t in directory.teams.values() if t.customer_id == customer.id]
        keys = [k for k in directory.keys if k.customer_id == customer.id]
        presenter = await self._presenter(gov, [customer, *teams, *keys])
        return presenter.customer(customer, teams, keys)

    async def list_customers(self, request: Request) -> Response:
        gov = await self.ctx.governance()
        memory = from_memory(request)
        window = Page.whole() if memory else page(request)
        shown, total = window.apply(await gov.keys.list_customers(), lambda c: c.name)
        directory = await _Directory.read(gov)
        records = [*shown, *directory.teams.values(), *directory.keys]
        presenter = await self._presenter(gov, records)
        teams = list(directory.teams.values())
        rendered = [presenter.customer(c, teams, directory.keys) for c in shown]
        return json_response(window.answer("customers", _by_id_if(memory, rendered), total))

    async def create_customer(self, request: Request) -> Response:
        gov = await self.ctx.governance()
        body = CustomerBody.model_validate(await read_json(request))
        fields = {**body.named("Customer", required=True), **body.limits((), None)}
        customer = Customer(id=new_id(), created_at=gov.clock.now(), **fields)
        await gov.keys.put_customer(customer)
        log.info("customer created: id=%s name=%r", customer.id, customer.name)
        shown = await self._show_customer(gov, customer)
        return json_response({"message": "Customer created successfully", "customer": shown})

    async def get_customer(self, request: Request) -> Response:
        gov = await self.ctx.governance()
        customer = await self._customer(gov, request)
        return json_response({"customer": await self._show_customer(gov, customer)})

    async def update_customer(self, request: Request) -> Response:
        gov = await self.ctx.governance()
        body = CustomerBody.model_validate(await read_json(request))
        async with self.ctx.write_lock:
            customer = await self._customer(gov, request)
            limits = body.limits(customer.budgets, customer.rate_limit)
            changes = {**body.named("Customer", required=False), **limits}
            updated = _merged(customer, changes)
            await gov.keys.put_customer(updated)
            gov.forget_record("customer", customer.id)
        log.info("customer updated: id=%s fields=%s", customer.id, sorted(body.model_fields_set))
        shown = await self._show_customer(gov, updated)
        return json_response({"message": "Customer updated successfully", "customer": shown})

    async def delete_customer(self, request: Request) -> Response:
        """The customer's teams and keys are detached (as the foreign keys in Bifrost's tables are)."""
        gov = await self.ctx.governance()
        async with self.ctx.write_lock:
            customer = await self._customer(gov, request)
            for team in await gov.keys.list_teams():
                if team.customer_id == customer.id:
                    await gov.keys.put_team(team.model_copy(update={"customer_id": None}))
                    gov.forget_record("team", team.id)
            await _detach_keys(gov, "customer_id", customer.id)
            await gov.keys.delete_customer(customer.id)
            gov.forget_record("customer", customer.id)
        log.info("customer deleted: id=%s", customer.id)
        return json_response({"message": "Customer deleted successfully"})

    # -- budgets and rate limits ---------------------------------------------------------------------

    async def _everything(self, gov: Governance) -> tuple[list[Any], Presenter]:
        directory = await _Directory.read(gov)
        records: list[Any] = [*directory.keys, *directory.teams.values(), *directory.customers.values()]
        records += await gov.keys.list_provider_governance()
        return records, await self._presenter(gov, records)

    async def list_budgets(self, request: Request) -> Response:
        """Every budget of every key (and its provider configs), team, customer and provider."""
        gov = await self.ctx.governance()
        records, presenter = await self._everything(gov)
        budgets: list[dict[str, Any]] = []
        for record in records:
            owner = _owner_field(record)
            for i, (scope, owned, _) in enumerate(scopes_of(record)):
                budgets += presenter.budgets(scope, owned, {"provider_config_id": i} if i else owner)
        return json_response({"budgets": _by_id_if(from_memory(request), budgets), "count": len(budgets)})

    async def list_rate_limits(self, request: Request) -> Response:
        gov = await self.ctx.governance()
        records, presenter = await self._everything(gov)
        limits = [
            shown
            for record in records
            for scope, _, rate_limit in scopes_of(record)
            if (shown := presenter.rate_limit(scope, rate_limit)) is not None
        ]
        return json_response({"rate_limits": _by_id_if(from_memory(request), limits), "count": len(limits)})

    # -- provider-level limits -----------------------------------------------------------------------

    async def _provider(self, gov: Governance, request: Request) -> ProviderGovernance:
        name = request.path_params["provider"]
        configured = await self.ctx.providers()
        if configured is not None and name not in configured:
            raise not_found("Provider not found")
        return await gov.keys.provider_governance(name) or ProviderGovernance(provider=name)

    async def list_providers(self, request: Request) -> Response:
        gov = await self.ctx.governance()
        governed = [g for g in await gov.keys.list_provider_governance() if not g.empty]
        presenter = await self._presenter(gov, governed)
        shown = [presenter.provider(g) for g in governed]
        return json_response({"providers": shown, "count": len(shown)})

    async def get_provider(self, request: Request) -> Response:
        gov = await self.ctx.governance()
        governed = await self._provider(gov, request)
        presenter = await self._presenter(gov, [governed])
        return json_response({"provider": presenter.provider(governed)})

    async def update_provider(self, request: Request) -> Response:
        gov = await self.ctx.governance()
        body = ProviderBody.model_validate(await read_json(request))
        async with self.ctx.write_lock:
            governed = await self._provider(gov, request)
            changes = body.limits(governed.budgets, governed.rate_limit)
            updated = _merged(governed, changes)
            await gov.keys.put_provider_governance(updated)
            gov.forget_record("provider", updated.provider)
        log.info("provider governance updated: provider=%s", updated.provider)
        presenter = await self._presenter(gov, [updated])
        return json_response(
            {"message": "Provider governance updated successfully", "provider": presenter.provider(updated)}
        )

    async def delete_provider(self, request: Request) -> Response:
        gov = await self.ctx.governance()
        async with self.ctx.write_lock:
            governed = await self._provider(gov, request)
            await gov.keys.delete_provider_governance(governed.provider)
            gov.forget_record("provider", governed.provider)
        log.info("provider governance deleted: provider=%s", governed.provider)
        return json_response({"message": "Provider governance deleted successfully"})


def _owner_field(record: VirtualKey | Team | Customer | ProviderGovernance) -> dict[str, Any]:
    if isinstance(record, VirtualKey):
        return {"virtual_key_id": record.id}
    if isinstance(record, Team):
        return {"team_id": record.id}
    if isinstance(record, Customer):
        return {"customer_id": record.id}
    return {"provider": record.provider}


_Record = TypeVar("_Record", VirtualKey, Team, Customer, ProviderGovernance)


def _found(record: _Record | None, what: str) -> _Record:
    """``record``, or Bifrost's 404 (``"<what> not found"``) when the store has none."""
    if record is None:
        raise not_found(f"{what} not found")
    return record


def _merged(record: _Record, changes: dict[str, Any]) -> _Record:
    """``record`` with ``changes`` applied, validated again as a whole, so an updated record obeys every
    rule a new one does."""
    return type(record).model_validate({**record.model_dump(), **changes})


def _by_id_if(memory: bool, shown: list[dict[str, Any]]) -> list[dict[str, Any]] | dict[str, Any]:
    """``shown`` as a list, or as Bifrost's in-memory view (``from_memory=true``) answers it: a map by id."""
    return {item["id"]: item for item in shown} if memory else shown


_Owner = Literal["team_id", "customer_id"]


async def _detach_keys(gov: Governance, owner_field: _Owner, owner_id: str) -> None:
    """Detach every key owned through ``owner_field`` by a deleted team or customer (the keys keep working,
    without that owner's limits), as Bifrost's foreign keys do."""
    for key in await gov.keys.list_keys():
        if getattr(key, owner_field) == owner_id:
            detached = key.model_copy(update={owner_field: None})
            await gov.keys.put(detached)
            gov.forget(detached)
