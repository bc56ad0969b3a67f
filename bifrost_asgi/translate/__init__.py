"""Pure translators between API shapes, for providers that do not speak the client's API natively."""

from __future__ import annotations

from bifrost_asgi.translate.anthropic import (
    MessagesToChatStream,
    MessagesToResponsesStream,
    anthropic_error_status,
    anthropic_error_type,
    chat_to_messages_request,
    count_tokens_request,
    merge_stream_usage,
    messages_to_chat_completion,
    messages_to_responses_response,
    messages_to_text_completion,
    messages_usage_to_chat,
    messages_usage_to_responses,
    responses_to_messages_request,
    text_to_messages_request,
)
from bifrost_asgi.translate.messages_responses import (
    ResponsesToMessagesStream,
    messages_to_responses_request,
    responses_to_message,
    responses_usage_to_messages,
)
from bifrost_asgi.translate.responses_chat import (
    ChatToResponsesStream,
    chat_to_responses_response,
    responses_to_chat_request,
)
from bifrost_asgi.translate.responses_events import ResponsesStreamWriter

__all__ = [
    "ChatToResponsesStream",
    "MessagesToChatStream",
    "MessagesToResponsesStream",
    "ResponsesStreamWriter",
    "ResponsesToMessagesStream",
    "anthropic_error_status",
    "anthropic_error_type",
    "chat_to_messages_request",
    "chat_to_responses_response",
    "count_tokens_request",
    "messages_to_chat_completion",
    "messages_to_responses_request",
    "messages_to_responses_response",
    "messages_to_text_completion",
    "messages_usage_to_chat",
    "merge_stream_usage",
    "messages_usage_to_responses",
    "responses_to_chat_request",
    "responses_to_message",
    "responses_to_messages_request",
    "responses_usage_to_messages",
    "text_to_messages_request",
]
