"""Model strings: ``provider/model`` parsing and provider resolution for bare model names (spec §1.3)."""

from __future__ import annotations

import logging
import re
from collections.abc import Iterable, Mapping

from bifrost_asgi.errors import invalid_request, not_configured
from bifrost_asgi.providers.catalog import KNOWN_PROVIDERS

__all__ = ["MAX_FALLBACKS", "MAX_MODEL_LENGTH", "Resolver", "Target", "check_model_string"]

log = logging.getLogger("bifrost_asgi.routing")

Target = tuple[str, str]

# A model string is echoed into response headers and log records: it is bounded and free of control
# characters before anything else happens (no real model name comes near either bound).
MAX_MODEL_LENGTH = 256
MAX_FALLBACKS = 32
_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f]")


def check_model_string(value: str, param: str) -> str:
    """``value``, or a 400 naming ``param`` when it is too long or holds control characters."""
    if len(value) > MAX_MODEL_LENGTH:
        raise invalid_request(f"{param} is longer than {MAX_MODEL_LENGTH} characters", param=param)
    if _CONTROL.search(value) is not None:
        raise invalid_request(f"{param} contains control characters", param=param)
    return value


class Resolver:
    """Turns the client's model string (and fallbacks) into (provider, model) targets.

    ``catalog`` maps a bare model name to the configured providers that serve it: first the models
    listed on each provider's keys, then the pricing catalog's models for the configured providers.
    Bare names resolve to the alphabetically first candidate, as Bifrost's catalog resolver does, except
    that a ``preferred`` provider (openai on the OpenAI-style integration prefixes) wins when it is one.
    """

    def __init__(self, configured: Iterable[str], catalog: Mapping[str, tuple[str, ...]]) -> None:
        self._configured = frozenset(configured)
        self._known = KNOWN_PROVIDERS | self._configured
        self._catalog = catalog

    def split(self, model: str) -> tuple[str | None, str]:
        head, sep, tail = model.partition("/")
        if sep and tail and head in self._known:
            return head, tail
        return None, model

    def resolve(self, model: str, preferred: str | None = None, *, force: bool = False) -> Target:
        """``force``: under ``/openai`` a bare model means openai (when configured) whatever the catalog."""
        if not model:
            raise invalid_request("model is required", param="model")
        provider, name = self.split(model)
        if provider is None:
            provider = self._resolve_bare(name, preferred, force)
        if provider not in self._configured:
            raise not_configured(provider)
        return provider, name

    def candidates(self, model: str) -> tuple[str, ...]:
        """The configured providers known to serve a bare model (keys' model lists, then prices)."""
        return self._catalog.get(model, ())

    def resolve_under(self, model: str, integration: str | None) -> Target:
        """Resolve on a route under ``integration``: under an integration prefix a bare model prefers
        openai, and under ``/openai`` it always means openai (spec §1.3)."""
        return self.resolve(model, "openai" if integration else None, force=integration == "openai")

    def _resolve_bare(self, name: str, preferred: str | None, force: bool) -> str:
        if force and preferred in self._configured:
            return preferred
        candidates = self._catalog.get(name)
        if candidates:
            return preferred if preferred in candidates else candidates[0]
        raise invalid_request(
            "provider is required in model field (format: provider/model) — no providers found for "
            f'model "{name}" in model catalog to auto-resolve',
            param="model",
        )

    def fallbacks(self, values: object) -> list[Target]:
        """Bifrost drops fallback entries without a known provider prefix (``ParseFallbacks``)."""
        if values is None:
            return []
        if not isinstance(values, list) or not all(isinstance(v, str) for v in values):
            raise invalid_request("fallbacks must be an array of strings", param="fallbacks")
        if len(values) > MAX_FALLBACKS:
            raise invalid_request(f"fallbacks holds more than {MAX_FALLBACKS} entries", param="fallbacks")
        targets: list[Target] = []
        for value in values:
            provider, name = self.split(check_model_string(value, "fallbacks"))
            if provider is None:
                log.debug("fallback %r dropped: no known provider prefix", value)
                continue
            targets.append((provider, name))
        return targets
