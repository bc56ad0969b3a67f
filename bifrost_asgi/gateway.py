"""`Gateway`: the long-lived state one mounted app owns — providers, one pooled upstream transport, prices."""

from __future__ import annotations

import asyncio
import importlib
import logging
from collections.abc import Mapping

import httpx
from opentelemetry.trace import TracerProvider

from bifrost_asgi.adapters.principal import OwnerDirectory
from bifrost_asgi.cache.config import cache_config
from bifrost_asgi.cache.runtime import ResponseCache
from bifrost_asgi.config import ConfigError, GatewayConfig, ProviderConfig
from bifrost_asgi.governance.build import build_governance, build_log_writer, seed
from bifrost_asgi.governance.config import GovernanceConfig
from bifrost_asgi.governance.engine import Governance
from bifrost_asgi.observability.content import ContentLog, ContentRedactor
from bifrost_asgi.observability.hooks import BudgetWatch, Hooks
from bifrost_asgi.observability.telemetry import Telemetry
from bifrost_asgi.pricing import PricingTable
from bifrost_asgi.providers.base import Op, Provider, ProviderFactory
from bifrost_asgi.providers.catalog import COMPAT_DEFAULT_BASE_URLS, NATIVE_DEFAULT_BASE_URLS
from bifrost_asgi.providers.mock import MockProvider
from bifrost_asgi.providers.openai import OpenAICompatProvider, OpenAIProvider
from bifrost_asgi.redact import Redactor
from bifrost_asgi.routing import Resolver
from bifrost_asgi.stores.counters import CounterStore
from bifrost_asgi.stores.keys import KeyStore
from bifrost_asgi.stores.logs import LogStore, LogWriter
from bifrost_asgi.tokens.counter import LocalCounter, UpstreamCounter

__all__ = ["Gateway"]

log = logging.getLogger("bifrost_asgi")


class Gateway:
    """Everything that lives as long as the app: opened on lifespan startup, or lazily on first use
    when the host app does not forward lifespan events to mounted apps (Starlette's ``Mount`` does not).
    """

    def __init__(
        self,
        config: GatewayConfig,
        *,
        transport: httpx.AsyncBaseTransport | None = None,
        pricing: PricingTable | None = None,
        owner_directory: OwnerDirectory | None = None,
        key_store: KeyStore | None = None,
        counter_store: CounterStore | None = None,
        log_store: LogStore | None = None,
        provider_factories: Mapping[str, ProviderFactory] | None = None,
        hooks: Hooks | None = None,
        tracer_provider: TracerProvider | None = None,
        redact_content: ContentRedactor | None = None,
    ) -> None:
        self.config = config
        self._factories = dict(provider_factories or {})
        unknown = sorted(set(self._factories) - set(config.providers))
        if unknown:  # a factory needs the provider's config entry: its keys, network_config and models
            raise ConfigError(f"providers: no configuration for the provider(s) given a factory: {unknown}")
        self._transport = transport
        base = pricing or PricingTable.default()
        overrides = config.pricing_overrides
        self.pricing = base.with_overrides(overrides, config.providers) if overrides else base
        self.resolver = Resolver(config.providers, _catalog(config, self.pricing))
        for name in config.providers:  # fail at startup, not on the first request, if a family is missing
            if config.provider_kind(name) in _NATIVE_FACTORIES:
                native_factory(config.provider_kind(name))
        self.providers: dict[str, Provider] = {}
        # What answers a token count for each provider: its own count API or the local tokenizer.
        self.counters: dict[str, Provider] = {}
        self.transport: httpx.AsyncBaseTransport | None = None
        self.owners = owner_directory
        # Every provider credential, scrubbed from anything an upstream says back (redact.py).
        self.redactor = Redactor(
            k.value.get_secret_value() for pc in config.providers.values() for k in pc.keys
        )
        self.owner_cache: dict[str, tuple[float, bool]] = {}
        gov_cfg = config.governance
        if gov_cfg is None and (key_store or counter_store or log_store):
            gov_cfg = GovernanceConfig()  # injected stores mean the adapter wants governance
        self.governance: Governance | None = None
        self.logs: LogWriter | None = None
        if gov_cfg is not None:
            enforce = config.client.enforce_auth_on_inference
            self.governance = build_governance(
                gov_cfg, self.pricing, enforce_auth=enforce, key_store=key_store, counter_store=counter_store
            )
            self.logs = build_log_writer(gov_cfg, log_store)
        self.content: ContentLog | None = None  # prompts and answers in the log, where turned on
        if self.logs is not None and gov_cfg is not None:
            self.logs.retention = _days(config.client.log_retention_days)
            if gov_cfg.logs.content or gov_cfg.logs.content_virtual_keys:
                self.content = ContentLog(gov_cfg.logs, self.redactor, redact_content)
        self.telemetry = Telemetry(config, hooks=hooks, tracer_provider=tracer_provider)
        self._observe_governance(self.telemetry.hooks)
        cache = cache_config(config)
        # The response cache (the semantic_cache plugin); None when it is off, and the journey skips it.
        self.cache: ResponseCache | None = ResponseCache(cache, config) if cache is not None else None
        self.max_body = int(config.client.max_request_body_size_mb * 1024 * 1024)
        answer_mb = config.client.max_upstream_response_size_mb or config.client.max_request_body_size_mb
        self.max_answer = int(answer_mb * 1024 * 1024)
        self.max_event = int(config.client.max_stream_event_size_mb * 1024 * 1024)
        self._lock = asyncio.Lock()

    @property
    def started(self) -> bool:
        return self.transport is not None

    async def start(self) -> None:
        async with self._lock:
            if self.transport is not None:
                return
            if self.governance is not None and self.config.governance is not None:
                await seed(self.governance, self.config.governance)
            transport = _make_transport(self.config, self._transport)
            self.providers = {
                name: _make_provider(name, self.config, pc, transport, self._factories.get(name))
                for name, pc in self.config.providers.items()
            }
            self.counters = {name: _make_counter(self.config, p) for name, p in self.providers.items()}
            if self.cache is not None:
                await self.cache.start()
            self.transport = transport

    def executor(self, provider: str, op: Op) -> Provider:
        """Who carries out ``op`` for ``provider``: the provider itself, or for a token count its
        counter."""
        return self.counters[provider] if op is Op.COUNT_TOKENS else self.providers[provider]

    def _observe_governance(self, hooks: Hooks) -> None:
        """The host's hooks on what governance does: usage records once written, keys created and
        revoked, budgets crossing their alert percentages."""
        if self.logs is not None and hooks.connected("usage_recorded"):
            self.logs.on_written = hooks.emit_records
        if self.governance is not None:
            self.governance.hooks = hooks
            if hooks.connected("budget_threshold_crossed"):
                default = self.config.telemetry.budget_alert_percentages
                self.telemetry.budgets = BudgetWatch(hooks, self.governance.counters, default)

    async def aclose(self) -> None:
        async with self._lock:
            transport, self.transport = self.transport, None
            self.providers = {}
            self.counters = {}
            if transport is not None:
                await transport.aclose()
            if self.logs is not None:
                await self.logs.aclose()  # flush: nothing submitted is lost on shutdown
                await self.logs.store.aclose()
            if self.governance is not None:
                await self.governance.aclose()
            if self.cache is not None:
                await self.cache.aclose()
            if self.telemetry.metrics is not None:
                await self.telemetry.metrics.flush()  # the last figures, for the workers still serving


def _days(days: int | None) -> float | None:
    return None if days is None else days * 86400.0


def _make_transport(
    config: GatewayConfig, transport: httpx.AsyncBaseTransport | None
) -> httpx.AsyncBaseTransport:
    """The one connection pool every provider shares (providers call it directly; see providers/_http)."""
    if transport is not None:
        return transport
    limits = httpx.Limits(
        max_connections=config.max_connections,
        max_keepalive_connections=config.max_connections,
        keepalive_expiry=30.0,
    )
    if config.http_transport == "aiohttp":
        try:
            from httpx_aiohttp import AiohttpTransport
        except ImportError:  # pragma: no cover - depends on the install
            raise RuntimeError(
                "http_transport 'aiohttp' needs: pip install 'bifrost-asgi[aiohttp]'"
            ) from None
        return AiohttpTransport(limits=limits)
    return httpx.AsyncHTTPTransport(limits=limits)


def _make_provider(
    name: str,
    config: GatewayConfig,
    pc: ProviderConfig,
    transport: httpx.AsyncBaseTransport,
    factory: ProviderFactory | None,
) -> Provider:
    kind = config.provider_kind(name)
    base_url = (
        pc.network_config.base_url or NATIVE_DEFAULT_BASE_URLS.get(kind) or COMPAT_DEFAULT_BASE_URLS.get(name)
    )
    if factory is not None:  # a provider of the host's own (docs/extending.md)
        return factory(name, pc, transport, base_url or "")
    if kind == "mock":
        return MockProvider(name, pc)
    if kind == "openai":
        return OpenAIProvider(name, pc, transport, base_url or NATIVE_DEFAULT_BASE_URLS["openai"])
    if kind == "openai-compatible":
        if base_url is None:  # config validation refuses this; kept for direct construction
            raise ConfigError(f"providers.{name}.network_config.base_url: required")
        return OpenAICompatProvider(name, pc, transport, base_url)
    return native_factory(kind)(name, pc, transport, base_url or "")


# Provider families with their own count API, always used for their models (exact by definition).
_NATIVE_COUNTERS = frozenset({"anthropic", "gemini"})
# Providers whose models tiktoken counts exactly (they serve OpenAI's models with OpenAI's tokenizers).
_EXACT_COUNTS = frozenset({"openai", "azure"})


def _make_counter(config: GatewayConfig, provider: Provider) -> Provider:
    name = provider.name
    local = LocalCounter(name, config.count_tokens, exact=name in _EXACT_COUNTS)
    kind = config.provider_kind(name)
    if kind in _NATIVE_COUNTERS or (kind == "openai" and config.count_tokens.openai_mode == "provider"):
        return UpstreamCounter(provider, local if config.count_tokens.estimate_on_upstream_failure else None)
    return local


# Native families live in their own modules, imported only when configured.
_NATIVE_FACTORIES = {
    "anthropic": "bifrost_asgi.providers.anthropic:AnthropicProvider",
    "gemini": "bifrost_asgi.providers.gemini:GeminiProvider",
    "azure": "bifrost_asgi.providers.azure:AzureProvider",
}


def native_factory(kind: str) -> ProviderFactory:
    module, _, attr = _NATIVE_FACTORIES[kind].partition(":")
    try:
        factory: ProviderFactory = getattr(importlib.import_module(module), attr)
    except ImportError:
        raise ConfigError(
            f"provider kind {kind!r} is not supported by this version of bifrost-asgi"
        ) from None
    return factory


def _catalog(config: GatewayConfig, pricing: PricingTable) -> Mapping[str, tuple[str, ...]]:
    """Bare model name -> configured providers serving it: explicit key lists first, then prices."""
    explicit: dict[str, list[str]] = {}
    priced: dict[str, list[str]] = {}
    for name in sorted(config.providers):
        pc = config.providers[name]
        for model in {m for k in pc.keys for m in k.models if m != "*"}:
            explicit.setdefault(model, []).append(name)
        for model in pricing.models(name):
            priced.setdefault(model, []).append(name)
    merged: dict[str, tuple[str, ...]] = {}
    for model in explicit.keys() | priced.keys():
        first = explicit.get(model, [])
        merged[model] = tuple(first + [p for p in priced.get(model, []) if p not in first])
    return merged
