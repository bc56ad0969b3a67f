"""Server tools across providers: OpenAI's ``web_search`` tool answered by Claude's web search, Claude's
``web_search_*`` tool answered by OpenAI's, each with its results and citations in the client's own
shapes; a provider without an equivalent refuses the tool with a 400 naming it. The official SDKs
against upstream-shaped servers on loopback."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from typing import Any

import anthropic
import openai
import pytest

from bifrost_asgi import GatewayConfig, create_app
from tests.anthropic_upstream import CITED_TEXT, AnthropicUpstream
from tests.anthropic_upstream import SEARCH_URL as CLAUDE_URL
from tests.conftest import serve
from tests.gemini_upstream import GeminiUpstream
from tests.upstream import CITED, SEARCH_ANSWER, SEARCH_URL, Upstream

HI: Any = [{"role": "user", "content": "What is the tallest building?"}]
CLAUDE_SEARCH: Any = {
    "type": "web_search_20250305",
    "name": "web_search",
    "max_uses": 3,
    "allowed_domains": ["example.org"],
    "user_location": {"type": "approximate", "city": "Paris", "country": "FR"},
}


@pytest.fixture(scope="module")
def servers(upstream_url: str) -> Iterator[tuple[str, AnthropicUpstream]]:
    claude, gemini = AnthropicUpstream(), GeminiUpstream()
    claude_live, gemini_live = serve(claude), serve(gemini)
    config = {
        "providers": {
            "anthropic": {"keys": [{"value": "sk-ant"}], "network_config": {"base_url": claude_live.url}},
            "openai": {"keys": [{"value": "sk-test"}], "network_config": {"base_url": upstream_url}},
            "gemini": {"keys": [{"value": "gk"}], "network_config": {"base_url": gemini_live.url}},
        }
    }
    live = serve(create_app(GatewayConfig.from_dict(config)))
    yield live.url, claude
    live.stop()
    claude_live.stop()
    gemini_live.stop()


@pytest.fixture
def claude(servers: tuple[str, AnthropicUpstream]) -> AnthropicUpstream:
    servers[1].state.reset()
    return servers[1]


@pytest.fixture
async def oai(servers: tuple[str, AnthropicUpstream]) -> AsyncIterator[openai.AsyncOpenAI]:
    async with openai.AsyncOpenAI(base_url=servers[0] + "/v1", api_key="k", max_retries=0) as c:
        yield c


@pytest.fixture
async def ant(servers: tuple[str, AnthropicUpstream]) -> AsyncIterator[anthropic.AsyncAnthropic]:
    async with anthropic.AsyncAnthropic(base_url=servers[0] + "/anthropic", api_key="k", max_retries=0) as c:
        yield c


# -- OpenAI's web_search tool to Claude --------------------------------------------------------------------


async def test_openai_web_search_becomes_claudes_server_tool(
    oai: openai.AsyncOpenAI, claude: AnthropicUpstream
) -> None:
    tool: Any = {"type": "web_search", "filters": {"allowed_domains": ["en.wikipedia.org"]},
                 "user_location": {"type": "approximate", "country": "AE"}}  # fmt: skip
    answer = await oai.responses.create(model="anthropic/web-search", input="Tallest building?", tools=[tool])
    assert claude.state.requests[0].body["tools"] == [
        {"type": "web_search_20250305", "name": "web_search", "allowed_domains": ["en.wikipedia.org"],
         "user_location": {"type": "approximate", "country": "AE"}}
    ]  # fmt: skip
    search, message = answer.output
    assert search.type == "web_search_call" and search.status == "completed"
    assert message.type == "message" and message.content[0].type == "output_text"
    text = message.content[0]
    assert text.text == CITED_TEXT
    assert [(a.type, getattr(a, "url", None)) for a in text.annotations] == [("url_citation", CLAUDE_URL)]


async def test_a_hosted_tool_claude_has_no_equivalent_for_is_a_400_naming_it(
    oai: openai.AsyncOpenAI, claude: AnthropicUpstream
) -> None:
    with pytest.raises(openai.BadRequestError) as caught:
        await oai.responses.create(
            model="anthropic/claude-sonnet-4-6",
            input="x",
            tools=[{"type": "code_interpreter", "container": {"type": "auto"}}],
        )
    assert "code_interpreter" in str(caught.value)
    assert claude.state.requests == []


# -- Claude's web_search tool to OpenAI ---------------------------------------------------------------------


def _check_searched(content: list[Any]) -> None:
    use, result, text = content
    assert (
        use.type == "server_tool_use"
        and use.name == "web_search"
        and use.input == {"query": "tallest building"}
    )
    assert result.type == "web_search_tool_result" and result.tool_use_id == use.id
    assert [r.url for r in result.content] == [SEARCH_URL]
    assert text.type == "text" and text.text == SEARCH_ANSWER
    assert [(c.type, c.url, c.cited_text) for c in text.citations] == [
        ("web_search_result_location", SEARCH_URL, CITED)
    ]


async def test_claudes_web_search_becomes_openais_tool(
    ant: anthropic.AsyncAnthropic, upstream: Upstream
) -> None:
    message = await ant.messages.create(
        model="openai/web-search", max_tokens=100, messages=HI, tools=[CLAUDE_SEARCH]
    )
    (seen,) = upstream.state.requests
    assert seen.body["tools"] == [
        {"type": "web_search", "filters": {"allowed_domains": ["example.org"]},
         "user_location": {"type": "approximate", "city": "Paris", "country": "FR"}}
    ]  # fmt: skip
    assert seen.body["max_tool_calls"] == 3
    _check_searched(message.content)


async def test_claudes_web_search_streams_from_openai(
    ant: anthropic.AsyncAnthropic, upstream: Upstream
) -> None:
    async with ant.messages.stream(
        model="openai/web-search", max_tokens=100, messages=HI, tools=[CLAUDE_SEARCH]
    ) as stream:
        message = await stream.get_final_message()
    _check_searched(message.content)


async def test_claudes_web_search_to_a_provider_without_one_is_a_400_naming_it(
    ant: anthropic.AsyncAnthropic,
) -> None:
    with pytest.raises(anthropic.BadRequestError) as caught:
        await ant.messages.create(
            model="gemini/gemini-2.5-flash", max_tokens=10, messages=HI, tools=[CLAUDE_SEARCH]
        )
    assert "web_search" in str(caught.value)


async def test_blocked_domains_cannot_be_expressed_for_openai(
    ant: anthropic.AsyncAnthropic, upstream: Upstream
) -> None:
    tool: Any = {**CLAUDE_SEARCH, "allowed_domains": None, "blocked_domains": ["example.com"]}
    with pytest.raises(anthropic.BadRequestError) as caught:
        await ant.messages.create(model="openai/web-search", max_tokens=10, messages=HI, tools=[tool])
    assert "blocked_domains" in str(caught.value)
    assert upstream.state.requests == []
