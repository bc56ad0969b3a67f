"""The ``semantic_cache`` plugin's configuration: Bifrost's ``plugins`` entry, parsed once at load.

    "plugins": [{"name": "semantic_cache", "enabled": true, "config": {"ttl": "5m"}}]

Bifrost's fields keep Bifrost's names and defaults (``ttl`` 5 minutes, ``threshold`` 0.8,
``conversation_history_threshold`` 3, caching by model and by provider). With no embedding ``provider``
the cache runs direct-only (exact hash). ``store`` and ``cache_tool_calls`` are ours.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Mapping
from typing import Any, Literal

from pydantic import Field, ValidationError, field_validator, model_validator

from bifrost_asgi.config import ConfigError, GatewayConfig
from bifrost_asgi.governance.config import ConfigSection

__all__ = ["PLUGIN_NAME", "CacheConfig", "CacheStoreConfig", "cache_config", "parse_duration"]

log = logging.getLogger("bifrost_asgi.config")

PLUGIN_NAME = "semantic_cache"
# Go's time.ParseDuration units, which Bifrost's "ttl" accepts ("5m", "1h30m", "1.5h", "300ms").
_UNITS = {"ns": 1e-9, "us": 1e-6, "µs": 1e-6, "ms": 1e-3, "s": 1.0, "m": 60.0, "h": 3600.0}
_PART = re.compile(r"(\d+(?:\.\d*)?|\.\d+)(ns|us|µs|ms|s|m|h)")


def parse_duration(value: object) -> float:
    """Seconds from a Go duration string (``"5m"``, ``"1h30m"``) or a number of seconds; ValueError
    otherwise. Zero and negative durations are refused: an entry that expires at once is no cache."""
    if isinstance(value, bool):
        raise ValueError("must be a duration such as '5m' or a number of seconds")
    if isinstance(value, int | float):
        seconds = float(value)
    elif isinstance(value, str):
        seconds = _duration_text(value.strip())
    else:
        raise ValueError("must be a duration such as '5m' or a number of seconds")
    if not seconds > 0 or seconds == float("inf"):
        raise ValueError("must be above 0")
    return seconds


def _duration_text(text: str) -> float:
    try:
        return float(text)  # "300": seconds, as Bifrost reads a bare number
    except ValueError:
        pass
    pos, total = 0, 0.0
    for match in _PART.finditer(text):
        if match.start() != pos:
            break
        total += float(match.group(1)) * _UNITS[match.group(2)]
        pos = match.end()
    if pos != len(text) or not text:
        raise ValueError(f"{text[:40]!r} is not a duration such as '5m', '1h30m' or '300s'")
    return total


class CacheStoreConfig(ConfigSection):
    """Where direct entries live (ours): this process's memory, or Redis shared by workers and hosts."""

    type: Literal["memory", "redis"] = "memory"
    # The in-process store's bound: the least recently used entry goes first once it is full.
    max_entries: int = Field(default=10_000, gt=0)
    url: str = "redis://127.0.0.1:6379/0"
    prefix: str = "bifrost:cache:"
    # A cache that is slow to answer must not hold requests: past this the lookup counts as a miss.
    timeout_seconds: float = Field(default=0.5, gt=0)
    # An answer larger than this is served but not kept (an image batch would crowd out everything else).
    max_entry_bytes: int = Field(default=4 * 1024 * 1024, gt=0)


class CacheConfig(ConfigSection):
    """The plugin's ``config`` object."""

    bifrost_only = frozenset({"keys", "cleanup_on_shutdown", "vector_store_namespace"})

    ttl: float = 300.0
    threshold: float = Field(default=0.8, gt=0, le=1)
    cache_by_model: bool = True
    cache_by_provider: bool = True
    # Requests with more messages than this are not cached (long conversations rarely repeat).
    conversation_history_threshold: int = Field(default=3, gt=0)
    exclude_system_prompt: bool = False
    default_cache_key: str = ""
    # Semantic mode: embeddings from this configured provider's model, of this many dimensions.
    provider: str | None = None
    embedding_model: str | None = None
    dimension: int = Field(default=0, ge=0)
    # Ours: answers that call the client's tools depend on what the client does next; not kept unless asked.
    cache_tool_calls: bool = False
    store: CacheStoreConfig = CacheStoreConfig()

    @field_validator("ttl", mode="before")
    @classmethod
    def _ttl(cls, value: object) -> float:
        return parse_duration(value)

    @field_validator("provider", "embedding_model", mode="before")
    @classmethod
    def _blank_is_none(cls, value: object) -> object:
        return None if value == "" else value

    @model_validator(mode="after")
    def _semantic_needs_a_model(self) -> CacheConfig:
        if self.provider is not None and not self.embedding_model:
            raise ValueError("embedding_model is required with an embedding provider (semantic mode)")
        if self.provider is not None and self.dimension <= 0:
            raise ValueError("dimension (the embedding's size) is required with an embedding provider")
        return self

    @property
    def semantic(self) -> bool:
        """Whether requests are also matched by meaning (an embedding provider is configured)."""
        return self.provider is not None


def cache_config(config: GatewayConfig, *, warn: bool = False) -> CacheConfig | None:
    """The enabled ``semantic_cache`` entry of ``plugins``, parsed; None when there is none. A bad entry
    is a ConfigError naming the field; with ``warn``, fields we ignore are logged by name."""
    found: CacheConfig | None = None
    for index, entry in enumerate(config.plugins):
        if not isinstance(entry, Mapping) or not isinstance(entry.get("name"), str):
            raise ConfigError(f"plugins[{index}]: each entry needs a name")
        if entry["name"] != PLUGIN_NAME or entry.get("enabled", True) is False:
            continue
        if found is not None:
            raise ConfigError(f"plugins[{index}]: semantic_cache is enabled twice")
        path = f"plugins[{index}].config"
        found = _parse(entry.get("config") or {}, path)
        _check_provider(found, config, path)
        if warn:
            _warn_ignored(found, path)
    return found


def _warn_ignored(cache: CacheConfig, path: str) -> None:
    for section, where in ((cache, path), (cache.store, f"{path}.store")):
        for name in section.model_extra or {}:
            if name in section.bifrost_only:
                log.warning("%s.%s is Bifrost's; bifrost-asgi does not use it: ignored", where, name)
            else:
                log.warning("%s: unknown field %r ignored", where, name)


def _parse(data: Any, path: str) -> CacheConfig:
    if not isinstance(data, Mapping):
        raise ConfigError(f"{path}: must be an object")
    try:
        return CacheConfig.model_validate(data)
    except ValidationError as exc:
        lines = [
            f"{path}.{'.'.join(str(p) for p in e['loc'])}".rstrip(".") + f": {e['msg']}" for e in exc.errors()
        ]
        raise ConfigError("invalid configuration:\n  " + "\n  ".join(lines)) from None


def _check_provider(cache: CacheConfig, config: GatewayConfig, path: str) -> None:
    if cache.provider is not None and cache.provider not in config.providers:
        raise ConfigError(
            f"{path}.provider: {cache.provider!r} is not a configured provider (semantic mode embeds "
            "through the gateway's own providers: add it under providers)"
        )
