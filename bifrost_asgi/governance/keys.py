"""Virtual key values: generated once, shown once, stored as a lookup prefix plus a hash.

A value is ``sk-bf-`` followed by 43 URL-safe characters (32 random bytes). Because the secret has 256 bits
of entropy, a single SHA-256 is as strong as a slow KDF here (nothing to brute-force), and keeps the
per-request check to microseconds. Comparison is constant-time.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from dataclasses import dataclass

__all__ = ["VK_PREFIX", "GeneratedKey", "generate_key", "hash_key", "key_lookup_prefix", "verify_key"]

VK_PREFIX = "sk-bf-"
_LOOKUP_CHARS = 8  # characters after "sk-bf-" kept in clear to find the row; not enough to guess the rest


@dataclass(frozen=True, slots=True)
class GeneratedKey:
    value: str  # the plaintext: returned to the creator once, never stored
    prefix: str
    hashed: str


def generate_key() -> GeneratedKey:
    value = VK_PREFIX + secrets.token_urlsafe(32)
    return GeneratedKey(value, key_lookup_prefix(value), hash_key(value))


def key_lookup_prefix(value: str) -> str:
    body = value[len(VK_PREFIX) :] if value.startswith(VK_PREFIX) else value
    return body[:_LOOKUP_CHARS]


def hash_key(value: str) -> str:
    return hashlib.sha256(value.encode()).hexdigest()


def verify_key(value: str, hashed: str) -> bool:
    return hmac.compare_digest(hash_key(value), hashed)
