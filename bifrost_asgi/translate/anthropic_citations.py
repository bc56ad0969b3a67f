"""Anthropic's citations and server-tool blocks in OpenAI's shapes (used by :mod:`.anthropic`).

- A citation of a web page (``web_search_result_location``) or of a search result the client supplied
  (``search_result_location``, whose ``source`` is its URL or name) becomes OpenAI's ``url_citation``,
  spanning the cited text block within the answer's text. Document citations (``char_location``,
  ``page_location``, ``content_block_location``) have no OpenAI counterpart (``file_citation`` names a
  file stored at OpenAI): they keep Anthropic's type and fields and gain ``start_index``/``end_index``,
  flat in a Responses ``annotations`` list and nested under their type in a chat one, as OpenAI nests
  ``url_citation``.
- ``server_tool_use`` of ``web_search`` (or ``web_fetch``) and its ``web_search_tool_result`` (or
  ``web_fetch_tool_result``) become one Responses ``web_search_call`` item: action ``search`` with the
  query and the result URLs as sources (``open_page`` with the URL for a fetch); an error result makes
  it ``failed``. Chat has no such item; there only the citations show what was found.
- The other way, OpenAI's ``web_search`` tool is sent as Anthropic's ``web_search_20250305`` server tool
  (:func:`web_search_tool`).
- Other server-tool blocks (code execution, tool search, container uploads, ...) have no OpenAI item:
  on Responses they are passed through as output items of their own Anthropic type, unchanged.

Pure: no I/O.
"""

from __future__ import annotations

from typing import Any

from bifrost_asgi.errors import invalid_request

__all__ = [
    "SEARCH_RESULTS",
    "SEARCH_TOOL_TYPES",
    "SEARCH_TOOLS",
    "chat_annotation",
    "responses_annotation",
    "search_action",
    "search_status",
    "web_search_tool",
]

Obj = dict[str, Any]

# server_tool_use names answered as a web_search_call, and the result block types that complete one.
SEARCH_TOOLS = frozenset({"web_search", "web_fetch"})
SEARCH_RESULTS = frozenset({"web_search_tool_result", "web_fetch_tool_result"})
_URL_CITATIONS = {"web_search_result_location": "url", "search_result_location": "source"}
# OpenAI's web search tool types (Responses), all answered by Anthropic's web search server tool.
SEARCH_TOOL_TYPES = frozenset({"web_search", "web_search_preview", "web_search_2025_08_26"})
_WEB_SEARCH = "web_search_20250305"
_LOCATION_FIELDS = ("city", "region", "country", "timezone")


def responses_annotation(citation: Obj, start: int, end: int) -> Obj:
    """A Responses ``output_text`` annotation for a citation of the text ``[start:end]``."""
    kind = str(citation.get("type"))
    if kind in _URL_CITATIONS:
        url = citation.get(_URL_CITATIONS[kind])
        return {
            "type": "url_citation",
            "url": str(url or ""),
            "title": str(citation.get("title") or ""),
            "start_index": start,
            "end_index": end,
        }
    return {**citation, "start_index": start, "end_index": end}


def chat_annotation(citation: Obj, start: int, end: int) -> Obj:
    """A chat message annotation: OpenAI nests the fields under the annotation's type."""
    annotation = responses_annotation(citation, start, end)
    kind = annotation.pop("type")
    return {"type": kind, kind: annotation}


def search_action(name: str, tool_input: Any, result: Any) -> Obj:
    """The ``action`` of a ``web_search_call``: what was searched (or fetched) and what came back."""
    tool_input = tool_input if isinstance(tool_input, dict) else {}
    content = result.get("content") if isinstance(result, dict) else None
    if name == "web_fetch":
        url = tool_input.get("url")
        if isinstance(content, dict) and isinstance(content.get("url"), str):
            url = content["url"]
        return {"type": "open_page", "url": url if isinstance(url, str) else None}
    action: Obj = {"type": "search"}
    if isinstance(tool_input.get("query"), str):
        action["query"] = tool_input["query"]
    if isinstance(content, list):
        urls = [r.get("url") for r in content if isinstance(r, dict)]
        action["sources"] = [{"type": "url", "url": url} for url in urls if isinstance(url, str)]
    return action


def search_status(result: Any) -> str:
    """``failed`` when the result block reports an error (its content is an ``*_error`` object)."""
    content = result.get("content") if isinstance(result, dict) else None
    failed = isinstance(content, dict) and str(content.get("type", "")).endswith("_error")
    return "failed" if failed else "completed"


def web_search_tool(tool: Obj, where: str) -> Obj:
    """The Anthropic server tool for OpenAI's ``web_search`` tool: its allowed domains and approximate
    user location are kept; ``search_context_size`` (how much page text OpenAI reads) has no equivalent
    and is dropped, as it changes cost, not what may be searched."""
    out: Obj = {"type": _WEB_SEARCH, "name": "web_search"}
    filters = tool.get("filters")
    domains = filters.get("allowed_domains") if isinstance(filters, dict) else None
    if isinstance(domains, list) and domains:
        out["allowed_domains"] = domains
    location = tool.get("user_location")
    if isinstance(location, dict):
        if location.get("type", "approximate") != "approximate":
            raise invalid_request(f"{where}: only an approximate user_location can be sent", param=where)
        kept = {k: location[k] for k in _LOCATION_FIELDS if isinstance(location.get(k), str)}
        if kept:
            out["user_location"] = {"type": "approximate", **kept}
    return out
