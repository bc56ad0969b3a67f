"""Secrets never leave the gateway, even when an upstream echoes them.

An upstream may repeat the credential it was sent (OpenAI's 401 says "Incorrect API key provided:
sk-…"). Every text that came from an upstream and may reach a client, a log line or a stored record —
an upstream error's message, ``raw_response`` — passes through `Redactor.scrub` at the boundary where
it leaves the provider layer (``pipeline/attempts.py``, ``pipeline/streaming.py``, the surfaces'
``raw_response``).
"""

from __future__ import annotations

import re
from collections.abc import Iterable

from bifrost_asgi.errors import BifrostError

__all__ = ["REDACTED", "Redactor"]

REDACTED = "[REDACTED]"
# Shorter values are placeholders ("unused", "sk-x"), not secrets; scrubbing them would mangle text.
_MIN_SECRET = 8


class Redactor:
    """Replaces every configured secret in a text with ``[REDACTED]``."""

    def __init__(self, secrets: Iterable[str]) -> None:
        values = sorted({s for s in secrets if len(s) >= _MIN_SECRET}, key=len, reverse=True)
        self._text = re.compile("|".join(map(re.escape, values))) if values else None
        self._bytes = re.compile(b"|".join(re.escape(v.encode()) for v in values)) if values else None

    def scrub(self, text: str) -> str:
        return self._text.sub(REDACTED, text) if self._text is not None else text

    def scrub_bytes(self, data: bytes) -> bytes:
        return self._bytes.sub(REDACTED.encode(), data) if self._bytes is not None else data

    def scrub_error(self, err: BifrostError) -> BifrostError:
        err.message = self.scrub(err.message)
        if isinstance(err.param, str):
            err.param = self.scrub(err.param)
        if err.code is not None:
            err.code = self.scrub(err.code)
        if err.answer is not None:  # a passthrough error's own bytes
            err.answer = (err.answer[0], self.scrub_bytes(err.answer[1]))
        return err
