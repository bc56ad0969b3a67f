"""A host's own middleware subclass, which the checks must accept in place of Django's."""

from __future__ import annotations

from django.middleware.csrf import CsrfViewMiddleware


class StrictCsrf(CsrfViewMiddleware):
    pass
