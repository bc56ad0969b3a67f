"""The ASGI types, declared once (as ``starlette.types`` does) for the core and the adapters."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

__all__ = ["ASGIApp", "Headers", "Message", "Receive", "Scope", "Send"]

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
# Loosely typed on purpose: Django's, Starlette's and our own ASGI callables each annotate scope, receive
# and send differently, and every one of them must be accepted wherever an ASGI app is.
ASGIApp = Callable[[Any, Any, Any], Awaitable[None]]
# Raw header pairs as ASGI carries them: lower-case names, latin-1 bytes.
Headers = list[tuple[bytes, bytes]]
