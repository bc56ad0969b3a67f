"""Seeing what the gateway does: Prometheus metrics, OpenTelemetry spans and the host's hooks.

Public: `Hooks` (callbacks for ``usage_recorded``, ``budget_threshold_crossed``, ``key_created`` and
``key_revoked``), the `BudgetThreshold` event, and `EVENTS`. See docs/observability.md.
"""

from __future__ import annotations

from bifrost_asgi.observability.hooks import EVENTS, BudgetThreshold, Event, Hooks

__all__ = ["BudgetThreshold", "EVENTS", "Event", "Hooks"]
