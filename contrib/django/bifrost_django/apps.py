"""The app's configuration: label ``bifrost``; system checks registered when the app is ready."""

from __future__ import annotations

from django.apps import AppConfig
from django.core import checks


class BifrostConfig(AppConfig):
    """``INSTALLED_APPS = [..., "bifrost_django"]``; tables are named ``bifrost_*``."""

    name = "bifrost_django"
    label = "bifrost"
    verbose_name = "AI gateway"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        from . import _runtime  # noqa: F401  (rebuilds the gateway when BIFROST changes)
        from .checks import check_settings

        checks.register(check_settings, "bifrost")
