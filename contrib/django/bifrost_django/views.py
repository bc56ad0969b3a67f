"""One view serves every gateway route under the app's include (``/ai/v1/responses``, ``/ai/api/me/...``).

The journey of a request:

1. Who is calling, with Django's own machinery: a signed-in user (session) becomes a `Principal`
   (``is_staff`` grants the management API). A cookie-authenticated call that changes something must
   pass Django's CSRF check; a call that carries a virtual key (``x-bf-vk``, ``Authorization: Bearer
   sk-bf-...``, ``x-api-key``, ``api-key``, ``x-goog-api-key``) is authenticated by the key, not by a
   cookie, and needs no token. Browsers cannot attach such headers to cross-site requests.
2. The request goes to the gateway's ASGI app with the principal in the scope: on the server's own
   event loop under ASGI (`gateway_async`), on the process's loop thread under WSGI (`gateway_sync`).
3. The answer comes back with its status and headers; Server-Sent Events and speech audio stream
   through (`StreamingHttpResponse`) and closing the response early (the client left) cancels the
   upstream call.

``bifrost_django.urls`` resolves to `gateway_async` when Django resolves the URL on an event loop (ASGI)
and to `gateway_sync` otherwise (WSGI), so one ``include`` works under both.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Iterable, Iterator
from dataclasses import dataclass
from typing import Any

from asgiref.sync import sync_to_async
from django.conf import settings
from django.core.exceptions import ImproperlyConfigured
from django.db import transaction
from django.http import HttpRequest, HttpResponse, HttpResponseBase, StreamingHttpResponse
from django.middleware.csrf import CsrfViewMiddleware
from django.views.decorators.csrf import csrf_exempt

from bifrost_asgi.adapters import (
    Principal,
    build_scope,
    call_gateway,
    call_gateway_sync,
    carries_virtual_key,
    encode_headers,
    is_admin_path,
)
from bifrost_asgi.errors import BifrostError, csrf_failed, forbidden, internal_error, unauthorized

from ._runtime import asgi_gateway, wsgi_gateway

__all__ = ["gateway_async", "gateway_sync"]

log = logging.getLogger("bifrost_django")

_HOP_BY_HOP = frozenset({"connection", "keep-alive", "transfer-encoding", "content-length"})


@dataclass(frozen=True)
class _Call:
    scope: dict[str, Any]
    body: bytes


def error_response(err: BifrostError) -> HttpResponse:
    """An answer in the gateway's own `BifrostError` shape, for refusals made before it is reached."""
    return HttpResponse(err.to_json(), status=err.status_code, content_type="application/json")


# -- 1. who is calling -------------------------------------------------------------------------------


class _CsrfCheck(CsrfViewMiddleware):
    """Django's CSRF rules (token, Origin, Referer, CSRF_USE_SESSIONS, ...) with a JSON refusal."""

    def _reject(self, request: HttpRequest, reason: str) -> HttpResponse:
        return error_response(
            csrf_failed(
                f"CSRF verification failed: {reason.rstrip('.')}. Session-authenticated calls must send the "
                "csrftoken cookie's value in the X-CSRFToken header (or use a virtual key)."
            )
        )


def _csrf_refusal(request: HttpRequest) -> HttpResponseBase | None:
    check = _CsrfCheck(lambda _request: HttpResponse())
    check.process_request(request)
    return check.process_view(request, lambda _request: HttpResponse(), (), {})


def authenticate(request: HttpRequest) -> Principal | HttpResponseBase | None:
    """The signed-in user as a `Principal`, None when anonymous, or the CSRF refusal.

    Synchronous: loading the session and the user may query the database.
    """
    if not hasattr(request, "user"):
        raise ImproperlyConfigured(
            "bifrost_django needs django.contrib.auth.middleware.AuthenticationMiddleware (bifrost.E004)"
        )
    user = request.user
    if not user.is_authenticated:
        return None
    name = user.get_username()
    if carries_virtual_key(encode_headers(request.headers.items())):
        # The key authenticates; the session only restricts it to the user's own keys. Management rights
        # ride on a cookie only after the CSRF check, so they are not granted here.
        return Principal(str(user.pk), "session", False, name)
    refusal = _csrf_refusal(request)
    if refusal is not None:
        return refusal
    return Principal(str(user.pk), "session", bool(getattr(user, "is_staff", False)), name)


# -- 2. the request, as the gateway sees it ----------------------------------------------------------


def _dropped_request_headers() -> frozenset[str]:
    # The session cookie and the CSRF token authenticated the call here; they mean nothing downstream.
    csrf_header = settings.CSRF_HEADER_NAME.removeprefix("HTTP_").replace("_", "-").lower()
    return _HOP_BY_HOP | {"cookie", csrf_header}


def _headers(request: HttpRequest, body_size: int) -> list[tuple[bytes, bytes]]:
    headers = encode_headers(request.headers.items(), drop=_dropped_request_headers())
    headers.append((b"content-length", str(body_size).encode()))
    return headers


def _query_string(request: HttpRequest) -> bytes:
    scope = getattr(request, "scope", None)  # ASGIRequest keeps the raw bytes
    raw = scope.get("query_string") if isinstance(scope, dict) else None
    if isinstance(raw, bytes):
        return raw
    return str(request.META.get("QUERY_STRING", "")).encode("latin-1")  # WSGI: PEP 3333 latin-1 strings


def _address(host: Any, port: Any) -> tuple[str, int] | None:
    if not host:
        return None
    try:
        return str(host), int(port or 0)
    except ValueError:
        return str(host), 0


def _admin_refusal(route: str, principal: Principal | None) -> HttpResponse | None:
    """The management API answers staff sessions only (the core's Basic credentials are not offered here)."""
    if not is_admin_path(route) or (principal is not None and principal.is_admin):
        return None
    if principal is None:
        return error_response(unauthorized("sign in as a staff user to use the management API"))
    return error_response(forbidden("the management API is for staff users"))


def read_body(request: HttpRequest, max_body: int) -> bytes:
    """The raw body, read before anything parses it as a form.

    Read one byte past the limit at most: the gateway refuses the body (413) without anyone holding all
    of it. Not `request.body`, which DATA_UPLOAD_MAX_MEMORY_SIZE caps at 2.5 MB (images are larger).
    Read first: the CSRF check looks at ``request.POST``, which for a multipart upload (audio, images)
    would consume the stream; once it is read, Django leaves ``POST`` empty and the check uses the header.
    """
    return request.read(max_body + 1)


def prepare(
    request: HttpRequest, subpath: str, principal: Principal | None, body: bytes
) -> _Call | HttpResponse:
    route = "/" + subpath
    refusal = _admin_refusal(route, principal)
    if refusal is not None:
        return refusal
    full = request.path
    root = full[: -len(route)] if full.endswith(route) else ""
    scope = build_scope(
        method=request.method or "GET",
        path=full,
        root_path=root,
        query_string=_query_string(request),
        headers=_headers(request, len(body)),
        principal=principal,
        scheme=request.scheme or "http",
        client=_address(request.META.get("REMOTE_ADDR"), request.META.get("REMOTE_PORT")),
        server=_address(request.META.get("SERVER_NAME"), request.META.get("SERVER_PORT")),
    )
    return _Call(scope, body)


# -- 3. the answer -----------------------------------------------------------------------------------


def _copy_headers(response: HttpResponseBase, headers: Iterable[tuple[str, str]]) -> None:
    merged: dict[str, str] = {}
    for name, value in headers:
        if name.lower() not in _HOP_BY_HOP:
            merged[name] = f"{merged[name]}, {value}" if name in merged else value
    for name, value in merged.items():
        response.headers[name] = value


def plain_response(status: int, headers: Iterable[tuple[str, str]], body: bytes) -> HttpResponse:
    response = HttpResponse(body, status=status)
    _copy_headers(response, headers)
    return response


def stream_response(
    request: HttpRequest,
    status: int,
    headers: Iterable[tuple[str, str]],
    chunks: Iterator[bytes] | AsyncIterator[bytes],
) -> StreamingHttpResponse:
    response = StreamingHttpResponse(chunks, status=status)
    _copy_headers(response, headers)
    # Never compress or buffer SSE: GZipMiddleware skips a request that does not accept gzip, and
    # nginx honours X-Accel-Buffering.
    request.META.pop("HTTP_ACCEPT_ENCODING", None)
    response.headers.setdefault("Cache-Control", "no-cache")
    response.headers["X-Accel-Buffering"] = "no"
    return response


# -- the views ---------------------------------------------------------------------------------------


@csrf_exempt  # checked in `authenticate`, for session calls only
@transaction.non_atomic_requests  # the gateway's writes are its own, on its own connections
async def gateway_async(request: HttpRequest, subpath: str = "") -> HttpResponseBase:
    """The gateway under ASGI: runs on the server's event loop."""
    gateway = asgi_gateway()
    body = read_body(request, gateway.max_body)
    principal = await sync_to_async(authenticate)(request)
    if isinstance(principal, HttpResponseBase):
        return principal
    call = prepare(request, subpath, principal, body)
    if isinstance(call, HttpResponse):
        return call
    bridged = await call_gateway(gateway.app, call.scope, call.body)
    if bridged.streaming:
        # When the client leaves, Django cancels the task iterating `chunks()`, which then closes the
        # bridged response: the gateway sees a disconnect and cancels the upstream call.
        return stream_response(request, bridged.status, bridged.headers, bridged.chunks())
    return plain_response(bridged.status, bridged.headers, await bridged.read())


@csrf_exempt
@transaction.non_atomic_requests
def gateway_sync(request: HttpRequest, subpath: str = "") -> HttpResponseBase:
    """The gateway under WSGI: runs on the process's loop thread; streams through a plain generator."""
    runtime, gateway = wsgi_gateway()
    body = read_body(request, gateway.max_body)
    principal = authenticate(request)
    if isinstance(principal, HttpResponseBase):
        return principal
    call = prepare(request, subpath, principal, body)
    if isinstance(call, HttpResponse):
        return call
    try:
        loop, app = runtime.get()  # starts the gateway on the process's loop thread on first use
        bridged = call_gateway_sync(loop, app, call.scope, call.body)
    except Exception:
        # The gateway renders its own failures; reaching here is a failed startup (retried on the next
        # request) or a bug.
        log.exception("bifrost gateway failed on %s %s", request.method, request.path)
        return error_response(internal_error())
    if bridged.streaming:
        # The WSGI server closes the response when the client leaves; closing the generator closes the
        # bridged response.
        return stream_response(request, bridged.status, bridged.headers, bridged.iter_chunks())
    return plain_response(bridged.status, bridged.headers, bridged.read())
