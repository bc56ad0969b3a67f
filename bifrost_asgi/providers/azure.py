"""Azure OpenAI: OpenAI's wire format behind per-resource endpoints and named deployments.

Bodies pass through as for OpenAI; what differs is where they go and how the key travels:

- The endpoint is the key's ``azure_key_config.endpoint`` (``env.VAR`` allowed), else the provider's
  ``network_config.base_url``.
- The model maps to a deployment through ``azure_key_config.deployments`` (the model name itself when it
  is not listed); the deployment is reported as ``extra_fields.model_deployment``.
- Chat and text completions go to ``{endpoint}/openai/deployments/{deployment}/chat/completions`` and
  ``.../completions`` with ``?api-version=`` from ``azure_key_config.api_version``, by default
  ``2024-10-21``, the latest dated GA version of the inference API (Bifrost's default too). Embeddings,
  images and audio go to the deployment's ``/embeddings``, ``/images/generations``, ``/images/edits``,
  ``/audio/speech``, ``/audio/transcriptions`` and ``/audio/translations`` the same way (gpt-image
  models need a newer ``api_version``, such as ``2025-04-01-preview``).
- The Responses API exists on Azure only in the v1 API: ``{endpoint}/openai/v1/responses`` with
  ``?api-version=preview``, exactly as Bifrost calls it (Azure's v1 API takes no dated version); the
  body's ``model`` is the deployment name there, so it is always rewritten to it.
- The key goes in the ``api-key`` header instead of ``Authorization``.

Token counts for Azure are computed locally (they are OpenAI's tokenizers), so no count endpoint is used.
"""

from __future__ import annotations

import dataclasses
import os
from typing import Any
from urllib.parse import quote

import httpx

from bifrost_asgi.config import ConfigError, KeyConfig, ProviderConfig
from bifrost_asgi.errors import configuration_error, unsupported_operation
from bifrost_asgi.providers.base import Call, ChunkStream, Op, Reply
from bifrost_asgi.providers.openai import OpenAIProvider

__all__ = ["DEFAULT_API_VERSION", "AzureProvider"]

DEFAULT_API_VERSION = "2024-10-21"
_RESPONSES_PATH = "/openai/v1/responses?api-version=preview"
_DEPLOYMENT_PATHS = {
    Op.CHAT: "/chat/completions",
    Op.TEXT: "/completions",
    Op.EMBEDDINGS: "/embeddings",
    Op.IMAGE_GENERATION: "/images/generations",
    Op.IMAGE_EDIT: "/images/edits",
    Op.SPEECH: "/audio/speech",
    Op.TRANSCRIPTION: "/audio/transcriptions",
    Op.TRANSLATION: "/audio/translations",
}


class AzureProvider(OpenAIProvider):
    """Azure OpenAI deployments.

    >>> provider = AzureProvider("azure", config, client, base_url="")  # endpoints come from the keys
    """

    def __init__(
        self, name: str, config: ProviderConfig, transport: httpx.AsyncBaseTransport, base_url: str
    ) -> None:
        super().__init__(name, config, transport, base_url)
        self.raw_base = None  # no passthrough prefix speaks Azure's deployment paths
        self._default_endpoint = _endpoint(base_url or None, f"providers.{name}.network_config.base_url")
        self._endpoints = {
            id(k): _endpoint(
                k.azure_key_config.endpoint if k.azure_key_config else None,
                f"providers.{name}.keys[{i}].azure_key_config.endpoint",
            )
            for i, k in enumerate(config.keys)
        }

    @staticmethod
    def _credential(secret: str) -> dict[str, str]:
        return {"api-key": secret}  # Azure authenticates with api-key, not a bearer token

    def models(self) -> list[str]:
        deployed = {
            m for k in self._config.keys if k.azure_key_config for m in k.azure_key_config.deployments
        }
        return sorted(set(super().models()) | deployed)

    async def list_models(self, key: KeyConfig | None, timeout: float) -> list[dict[str, Any]]:
        # The configured deployments are the models this gateway can reach; listing the resource's
        # catalog would show models without a deployment, which cannot be called.
        return [{"id": model} for model in self.models()]

    # -- requests -------------------------------------------------------------------------------

    def _target(self, call: Call, key: KeyConfig | None) -> tuple[str, Call]:
        """The URL for this call and key, and the call as the deployment sees it."""
        azure = key.azure_key_config if key is not None else None
        deployment = azure.deployments.get(call.model, call.model) if azure else call.model
        call.model_deployment = deployment
        version = (azure.api_version if azure else None) or DEFAULT_API_VERSION
        url = self._url(call.op, self._endpoint_for(key), deployment, version)
        # The body names the deployment; it can still go out byte for byte when that is what it says.
        as_sent = dataclasses.replace(
            call, model=deployment, passthrough=call.passthrough and deployment == call.model
        )
        return url, as_sent

    def _endpoint_for(self, key: KeyConfig | None) -> str:
        endpoint = (self._endpoints.get(id(key)) if key is not None else None) or self._default_endpoint
        if endpoint is None:
            raise configuration_error(
                f"provider {self.name}: no endpoint configured; set keys[].azure_key_config.endpoint "
                f"or network_config.base_url"
            )
        return endpoint

    def _url(self, op: Op, endpoint: str, deployment: str, version: str) -> str:
        if op is Op.RESPONSES:
            return endpoint + _RESPONSES_PATH
        path = _DEPLOYMENT_PATHS.get(op)
        if path is None:
            raise unsupported_operation(op.value, self.name)
        return (
            f"{endpoint}/openai/deployments/{quote(deployment, safe='')}{path}?api-version={quote(version)}"
        )

    async def send(self, call: Call, key: KeyConfig | None) -> Reply:
        url, call = self._target(call, key)
        return await self._send(url, call, key)

    async def open_stream(self, call: Call, key: KeyConfig | None) -> ChunkStream:
        url, call = self._target(call, key)
        return await self._stream(url, call, key)


def _endpoint(value: str | None, field: str) -> str | None:
    """An endpoint from config: ``env.VAR`` resolved, trailing slash removed, scheme checked."""
    if not value:
        return None
    if value.startswith("env."):
        resolved = os.environ.get(value[4:])
        if resolved is None:
            raise ConfigError(f"{field}: environment variable {value[4:]} is not set")
        value = resolved
    if not value.startswith(("http://", "https://")):
        raise ConfigError(f"{field}: must start with http:// or https://")
    return value.rstrip("/")
