"""Governance: virtual keys, budgets and rate limits (spec §6).

The records here are what a `bifrost_asgi.stores.KeyStore` keeps and what an adapter's own key admin
(the Django admin) edits: `VirtualKey`, `Team`, `Customer`, `ProviderGovernance` (a whole provider's
limits), with their `Budget`, `RateLimit` and `ProviderRule`; `unique_windows` checks that budgets differ
in reset window, as every place that makes records must. A key value is ``VK_PREFIX`` plus a secret, made
by `generate_key`, shown once and stored as a lookup prefix plus a hash. The engine that enforces them
(``engine``) is internal.
"""

from __future__ import annotations

from bifrost_asgi.governance.keys import VK_PREFIX, GeneratedKey, generate_key
from bifrost_asgi.governance.models import (
    Budget,
    Customer,
    ProviderGovernance,
    ProviderRule,
    RateLimit,
    Team,
    VirtualKey,
    unique_windows,
)

__all__ = [
    "Budget",
    "Customer",
    "GeneratedKey",
    "ProviderGovernance",
    "ProviderRule",
    "RateLimit",
    "Team",
    "VK_PREFIX",
    "VirtualKey",
    "generate_key",
    "unique_windows",
]
