"""`GatewayConfig`: one typed configuration, loadable from Bifrost's ``config.json`` shape.

Unknown fields are ignored with a warning naming them (Bifrost configs carry many sections we do not
implement yet); invalid values are a :class:`ConfigError` naming the field, raised at startup.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Literal

import orjson
from pydantic import BaseModel, ConfigDict, Field, SecretStr, ValidationError, field_validator

from bifrost_asgi.governance.config import GovernanceConfig, SeedError, resolve_env_secrets
from bifrost_asgi.providers.catalog import COMPAT_DEFAULT_BASE_URLS, HOSTED, KNOWN_PROVIDERS, NATIVE_KINDS

__all__ = ["ConfigError", "GatewayConfig", "GovernanceConfig", "KeyConfig", "NetworkConfig", "ProviderConfig"]

log = logging.getLogger("bifrost_asgi.config")

ProviderKind = Literal["openai", "openai-compatible", "mock", "anthropic", "gemini", "azure"]


class ConfigError(ValueError):
    """The configuration is invalid; the message names the field."""


class _Section(BaseModel):
    # "allow" so that unknown fields survive validation and can be reported by name, then ignored.
    model_config = ConfigDict(extra="allow", frozen=True)


def _resolve_env(value: str, field: str) -> str:
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
    enforce_auth_on_inference: bool = False
    max_request_body_size_mb: float = Field(default=100.0, gt=0)
    drop_excess_requests: bool = False
    # Ours: what one upstream may send back. A larger answer (default: the request body limit), or one
    # stream event larger than the event limit, is a 502 instead of gigabytes held in memory.
    max_upstream_response_size_mb: float | None = Field(default=None, gt=0)
    max_stream_event_size_mb: float = Field(default=4.0, gt=0)


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

    @classmethod
    def from_dict(cls, data: Mapping[str, Any], *, source: str = "config") -> GatewayConfig:
        try:
            config = cls.model_validate(_resolve_secrets(data))
        except ValidationError as exc:
            raise ConfigError(_describe(exc, source)) from None
        except SeedError as exc:
            raise ConfigError(str(exc)) from None
        _warn_unknown(config, source)
        _check_providers(config)
        return config

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
        key["value"] = _resolve_env(key["value"], f"{field}.value")
    return key


def _describe(exc: ValidationError, source: str) -> str:
    lines = [f"invalid configuration in {source}:"]
    for err in exc.errors():
        loc = ".".join(str(p) for p in err["loc"])
        # Never echo the input: it may be a secret.
        lines.append(f"  {loc}: {err['msg']}")
    return "\n".join(lines)


def _warn_unknown(model: BaseModel, path: str) -> None:
    for name in model.model_extra or {}:
        log.warning("%s: unknown field %r ignored", path, name)
    for field_name in type(model).model_fields:
        child = getattr(model, field_name)
        children: list[tuple[str, Any]] = []
        if isinstance(child, BaseModel):
            children = [(f"{path}.{field_name}", child)]
        elif isinstance(child, dict):
            children = [(f"{path}.{field_name}.{k}", v) for k, v in child.items()]
        elif isinstance(child, tuple):
            children = [(f"{path}.{field_name}[{i}]", v) for i, v in enumerate(child)]
        for child_path, value in children:
            if isinstance(value, BaseModel):
                _warn_unknown(value, child_path)


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
