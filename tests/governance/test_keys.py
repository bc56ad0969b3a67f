"""Virtual key values: the shape a generated key has, the lookup prefix kept in clear, and the hash check."""

from __future__ import annotations

import re

from bifrost_asgi.governance.keys import VK_PREFIX, generate_key, hash_key, key_lookup_prefix, verify_key

# SHA-256 test vectors (FIPS 180-2): the stored hash is the plain hex digest of the whole value.
SHA256_ABC = "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
SHA256_EMPTY = "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"


def test_a_generated_key_is_the_prefix_and_43_url_safe_characters() -> None:
    key = generate_key()
    assert VK_PREFIX == "sk-bf-"
    assert re.fullmatch(r"sk-bf-[A-Za-z0-9_-]{43}", key.value), key.value
    assert key.prefix == key.value[6:14]
    assert key.hashed == hash_key(key.value) and re.fullmatch(r"[0-9a-f]{64}", key.hashed)


def test_generated_keys_differ() -> None:
    values = {generate_key().value for _ in range(50)}
    assert len(values) == 50


def test_the_hash_is_sha256_of_the_value() -> None:
    assert hash_key("abc") == SHA256_ABC
    assert hash_key("") == SHA256_EMPTY
    assert hash_key("é") == "4a99557e4033c3539de2eb65472017cad5f9557f7a0625a09f1c3f6e2ba69c4c"  # UTF-8 bytes


def test_the_lookup_prefix_is_eight_characters_after_sk_bf() -> None:
    assert key_lookup_prefix("sk-bf-ABCDEFGHIJKLMNOP") == "ABCDEFGH"
    assert key_lookup_prefix("legacy-value-123") == "legacy-v"  # a value without the prefix: its start
    assert key_lookup_prefix("sk-bf-abc") == "abc"
    assert key_lookup_prefix("sk-bf") == "sk-bf"


def test_verify_key_accepts_only_the_value_that_was_hashed() -> None:
    key = generate_key()
    assert verify_key(key.value, key.hashed)
    assert not verify_key(key.value + "x", key.hashed)
    assert not verify_key(key.value, hash_key("sk-bf-other"))
    assert verify_key("abc", SHA256_ABC)
