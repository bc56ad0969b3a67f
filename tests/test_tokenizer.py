"""The shipped encodings: identical to tiktoken's own, hash-checked, loaded once, never from the network."""

from __future__ import annotations

import concurrent.futures
import hashlib
import os
import shutil
import socket
import subprocess
import sys
import textwrap
import threading
import time
from collections.abc import Callable
from functools import cache
from pathlib import Path
from typing import Any, NoReturn

import pytest
import tiktoken
import tiktoken.load
import tiktoken_ext.openai_public as openai_public  # type: ignore[import-untyped]  # no py.typed

from bifrost_asgi.tokens import encodings as _tokenizer
from bifrost_asgi.tokens.encodings import (
    ENCODING_NAMES,
    EncodingRegistry,
    TokenizerError,
    encoding_for_model,
    get_encoding,
    thread_encoding,
    token_strings,
)

DATA_DIR = Path(_tokenizer.__file__).parent.parent / "data" / "tiktoken"


def _constructor_spec(name: str, load: Callable[..., dict[bytes, int]]) -> dict[str, Any]:
    """tiktoken's own constructor dict for ``name``, with its rank-file loader replaced by ``load``."""
    original = openai_public.load_tiktoken_bpe
    openai_public.load_tiktoken_bpe = load
    try:
        spec: dict[str, Any] = openai_public.ENCODING_CONSTRUCTORS[name]()
    finally:
        openai_public.load_tiktoken_bpe = original
    return spec


def _local_bpe(url: str, expected_hash: str | None = None) -> dict[bytes, int]:
    """tiktoken's own loader, pointed at the packaged file of the encoding the URL names."""
    path = DATA_DIR / url.rsplit("/", 1)[-1]
    previous = os.environ.get("TIKTOKEN_CACHE_DIR")
    os.environ["TIKTOKEN_CACHE_DIR"] = ""  # "" disables tiktoken's cache: nothing written anywhere
    try:
        return tiktoken.load.load_tiktoken_bpe(str(path), expected_hash=expected_hash)
    finally:
        if previous is None:
            del os.environ["TIKTOKEN_CACHE_DIR"]
        else:
            os.environ["TIKTOKEN_CACHE_DIR"] = previous


@cache
def reference_encoding(name: str) -> tiktoken.Encoding:
    """The encoding exactly as ``tiktoken.get_encoding`` builds it (its constructor, its loader, its
    expected hash), minus the download: the ground truth the shipped loader is compared with."""
    return tiktoken.Encoding(**_constructor_spec(name, _local_bpe))


SAMPLES = [
    "",
    "hello world",
    "tiktoken is great!",
    "antidisestablishmentarianism",
    "2 + 2 = 4",
    "お誕生日おめでとう",
    "Grüße aus München — naïve café 😀🚀👩‍👩‍👧‍👦",
    "def f(x):\n\treturn x ** 2  # squares\r\n\n\n   ",
    "<|endoftext|> and <|fim_prefix|> are ordinary text here",
    "\u200b\u00a0 mixed\u3000whitespace \U0001f600" * 3,
]


# --- identical to tiktoken's own encodings ---------------------------------------------------------------


@pytest.mark.parametrize("name", ENCODING_NAMES)
def test_pat_str_and_special_tokens_match_installed_tiktoken(name: str) -> None:
    theirs = _constructor_spec(name, lambda *args, **kwargs: {})
    ours = _tokenizer._SPECS[name]
    assert ours.pat_str == theirs["pat_str"]
    assert ours.special_tokens == theirs["special_tokens"]
    assert ours.explicit_n_vocab == theirs.get("explicit_n_vocab")


@pytest.mark.parametrize("name", ENCODING_NAMES)
def test_shipped_encoding_equals_tiktokens(name: str) -> None:
    ours = _tokenizer.get_encoding(name)
    ref = reference_encoding(name)
    assert ours.name == name
    assert ours.n_vocab == ref.n_vocab
    assert ours._mergeable_ranks == ref._mergeable_ranks
    for text in SAMPLES:
        assert ours.encode_ordinary(text) == ref.encode_ordinary(text), text


def test_known_token_ids_from_the_cookbook() -> None:
    # openai-cookbook "How to count tokens with tiktoken", section 3 and 5.
    assert _tokenizer.get_encoding("cl100k_base").encode_ordinary("tiktoken is great!") == [
        83,
        1609,
        5963,
        374,
        2294,
        0,
    ]
    assert _tokenizer.get_encoding("p50k_base").encode_ordinary("antidisestablishmentarianism") == [
        415,
        29207,
        44390,
        3699,
        1042,
    ]


def test_sha256sums_match_the_shipped_files() -> None:
    for line in (DATA_DIR / "SHA256SUMS").read_text().splitlines():
        digest, filename = line.split()
        assert hashlib.sha256((DATA_DIR / filename).read_bytes()).hexdigest() == digest


# --- token strings ---------------------------------------------------------------------------------------


def test_token_strings_replace_partial_utf8_sequences() -> None:
    enc = _tokenizer.get_encoding("cl100k_base")
    text = "お誕生日おめでとう"
    tokens = enc.encode_ordinary(text)
    # The cookbook's own example: 誕 is split across two tokens (b"\xe8\xaa", b"\x95").
    assert tokens == [33334, 45918, 243, 21990, 9080, 33334, 62004, 16556, 78699]
    strings = token_strings(enc, tokens)
    assert strings == ["お", "\ufffd", "\ufffd", "生", "日", "お", "め", "で", "とう"]
    assert enc.decode(tokens) == text  # decoding the ids, not joining the strings, is lossless


@pytest.mark.parametrize("name", ENCODING_NAMES)
def test_token_strings_are_each_tokens_bytes_decoded_with_replacement(name: str) -> None:
    enc = _tokenizer.get_encoding(name)
    tokens = enc.encode_ordinary("".join(SAMPLES))
    expected = [enc.decode_single_token_bytes(t).decode("utf-8", errors="replace") for t in tokens]
    assert token_strings(enc, tokens) == expected
    assert token_strings(enc, tokens) == expected  # served from the cache the second time


# --- model -> encoding -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("model", "expected"),
    [
        ("gpt-4o", ("o200k_base", True)),
        ("gpt-4o-mini-2024-07-18", ("o200k_base", True)),
        ("chatgpt-4o-latest", ("o200k_base", True)),
        ("gpt-4.1-nano", ("o200k_base", True)),
        ("gpt-4.5-preview", ("o200k_base", True)),
        ("gpt-5", ("o200k_base", True)),
        ("gpt-5-mini-2025-08-07", ("o200k_base", True)),
        ("o1", ("o200k_base", True)),
        ("o1-pro", ("o200k_base", True)),
        ("o3-mini", ("o200k_base", True)),
        ("o4-mini-2025-04-16", ("o200k_base", True)),
        ("gpt-oss-120b", ("o200k_base", True)),
        ("openai/gpt-4o", ("o200k_base", True)),
        ("GPT-4O", ("o200k_base", True)),
        ("ft:gpt-4o-mini-2024-07-18:acme::9abc", ("o200k_base", True)),
        ("gpt-4", ("cl100k_base", True)),
        ("gpt-4-0613", ("cl100k_base", True)),
        ("gpt-4-turbo-2024-04-09", ("cl100k_base", True)),
        ("gpt-4-32k", ("cl100k_base", True)),
        ("gpt-3.5-turbo", ("cl100k_base", True)),
        ("gpt-35-turbo-16k", ("cl100k_base", True)),
        ("ft:gpt-3.5-turbo-0125:acme::x", ("cl100k_base", True)),
        ("text-embedding-3-small", ("cl100k_base", True)),
        ("text-embedding-3-large", ("cl100k_base", True)),
        ("text-embedding-ada-002", ("cl100k_base", True)),
        ("davinci-002", ("cl100k_base", True)),  # tiktoken's mapping, not p50k_base
        ("babbage-002", ("cl100k_base", True)),
        ("text-davinci-003", ("p50k_base", True)),
        ("text-davinci-002", ("p50k_base", True)),
        ("code-davinci-002", ("p50k_base", True)),
        ("code-cushman-001", ("p50k_base", True)),
        ("davinci", ("p50k_base", False)),  # r50k_base, not shipped: nearest encoding, an estimate
        ("text-curie-001", ("p50k_base", False)),
        ("claude-3-5-sonnet-20241022", ("o200k_base", False)),
        ("gemini-2.0-flash", ("o200k_base", False)),
        ("anthropic/claude-opus-4", ("o200k_base", False)),
        ("omni-moderation-latest", ("o200k_base", False)),
        ("", ("o200k_base", False)),
    ],
)
def test_encoding_for_model(model: str, expected: tuple[str, bool]) -> None:
    assert encoding_for_model(model) == expected


@pytest.mark.parametrize(
    "model",
    ["gpt-4o", "gpt-4", "gpt-3.5-turbo", "text-embedding-3-small", "text-davinci-003", "o1", "davinci-002"],
)
def test_encoding_for_model_agrees_with_tiktoken(model: str) -> None:
    assert encoding_for_model(model) == (tiktoken.encoding_name_for_model(model), True)


# --- loading: once, thread-safe, hash-checked -------------------------------------------------------------


def test_each_encoding_is_built_once_under_concurrency(monkeypatch: pytest.MonkeyPatch) -> None:
    calls: list[str] = []
    real_build = _tokenizer._build

    def slow_build(name: str, data_dir: Any) -> tiktoken.Encoding:
        calls.append(name)
        time.sleep(0.05)  # widen the race window
        return real_build(name, data_dir)

    monkeypatch.setattr(_tokenizer, "_build", slow_build)
    registry = EncodingRegistry()
    results: list[tiktoken.Encoding] = []
    threads = [threading.Thread(target=lambda: results.append(registry.get("p50k_base"))) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert calls == ["p50k_base"]
    assert len(results) == 8 and all(r is results[0] for r in results)
    assert registry.is_loaded("p50k_base") and not registry.is_loaded("cl100k_base")


def _copy_data(tmp_path: Path) -> Path:
    target = tmp_path / "tiktoken"
    shutil.copytree(DATA_DIR, target)
    return target


def _expected_hash(name: str) -> str:
    for line in (DATA_DIR / "SHA256SUMS").read_text().splitlines():
        digest, filename = line.split()
        if filename == f"{name}.tiktoken":
            return digest
    raise AssertionError(name)


def test_corrupt_file_is_refused_with_file_and_expected_hash(tmp_path: Path) -> None:
    data = _copy_data(tmp_path)
    path = data / "p50k_base.tiktoken"
    raw = bytearray(path.read_bytes())
    raw[100] ^= 0x01
    path.write_bytes(bytes(raw))
    with pytest.raises(TokenizerError) as caught:
        EncodingRegistry(data).get("p50k_base")
    message = str(caught.value)
    assert "p50k_base.tiktoken" in message and "corrupt" in message
    assert _expected_hash("p50k_base") in message
    assert hashlib.sha256(bytes(raw)).hexdigest() in message


def test_missing_file_is_refused_with_file_and_expected_hash(tmp_path: Path) -> None:
    data = _copy_data(tmp_path)
    (data / "cl100k_base.tiktoken").unlink()
    with pytest.raises(TokenizerError, match="cl100k_base.tiktoken is missing") as caught:
        EncodingRegistry(data).get("cl100k_base")
    assert _expected_hash("cl100k_base") in str(caught.value)


def test_missing_sums_entry_is_refused(tmp_path: Path) -> None:
    data = _copy_data(tmp_path)
    sums = data / "SHA256SUMS"
    sums.write_text("".join(ln for ln in sums.read_text().splitlines(True) if "p50k" not in ln))
    with pytest.raises(TokenizerError, match="no entry for p50k_base.tiktoken"):
        EncodingRegistry(data).get("p50k_base")


def test_missing_sums_file_is_refused(tmp_path: Path) -> None:
    data = _copy_data(tmp_path)
    (data / "SHA256SUMS").unlink()
    with pytest.raises(TokenizerError, match="SHA256SUMS"):
        EncodingRegistry(data).get("p50k_base")


def test_malformed_rank_file_is_refused(tmp_path: Path) -> None:
    data = _copy_data(tmp_path)
    garbage = b"not base64!! one\n"
    (data / "p50k_base.tiktoken").write_bytes(garbage)
    (data / "SHA256SUMS").write_text(f"{hashlib.sha256(garbage).hexdigest()}  p50k_base.tiktoken\n")
    with pytest.raises(TokenizerError, match="p50k_base.tiktoken is malformed"):
        EncodingRegistry(data).get("p50k_base")


def test_a_failed_load_is_retried_not_cached(tmp_path: Path) -> None:
    data = _copy_data(tmp_path)
    good = (data / "p50k_base.tiktoken").read_bytes()
    (data / "p50k_base.tiktoken").write_bytes(b"")
    registry = EncodingRegistry(data)
    with pytest.raises(TokenizerError):
        registry.get("p50k_base")
    (data / "p50k_base.tiktoken").write_bytes(good)
    assert registry.get("p50k_base").n_vocab == 50281


def test_unknown_encoding_is_refused() -> None:
    with pytest.raises(TokenizerError, match="unknown encoding 'r50k_base'"):
        EncodingRegistry().get("r50k_base")


# --- never the network, never tiktoken's cache -------------------------------------------------------------


def _no_network(*args: object, **kwargs: object) -> NoReturn:
    raise AssertionError("network access attempted")


def test_loads_with_networking_disabled(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    cache_dir = tmp_path / "tiktoken-cache"
    cache_dir.mkdir()
    monkeypatch.setenv("TIKTOKEN_CACHE_DIR", str(cache_dir))
    monkeypatch.setattr(socket.socket, "connect", _no_network)
    monkeypatch.setattr(socket.socket, "connect_ex", _no_network)
    monkeypatch.setattr(socket, "create_connection", _no_network)
    monkeypatch.setattr(socket, "getaddrinfo", _no_network)
    registry = EncodingRegistry()  # a fresh registry: nothing loaded yet
    for name in ENCODING_NAMES:
        assert registry.get(name).encode_ordinary("hello world")
    assert list(cache_dir.iterdir()) == []


_SUBPROCESS_CHECK = textwrap.dedent(
    """
    import os, sys

    def deny(event, args):
        # Audit events fire for every socket operation, whoever makes it (requests, urllib, blobfile).
        if event.startswith(("socket.", "urllib.Request")):
            raise RuntimeError(f"network access attempted: {event} {args!r}")

    sys.addaudithook(deny)

    import tiktoken.registry
    from bifrost_asgi.tokens.encodings import ENCODING_NAMES, get_encoding

    for name in ENCODING_NAMES:
        assert get_encoding(name).encode_ordinary("hello world"), name
    assert tiktoken.registry.ENCODINGS == {}, "tiktoken's own registry was used"
    assert os.listdir(os.environ["TIKTOKEN_CACHE_DIR"]) == [], "tiktoken's cache was written"
    print("ok")
    """
)


def test_loads_in_a_fresh_process_with_sockets_denied(tmp_path: Path) -> None:
    cache_dir = tmp_path / "tiktoken-cache"
    cache_dir.mkdir()
    env = {**os.environ, "TIKTOKEN_CACHE_DIR": str(cache_dir), "HTTPS_PROXY": "http://127.0.0.1:9"}
    done = subprocess.run(
        [sys.executable, "-c", _SUBPROCESS_CHECK], env=env, capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "ok"


def test_a_worker_thread_gets_its_own_twin_that_encodes_identically() -> None:
    enc = get_encoding("o200k_base")
    text = "Größe, 東京 and emoji 🚀 " * 50
    seen: list[tiktoken.Encoding] = []

    def work() -> list[int]:
        twin = thread_encoding(enc)
        seen.extend([twin, thread_encoding(enc)])
        return twin.encode_ordinary(text)

    with concurrent.futures.ThreadPoolExecutor(1) as pool:
        tokens = pool.submit(work).result()
    assert seen[0] is not enc and seen[0] is seen[1]  # built once per thread, then reused
    assert tokens == enc.encode_ordinary(text)
    assert seen[0].name == enc.name and seen[0].n_vocab == enc.n_vocab
    ranks = {bytes([i]): i for i in range(256)}
    foreign = tiktoken.Encoding("tiny", pat_str=r"\S+|\s+", mergeable_ranks=ranks, special_tokens={})
    assert thread_encoding(foreign) is foreign
