"""What every framework adapter shares: the public layer below the Django, Flask and Starlette adapters.

An adapter authenticates a request with its host framework's own machinery, then drives the gateway's
ASGI app with the caller in the scope. Everything it needs for that is here (sentry-python keeps the same
layer in ``_asgi_common`` / ``_wsgi_common``; ours is public, so a third party can write an adapter):

- who is calling: `Principal` under `PRINCIPAL_SCOPE_KEY` in the scope; `OwnerDirectory`, the host's
  user table as far as virtual keys need it (``principal``);
- how the call is authenticated: `extract_virtual_key` / `carries_virtual_key` (the gateway's header
  rules), `needs_csrf_token` and `double_submit_failure` (CSRF for session calls), `is_admin_path` (the
  management API) (``auth``);
- the bridge from a framework's view to the ASGI app: `build_scope`, `encode_headers`, `call_gateway`
  (async views) and `call_gateway_sync` (WSGI views), which stream SSE through (``bridge``);
- the event loop a WSGI adapter runs the gateway on: `GatewayRuntime`, `LoopThread`, `register_exit`
  (``runtime``).

docs/extending.md walks through writing an adapter with these.
"""

from __future__ import annotations

from bifrost_asgi.adapters.auth import (
    SAFE_METHODS,
    carries_virtual_key,
    double_submit_failure,
    extract_virtual_key,
    is_admin_path,
    needs_csrf_token,
)
from bifrost_asgi.adapters.bridge import (
    BridgedResponse,
    SyncResponse,
    build_scope,
    call_gateway,
    call_gateway_sync,
    encode_headers,
)
from bifrost_asgi.adapters.principal import PRINCIPAL_SCOPE_KEY, OwnerDirectory, Principal
from bifrost_asgi.adapters.runtime import GatewayRuntime, LoopThread, register_exit, register_exit_for

__all__ = [
    "BridgedResponse",
    "GatewayRuntime",
    "LoopThread",
    "OwnerDirectory",
    "PRINCIPAL_SCOPE_KEY",
    "Principal",
    "SAFE_METHODS",
    "SyncResponse",
    "build_scope",
    "call_gateway",
    "call_gateway_sync",
    "carries_virtual_key",
    "double_submit_failure",
    "encode_headers",
    "extract_virtual_key",
    "is_admin_path",
    "needs_csrf_token",
    "register_exit",
    "register_exit_for",
]
