"""OpenAI's BPE encodings, loaded offline from the files shipped inside the package.

``tiktoken.get_encoding`` downloads its rank files from ``openaipublic.blob.core.windows.net`` and
caches them in a temp dir; a gateway must never do that on a request path (no egress, a cold cache
on every container start, a poisoned cache dir). So we build ``tiktoken.Encoding`` ourselves from
``bifrost_asgi/data/tiktoken/<name>.tiktoken``, after checking the file against ``SHA256SUMS``.
tiktoken's loader, registry and cache dir are never touched.

Each encoding is loaded at most once per process, on first use, under a per-encoding lock, so two
threads asking for the same encoding at once parse the file once and a slow o200k load does not
block a cl100k caller.

>>> enc = get_encoding("o200k_base")
>>> len(enc.encode_ordinary("hello world"))
2
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import importlib.resources
import re
import threading
import weakref
from collections.abc import Sequence
from dataclasses import dataclass
from importlib.resources.abc import Traversable

import tiktoken

__all__ = [
    "ENCODING_NAMES",
    "EncodingRegistry",
    "TokenizerError",
    "encoding_for_model",
    "get_encoding",
    "is_loaded",
    "normalise_model",
    "thread_encoding",
    "token_strings",
]

_ENDOFTEXT = "<|endoftext|>"
_FIM_PREFIX = "<|fim_prefix|>"
_FIM_MIDDLE = "<|fim_middle|>"
_FIM_SUFFIX = "<|fim_suffix|>"
_ENDOFPROMPT = "<|endofprompt|>"

# pat_str and special tokens copied from tiktoken's own tiktoken_ext/openai_public.py (tiktoken 0.14);
# tests/test_tokenizer.py pins them against the installed tiktoken so an upgrade that changes them fails
# loudly instead of silently drifting.
_R50K_PAT = r"""'(?:[sdmt]|ll|ve|re)| ?\p{L}++| ?\p{N}++| ?[^\s\p{L}\p{N}]++|\s++$|\s+(?!\S)|\s"""
_CL100K_PAT = (
    r"""'(?i:[sdmt]|ll|ve|re)|[^\r\n\p{L}\p{N}]?+\p{L}++|\p{N}{1,3}+| ?[^\s\p{L}\p{N}]++[\r\n]*+|\s++$|"""
    r"""\s*[\r\n]|\s+(?!\S)|\s"""
)
_O200K_PAT = "|".join(
    [
        r"""[^\r\n\p{L}\p{N}]?[\p{Lu}\p{Lt}\p{Lm}\p{Lo}\p{M}]*[\p{Ll}\p{Lm}\p{Lo}\p{M}]+(?i:'s|'t|'re|'ve|'m|'ll|'d)?""",
        r"""[^\r\n\p{L}\p{N}]?[\p{Lu}\p{Lt}\p{Lm}\p{Lo}\p{M}]+[\p{Ll}\p{Lm}\p{Lo}\p{M}]*(?i:'s|'t|'re|'ve|'m|'ll|'d)?""",
        r"""\p{N}{1,3}""",
        r""" ?[^\s\p{L}\p{N}]+[\r\n/]*""",
        r"""\s*[\r\n]+""",
        r"""\s+(?!\S)""",
        r"""\s+""",
    ]
)


@dataclass(frozen=True, slots=True)
class _Spec:
    pat_str: str
    special_tokens: dict[str, int]
    explicit_n_vocab: int | None = None


_SPECS: dict[str, _Spec] = {
    "o200k_base": _Spec(_O200K_PAT, {_ENDOFTEXT: 199999, _ENDOFPROMPT: 200018}),
    "cl100k_base": _Spec(
        _CL100K_PAT,
        {
            _ENDOFTEXT: 100257,
            _FIM_PREFIX: 100258,
            _FIM_MIDDLE: 100259,
            _FIM_SUFFIX: 100260,
            _ENDOFPROMPT: 100276,
        },
    ),
    "p50k_base": _Spec(_R50K_PAT, {_ENDOFTEXT: 50256}, explicit_n_vocab=50281),
}

ENCODING_NAMES: tuple[str, ...] = tuple(_SPECS)

_SUMS_FILE = "SHA256SUMS"


class TokenizerError(RuntimeError):
    """An encoding file shipped with the package is missing, corrupt or unparsable.

    This is a broken installation, not a caller fault: the app maps it to a 500 and the message names
    the file and the sha256 it should have.
    """


def _default_data_dir() -> Traversable:
    # One segment per joinpath: namespace-package MultiplexedPath accepts only one on Python 3.11.
    return importlib.resources.files("bifrost_asgi").joinpath("data").joinpath("tiktoken")


def _read(data_dir: Traversable, filename: str) -> bytes:
    try:
        return data_dir.joinpath(filename).read_bytes()
    except OSError as exc:
        raise TokenizerError(f"cannot read tiktoken file {filename} in {data_dir}: {exc}") from exc


def _expected_sha256(data_dir: Traversable, filename: str) -> str:
    sums = _read(data_dir, _SUMS_FILE).decode("ascii", errors="replace")
    for line in sums.splitlines():
        parts = line.split()
        # `sha256sum -b` writes "*name"; accept both forms.
        if len(parts) == 2 and parts[1].lstrip("*") == filename:
            return parts[0].lower()
    raise TokenizerError(f"{_SUMS_FILE} in {data_dir} has no entry for {filename}")


def _read_verified(data_dir: Traversable, filename: str) -> bytes:
    expected = _expected_sha256(data_dir, filename)
    try:
        data = data_dir.joinpath(filename).read_bytes()
    except OSError as exc:
        raise TokenizerError(
            f"tiktoken file {filename} is missing from {data_dir} (expected sha256 {expected}): {exc}"
        ) from exc
    actual = hashlib.sha256(data).hexdigest()
    if actual != expected:
        raise TokenizerError(
            f"tiktoken file {filename} in {data_dir} is corrupt: sha256 {actual}, expected {expected}"
        )
    return data


def _parse_ranks(data: bytes, filename: str) -> dict[bytes, int]:
    """Parse the ``<base64 token> <rank>`` lines of a .tiktoken file (tiktoken's own format)."""
    try:
        return {
            base64.b64decode(tok): int(rank) for tok, rank in (ln.split() for ln in data.splitlines() if ln)
        }
    except (ValueError, binascii.Error) as exc:
        raise TokenizerError(f"tiktoken file {filename} is malformed: {exc}") from exc


def _build(name: str, data_dir: Traversable) -> tiktoken.Encoding:
    filename = f"{name}.tiktoken"
    ranks = _parse_ranks(_read_verified(data_dir, filename), filename)
    enc = _from_ranks(name, ranks)
    _TWIN_SOURCES[enc] = (name, ranks)
    return enc


def _from_ranks(name: str, ranks: dict[bytes, int]) -> tiktoken.Encoding:
    spec = _SPECS[name]
    return tiktoken.Encoding(
        name,
        pat_str=spec.pat_str,
        mergeable_ranks=ranks,
        special_tokens=dict(spec.special_tokens),
        explicit_n_vocab=spec.explicit_n_vocab,
    )


# -- one encoder per worker thread ----------------------------------------------------------------------
# tiktoken's compiled pattern keeps its matcher caches in a pool whose fast path belongs to the first
# thread that used it; every other thread takes a locked path on each match. Measured (o200k_base,
# 170 KB of text): 6.4-6.8 ms per encode in a second thread against 5.2-5.8 ms in the owner, and 5.4-5.6 ms
# in that second thread with an encoder of its own. So the threads that encode large inputs each build
# a twin once, from the same ranks (~0.13 s, ~40 MB for o200k_base), and the shared encoding stays with
# the event loop's thread, which encodes the small inputs inline.
_TWIN_SOURCES: weakref.WeakKeyDictionary[tiktoken.Encoding, tuple[str, dict[bytes, int]]] = (
    weakref.WeakKeyDictionary()
)
_THREAD_STATE = threading.local()


def thread_encoding(enc: tiktoken.Encoding) -> tiktoken.Encoding:
    """This thread's own twin of a shipped encoding (same ranks and pattern, its own matcher state).

    Token ids, counts and strings are identical to ``enc``'s; ``token_strings`` still takes ``enc``, so
    the twins share one string cache. An encoding this module did not build is returned as it is.
    """
    source = _TWIN_SOURCES.get(enc)
    if source is None:
        return enc
    twins: weakref.WeakKeyDictionary[tiktoken.Encoding, tiktoken.Encoding] | None = getattr(
        _THREAD_STATE, "twins", None
    )
    if twins is None:
        twins = _THREAD_STATE.twins = weakref.WeakKeyDictionary()
    twin = twins.get(enc)
    if twin is None:
        twin = twins[enc] = _from_ranks(*source)
    return twin


class EncodingRegistry:
    """Loads each shipped encoding once, lazily and thread-safely, from ``data_dir``.

    ``data_dir`` defaults to the package's ``data/tiktoken``; tests inject a copy to prove a corrupt
    file is refused.

    >>> EncodingRegistry().get("cl100k_base").name
    'cl100k_base'
    """

    def __init__(self, data_dir: Traversable | None = None) -> None:
        self._data_dir = data_dir
        self._encodings: dict[str, tiktoken.Encoding] = {}
        # One lock per encoding: loading o200k (~0.5 s) must not stall a first cl100k caller.
        self._locks = {name: threading.Lock() for name in _SPECS}

    def get(self, name: str) -> tiktoken.Encoding:
        enc = self._encodings.get(name)
        if enc is not None:
            return enc
        lock = self._locks.get(name)
        if lock is None:
            raise TokenizerError(f"unknown encoding {name!r}; shipped: {', '.join(_SPECS)}")
        with lock:
            enc = self._encodings.get(name)
            if enc is None:
                enc = _build(name, self._data_dir or _default_data_dir())
                self._encodings[name] = enc
            return enc

    def is_loaded(self, name: str) -> bool:
        return name in self._encodings

    def clear(self) -> None:
        """Forget loaded encodings (tests only; a running app never needs to reload)."""
        self._encodings.clear()


_REGISTRY = EncodingRegistry()


def get_encoding(name: str) -> tiktoken.Encoding:
    """The shipped encoding ``name``, loaded and hash-checked on first use."""
    return _REGISTRY.get(name)


def is_loaded(name: str) -> bool:
    """Whether ``get_encoding(name)`` would return without loading (and so without blocking)."""
    return _REGISTRY.is_loaded(name)


# Per-encoding token id -> text, filled on demand. Keyed weakly by the Encoding object so a registry built
# from another data dir never shares strings with the default one. Bounded by the vocabulary size and in
# practice far smaller; a full table up front would cost ~15 MB and ~75 ms for o200k_base.
_STRINGS: weakref.WeakKeyDictionary[tiktoken.Encoding, dict[int, str]] = weakref.WeakKeyDictionary()


def token_strings(enc: tiktoken.Encoding, tokens: Sequence[int]) -> list[str]:
    """Each token's bytes as text, in order.

    A token can be a partial UTF-8 sequence (one byte of a multi-byte character, common for CJK and emoji);
    such bytes decode with ``errors="replace"``, so that token's string contains U+FFFD. Joining the
    strings is therefore not always the original text; ``enc.decode(tokens)`` is.
    """
    cache = _STRINGS.get(enc)
    if cache is None:
        cache = _STRINGS.setdefault(enc, {})
    try:
        return list(map(cache.__getitem__, tokens))
    except KeyError:
        _fill_strings(enc, cache, tokens)
        return list(map(cache.__getitem__, tokens))


def _fill_strings(enc: tiktoken.Encoding, cache: dict[int, str], tokens: Sequence[int]) -> None:
    # Racing threads may both fill an entry; the values are identical, so the race is harmless.
    decode = enc.decode_single_token_bytes
    for tok in tokens:
        if tok not in cache:
            cache[tok] = decode(tok).decode("utf-8", errors="replace")


# --- model -> encoding -------------------------------------------------------------------------------
# Mirrors tiktoken/model.py (OpenAI's own table) for the encodings we ship. Order matters: the first
# matching prefix wins, so "gpt-4o" and "gpt-4.1" precede "gpt-4".
_EXACT_PREFIXES: tuple[tuple[str, str], ...] = (
    ("gpt-4o", "o200k_base"),
    ("chatgpt-4o", "o200k_base"),
    ("gpt-4.1", "o200k_base"),
    ("gpt-4.5", "o200k_base"),
    ("gpt-5", "o200k_base"),
    # gpt-oss uses o200k_harmony: o200k_base's ranks and pat_str plus extra special tokens. We only ever
    # encode ordinary text, so the counts are identical.
    ("gpt-oss", "o200k_base"),
    ("gpt-4", "cl100k_base"),
    ("gpt-3.5", "cl100k_base"),
    ("gpt-35", "cl100k_base"),  # Azure deployment spelling
    ("text-embedding-3", "cl100k_base"),
    ("text-embedding-ada-002", "cl100k_base"),
    # tiktoken maps the 2023 base models davinci-002 / babbage-002 to cl100k_base, not p50k_base.
    ("davinci-002", "cl100k_base"),
    ("babbage-002", "cl100k_base"),
    ("text-davinci-002", "p50k_base"),
    ("text-davinci-003", "p50k_base"),
    ("code-davinci", "p50k_base"),
    ("code-cushman", "p50k_base"),
    ("davinci-codex", "p50k_base"),
    ("cushman-codex", "p50k_base"),
    # The edit models use p50k_edit: p50k_base plus FIM special tokens, same ordinary-text counts.
    ("text-davinci-edit", "p50k_base"),
    ("code-davinci-edit", "p50k_base"),
)
_O_SERIES = re.compile(r"o\d+(?:-|$)")
# GPT-3 era models use r50k_base, which we do not ship; p50k_base has the same pat_str and the same
# first 50257 ranks (it only adds 24 whitespace-run tokens), so it is the closest estimate.
_R50K_MODELS = re.compile(
    r"text-(?:davinci|curie|babbage|ada)-001|text-similarity-|text-search-|code-search-"
    r"|(?:davinci|curie|babbage|ada)(?:$|-)"
)
_FALLBACK = "o200k_base"


def normalise_model(model: str) -> str:
    """Lower-case, drop a ``provider/`` prefix and a fine-tune wrapper ``ft:<base>:<org>::<id>``."""
    name = model.strip().lower().rsplit("/", 1)[-1]
    if name.startswith("ft:"):
        name = name[3:].split(":", 1)[0]
    return name


def encoding_for_model(model: str) -> tuple[str, bool]:
    """``(encoding name, exact)`` for an OpenAI model; any other model gets ``("o200k_base", False)``.

    Date suffixes need no stripping: matching is by prefix, as in tiktoken.

    >>> encoding_for_model("openai/gpt-4o-2024-08-06")
    ('o200k_base', True)
    >>> encoding_for_model("claude-3-5-sonnet")
    ('o200k_base', False)
    """
    name = normalise_model(model)
    for prefix, encoding in _EXACT_PREFIXES:
        if name.startswith(prefix):
            return encoding, True
    if _O_SERIES.match(name):
        return "o200k_base", True
    if _R50K_MODELS.match(name):
        return "p50k_base", False
    return _FALLBACK, False
