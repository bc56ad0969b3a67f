"""The test project under ASGI (uvicorn), the gateway starting and stopping with the server.

Written as the README's ``asgi.py``: ``bifrost_django.asgi`` is imported before Django is set up.
"""

from __future__ import annotations

import os

from django.core.asgi import get_asgi_application

from bifrost_django.asgi import GatewayLifespan

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "tests.contrib_django.settings")
application = GatewayLifespan(get_asgi_application())
