"""How a framework adapter tells how a call is authenticated, by the gateway's own rules.

- A call that carries a virtual key (`carries_virtual_key`) is authenticated by the key, not by a
  cookie: browsers cannot attach these headers to a cross-site request, so it needs no CSRF token.
- A state-changing call that relies on the host's session cookie (`needs_csrf_token`) must prove it came
  from the host's own pages; with no framework CSRF machinery, by the double-submit cookie
  (`double_submit_failure`).
- The management API (`is_admin_path`) is for the host's admins only.
"""

from __future__ import annotations

import hmac
import re
from collections.abc import Iterable

from bifrost_asgi.adapters.principal import Principal
from bifrost_asgi.governance.keys import VK_PREFIX

__all__ = [
    "SAFE_METHODS",
    "carries_virtual_key",
    "double_submit_failure",
    "extract_virtual_key",
    "is_admin_path",
    "needs_csrf_token",
]

# Methods that change nothing (RFC 9110 §9.2.1): never CSRF-checked.
SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})

_VK_HEADERS = (b"x-api-key", b"x-goog-api-key", b"api-key")
_PREFIX_BYTES = VK_PREFIX.encode()
# The management API (routes/admin.py): /api/logs and /api/governance/..., and anything below either, so
# that a route added there later is gated from the start.
_ADMIN_PATH = re.compile(r"^/api/(governance|logs)(/|$)")


def extract_virtual_key(name: bytes, value: bytes) -> str | None:
    """The virtual key a header carries, if any (spec §6.1); ``name`` is lower-case, as in ASGI.

    Only ``x-bf-vk`` accepts legacy values without the ``sk-bf-`` prefix; elsewhere a non-``sk-bf-``
    value is a provider key or a dummy the SDK requires, and is ignored.
    """
    if name == b"x-bf-vk":
        return value.decode("latin-1").strip() or None
    if name == b"authorization":
        if value[:7].lower() == b"bearer " and value[7:].startswith(_PREFIX_BYTES):
            return value[7:].decode("latin-1").strip()
        return None
    if name in _VK_HEADERS and value.startswith(_PREFIX_BYTES):
        return value.decode("latin-1").strip()
    return None


def carries_virtual_key(headers: Iterable[tuple[bytes, bytes]]) -> bool:
    """Whether any of the ASGI ``headers`` carries a virtual key (see `encode_headers` for a framework's)."""
    return any(extract_virtual_key(name, value) is not None for name, value in headers)


def needs_csrf_token(
    principal: Principal | None, method: str, headers: Iterable[tuple[bytes, bytes]]
) -> bool:
    """Whether the call must pass a CSRF check: it changes something and relies on the session cookie.

    >>> needs_csrf_token(Principal("42", "session"), "POST", [(b"cookie", b"session=...")])
    True
    """
    if principal is None or principal.via != "session" or method.upper() in SAFE_METHODS:
        return False
    return not carries_virtual_key(headers)


def double_submit_failure(cookie: str | None, header: str | None) -> str | None:
    """Why a double-submit CSRF check fails, or None when the header echoes the cookie.

    Another site can make the browser send the cookie, but cannot read it to set the header. Compared in
    constant time, as bytes (any character, never a TypeError).
    """
    if not cookie or not header:
        return "the CSRF token is missing."
    if not hmac.compare_digest(cookie.encode(), header.encode()):
        return "the CSRF token does not match."
    return None


def is_admin_path(path: str) -> bool:
    """Whether ``path`` (relative to the gateway's mount, e.g. ``/api/logs``) is the management API."""
    return _ADMIN_PATH.match(path) is not None
