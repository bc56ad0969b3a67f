"""The multipart reader: fields and file spans found in place, and the body re-encoded with only the
model changed, as views into the client's bytes (the upload itself is never copied)."""

from __future__ import annotations

from email.parser import BytesParser
from email.policy import HTTP

import httpx
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from bifrost_asgi.errors import BifrostError
from bifrost_asgi.multipart import MAX_PARTS, Form, read_form

FILE = b"\x00\x01RIFF\r\n--almost-a-boundary\r\n" + bytes(range(256)) * 4


def encoded(data: dict[str, str | list[str]], files: dict[str, tuple[str, bytes]]) -> tuple[bytes, str]:
    """A body exactly as httpx (the openai SDK's client) encodes it."""
    request = httpx.Request("POST", "http://x", data=data, files=files)
    return request.read(), request.headers["content-type"]


def parsed(body: bytes, content_type: str) -> dict[str, list[bytes | tuple[str, bytes]]]:
    """The standard library's reading of a body, to compare against."""
    message = BytesParser(policy=HTTP).parsebytes(f"Content-Type: {content_type}\r\n\r\n".encode() + body)
    out: dict[str, list[bytes | tuple[str, bytes]]] = {}
    for part in message.iter_parts():
        name = str(part.get_param("name", header="content-disposition"))
        payload = part.get_payload(decode=True)
        assert isinstance(payload, bytes)
        filename = part.get_filename()
        out.setdefault(name, []).append(payload if filename is None else (filename, payload))
    return out


def test_fields_and_files_are_found_in_place() -> None:
    body, content_type = encoded(
        {"model": "openai/whisper-1", "fallbacks": ["a/b", "c/d"], "prompt": "héllo"},
        {"file": ("a.wav", FILE)},
    )
    form = read_form(body, content_type)
    assert form.field("model") == "openai/whisper-1" and form.field("prompt") == "héllo"
    assert form.values("fallbacks") == ("a/b", "c/d") and form.field("missing") is None
    [file] = form.files("file")
    assert (file.filename, file.size) == ("a.wav", len(FILE))
    assert body[file.value_start : file.value_end] == FILE


def test_encode_replaces_the_model_drops_gateway_fields_and_keeps_the_file() -> None:
    body, content_type = encoded(
        {"model": "openai/whisper-1", "fallbacks": ["a/b"]}, {"file": ("a.wav", FILE)}
    )
    form = read_form(body, content_type)
    pieces = form.encode({"model": "whisper-1"}, drop=("fallbacks",))
    rebuilt = b"".join(bytes(p) for p in pieces)
    assert parsed(rebuilt, content_type) == {"model": [b"whisper-1"], "file": [("a.wav", FILE)]}
    # The file travels as a view into the client's bytes, not a copy.
    assert any(isinstance(p, memoryview) and p.obj is body and FILE in bytes(p) for p in pieces)


def test_encode_adds_a_field_the_form_lacks() -> None:
    body, content_type = encoded({"language": "en"}, {"file": ("a.wav", FILE)})
    rebuilt = b"".join(bytes(p) for p in read_form(body, content_type).encode({"model": "m"}))
    assert parsed(rebuilt, content_type) == {"language": [b"en"], "file": [("a.wav", FILE)], "model": [b"m"]}


def test_a_preamble_and_quoted_parameters_are_understood() -> None:
    body = (
        b"preamble\r\n--b;1\r\n"
        b'Content-Disposition: form-data; name="model"\r\n\r\nm\r\n'
        b"--b;1\r\n"
        b'Content-Disposition: form-data; name="file"; filename="a;b.wav"\r\nContent-Type: audio/wav\r\n\r\n'
        b"DATA\r\n--b;1--\r\n"
    )
    form = read_form(body, 'multipart/form-data; boundary="b;1"')
    assert form.field("model") == "m"
    assert [(p.filename, p.content_type) for p in form.files("file")] == [("a;b.wav", "audio/wav")]


@pytest.mark.parametrize(
    ("body", "content_type", "message"),
    [
        (b"{}", "application/json", "expected a multipart/form-data body"),
        (b"--b\r\n", "multipart/form-data", "expected a multipart/form-data body"),
        (b"nothing here", "multipart/form-data; boundary=b", "no part found"),
        (
            b'--b\r\nContent-Disposition: form-data; name="x"\r\n\r\nv',
            "multipart/form-data; boundary=b",
            "closing boundary is missing",
        ),  # fmt: skip
        (
            b"--b\r\nContent-Type: text/plain\r\n\r\nv\r\n--b--",
            "multipart/form-data; boundary=b",
            "no form-data name",
        ),
        (
            b'--bxx\r\nContent-Disposition: form-data; name="x"\r\n\r\nv\r\n--b--',
            "multipart/form-data; boundary=b",
            "trailing data",
        ),  # fmt: skip
        (
            b'--b\r\nContent-Disposition: form-data; name="x"\r\n\r\n\xff\r\n--b--',
            "multipart/form-data; boundary=b",
            "is not UTF-8",
        ),  # fmt: skip
    ],
)
def test_malformed_bodies_are_a_400(body: bytes, content_type: str, message: str) -> None:
    with pytest.raises(BifrostError) as refused:
        read_form(body, content_type)
    assert refused.value.status_code == 400 and message in refused.value.message


def test_parts_are_bounded() -> None:
    part = b'--b\r\nContent-Disposition: form-data; name="x"\r\n\r\nv\r\n'
    with pytest.raises(BifrostError, match=f"more than {MAX_PARTS} parts"):
        read_form(part * (MAX_PARTS + 1) + b"--b--", "multipart/form-data; boundary=b")
    assert isinstance(read_form(part * MAX_PARTS + b"--b--", "multipart/form-data; boundary=b"), Form)


_PIECES = st.sampled_from(
    [b"--b", b"--b--", b"\r\n", b"\r\n\r\n", b'Content-Disposition: form-data; name="model"',
     b'; filename="f"', b"Content-Type: a/b", b"value", b"\xff", b"--", b";", b'"']
)  # fmt: skip


@settings(max_examples=400, deadline=None)
@given(st.lists(_PIECES | st.binary(max_size=8), max_size=30))
def test_any_body_is_read_or_refused_with_a_400(pieces: list[bytes]) -> None:
    body = b"".join(pieces)
    try:
        form = read_form(body, "multipart/form-data; boundary=b")
    except BifrostError as err:
        assert err.status_code == 400
        return
    rebuilt = b"".join(bytes(p) for p in form.encode({"model": "m"}, drop=("x",)))
    assert read_form(rebuilt, "multipart/form-data; boundary=b").field("model") == "m"
