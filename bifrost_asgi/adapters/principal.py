"""Who is calling, as the host app sees it: the contract between the core and the framework adapters.

The core never knows Django, Flask or Starlette users. An adapter authenticates the request with the
host's own machinery (sessions, login, CSRF) and hands the gateway a `Principal` in the ASGI scope under
`PRINCIPAL_SCOPE_KEY`. For calls authenticated by a virtual key instead, the core asks the deployment's
`OwnerDirectory` whether the key's owner still exists and is active.

    principal present, no key   -> the user's default virtual key (created on first use)
    key present                 -> the key; its owner must be active (OwnerDirectory)
    neither                     -> anonymous (refused when enforce_auth_on_inference)
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal, Protocol

__all__ = ["PRINCIPAL_SCOPE_KEY", "OwnerDirectory", "Principal"]

# Under a key nobody else uses (Starlette's convention for per-request facts in the scope).
PRINCIPAL_SCOPE_KEY = "bifrost.principal"


@dataclass(frozen=True, slots=True)
class Principal:
    """A host-app user on whose behalf the request is made.

    ``user_id`` is opaque to the core (a Django pk, a Flask-Login id, ...) and becomes the ``owner`` of the
    keys created for the user. ``via`` records how the host authenticated the request: ``session`` calls
    were CSRF-checked by the adapter. ``is_admin`` grants the management API.
    """

    user_id: str
    via: Literal["session", "token", "key"] = "session"
    is_admin: bool = False
    display_name: str = ""


class OwnerDirectory(Protocol):
    """The host's user table, as far as the gateway needs it."""

    async def is_active(self, owner: str) -> bool:
        """Whether the user exists and may still use their keys."""
        ...
