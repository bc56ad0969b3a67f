"""The test project under WSGI (gunicorn)."""

from __future__ import annotations

import os

from django.core.wsgi import get_wsgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "tests.contrib_django.settings")
application = get_wsgi_application()
