"""Virtual keys, teams and customers in a SQLite file (the embedded default), one JSON record per row."""

from __future__ import annotations

import asyncio
import sqlite3
from collections.abc import Sequence
from typing import TypeVar

from pydantic import BaseModel

from bifrost_asgi.governance.models import Customer, ProviderGovernance, Team, VirtualKey
from bifrost_asgi.stores.sqlite import ThreadConnections

__all__ = ["SQLiteKeyStore"]

R = TypeVar("R", bound=BaseModel)

_SCHEMA = """
CREATE TABLE IF NOT EXISTS bifrost_virtual_keys (
    id TEXT PRIMARY KEY, key_prefix TEXT NOT NULL, owner TEXT, record TEXT NOT NULL);
CREATE INDEX IF NOT EXISTS bifrost_vk_prefix ON bifrost_virtual_keys(key_prefix);
CREATE INDEX IF NOT EXISTS bifrost_vk_owner ON bifrost_virtual_keys(owner);
CREATE TABLE IF NOT EXISTS bifrost_teams (id TEXT PRIMARY KEY, record TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS bifrost_customers (id TEXT PRIMARY KEY, record TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS bifrost_provider_governance (provider TEXT PRIMARY KEY, record TEXT NOT NULL);
"""


class SQLiteKeyStore:
    """Keys in a SQLite file, shared by every process on the machine. Calls run in a worker thread."""

    def __init__(self, path: str) -> None:
        self._connections = ThreadConnections(path, _SCHEMA)

    def _conn(self) -> sqlite3.Connection:
        return self._connections.get()

    async def _run(self, sql: str, params: Sequence[object] = ()) -> list[tuple[str, ...]]:
        def work() -> list[tuple[str, ...]]:
            return list(self._conn().execute(sql, tuple(params)).fetchall())

        return await asyncio.to_thread(work)

    async def _records(self, model: type[R], sql: str, params: Sequence[object] = ()) -> list[R]:
        return [model.model_validate_json(row[0]) for row in await self._run(sql, params)]

    async def by_prefix(self, prefix: str) -> list[VirtualKey]:
        return await self._records(
            VirtualKey, "SELECT record FROM bifrost_virtual_keys WHERE key_prefix=?", [prefix]
        )

    async def get(self, key_id: str) -> VirtualKey | None:
        found = await self._records(
            VirtualKey, "SELECT record FROM bifrost_virtual_keys WHERE id=?", [key_id]
        )
        return found[0] if found else None

    async def list_keys(self, owner: str | None = None) -> list[VirtualKey]:
        if owner is None:
            return await self._records(VirtualKey, "SELECT record FROM bifrost_virtual_keys ORDER BY id")
        sql = "SELECT record FROM bifrost_virtual_keys WHERE owner=? ORDER BY id"
        return await self._records(VirtualKey, sql, [owner])

    async def put(self, key: VirtualKey) -> None:
        sql = "INSERT OR REPLACE INTO bifrost_virtual_keys(id, key_prefix, owner, record) VALUES (?, ?, ?, ?)"
        await self._run(sql, [key.id, key.key_prefix, key.owner, key.model_dump_json()])

    async def team(self, team_id: str) -> Team | None:
        found = await self._records(Team, "SELECT record FROM bifrost_teams WHERE id=?", [team_id])
        return found[0] if found else None

    async def customer(self, customer_id: str) -> Customer | None:
        found = await self._records(
            Customer, "SELECT record FROM bifrost_customers WHERE id=?", [customer_id]
        )
        return found[0] if found else None

    async def put_team(self, team: Team) -> None:
        await self._run(
            "INSERT OR REPLACE INTO bifrost_teams(id, record) VALUES (?, ?)",
            [team.id, team.model_dump_json()],
        )

    async def put_customer(self, customer: Customer) -> None:
        sql = "INSERT OR REPLACE INTO bifrost_customers(id, record) VALUES (?, ?)"
        await self._run(sql, [customer.id, customer.model_dump_json()])

    async def list_teams(self) -> list[Team]:
        return await self._records(Team, "SELECT record FROM bifrost_teams ORDER BY id")

    async def list_customers(self) -> list[Customer]:
        return await self._records(Customer, "SELECT record FROM bifrost_customers ORDER BY id")

    async def delete_team(self, team_id: str) -> None:
        await self._run("DELETE FROM bifrost_teams WHERE id=?", [team_id])

    async def delete_customer(self, customer_id: str) -> None:
        await self._run("DELETE FROM bifrost_customers WHERE id=?", [customer_id])

    async def provider_governance(self, provider: str) -> ProviderGovernance | None:
        sql = "SELECT record FROM bifrost_provider_governance WHERE provider=?"
        found = await self._records(ProviderGovernance, sql, [provider])
        return found[0] if found else None

    async def list_provider_governance(self) -> list[ProviderGovernance]:
        sql = "SELECT record FROM bifrost_provider_governance ORDER BY provider"
        return await self._records(ProviderGovernance, sql)

    async def put_provider_governance(self, governance: ProviderGovernance) -> None:
        sql = "INSERT OR REPLACE INTO bifrost_provider_governance(provider, record) VALUES (?, ?)"
        await self._run(sql, [governance.provider, governance.model_dump_json()])

    async def delete_provider_governance(self, provider: str) -> None:
        await self._run("DELETE FROM bifrost_provider_governance WHERE provider=?", [provider])

    async def aclose(self) -> None:
        self._connections.close_current()
