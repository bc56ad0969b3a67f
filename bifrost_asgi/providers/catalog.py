"""Static facts about provider names: which prefixes are providers, and where the compatible ones live."""

from __future__ import annotations

from typing import Final, Literal

# Bifrost's StandardProviders (spec §1.3) plus our offline `mock`. A model string is split on its first
# "/" only when the prefix is in this set (or is a custom provider configured by name).
KNOWN_PROVIDERS: Final = frozenset(
    {
        "openai", "azure", "anthropic", "bedrock", "bedrock_mantle", "cohere", "vertex", "mistral",
        "ollama", "opencode-go", "opencode-zen", "groq", "sgl", "parasail", "perplexity", "cerebras",
        "deepseek", "gemini", "openrouter", "elevenlabs", "huggingface", "nebius", "xai", "replicate",
        "vllm", "runway", "runware", "fireworks", "sarvam", "wafer", "github-copilot", "databricks",
        "typesafe", "mock",
    }
)  # fmt: skip

NativeKind = Literal["openai", "mock", "anthropic", "gemini", "azure"]
# Providers with their own implementation (everything else known is OpenAI-compatible or unsupported).
NATIVE_KINDS: Final[dict[str, NativeKind]] = {
    "openai": "openai",
    "mock": "mock",
    "anthropic": "anthropic",
    "gemini": "gemini",
    "azure": "azure",
}
NATIVE_DEFAULT_BASE_URLS: Final[dict[str, str]] = {
    "openai": "https://api.openai.com",
    "anthropic": "https://api.anthropic.com",
    "gemini": "https://generativelanguage.googleapis.com",
}

# The OpenAI-compatible family: default base URLs *without* the /v1 suffix, as Bifrost's
# network_config.base_url. None means the deployment must configure it (self-hosted servers).
COMPAT_DEFAULT_BASE_URLS: Final[dict[str, str | None]] = {
    "vllm": None,
    "sgl": None,
    "ollama": "http://localhost:11434",
    "groq": "https://api.groq.com/openai",
    "mistral": "https://api.mistral.ai",
    "openrouter": "https://openrouter.ai/api",
    "xai": "https://api.x.ai",
    "fireworks": "https://api.fireworks.ai/inference",
    "cerebras": "https://api.cerebras.ai",
    "deepseek": "https://api.deepseek.com",
    "perplexity": "https://api.perplexity.ai",
    "nebius": "https://api.studio.nebius.com",
    "parasail": "https://api.parasail.io",
    "huggingface": "https://router.huggingface.co",
}

# Hosted services reject anonymous calls, so a key is required at startup for them.
HOSTED: Final = frozenset(
    {"openai"} | {n for n, url in COMPAT_DEFAULT_BASE_URLS.items() if url and "localhost" not in url}
)
