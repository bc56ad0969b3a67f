"""Optional content logging: a request's prompt and answer stored with its usage log record.

Off by default. ``governance.logs.content: true`` turns it on for every request,
``governance.logs.content_virtual_keys`` for the listed keys only. What is stored is
``{"input": ..., "output": ...}`` as JSON text in the record's ``content``:

- ``input``: the request's prompt as the client sent it (``messages``, ``input``, ``prompt``,
  ``system``, ``instructions``), never its headers (keys live there) and never other body fields;
- ``output``: the answer's text (chat and text choices, Responses output text, Anthropic content);
  a streamed answer is stored as ``null`` (its text is never assembled by the gateway);
- then the host's redaction hook (``create_app(redact_content=...)``: takes that dict, returns the dict
  to store, or None to store nothing), and every provider credential the gateway knows is scrubbed;
- cut to ``content_max_chars``.

Rows older than ``client.log_retention_days`` are deleted, content with them (`LogWriter`).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

import orjson

from bifrost_asgi.governance.config import LogsConfig
from bifrost_asgi.pipeline.request import Request, Served
from bifrost_asgi.redact import Redactor

__all__ = ["ContentLog", "ContentRedactor"]

ContentRedactor = Callable[[dict[str, Any]], dict[str, Any] | None]
_PROMPT_FIELDS = ("system", "instructions", "messages", "input", "prompt")


class ContentLog:
    """Decides whether a request's content is kept, and renders it for the record."""

    def __init__(self, config: LogsConfig, secrets: Redactor, redact: ContentRedactor | None = None) -> None:
        self._everyone = config.content
        self._keys = frozenset(config.content_virtual_keys)
        self._max = config.content_max_chars
        self._secrets = secrets
        self._redact = redact

    def wanted(self, req: Request) -> bool:
        return self._everyone or (req.vk is not None and req.vk.id in self._keys)

    def capture(self, req: Request, served: Served | None) -> str | None:
        if not self.wanted(req):
            return None
        content: dict[str, Any] | None = {"input": _prompt(req.body), "output": _answer(served)}
        if self._redact is not None and content is not None:
            content = self._redact(content)
        if content is None:
            return None
        text = self._secrets.scrub(orjson.dumps(content, default=str).decode())
        return text[: self._max]


def _prompt(body: Mapping[str, Any]) -> dict[str, Any]:
    return {name: body[name] for name in _PROMPT_FIELDS if name in body}


def _answer(served: Served | None) -> str | None:
    if served is None or served.reply is None:
        return None
    body = served.reply.body
    texts: list[str] = []
    for choice in body.get("choices") or ():
        if isinstance(choice, dict):
            message = choice.get("message")
            text = message.get("content") if isinstance(message, dict) else choice.get("text")
            if isinstance(text, str):
                texts.append(text)
    for item in body.get("output") or ():
        for part in (item.get("content") or ()) if isinstance(item, dict) else ():
            if isinstance(part, dict) and isinstance(part.get("text"), str):
                texts.append(part["text"])
    for part in body.get("content") or () if isinstance(body.get("content"), list) else ():
        if isinstance(part, dict) and isinstance(part.get("text"), str):
            texts.append(part["text"])
    return "\n".join(texts)
