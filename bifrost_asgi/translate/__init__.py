"""Pure translators between API shapes, for providers that do not speak the client's API natively."""

from __future__ import annotations

from bifrost_asgi.translate._responses_chat import (
    ChatToResponsesStream,
    chat_to_responses_response,
    responses_to_chat_request,
)

__all__ = ["ChatToResponsesStream", "chat_to_responses_response", "responses_to_chat_request"]
