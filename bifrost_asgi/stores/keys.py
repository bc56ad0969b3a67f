"""Where virtual keys, teams, customers and provider-level limits live: the `KeyStore` Protocol and the
in-memory store.

The SQLite store (the embedded default) is in ``sqlite_keys``. Lookups by key prefix are cached in the
governance engine, not here.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Protocol

from bifrost_asgi.governance.models import Customer, ProviderGovernance, Team, VirtualKey

__all__ = ["KeyStore", "MemoryKeyStore"]


class KeyStore(Protocol):
    """Virtual keys (with their hashes, never their values), teams and customers.

    Records go in and come out whole: a store keeps every field of the pydantic record (or the JSON of
    it). Nothing here needs to be atomic across calls; revocation is a `put` of the revoked record.
    """

    async def by_prefix(self, prefix: str) -> list[VirtualKey]:
        """Every key whose ``key_prefix`` is ``prefix`` (the engine then checks each one's hash)."""
        ...

    async def get(self, key_id: str) -> VirtualKey | None: ...

    async def list_keys(self, owner: str | None = None) -> list[VirtualKey]:
        """Every key, or only ``owner``'s, in a stable order."""
        ...

    async def put(self, key: VirtualKey) -> None:
        """Create or replace a key."""
        ...

    async def team(self, team_id: str) -> Team | None: ...

    async def customer(self, customer_id: str) -> Customer | None: ...

    async def put_team(self, team: Team) -> None: ...

    async def put_customer(self, customer: Customer) -> None: ...

    async def list_teams(self) -> list[Team]:
        """Every team, in a stable order."""
        ...

    async def list_customers(self) -> list[Customer]:
        """Every customer, in a stable order."""
        ...

    async def delete_team(self, team_id: str) -> None:
        """Remove the team record (an unknown id is not an error). Its keys are detached by the caller."""
        ...

    async def delete_customer(self, customer_id: str) -> None:
        """Remove the customer record; its teams and keys are detached by the caller."""
        ...

    async def provider_governance(self, provider: str) -> ProviderGovernance | None:
        """The limits set on a whole provider, or None."""
        ...

    async def list_provider_governance(self) -> list[ProviderGovernance]: ...

    async def put_provider_governance(self, governance: ProviderGovernance) -> None: ...

    async def delete_provider_governance(self, provider: str) -> None: ...

    async def aclose(self) -> None: ...


@dataclass
class MemoryKeyStore:
    """One process, nothing persisted: tests and throwaway deployments."""

    keys: dict[str, VirtualKey] = field(default_factory=dict)
    teams: dict[str, Team] = field(default_factory=dict)
    customers: dict[str, Customer] = field(default_factory=dict)
    providers: dict[str, ProviderGovernance] = field(default_factory=dict)

    async def by_prefix(self, prefix: str) -> list[VirtualKey]:
        return [k for k in self.keys.values() if k.key_prefix == prefix]

    async def get(self, key_id: str) -> VirtualKey | None:
        return self.keys.get(key_id)

    async def list_keys(self, owner: str | None = None) -> list[VirtualKey]:
        return [k for k in self.keys.values() if owner is None or k.owner == owner]

    async def put(self, key: VirtualKey) -> None:
        self.keys[key.id] = key

    async def team(self, team_id: str) -> Team | None:
        return self.teams.get(team_id)

    async def customer(self, customer_id: str) -> Customer | None:
        return self.customers.get(customer_id)

    async def put_team(self, team: Team) -> None:
        self.teams[team.id] = team

    async def put_customer(self, customer: Customer) -> None:
        self.customers[customer.id] = customer

    async def list_teams(self) -> list[Team]:
        return sorted(self.teams.values(), key=lambda t: t.id)

    async def list_customers(self) -> list[Customer]:
        return sorted(self.customers.values(), key=lambda c: c.id)

    async def delete_team(self, team_id: str) -> None:
        self.teams.pop(team_id, None)

    async def delete_customer(self, customer_id: str) -> None:
        self.customers.pop(customer_id, None)

    async def provider_governance(self, provider: str) -> ProviderGovernance | None:
        return self.providers.get(provider)

    async def list_provider_governance(self) -> list[ProviderGovernance]:
        return sorted(self.providers.values(), key=lambda p: p.provider)

    async def put_provider_governance(self, governance: ProviderGovernance) -> None:
        self.providers[governance.provider] = governance

    async def delete_provider_governance(self, provider: str) -> None:
        self.providers.pop(provider, None)

    async def aclose(self) -> None:
        return None
