"""Model prices and the cost of one request (Bifrost's ``computeTextCost``, spec §7).

The packaged catalog (``data/model_prices.json``) is LiteLLM's price table filtered to our providers; its
keys are model names, some prefixed with a provider (``azure/gpt-4o``), and ``litellm_provider`` speaks
LiteLLM's provider vocabulary. At load time every entry is indexed under ``(bifrost_provider, model)`` so that
the common lookup is one dict get; the fallbacks (dated names, Gemini <-> Vertex, ``provider/`` prefixes) only
run on a miss.

Example::

    table = PricingTable.default()
    table.cost("openai", "gpt-4o", Usage(input_tokens=1000, output_tokens=200))
    # {'input_tokens_cost': 0.0025, 'output_tokens_cost': 0.002, ..., 'total_cost': 0.0045}
"""

from __future__ import annotations

import functools
import logging
import re
from collections.abc import Collection, Iterator, Mapping
from dataclasses import dataclass
from importlib import resources
from types import MappingProxyType
from typing import Any, Final

import orjson

from bifrost_asgi.providers.catalog import KNOWN_PROVIDERS

__all__ = [
    "Media",
    "PricingTable",
    "Usage",
    "usage_from_chat",
    "usage_from_images",
    "usage_from_responses",
    "usage_from_speech",
    "usage_from_transcription",
]

log = logging.getLogger("bifrost_asgi.pricing")

Entry = Mapping[str, Any]
_Slot = tuple[str, str]

# From /work/shared/pricing/README.md: when LiteLLM's catalog was captured for the packaged file.
CATALOG_CAPTURED: Final = "2026-11-22"

# An override adding a model without naming a provider prices that model for every provider.
_ANY_PROVIDER: Final = "*"

# LiteLLM's provider names (in `litellm_provider` and key prefixes) -> Bifrost's. Names not listed are already
# Bifrost's; `together` is no standard Bifrost provider but is what a custom provider would be called.
_PROVIDER_ALIASES: Final[Mapping[str, str]] = MappingProxyType(
    {
        "text-completion-openai": "openai",
        "vertex_ai-language-models": "vertex",
        "vertex_ai": "vertex",
        "fireworks_ai": "fireworks",
        "together_ai": "together",
        "cohere_chat": "cohere",
    }
)
_CATALOG_PROVIDERS: Final = frozenset(KNOWN_PROVIDERS | set(_PROVIDER_ALIASES) | {"together"})

# Gemini's and Vertex's Gemini models share names and prices; either may be missing from the catalog.
_SIBLINGS: Final[Mapping[str, str]] = MappingProxyType({"gemini": "vertex", "vertex": "gemini"})

# A trailing release date: -2024-07-18, -20250929, @20250929 (Vertex), -08-2024, -0914 (MMDD), -2507 (YYMM).
# The four-digit form is limited to plausible MMDD / YYMM values so that sizes such as -4096 are left alone.
_DATE_SUFFIX: Final = re.compile(r"[-@](?:\d{4}-\d{2}-\d{2}|\d{8}|\d{2}-\d{4}|[01]\d[0-3]\d|2\d[01]\d)$")

# Long-context tiers, highest first. Providers define them on the prompt size, so the tier is chosen by input
# tokens (Bifrost uses total_tokens; for a prompt under the threshold that can only differ by the completion).
_TIERS: Final = (
    (272_000, "_above_272k_tokens"),
    (200_000, "_above_200k_tokens"),
    (128_000, "_above_128k_tokens"),
    (100_000, "_above_100k_tokens"),
)
_SERVICE_TIERS: Final[Mapping[str, str]] = MappingProxyType({"priority": "_priority", "flex": "_flex"})
_ROUND_DIGITS: Final = 12
# Unknown models are logged once each; the bound keeps a stream of made-up names from growing memory forever.
_MAX_REPORTED_MISSES: Final = 4096


@dataclass(frozen=True, slots=True)
class Media:
    """What a media request is priced by besides tokens (Bifrost's computeSpeechCost,
    computeTranscriptionCost and computeImageCost, over LiteLLM's price fields).

    ``kind`` is "speech", "transcription" or "image". ``characters``: the text a speech request speaks
    (``input_cost_per_character``). ``seconds``: the audio transcribed (``input_cost_per_second``) or
    spoken (``output_cost_per_second``). ``audio_tokens`` / ``image_tokens``: the audio's or the input
    images' share of ``Usage.input_tokens``. ``images``: images produced, of ``size`` ("1024x1024") and
    ``quality``, priced per image or per pixel when no token usage is reported.
    """

    kind: str
    characters: int = 0
    seconds: float = 0.0
    audio_tokens: int = 0
    image_tokens: int = 0
    images: int = 0
    size: str = ""
    quality: str = ""


@dataclass(frozen=True, slots=True)
class Usage:
    """Token counts of one request, provider-neutral; ``media`` for speech, transcription and images.

    Example: ``Usage(input_tokens=1200, output_tokens=300, cached_read_tokens=1000)``.
    """

    input_tokens: int = 0  # prompt tokens INCLUDING cached read/write tokens
    output_tokens: int = 0  # completion tokens INCLUDING reasoning tokens
    cached_read_tokens: int = 0
    cached_write_tokens: int = 0
    reasoning_tokens: int = 0
    num_search_queries: int = 0
    total_tokens: int = 0  # 0 means input+output
    media: Media | None = None

    @property
    def total(self) -> int:
        """``total_tokens`` when the provider reported it, else input + output."""
        return self.total_tokens or self.input_tokens + self.output_tokens


# --- usage parsing ------------------------------------------------------------------------------------------


def _count(value: object) -> int:
    # Usage comes from upstream JSON: anything but a non-negative number counts as 0 rather than failing a
    # request the provider already answered.
    if isinstance(value, bool) or not isinstance(value, int | float):
        return 0
    return max(int(value), 0)


def _seconds(value: object) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return 0.0
    return max(float(value), 0.0)


def _details(usage: Mapping[str, Any], key: str) -> Mapping[str, Any]:
    value = usage.get(key)
    return value if isinstance(value, Mapping) else {}


def _cached_read(details: Mapping[str, Any]) -> int:
    # OpenAI says `cached_tokens`; Bifrost's own usage says `cached_read_tokens`.
    value = details.get("cached_read_tokens")
    return _count(details.get("cached_tokens") if value is None else value)


def _cached_write(details: Mapping[str, Any]) -> int:
    # Bifrost's name, or the one OpenAI's SDK models carry (`cache_write_tokens`).
    return _count(details.get("cached_write_tokens", details.get("cache_write_tokens")))


def usage_from_responses(usage: Mapping[str, Any] | None) -> Usage | None:
    """Read a Responses API ``usage`` object; None when there is none."""
    if not isinstance(usage, Mapping):
        return None
    inputs = _details(usage, "input_tokens_details")
    outputs = _details(usage, "output_tokens_details")
    return Usage(
        input_tokens=_count(usage.get("input_tokens")),
        output_tokens=_count(usage.get("output_tokens")),
        cached_read_tokens=_cached_read(inputs),
        cached_write_tokens=_cached_write(inputs),
        reasoning_tokens=_count(outputs.get("reasoning_tokens")),
        total_tokens=_count(usage.get("total_tokens")),
    )


def usage_from_chat(usage: Mapping[str, Any] | None) -> Usage | None:
    """Read a chat or text completion ``usage`` object; None when there is none."""
    if not isinstance(usage, Mapping):
        return None
    prompt = _details(usage, "prompt_tokens_details")
    completion = _details(usage, "completion_tokens_details")
    return Usage(
        input_tokens=_count(usage.get("prompt_tokens")),
        output_tokens=_count(usage.get("completion_tokens")),
        cached_read_tokens=_cached_read(prompt),
        cached_write_tokens=_cached_write(prompt),
        reasoning_tokens=_count(completion.get("reasoning_tokens")),
        num_search_queries=_count(completion.get("num_search_queries")),
        total_tokens=_count(usage.get("total_tokens")),
    )


def usage_from_images(usage: Mapping[str, Any] | None) -> Usage | None:
    """OpenAI's image ``usage``: input (text and image) and output (image) tokens."""
    if not isinstance(usage, Mapping):
        return None
    inputs = _details(usage, "input_tokens_details")
    return _media_tokens(usage, Media("image", image_tokens=_count(inputs.get("image_tokens"))))


def usage_from_speech(usage: Mapping[str, Any] | None) -> Usage | None:
    """The ``usage`` of a streamed speech answer (``speech.audio.done``): text in, audio tokens out."""
    if not isinstance(usage, Mapping):
        return None
    return _media_tokens(usage, Media("speech"))


def usage_from_transcription(usage: Mapping[str, Any] | None) -> Usage | None:
    """A transcription's ``usage``: ``{"type": "tokens", ...}`` (audio and text input tokens, text
    output) or ``{"type": "duration", "seconds": N}``."""
    if not isinstance(usage, Mapping):
        return None
    details = _details(usage, "input_token_details")
    audio_tokens = _count(details.get("audio_tokens"))
    return _media_tokens(
        usage, Media("transcription", seconds=_seconds(usage.get("seconds")), audio_tokens=audio_tokens)
    )


def _media_tokens(usage: Mapping[str, Any], media: Media) -> Usage:
    """The token counts media answers report (``input_tokens``, ``output_tokens``), with ``media``."""
    return Usage(
        input_tokens=_count(usage.get("input_tokens")),
        output_tokens=_count(usage.get("output_tokens")),
        total_tokens=_count(usage.get("total_tokens")),
        media=media,
    )


# --- indexing -----------------------------------------------------------------------------------------------


def _canonical_provider(name: str) -> str:
    return _PROVIDER_ALIASES.get(name, name)


def _slot(key: str, entry: Entry) -> _Slot:
    """Where a catalog key lives: ``("azure", "gpt-4o")`` for ``azure/gpt-4o`` (a prefix is a provider
    when the catalog knows it, or when the entry declares it as its own ``litellm_provider``)."""
    declared = entry.get("litellm_provider")
    provider = _canonical_provider(declared) if isinstance(declared, str) and declared else None
    prefix, sep, rest = key.partition("/")
    if sep and (prefix in _CATALOG_PROVIDERS or prefix == declared):
        prefixed = _canonical_provider(prefix)
        # A prefix naming another provider is part of the model id (a host serving "openai/gpt-oss-20b").
        if provider is None or provider == prefixed:
            return prefixed, rest
    return provider or _ANY_PROVIDER, key


def _strip_date(model: str) -> str:
    return _DATE_SUFFIX.sub("", model)


def _build_index(entries: Mapping[str, Entry]) -> tuple[dict[_Slot, Entry], dict[_Slot, str]]:
    """Index entries by slot, then let undated names find a dated entry when no undated one exists."""
    index: dict[_Slot, Entry] = {}
    keys: dict[_Slot, str] = {}
    # Prefixed keys first: when "deepseek-chat" and "deepseek/deepseek-chat" collide, the explicit one wins.
    for key in sorted(entries, key=lambda k: "/" not in k):
        slot = _slot(key, entries[key])
        if slot not in index:
            index[slot] = entries[key]
            keys[slot] = key
    aliases: dict[_Slot, str] = {}
    for provider, model in keys:
        undated = (provider, _strip_date(model))
        # max(): several dated releases share an undated name, and the newest is the one that name points at.
        if undated[1] != model and undated not in index:
            aliases[undated] = max(aliases.get(undated, model), model)
    for slot, model in aliases.items():
        index[slot] = index[(slot[0], model)]
    return index, keys


def _freeze(entries: Mapping[str, Mapping[str, Any]]) -> dict[str, Entry]:
    # Entries are shared between the default table and every table derived from it; read-only views keep one
    # caller's mutation from changing prices for all.
    return {key: MappingProxyType(dict(value)) for key, value in entries.items()}


@functools.cache
def _default_table() -> PricingTable:
    raw = resources.files("bifrost_asgi").joinpath("data/model_prices.json").read_bytes()
    return PricingTable(orjson.loads(raw), captured=CATALOG_CAPTURED)


# --- rates --------------------------------------------------------------------------------------------------


def _number(entry: Entry, field: str) -> float | None:
    value = entry.get(field)
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    return float(value)


@functools.cache
def _rate_fields(bases: tuple[str, ...], tiers: tuple[str, ...], service: str) -> tuple[str, ...]:
    """Field names to try for one rate, best first: for each base in order, its service tier variants (the
    highest long-context tier first), then its standard ones. Cached: only a few dozen combinations exist."""
    services = (service, "") if service else ("",)
    return tuple(f"{base}{tier}{suffix}" for base in bases for suffix in services for tier in (*tiers, ""))


def _rate(entry: Entry, bases: tuple[str, ...], tiers: tuple[str, ...], service: str) -> float:
    """The first priced field among `bases`' variants; 0 when the entry prices none of them."""
    for field in _rate_fields(bases, tiers, service):
        value = entry.get(field)
        if isinstance(value, int | float) and not isinstance(value, bool):
            return float(value)
    return 0.0


def _tiers(input_tokens: int) -> tuple[str, ...]:
    if input_tokens <= _TIERS[-1][0]:  # most prompts: below every long-context tier
        return ()
    return tuple(suffix for threshold, suffix in _TIERS if input_tokens > threshold)


def _search_rate(entry: Entry) -> float:
    value = entry.get("search_context_cost_per_query")
    if isinstance(value, Mapping):
        # Priced by context size, which usage does not report: take the middle one.
        value = value.get("search_context_size_medium")
    if isinstance(value, bool) or not isinstance(value, int | float):
        return 0.0
    return float(value)


@dataclass(frozen=True, slots=True)
class _Rates:
    input: float
    cache_read: float
    cache_write: float
    output: float
    reasoning: float
    request: float  # a flat price per request (0 when none)


# (id(entry), tiers, service) -> (entry, rates): a request prices the same few entries over and over (twice
# when governed: the estimate at admission, the usage at the end). The entry is kept and compared by
# identity, so a reused id can never match.
_RATES_CACHE: dict[tuple[int, tuple[str, ...], str], tuple[Entry, _Rates]] = {}


def _rates(entry: Entry, input_tokens: int, service_tier: str | None) -> _Rates:
    tiers = _tiers(input_tokens)
    service = _SERVICE_TIERS.get(service_tier or "", "")
    key = (id(entry), tiers, service)
    cached = _RATES_CACHE.get(key)
    if cached is not None and cached[0] is entry:
        return cached[1]
    rates = _find_rates(entry, tiers, service)
    if len(_RATES_CACHE) >= _MAX_REPORTED_MISSES:
        _RATES_CACHE.clear()
    _RATES_CACHE[key] = (entry, rates)
    return rates


def _find_rates(entry: Entry, tiers: tuple[str, ...], service: str) -> _Rates:
    inputs = ("input_cost_per_token",)
    outputs = ("output_cost_per_token",)
    return _Rates(
        input=_rate(entry, inputs, tiers, service),
        # DeepSeek names its cache-hit price `input_cost_per_token_cache_hit`; without any, a cached token is
        # billed as a normal input token (the provider did not discount it).
        cache_read=_rate(
            entry, ("cache_read_input_token_cost", "input_cost_per_token_cache_hit", *inputs), tiers, service
        ),
        cache_write=_rate(entry, ("cache_creation_input_token_cost", *inputs), tiers, service),
        output=_rate(entry, outputs, tiers, service),
        reasoning=_rate(entry, ("output_cost_per_reasoning_token", *outputs), tiers, service),
        request=_number(entry, "input_cost_per_request") or 0.0,
    )


def _compute(entry: Entry, usage: Usage, service_tier: str | None) -> dict[str, float]:
    if usage.media is not None:
        return _compute_media(entry, usage, usage.media)
    prompt = max(usage.input_tokens, 0)
    cached_read = min(max(usage.cached_read_tokens, 0), prompt)
    cached_write = min(max(usage.cached_write_tokens, 0), prompt - cached_read)
    completion = max(usage.output_tokens, 0)
    reasoning = min(max(usage.reasoning_tokens, 0), completion)
    rates = _rates(entry, prompt, service_tier)
    parts = {
        "input_tokens_cost": (prompt - cached_read - cached_write) * rates.input
        + cached_read * rates.cache_read
        + cached_write * rates.cache_write,
        "output_tokens_cost": (completion - reasoning) * rates.output,
        "reasoning_tokens_cost": reasoning * rates.reasoning,
        "request_cost": rates.request,
    }
    search = max(usage.num_search_queries, 0) * _search_rate(entry)
    if search > 0:
        parts["search_queries_cost"] = search
    parts["total_cost"] = sum(parts.values())
    return {name: round(value, _ROUND_DIGITS) for name, value in parts.items()}


def _first_rate(entry: Entry, *fields: str) -> float:
    """The first of ``fields`` the entry prices (0 when none): the specific rate, then the general one."""
    return _rate(entry, fields, (), "")


def _compute_media(entry: Entry, usage: Usage, media: Media) -> dict[str, float]:
    """Speech, transcription and image costs: tokens when the provider reported them, else the request's
    own units (characters, seconds, images), each only where the entry has a price for it."""
    if media.kind == "speech":
        inputs, outputs = _speech_cost(entry, usage, media)
    elif media.kind == "transcription":
        inputs, outputs = _transcription_cost(entry, usage, media)
    else:
        inputs, outputs = _image_cost(entry, usage, media)
    parts = {
        "input_tokens_cost": inputs,
        "output_tokens_cost": outputs,
        "reasoning_tokens_cost": 0.0,
        "request_cost": _number(entry, "input_cost_per_request") or 0.0,
    }
    parts["total_cost"] = sum(parts.values())
    return {name: round(value, _ROUND_DIGITS) for name, value in parts.items()}


def _speech_cost(entry: Entry, usage: Usage, media: Media) -> tuple[float, float]:
    per_char = _number(entry, "input_cost_per_character")
    if media.characters and per_char is not None:
        inputs = media.characters * per_char
    else:
        inputs = usage.input_tokens * _first_rate(entry, "input_cost_per_token")
    if usage.output_tokens:
        outputs = usage.output_tokens * _first_rate(
            entry, "output_cost_per_audio_token", "output_cost_per_token"
        )
    else:
        outputs = media.seconds * _first_rate(entry, "output_cost_per_second")
    return inputs, outputs


def _transcription_cost(entry: Entry, usage: Usage, media: Media) -> tuple[float, float]:
    audio = min(media.audio_tokens, usage.input_tokens)
    text = usage.input_tokens - audio
    if usage.input_tokens:
        audio_rate = _first_rate(entry, "input_cost_per_audio_token", "input_cost_per_token")
        inputs = audio * audio_rate + text * _first_rate(entry, "input_cost_per_token")
    else:
        inputs = media.seconds * _first_rate(
            entry, "input_cost_per_audio_per_second", "input_cost_per_second"
        )
    return inputs, usage.output_tokens * _first_rate(entry, "output_cost_per_token")


def _image_cost(entry: Entry, usage: Usage, media: Media) -> tuple[float, float]:
    if usage.output_tokens:  # token usage reported (gpt-image): every output token is an image token
        images = min(media.image_tokens, usage.input_tokens)
        image_rate = _first_rate(entry, "input_cost_per_image_token", "input_cost_per_token")
        inputs = (usage.input_tokens - images) * _first_rate(
            entry, "input_cost_per_token"
        ) + images * image_rate
        outputs = usage.output_tokens * _first_rate(
            entry, "output_cost_per_image_token", "output_cost_per_token"
        )
        return inputs, outputs
    # LiteLLM's image entries price each produced image, per image or per pixel of its size.
    pixels = _pixels(media.size)
    per_pixel = _first_rate(entry, "output_cost_per_pixel", "input_cost_per_pixel")
    each = _first_rate(entry, "output_cost_per_image", "input_cost_per_image") or pixels * per_pixel
    return usage.input_tokens * _first_rate(entry, "input_cost_per_token"), media.images * each


def _pixels(size: str) -> int:
    width, sep, height = size.partition("x")
    if not sep or not width.isdigit() or not height.isdigit():
        return 0
    return int(width) * int(height)


def _image_keys(model: str, media: Media) -> Iterator[str]:
    """Catalog names of the per-size (and per-quality) entries of an image model, best first:
    ``hd/1024-x-1024/dall-e-3``, ``1024-x-1024/gpt-image-1.5``."""
    if not _pixels(media.size):  # no size, or not WxH: no catalog entry is named by it
        return
    size = media.size.replace("x", "-x-")
    yield f"{media.quality or 'standard'}/{size}/{model}"
    yield f"{size}/{model}"


# --- the table ----------------------------------------------------------------------------------------------


class PricingTable:
    """Per-model prices, indexed by Bifrost provider and model name.

    Example::

        table = PricingTable.default().with_overrides({"gpt-4o": {"input_cost_per_token": 2e-6}})
        table.lookup("openai", "gpt-4o-2024-08-06")["input_cost_per_token"]  # the catalog's dated entry
        table.cost("openai", "gpt-4o", Usage(input_tokens=10, output_tokens=5))
    """

    __slots__ = ("_entries", "_estimates", "_index", "_keys", "_reported", "_resolved", "captured")

    def __init__(self, entries: Mapping[str, Mapping[str, Any]], *, captured: str) -> None:
        self._entries = _freeze(entries)
        self._index, self._keys = _build_index(self._entries)
        self._reported: set[_Slot] = set()
        self._resolved: dict[_Slot, Entry | None] = {}
        # Admission estimates' rates by (provider, model, long-context tiers); None: the model has no price.
        self._estimates: dict[tuple[str, str, tuple[str, ...]], tuple[_Rates | None]] = {}
        self.captured = captured

    @classmethod
    def default(cls) -> PricingTable:
        """The packaged catalog, parsed once per process."""
        return _default_table()

    def with_overrides(
        self, overrides: Mapping[str, Mapping[str, Any]], providers: Collection[str] = ()
    ) -> PricingTable:
        """A new table where each override replaces or extends the fields of the entry it names.

        Keys are like the catalog's (``"gpt-4o"``, ``"azure/gpt-4o"``); ``"openai/gpt-4o"`` also finds the
        catalog's ``"gpt-4o"``, and ``"<name>/<model>"`` prices a model of a configured provider named in
        ``providers`` (a custom one, say). A key matching nothing adds a model; without a provider prefix
        or ``litellm_provider`` it is priced for every provider.
        """
        merged = dict(self._entries)
        for key, fields in overrides.items():
            if not isinstance(fields, Mapping):
                raise TypeError(
                    f"pricing override {key!r} must be a mapping of fields, got {type(fields).__name__}"
                )
            prefix = key.partition("/")[0]
            if prefix in providers and prefix not in _CATALOG_PROVIDERS:
                # A model of the deployment's own provider (a `litellm_provider` in the override still wins).
                fields = {"litellm_provider": prefix, **fields}
            slot = _slot(key, self._entries.get(key, fields))
            # The key that owns the slot, so "openai/gpt-4o" amends the catalog's "gpt-4o"; a new name starts
            # from the entry its undated form resolves to, so a partial override still has every other price.
            target = self._keys.get(slot, key)
            merged[target] = {**merged.get(target, self._index.get(slot, {})), **fields}
        return PricingTable(merged, captured=self.captured)

    def models(self, provider: str) -> list[str]:
        """Catalog model names priced for ``provider``: the model catalog for resolving bare names."""
        canonical = _canonical_provider(provider)
        return sorted(m for p, m in self._keys if p == canonical)

    def lookup(self, provider: str, model: str) -> Entry | None:
        """The price entry for `model` served by `provider`, or None.

        Order: exact; date suffix stripped (and an undated name finds its newest dated entry); the
        Gemini/Vertex sibling; the model without a ``provider/`` prefix, under this provider, then under the
        prefix's provider; overrides priced for any provider. Entries are mode-agnostic, so a Responses call
        finds chat prices.
        """
        entry = self._index.get((provider, model))
        if entry is not None:
            return entry
        # The fallback walk is a dozen dict probes; remember its answer (hit or miss) per name, since
        # the same few models are asked for on every request.
        slot = (provider, model)
        if slot in self._resolved:
            return self._resolved[slot]
        found = self._fallback(_canonical_provider(provider), model)
        if len(self._resolved) >= _MAX_REPORTED_MISSES:
            self._resolved.clear()
        self._resolved[slot] = found
        return found

    def _fallback(self, provider: str, model: str) -> Entry | None:
        for slot in _candidates(provider, model):
            entry = self._index.get(slot)
            if entry is not None:
                return entry
        return None

    def cost(
        self, provider: str, model: str, usage: Usage, *, service_tier: str | None = None
    ) -> dict[str, float] | None:
        """Dollar cost of one request, or None (logged at DEBUG once) when the model has no price."""
        entry = self._sized(provider, model, usage.media) if usage.media is not None else None
        entry = entry or self.lookup(provider, model)
        if entry is None:
            self._report_missing(provider, model)
            return None
        return _compute(entry, usage, service_tier)

    def estimate(self, provider: str, model: str, input_tokens: int, output_tokens: int) -> float:
        """An admission's cost estimate in dollars (0 without a price): the same rates as `cost`, without
        the breakdown, since only the total is reserved."""
        # Every governed request asks this: the rates are kept per model and long-context tier (a table
        # never changes; an override makes a new one), not looked up and worked out again each time.
        slot = (provider, model, _tiers(input_tokens))
        cached = self._estimates.get(slot)
        if cached is None:
            entry = self.lookup(provider, model)
            cached = (_rates(entry, input_tokens, None) if entry is not None else None,)
            if len(self._estimates) >= _MAX_REPORTED_MISSES:
                self._estimates.clear()
            self._estimates[slot] = cached
        rates = cached[0]
        if rates is None:
            return 0.0
        return input_tokens * rates.input + output_tokens * rates.output + rates.request

    def _sized(self, provider: str, model: str, media: Media) -> Entry | None:
        """An image model's entry for the produced size and quality, when the catalog has one."""
        if media.kind != "image" or not media.images:
            return None
        for key in _image_keys(model, media):
            entry = self.lookup(provider, key)
            if entry is not None:
                return entry
        return None

    def _report_missing(self, provider: str, model: str) -> None:
        slot = (provider, model)
        if slot in self._reported:
            return
        if len(self._reported) >= _MAX_REPORTED_MISSES:
            self._reported.clear()
        self._reported.add(slot)
        log.debug("no price for provider=%s model=%s; cost not computed", provider, model)


def _model_candidates(model: str) -> Iterator[str]:
    yield model
    undated = _strip_date(model)
    if undated != model:
        yield undated


def _candidates(provider: str, model: str) -> Iterator[_Slot]:
    """Slots to try after an exact miss, in the order documented on :meth:`PricingTable.lookup`."""
    providers = (provider, _SIBLINGS[provider]) if provider in _SIBLINGS else (provider,)
    prefix, sep, rest = model.partition("/")
    models = (model, rest) if sep else (model,)
    for name in models:
        for owner in providers:
            for candidate in _model_candidates(name):
                yield owner, candidate
    if sep and prefix in _CATALOG_PROVIDERS:
        # OpenRouter-style "anthropic/claude-..." under another provider: the named provider's price is the
        # best estimate there is, and better for budgets than no cost at all.
        for candidate in _model_candidates(rest):
            yield _canonical_provider(prefix), candidate
    for candidate in _model_candidates(model):
        yield _ANY_PROVIDER, candidate
