"""`GatewayConfig`: one typed configuration, loadable from Bifrost's ``config.json`` shape.

Unknown fields are ignored with a warning naming them (Bifrost configs carry many sections we do not
implement yet), except in the sections that decide who may call and spend (``client``, ``governance``,
``governance.auth_config``) and for top-level near-misses of them (``"clinet"``): there a typo would
silently leave the gateway open, so it is a :class:`ConfigError` naming the field, as are invalid values.
"""

from __future__ import annotations

import difflib
import logging
import os
import re
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any, Literal
from urllib.parse import urlsplit

import orjson
from pydantic import BaseModel, Field, SecretStr, ValidationError, field_validator, model_validator

from bifrost_asgi.governance.config import ConfigSection, GovernanceConfig, SeedError, resolve_env_secrets
from bifrost_asgi.providers.catalog import COMPAT_DEFAULT_BASE_URLS, HOSTED, KNOWN_PROVIDERS, NATIVE_KINDS

__all__ = ["ConfigError", "GatewayConfig", "GovernanceConfig", "KeyConfig", "NetworkConfig", "ProviderConfig"]

log = logging.getLogger("bifrost_asgi.config")

ProviderKind = Literal["openai", "openai-compatible", "mock", "anthropic", "gemini", "azure"]


class ConfigError(ValueError):
    """The configuration is invalid; the message names the field."""


_Section = ConfigSection
_LABEL_NAME = re.compile(r"[a-zA-Z_][a-zA-Z0-9_]*")


def resolve_env(value: str, field: str) -> str:
    """Bifrost's ``env.VAR`` indirection: the value is read from the environment at load time."""
    if not value.startswith("env."):
        return value
    var = value[4:]
    resolved = os.environ.get(var)
    if resolved is None:
        raise ConfigError(f"{field}: environment variable {var} is not set")
    return resolved


class AzureKeyConfig(_Section):
    """Bifrost's ``keys[].azure_key_config``: where the deployments live and which model maps to which."""

    endpoint: str | None = None
    deployments: dict[str, str] = Field(default_factory=dict)
    api_version: str | None = None


class KeyConfig(_Section):
    """One provider credential. ``models`` empty means the key serves every model."""

    name: str = ""
    value: SecretStr = SecretStr("")
    models: tuple[str, ...] = ()
    weight: float = Field(default=1.0, gt=0)
    azure_key_config: AzureKeyConfig | None = None

    def serves(self, model: str) -> bool:
        return not self.models or model in self.models or "*" in self.models


class NetworkConfig(_Section):
    base_url: str | None = None
    default_request_timeout_in_seconds: float = Field(default=30.0, gt=0)
    max_retries: int = Field(default=0, ge=0, le=20)
    retry_backoff_initial: int = Field(default=500, ge=0)  # ms, as Bifrost
    retry_backoff_max: int = Field(default=5000, ge=0)  # ms
    extra_headers: dict[str, str] = Field(default_factory=dict)

    @field_validator("base_url")
    @classmethod
    def _strip_slash(cls, v: str | None) -> str | None:
        if v is None:
            return None
        if not v.startswith(("http://", "https://")):
            raise ValueError("must start with http:// or https://")
        return v.rstrip("/")


class CustomProviderConfig(_Section):
    base_provider_type: str = "openai"


class ProviderConfig(_Section):
    keys: tuple[KeyConfig, ...] = ()
    network_config: NetworkConfig = NetworkConfig()
    send_back_raw_request: bool = False
    send_back_raw_response: bool = False
    # Ours, not Bifrost's: the implementation family. Inferred from the provider's name when omitted;
    # Bifrost's `custom_provider_config.base_provider_type: "openai"` is accepted for custom names.
    kind: ProviderKind | None = None
    custom_provider_config: CustomProviderConfig | None = None


class ClientConfig(_Section):
    strict = True
    # Bifrost's client options we do not implement; ignoring any of them never lets more callers in
    # (direct keys, CORS origins and whitelisted routes stay refused). Its `required_headers` is not here:
    # ignored, it would admit requests Bifrost refuses, so it is an error.
    bifrost_only = frozenset(
        {
            "initial_pool_size", "enable_logging", "disable_content_logging",
            "retain_content_in_object_storage", "allow_per_request_content_storage_override",
            "allow_per_request_raw_override", "allow_direct_keys", "disable_db_pings_in_health",
            "dual_credential_conflict_behavior", "allowed_origins", "allowed_headers",
            "compat", "enable_litellm_fallbacks", "mcp_agent_depth", "mcp_tool_execution_timeout",
            "mcp_code_mode_binding_level", "mcp_tool_sync_interval", "mcp_disable_auto_tool_inject",
            "mcp_enable_temp_token_auth", "mcp_external_client_url", "mcp_server_auth_mode",
            "oauth2_server_config", "header_filter_config", "async_job_result_ttl", "logging_headers",
            "whitelisted_routes", "hide_deleted_virtual_keys_in_filters", "routing_chain_max_depth",
            "dump_errors_in_console_logs", "webhook_config",
        }
    )  # fmt: skip

    enforce_auth_on_inference: bool = False
    # Bifrost's deprecated spellings of enforce_auth_on_inference: either one turns enforcement on.
    enforce_governance_header: bool = False
    enforce_scim_auth: bool = False
    max_request_body_size_mb: float = Field(default=100.0, gt=0)
    drop_excess_requests: bool = False
    # Ours: what one upstream may send back. A larger answer (default: the request body limit), or one
    # stream event larger than the event limit, is a 502 instead of gigabytes held in memory.
    max_upstream_response_size_mb: float | None = Field(default=None, gt=0)
    max_stream_event_size_mb: float = Field(default=4.0, gt=0)
    # Bifrost's: the custom labels every metric carries, valued per request by x-bf-dim-<label> (or the
    # older x-bf-prom-<label>) headers (docs/observability.md: cardinality is bounded).
    prometheus_labels: tuple[str, ...] = ()
    # Bifrost's: usage log rows (and any content stored with them) older than this are deleted.
    log_retention_days: int | None = Field(default=None, gt=0)

    @field_validator("prometheus_labels")
    @classmethod
    def _label_names(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        bad = [name for name in value if not _LABEL_NAME.fullmatch(name)]
        if bad:
            raise ValueError(f"not valid Prometheus label names: {bad}")
        return tuple(dict.fromkeys(value))  # a repeated name would make every metric invalid

    @model_validator(mode="before")
    @classmethod
    def _deprecated_enforcement(cls, data: Any) -> Any:
        if isinstance(data, Mapping) and any(
            data.get(alias) is True for alias in ("enforce_governance_header", "enforce_scim_auth")
        ):
            return {**data, "enforce_auth_on_inference": True}
        return data


class CountTokensConfig(_Section):
    """Ours: how ``/v1/responses/input_tokens`` counts.

    ``openai_mode`` "local" counts OpenAI models with tiktoken in-process (exact, offline, no upstream
    round trip); "provider" forwards to the upstream's own endpoint. ``return_tokens`` fills ``tokens``
    and ``token_strings`` by default; a request can turn it off with ``"return_tokens": false``.
    """

    openai_mode: Literal["local", "provider"] = "local"
    return_tokens: bool = True
    # When a provider's own count API (anthropic, gemini) cannot be reached: answer with a flagged local
    # estimate (true) or with the upstream error (false, the default: an estimate is never silent).
    estimate_on_upstream_failure: bool = False


class TelemetryConfig(_Section):
    """Ours: Prometheus metrics, OpenTelemetry spans and budget alerts (docs/observability.md)."""

    # GET /metrics and the counters behind it (on by default, as Bifrost's telemetry plugin).
    metrics: bool = True
    # Where each worker process leaves its figures for the others to add up; default: the
    # PROMETHEUS_MULTIPROC_DIR environment variable. Unset: one process, nothing written.
    metrics_dir: str | None = None
    # How often a worker writes its figures there: another worker's /metrics is at most this far behind.
    metrics_flush_seconds: float = Field(default=1.0, gt=0)
    # Distinct values kept per custom label (per process); later values are reported as "_other".
    max_label_values: int = Field(default=100, gt=0)
    # Spans for every request when the host (or `bifrost-asgi serve --otlp`) configured an OTel SDK.
    tracing: bool = True
    # The percentages of a budget at which budget_threshold_crossed fires (a budget may set its own).
    budget_alert_percentages: tuple[float, ...] = (50.0, 80.0, 100.0)

    @field_validator("budget_alert_percentages")
    @classmethod
    def _percentages(cls, value: tuple[float, ...]) -> tuple[float, ...]:
        if any(p <= 0 for p in value):
            raise ValueError("percentages must be above 0")
        return tuple(sorted(set(value)))


class GatewayConfig(_Section):
    """The gateway's whole configuration.

    >>> keys = [{"value": "env.OPENAI_API_KEY"}]
    >>> config = GatewayConfig.from_dict({"providers": {"openai": {"keys": keys}}})
    >>> app = create_app(config)
    """

    providers: dict[str, ProviderConfig] = Field(default_factory=dict)
    client: ClientConfig = ClientConfig()
    # Ours: per-model price overrides keyed like the catalog ("gpt-4o" or "provider/model").
    pricing_overrides: dict[str, dict[str, Any]] = Field(default_factory=dict)
    # Ours: the upstream HTTP stack. "aiohttp" (httpx's API over aiohttp's connection pool) measured
    # 2.4-3.5x the throughput of httpx's own pool at c=16 (BENCHMARKS.md); "httpx" stays supported.
    http_transport: Literal["httpx", "aiohttp"] = "aiohttp"
    count_tokens: CountTokensConfig = CountTokensConfig()
    # Virtual keys, budgets, rate limits and usage logs (Bifrost's `governance` section). Absent: no
    # keys, no limits, no logs, and the hot path skips governance entirely.
    governance: GovernanceConfig | None = None
    max_connections: int = Field(default=1000, gt=0)
    telemetry: TelemetryConfig = TelemetryConfig()
    # Bifrost's plugin entries; ``semantic_cache`` is the one we run (bifrost_asgi/cache/config.py parses
    # it). Others are kept and ignored.
    plugins: list[dict[str, Any]] = Field(default_factory=list)
    # Bifrost's vector store entry: where semantic-cache vectors live (None: the gateway's SQLite file).
    vector_store: dict[str, Any] | None = None

    @classmethod
    def from_dict(cls, data: Mapping[str, Any], *, source: str = "config") -> GatewayConfig:
        try:
            config = cls.model_validate(_resolve_secrets(data))
        except ValidationError as exc:
            raise ConfigError(_describe(exc, source)) from None
        except SeedError as exc:
            raise ConfigError(str(exc)) from None
        _check_unknown(config, source)
        _check_providers(config)
        # Imported here: the cache's config module builds on this one.
        from bifrost_asgi.cache.config import cache_config

        cache_config(config, warn=True)  # a bad semantic_cache entry stops the load, naming the field
        _warn_plugins(config, source)
        return _without_version_suffixes(config)

    @classmethod
    def from_file(cls, path: str | os.PathLike[str]) -> GatewayConfig:
        p = Path(path)
        try:
            data = orjson.loads(p.read_bytes())
        except OSError as exc:
            raise ConfigError(f"cannot read {p}: {exc.strerror}") from None
        except orjson.JSONDecodeError as exc:
            raise ConfigError(f"{p} is not valid JSON: {exc}") from None
        if not isinstance(data, dict):
            raise ConfigError(f"{p}: the top level must be a JSON object")
        return cls.from_dict(data, source=str(p))

    def provider_kind(self, name: str) -> ProviderKind:
        pc = self.providers[name]
        if pc.kind is not None:
            return pc.kind
        if name in NATIVE_KINDS:
            return NATIVE_KINDS[name]
        return "openai-compatible"


def _resolve_secrets(data: Mapping[str, Any]) -> dict[str, Any]:
    """Resolve ``env.VAR`` in key values before validation so errors name the config field."""
    out = dict(data)
    if isinstance(out.get("governance"), Mapping):
        out["governance"] = resolve_env_secrets(dict(out["governance"]))
    providers = out.get("providers")
    if not isinstance(providers, Mapping):
        return out
    resolved: dict[str, Any] = {}
    for name, pc in providers.items():
        if isinstance(pc, Mapping) and isinstance(pc.get("keys"), list):
            pc = dict(pc)
            pc["keys"] = [_resolve_key(k, f"providers.{name}.keys[{i}]") for i, k in enumerate(pc["keys"])]
        resolved[name] = pc
    out["providers"] = resolved
    return out


def _resolve_key(key: Any, field: str) -> Any:
    if isinstance(key, Mapping) and isinstance(key.get("value"), str):
        key = dict(key)
        key["value"] = resolve_env(key["value"], f"{field}.value")
    return key


def _describe(exc: ValidationError, source: str) -> str:
    lines = [f"invalid configuration in {source}:"]
    for err in exc.errors():
        loc = ".".join(str(p) for p in err["loc"])
        # Never echo the input: it may be a secret.
        lines.append(f"  {loc}: {err['msg']}")
    return "\n".join(lines)


# Top-level fields that are near-misses of a security-relevant section, or that section under another
# name or in the wrong place, are errors; other unknown top-level fields (Bifrost's "plugins", "mcp",
# "config_store", ...) only warn.
_GUARDED_TOP_LEVEL = {
    "client": "client",
    "client_config": "client",  # the name Bifrost's HTTP API uses for the same section
    "governance": "governance",
    "governance_config": "governance",
    "auth_config": "governance.auth_config",
}


def _check_unknown(config: GatewayConfig, source: str) -> None:
    """Warn about every unknown field by name; raise `ConfigError` for those in strict sections."""
    errors = [error for name in config.model_extra or {} if (error := _top_level_error(name))]
    for path, section in _sections(config, ""):
        errors.extend(_section_errors(section, path, source))
    if errors:
        raise ConfigError(f"invalid configuration in {source}:\n" + "\n".join(f"  {e}" for e in errors))
    for name in config.model_extra or {}:
        log.warning("%s: unknown field %r ignored", source, name)


def _warn_plugins(config: GatewayConfig, source: str) -> None:
    for index, entry in enumerate(config.plugins):
        if entry.get("name") != "semantic_cache":
            log.warning(
                "%s: plugins[%d]: plugin %r is not run by bifrost-asgi, ignored",
                source,
                index,
                entry.get("name"),
            )


def _top_level_error(name: str) -> str | None:
    # "client" and "governance" themselves are fields, never extras: any match here is a miss.
    meant = _GUARDED_TOP_LEVEL.get(name.lower())
    if meant is None:
        close = difflib.get_close_matches(name.lower(), ["client", "governance"], n=1, cutoff=0.75)
        meant = close[0] if close else None
    return None if meant is None else f"{name}: unknown top-level field (did you mean {meant!r}?)"


def _sections(model: BaseModel, path: str) -> Iterator[tuple[str, BaseModel]]:
    """Every section below ``model`` (itself excluded), with its dotted path."""
    for field_name in type(model).model_fields:
        child = getattr(model, field_name)
        children: list[tuple[str, Any]] = []
        if isinstance(child, BaseModel):
            children = [(f"{path}{field_name}", child)]
        elif isinstance(child, dict):
            children = [(f"{path}{field_name}.{k}", v) for k, v in child.items()]
        elif isinstance(child, (tuple, list)):
            children = [(f"{path}{field_name}[{i}]", v) for i, v in enumerate(child)]
        for child_path, value in children:
            if isinstance(value, BaseModel):
                yield child_path, value
                yield from _sections(value, child_path + ".")


def _section_errors(section: BaseModel, path: str, source: str) -> list[str]:
    if not isinstance(section, ConfigSection):
        return []  # a section declared extra="forbid" (jwt_auth): pydantic already refused unknown fields
    kind = type(section)
    errors = []
    for name in section.model_extra or {}:
        if name in kind.bifrost_only:
            log.warning(
                "%s: %s.%s is Bifrost's; bifrost-asgi does not implement it: ignored", source, path, name
            )
        elif kind.strict:
            close = difflib.get_close_matches(name, list(kind.model_fields), n=1, cutoff=0.6)
            hint = f" (did you mean {close[0]!r}?)" if close else ""
            errors.append(f"{path}.{name}: unknown field{hint}; unknown fields in {path} stop startup")
        else:
            log.warning("%s.%s: unknown field %r ignored", source, path, name)
    return errors


# What a base URL copied from a provider's own docs ends with, and our paths already start with.
_VERSION_SUFFIXES: dict[str, tuple[str, ...]] = {
    "openai": ("/v1",),
    "openai-compatible": ("/v1",),
    "anthropic": ("/v1",),
    "gemini": ("/v1beta", "/v1"),
    "azure": ("/openai/v1", "/openai"),
}


def _without_version_suffixes(config: GatewayConfig) -> GatewayConfig:
    """``base_url: "https://api.openai.com/v1"`` (as OpenAI's docs write it) would make every call a
    bare 404 for ``/v1/v1/...``; Bifrost wants it without, and users keep copying it with: strip it, and
    say so."""
    providers = dict(config.providers)
    for name, pc in config.providers.items():
        url = pc.network_config.base_url
        if url is None or not _kind_is_declared(name, pc):
            continue
        stripped = _strip_version(url, _VERSION_SUFFIXES.get(config.provider_kind(name), ()))
        if stripped == url:
            continue
        # The URL itself is not logged: it may carry credentials (https://user:pass@host/v1).
        log.warning(
            "providers.%s.network_config.base_url ends with %r, which bifrost-asgi adds to every path "
            "itself: using the URL without it",
            name,
            url[len(stripped) :],
        )
        network = pc.network_config.model_copy(update={"base_url": stripped})
        providers[name] = pc.model_copy(update={"network_config": network})
    return config.model_copy(update={"providers": providers})


def _kind_is_declared(name: str, pc: ProviderConfig) -> bool:
    """Whether we know which API the provider speaks. An undeclared custom name may be served by the
    host's own provider (``create_app(providers=...)``), whose paths under its base URL are its own."""
    declared = pc.kind is not None or pc.custom_provider_config is not None
    return declared or name in NATIVE_KINDS or name in COMPAT_DEFAULT_BASE_URLS


def _strip_version(url: str, suffixes: tuple[str, ...]) -> str:
    path = urlsplit(url).path
    for suffix in suffixes:
        if path.endswith(suffix) and url.endswith(suffix):  # no query or fragment after it
            return url[: -len(suffix)]
    return url


def _check_providers(config: GatewayConfig) -> None:
    for name, pc in config.providers.items():
        field = f"providers.{name}"
        if pc.custom_provider_config is not None and pc.custom_provider_config.base_provider_type != "openai":
            raise ConfigError(
                f"{field}.custom_provider_config.base_provider_type: only 'openai' is supported "
                f"(got {pc.custom_provider_config.base_provider_type!r})"
            )
        kind = config.provider_kind(name)
        if name in KNOWN_PROVIDERS and name not in NATIVE_KINDS and name not in COMPAT_DEFAULT_BASE_URLS:
            raise ConfigError(f"{field}: provider {name!r} is not supported by bifrost-asgi yet")
        if "/" in name:
            raise ConfigError(f"{field}: provider names cannot contain '/'")
        if (
            kind == "openai-compatible"
            and pc.network_config.base_url is None
            and COMPAT_DEFAULT_BASE_URLS.get(name) is None
        ):
            raise ConfigError(f"{field}.network_config.base_url: required for provider {name!r}")
        # Local servers (ollama, vllm, custom) commonly run without credentials; hosted ones never do.
        if name in HOSTED and not pc.keys:
            raise ConfigError(f"{field}.keys: at least one key is required")
