"""The upstream HTTP helpers every provider shares: bounded answers, Retry-After, error bodies."""

from __future__ import annotations

import email.utils
import time
from collections.abc import AsyncIterator

import httpx
import orjson
import pytest

from bifrost_asgi.errors import BifrostError
from bifrost_asgi.providers.http import open_stream, request, retry_after, upstream_error


@pytest.mark.parametrize(
    ("value", "expected"),
    [(None, None), ("", None), ("2", 2.0), (" 1.5 ", 1.5), ("-3", 0.0), ("soon", None), ("nan", None)],
)
def test_retry_after_in_seconds(value: str | None, expected: float | None) -> None:
    assert retry_after(value) == expected


def test_retry_after_as_an_http_date() -> None:
    later = email.utils.formatdate(time.time() + 30, usegmt=True)
    assert 25 <= (retry_after(later) or 0) <= 31
    assert retry_after(email.utils.formatdate(time.time() - 30, usegmt=True)) == 0.0


async def _chunks(data: bytes) -> AsyncIterator[bytes]:
    for i in range(0, len(data), 1000):
        yield data[i : i + 1000]


def _transport(
    status: int, content: bytes, *, length: bool, headers: dict[str, str] | None = None
) -> httpx.MockTransport:
    def handler(req: httpx.Request) -> httpx.Response:
        body = content if length else _chunks(content)  # an iterator: no content-length, as chunked
        return httpx.Response(status, content=body, headers=headers or {})

    return httpx.MockTransport(handler)


@pytest.mark.parametrize("length", [True, False], ids=["content-length", "chunked"])
async def test_an_answer_over_the_limit_is_a_502(length: bool) -> None:
    big = orjson.dumps({"x": "y" * 5000})
    ok = await request(_transport(200, big, length=length), "http://up/x", b"{}", {}, provider="p",
                       timeout=5, max_bytes=10_000)  # fmt: skip
    assert ok.content == big
    with pytest.raises(BifrostError) as caught:
        await request(_transport(200, big, length=length), "http://up/x", b"{}", {}, provider="p",
                      timeout=5, max_bytes=1_000)  # fmt: skip
    assert (caught.value.status_code, caught.value.error_type) == (502, "provider_bad_response")
    assert "larger than 1000 bytes" in caught.value.message


async def test_a_429_carries_its_retry_after() -> None:
    body = b'{"error": {"message": "slow down", "type": "rate_limit_error"}}'
    transport = _transport(429, body, length=True, headers={"retry-after": "3"})
    with pytest.raises(BifrostError) as caught:
        await request(transport, "http://up/x", b"{}", {}, provider="p", timeout=5)
    assert caught.value.retry_after == 3.0 and caught.value.rotate_key


async def test_a_refused_stream_with_a_huge_error_body_keeps_its_status() -> None:
    transport = _transport(503, b"x" * (2 * 1024 * 1024), length=False, headers={"retry-after": "1"})
    with pytest.raises(BifrostError) as caught:
        await open_stream(transport, "http://up/x", b"{}", {}, provider="p", timeout=5)
    assert caught.value.status_code == 503 and caught.value.retry_after == 1.0


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (b'{"error": "plain words"}', "plain words"),
        (b'{"message": "top-level message", "code": 7}', "top-level message"),
        (b'{"unrelated": true}', "upstream returned HTTP 418"),
        (b"  service unavailable  ", "service unavailable"),
        (b"", "upstream returned HTTP 418"),
    ],
)
def test_upstream_error_bodies_of_every_shape(content: bytes, message: str) -> None:
    assert upstream_error(418, content, "p").message == message
