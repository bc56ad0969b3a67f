"""Blinker signals for the host app, sent with the Flask app as sender:

    from bifrost_flask.signals import usage_recorded

    @usage_recorded.connect_via(app)
    def bill(sender, record, **extra):      # record: a bifrost_asgi.stores.LogRecord
        db.session.add(Charge(user_id=record.owner, dollars=record.cost or 0))
        db.session.commit()

- ``usage_recorded(sender, record)``: a request's usage log record, once written.
- ``budget_threshold_crossed(sender, event)``: a `bifrost_asgi.observability.BudgetThreshold`.
- ``key_created(sender, key)`` and ``key_revoked(sender, key)``: a `bifrost_asgi.governance.VirtualKey`.

Receivers run in a worker thread of the gateway, inside an app context, after the fact: a receiver that
raises is logged and changes nothing for the request or the key.
"""

from __future__ import annotations

import asyncio
from typing import Any

from blinker import Namespace, Signal
from flask import Flask

from bifrost_asgi.observability import Hooks

__all__ = ["budget_threshold_crossed", "key_created", "key_revoked", "usage_recorded"]

_signals = Namespace()
usage_recorded = _signals.signal("bifrost-usage-recorded")
budget_threshold_crossed = _signals.signal("bifrost-budget-threshold-crossed")
key_created = _signals.signal("bifrost-key-created")
key_revoked = _signals.signal("bifrost-key-revoked")


class _Sender:
    """One signal as a core hook: sent only when it has receivers, in a thread, in ``app``'s context."""

    def __init__(self, app: Flask, signal: Signal, argument: str) -> None:
        self._app = app
        self._signal = signal
        self._argument = argument

    def wanted(self) -> bool:
        return bool(self._signal.receivers)

    async def __call__(self, payload: Any) -> None:
        if self.wanted():
            await asyncio.to_thread(self._send, payload)

    def _send(self, payload: Any) -> None:
        with self._app.app_context():
            self._signal.send(self._app, **{self._argument: payload})


def signal_hooks(app: Flask) -> Hooks:
    """The core's hooks that send this module's signals for ``app``."""
    return Hooks(
        usage_recorded=_Sender(app, usage_recorded, "record"),
        budget_threshold_crossed=_Sender(app, budget_threshold_crossed, "event"),
        key_created=_Sender(app, key_created, "key"),
        key_revoked=_Sender(app, key_revoked, "key"),
    )
