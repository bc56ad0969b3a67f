"""The one view behind every gateway path: a Flask request in, the gateway's ASGI answer out.

The request is authenticated and CSRF-checked with Flask's machinery, translated into an ASGI scope
carrying the `Principal`, and run through the gateway on the process's loop thread. A JSON answer is
read whole; an SSE answer (or speech audio) is handed to the WSGI server as a generator that yields each
chunk as the gateway sends it (never buffered), and closing it early (the client went away) tells the gateway,
which cancels the upstream request.
"""

from __future__ import annotations

import logging

from flask import current_app, request
from flask.wrappers import Response
from werkzeug.datastructures import Headers
from werkzeug.http import is_hop_by_hop_header

from bifrost_asgi.adapters import (
    Principal,
    SyncResponse,
    build_scope,
    call_gateway_sync,
    encode_headers,
    is_admin_path,
)
from bifrost_asgi.errors import BifrostError, internal_error, unauthorized

from ._csrf import csrf_refusal
from ._state import BifrostState, state_of

__all__ = ["METHODS", "gateway_view"]

log = logging.getLogger("bifrost_flask")

METHODS = ["GET", "POST", "PUT", "PATCH", "DELETE"]
# The host's cookies (its session) and the CSRF token authenticate the call to the host; the gateway
# never needs them, so they never reach its logs or its upstreams.
_HOST_ONLY_HEADERS = frozenset({"cookie", "x-csrftoken", "x-csrf-token"})


def gateway_view(path: str) -> Response:
    state = state_of(current_app)
    # The raw body first: a CSRF check that reads `request.form` would otherwise consume a multipart
    # upload (audio, images); werkzeug parses any later form access from this cached copy.
    body = request.get_data()
    try:
        principal = state.load_principal()
    except BifrostError as exc:  # the loader refused the call (an inactive user)
        return error_response(exc)
    refusal = csrf_refusal(principal) or _admin_refusal(state, principal, "/" + path)
    if refusal is not None:
        return error_response(refusal)
    scope = request_scope(principal, state.prefix)
    try:
        loop, app = state.runtime.get()
        answer = call_gateway_sync(loop, app, scope, body)
    except Exception:
        # The gateway renders its own failures; reaching here is a bug or a failed startup.
        log.exception("bifrost gateway failed on %s %s", request.method, request.path)
        return error_response(internal_error())
    return flask_response(answer)


def _admin_refusal(state: BifrostState, principal: Principal | None, path: str) -> BifrostError | None:
    """Without ``governance.auth_config`` the core's management API is open to whoever reaches it; in a
    host app that would be every visitor, so the host's admins (``is_admin``) are the only ones let in."""
    if not state.admin_api_open or not is_admin_path(path) or (principal and principal.is_admin):
        return None
    return unauthorized()


def request_scope(principal: Principal | None, prefix: str) -> dict[str, object]:
    """The current Flask request as an ASGI scope for the gateway mounted at ``prefix``."""
    environ = request.environ
    hidden = _HOST_ONLY_HEADERS | {str(current_app.config["BIFROST_CSRF_HEADER_NAME"]).lower()}
    headers = encode_headers(request.headers.items(), drop=hidden)
    server_port = environ.get("SERVER_PORT")
    return build_scope(
        method=request.method,
        path=request.script_root + request.path,  # ASGI: the full path; root_path is the mount point
        root_path=request.script_root + prefix,
        query_string=request.query_string,
        headers=headers,
        principal=principal,
        scheme=request.scheme,
        client=(request.remote_addr, int(environ.get("REMOTE_PORT") or 0)) if request.remote_addr else None,
        server=(str(environ["SERVER_NAME"]), int(server_port)) if server_port else None,
    )


def flask_response(answer: SyncResponse) -> Response:
    # Hop-by-hop headers (the gateway's SSE "connection: keep-alive") are the WSGI server's business;
    # PEP 3333 forbids an application to send them.
    headers = Headers([(k, v) for k, v in answer.headers if not is_hop_by_hop_header(k)])
    if not answer.streaming:
        return Response(answer.read(), status=answer.status, headers=headers)
    # Reverse proxies (nginx) buffer responses by default, which would hold SSE back.
    headers.setdefault("X-Accel-Buffering", "no")
    # direct_passthrough: werkzeug hands the generator to the WSGI server as is, which writes each chunk
    # as it comes and calls close() on it when the client disconnects (closing the bridged response).
    return Response(answer.iter_chunks(), status=answer.status, headers=headers, direct_passthrough=True)


def error_response(err: BifrostError) -> Response:
    return Response(err.to_json(), status=err.status_code, mimetype="application/json")
