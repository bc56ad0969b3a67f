"""Django signals for the host app:

    from django.dispatch import receiver
    from bifrost_django.signals import usage_recorded

    @receiver(usage_recorded)
    def bill(sender, record, **kwargs):     # record: a bifrost_asgi.stores.LogRecord
        Charge.objects.create(user_id=record.owner, dollars=record.cost or 0)

- ``usage_recorded(sender=UsageLog, record)``: a request's usage record, once written to the database.
- ``budget_threshold_crossed(sender=VirtualKey, event)``: a `bifrost_asgi.observability.BudgetThreshold`.
- ``key_created(sender=VirtualKey, key)``: a key saved for the first time, whatever made it (the admin,
  the self-service API, ``VirtualKey.objects.create_key``, a user's first call).
- ``key_revoked(sender=VirtualKey, key)``: a key revoked (``key.revoke()``, the admin action, the APIs).

The key signals are sent by ``VirtualKey.save`` in the thread and transaction that saved it. The usage
and budget signals are sent from the gateway's database threads after the fact; a receiver that raises
is logged and changes nothing for the request.
"""

from __future__ import annotations

from typing import Any

from django.dispatch import Signal

from bifrost_asgi.observability import Hooks

__all__ = ["budget_threshold_crossed", "key_created", "key_revoked", "usage_recorded"]

usage_recorded = Signal()
budget_threshold_crossed = Signal()
key_created = Signal()
key_revoked = Signal()


class _Sender:
    """One signal as a core hook: sent on a database thread, only when it has receivers."""

    def __init__(self, signal: Signal, sender: type[Any], argument: str) -> None:
        self._signal = signal
        self._sender = sender
        self._argument = argument

    def wanted(self) -> bool:
        return self._signal.has_listeners(self._sender)

    async def __call__(self, payload: Any) -> None:
        from ._db import run

        if self.wanted():
            await run(self._send, payload)

    def _send(self, payload: Any) -> None:
        self._signal.send(sender=self._sender, **{self._argument: payload})


def signal_hooks() -> Hooks:
    """The core's hooks that send the usage and budget signals (key signals come from the model)."""
    from .models import UsageLog, VirtualKey

    return Hooks(
        usage_recorded=_Sender(usage_recorded, UsageLog, "record"),
        budget_threshold_crossed=_Sender(budget_threshold_crossed, VirtualKey, "event"),
    )
