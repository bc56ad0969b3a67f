"""bifrost_django: the bifrost-asgi gateway as a reusable Django app (label ``bifrost``).

Add ``"bifrost_django"`` to ``INSTALLED_APPS``, describe the providers in ``settings.BIFROST`` and serve
every gateway route under one prefix::

    # settings.py
    BIFROST = {"PROVIDERS": {"openai": {"keys": [{"value": "env.OPENAI_API_KEY"}]}}}
    # urls.py
    urlpatterns = [path("ai/", include("bifrost_django.urls"))]

Signed-in users call ``/ai/v1/...`` from the host's own pages (Django sessions, Django's CSRF) and are
charged to their default virtual key; scripts send one of their keys (``Authorization: Bearer
sk-bf-...``) and need no session. Keys, budgets, counters and usage logs live in the host's database.
"""

from __future__ import annotations

try:
    import django  # noqa: F401
except ImportError:  # pragma: no cover - depends on the install
    raise ImportError("bifrost_django needs Django: pip install 'bifrost-asgi[django]'") from None
