"""The example site under ASGI: ``uvicorn example_project.asgi:application`` (what ``python -m
example_project`` runs). The gateway starts and stops with the server (`GatewayLifespan`); static files
(the admin's) are served too, as ``runserver`` would."""

from __future__ import annotations

import os

from django.contrib.staticfiles.handlers import ASGIStaticFilesHandler
from django.core.asgi import get_asgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "example_project.settings")
django_application = ASGIStaticFilesHandler(get_asgi_application())

from bifrost_django.asgi import GatewayLifespan  # noqa: E402  (needs Django set up)

application = GatewayLifespan(django_application)
