"""The test project under ASGI (uvicorn), the gateway starting and stopping with the server."""

from __future__ import annotations

import os

from django.core.asgi import get_asgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "tests.contrib_django.settings")
django_application = get_asgi_application()

from bifrost_django.asgi import GatewayLifespan  # noqa: E402  (needs Django set up)

application = GatewayLifespan(django_application)
