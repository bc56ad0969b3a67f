"""``multipart/form-data`` read in place: the form's text fields, and where its files lie in the bytes.

Uploads (audio to transcribe, images to edit) are forwarded, not re-built: the body is scanned once for
its part boundaries, the small text fields are decoded, and the files stay where they are in the
client's bytes. `Form.encode` gives the upstream body as a sequence of views into those bytes with only
the changed fields (the model) replaced and the gateway's own fields dropped, so a 25 MB upload is held
in memory once, however many attempts it takes.

    form = read_form(raw, content_type)            # 400 invalid_request on anything malformed
    form.field("model"); form.files("file")
    pieces = form.encode({"model": "whisper-1"}, drop=("fallbacks",))

Bounded for hostile input: at most `MAX_PARTS` parts, part headers of at most `MAX_HEADER_BYTES` each.
"""

from __future__ import annotations

import re
from collections.abc import Collection, Mapping
from dataclasses import dataclass

from bifrost_asgi.errors import invalid_request

__all__ = ["MAX_HEADER_BYTES", "MAX_PARTS", "Form", "Part", "boundary_of", "read_form"]

MAX_PARTS = 1000
MAX_HEADER_BYTES = 16 * 1024
_CRLF = b"\r\n"
# `name=value` or `name="quoted; value"` parameters of Content-Type and Content-Disposition.
_PARAM = re.compile(r';\s*([A-Za-z0-9_.*-]+)\s*=\s*("(?:[^"\\]|\\.)*"|[^;]*)')

Piece = bytes | memoryview


@dataclass(frozen=True, slots=True)
class Part:
    """One part: its ``name``, ``filename`` (None for a text field) and its spans in the body.

    ``start`` is where the part's delimiter line begins and ``end`` where the next one does, so the part
    is ``raw[start:end]``; its value is ``raw[value_start:value_end]``.
    """

    name: str
    filename: str | None
    content_type: str | None
    start: int
    end: int
    value_start: int
    value_end: int

    @property
    def size(self) -> int:
        return self.value_end - self.value_start


@dataclass(frozen=True, slots=True)
class Form:
    """A parsed form over the client's bytes. ``content_type`` (with its boundary) is forwarded as is."""

    raw: bytes
    content_type: str
    parts: tuple[Part, ...]
    texts: Mapping[str, tuple[str, ...]]
    closing: int  # where the closing delimiter line begins

    def field(self, name: str) -> str | None:
        """The first text value named ``name``."""
        values = self.texts.get(name)
        return values[0] if values else None

    def values(self, name: str) -> tuple[str, ...]:
        return self.texts.get(name, ())

    def files(self, *names: str) -> list[Part]:
        return [p for p in self.parts if p.filename is not None and p.name in names]

    def encode(self, replace: Mapping[str, str], drop: Collection[str] = ()) -> tuple[Piece, ...]:
        """The body with the text fields in ``replace`` given those values (the first of each; a field
        the form lacks is added) and the fields in ``drop`` left out; everything else is a view into
        ``raw``."""
        view = memoryview(self.raw)
        pieces: list[Piece] = []
        at = 0
        done: set[str] = set()
        for part in self.parts:
            if part.filename is None and part.name in drop:
                pieces.append(view[at : part.start])
                at = part.end
            elif part.filename is None and part.name in replace and part.name not in done:
                done.add(part.name)
                pieces += [view[at : part.value_start], replace[part.name].encode()]
                at = part.value_end
        pieces.append(view[at : self.closing])
        pieces += [self._text_part(n, v) for n, v in replace.items() if n not in done]
        pieces.append(view[self.closing :])
        return tuple(p for p in pieces if len(p))

    def _text_part(self, name: str, value: str) -> bytes:
        delimiter = b"--" + boundary_of(self.content_type).encode("latin-1")
        head = f'Content-Disposition: form-data; name="{_quote(name)}"'.encode()
        return delimiter + _CRLF + head + _CRLF + _CRLF + value.encode() + _CRLF


def boundary_of(content_type: str) -> str:
    """The boundary of a ``multipart/form-data`` content type (400 when it is not one)."""
    kind, params = _header_params(content_type)
    boundary = params.get("boundary", "")
    if kind != "multipart/form-data" or not 0 < len(boundary) <= 200:
        raise invalid_request("expected a multipart/form-data body with a boundary")
    return boundary


def read_form(raw: bytes, content_type: str) -> Form:
    """Find the parts of a multipart body; 400 ``invalid_request`` on anything malformed."""
    delimiter = b"--" + boundary_of(content_type).encode("latin-1")
    starts = _delimiters(raw, delimiter)
    parts: list[Part] = []
    texts: dict[str, list[str]] = {}
    for start, end in zip(starts, starts[1:], strict=False):
        part = _part(raw, start, end, len(delimiter))
        parts.append(part)
        if part.filename is None:
            texts.setdefault(part.name, []).append(_text(raw, part))
    return Form(raw, content_type, tuple(parts), {k: tuple(v) for k, v in texts.items()}, starts[-1])


def _delimiters(raw: bytes, delimiter: bytes) -> list[int]:
    """Where each delimiter line begins, the closing one last."""
    if not raw.startswith(delimiter):
        first = raw.find(_CRLF + delimiter)  # a preamble, which is allowed and ignored
        if first < 0:
            raise invalid_request("invalid multipart body: no part found")
        at = first + 2
    else:
        at = 0
    starts = [at]
    while True:
        after = at + len(delimiter)
        if raw[after : after + 2] == b"--":
            return starts
        nxt = raw.find(_CRLF + delimiter, after)
        if nxt < 0:
            raise invalid_request("invalid multipart body: the closing boundary is missing")
        at = nxt + 2
        starts.append(at)
        if len(starts) > MAX_PARTS + 1:
            raise invalid_request(f"invalid multipart body: more than {MAX_PARTS} parts")


def _part(raw: bytes, start: int, end: int, delimiter_size: int) -> Part:
    head_start = start + delimiter_size
    if raw[head_start : head_start + 2] != _CRLF:
        raise invalid_request("invalid multipart body: a boundary line has trailing data")
    head_start += 2
    head_end = raw.find(b"\r\n\r\n", head_start - 2, min(end, head_start + MAX_HEADER_BYTES))
    if head_end < 0:
        raise invalid_request("invalid multipart body: a part's headers are missing or too long")
    headers = _part_headers(raw[head_start:head_end])
    disposition, params = _header_params(headers.get("content-disposition", ""))
    name = params.get("name")
    if disposition != "form-data" or name is None:
        raise invalid_request("invalid multipart body: a part has no form-data name")
    value_start = head_end + 4
    value_end = end - 2  # the CRLF that belongs to the next delimiter line
    if value_end < value_start:
        value_end = value_start
    return Part(name, params.get("filename"), headers.get("content-type"), start, end, value_start, value_end)


def _part_headers(block: bytes) -> dict[str, str]:
    headers: dict[str, str] = {}
    for line in block.decode("utf-8", "replace").split("\r\n"):
        name, sep, value = line.partition(":")
        if sep:
            headers[name.strip().lower()] = value.strip()
    return headers


def _header_params(value: str) -> tuple[str, dict[str, str]]:
    kind, _, rest = value.partition(";")
    params = {k.lower(): _unquote(v.strip()) for k, v in _PARAM.findall(";" + rest)}
    return kind.strip().lower(), params


def _unquote(value: str) -> str:
    if len(value) >= 2 and value[0] == value[-1] == '"':
        return re.sub(r"\\(.)", r"\1", value[1:-1])
    return value


def _quote(value: str) -> str:
    return value.replace("\\", "\\\\").replace('"', '\\"')


def _text(raw: bytes, part: Part) -> str:
    try:
        return raw[part.value_start : part.value_end].decode("utf-8")
    except UnicodeDecodeError:
        raise invalid_request(f"invalid multipart body: field {part.name!r} is not UTF-8 text") from None
