"""Every framework prefix speaks every dialect: the Anthropic Messages routes under ``/litellm``,
``/langchain`` and ``/pydanticai`` (as Bifrost registers them), driven by the official SDKs and the
frameworks' own clients (``anthropic``, ``langchain-anthropic``, ``langchain-openai``, ``litellm``), and
``GET /anthropic/v1/models`` in Anthropic's list shape."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import anthropic
import pytest
from langchain_anthropic import ChatAnthropic
from langchain_openai import ChatOpenAI
from pydantic import SecretStr

from bifrost_asgi import GatewayConfig, create_app
from tests.anthropic_upstream import ANSWER, AnthropicUpstream, count_tokens
from tests.conftest import serve
from tests.gemini_upstream import ANSWER as GEMINI_ANSWER
from tests.gemini_upstream import GeminiUpstream
from tests.snippets import clean_env, run_python
from tests.upstream import ANSWER as OPENAI_ANSWER
from tests.upstream import Upstream

MODEL = "claude-sonnet-4-6"
FRAMEWORKS = ["/litellm", "/langchain", "/pydanticai"]
HI: Any = [{"role": "user", "content": "Hi"}]


@pytest.fixture(scope="module")
def servers(upstream_url: str) -> Iterator[tuple[str, AnthropicUpstream, GeminiUpstream]]:
    claude, gemini = AnthropicUpstream(), GeminiUpstream()
    claude_live, gemini_live = serve(claude), serve(gemini)
    config = {
        "providers": {
            "anthropic": {"keys": [{"value": "sk-ant", "models": [MODEL]}],
                          "network_config": {"base_url": claude_live.url}},
            "openai": {"keys": [{"value": "sk-test"}], "network_config": {"base_url": upstream_url}},
            "gemini": {"keys": [{"value": "gk", "models": ["gemini-2.5-flash"]}],
                       "network_config": {"base_url": gemini_live.url}},
        }
    }  # fmt: skip
    live = serve(create_app(GatewayConfig.from_dict(config)))
    yield live.url, claude, gemini
    live.stop()
    claude_live.stop()
    gemini_live.stop()


@pytest.fixture
def gateway(servers: tuple[str, AnthropicUpstream, GeminiUpstream]) -> str:
    return servers[0]


@pytest.fixture
def claude(servers: tuple[str, AnthropicUpstream, GeminiUpstream]) -> AnthropicUpstream:
    servers[1].state.reset()
    return servers[1]


@pytest.fixture
async def ant(gateway: str, request: pytest.FixtureRequest) -> AsyncIterator[anthropic.AsyncAnthropic]:
    prefix = getattr(request, "param", "/anthropic")
    async with anthropic.AsyncAnthropic(base_url=gateway + prefix, api_key="sk-any", max_retries=0) as c:
        yield c


@pytest.mark.parametrize("ant", FRAMEWORKS, indirect=True)
async def test_messages_and_their_count_under_each_framework_prefix(
    ant: anthropic.AsyncAnthropic, claude: AnthropicUpstream
) -> None:
    message = await ant.messages.create(model=MODEL, max_tokens=50, messages=HI)
    assert message.content[0].type == "text" and message.content[0].text == ANSWER
    counted = await ant.messages.count_tokens(model=MODEL, messages=HI)
    assert counted.input_tokens == count_tokens({"messages": HI})
    assert [r.path for r in claude.state.requests] == ["/v1/messages", "/v1/messages/count_tokens"]


@pytest.mark.parametrize("ant", ["/litellm"], indirect=True)
async def test_a_bare_model_under_a_framework_prefix_follows_the_catalog(
    ant: anthropic.AsyncAnthropic, upstream: Upstream, claude: AnthropicUpstream
) -> None:
    """gpt-4o is openai's in the catalog: under /litellm it goes there (through Responses); under
    /anthropic a bare model always means anthropic."""
    message = await ant.messages.create(model="gpt-4o", max_tokens=50, messages=HI)
    assert message.content[0].type == "text" and message.content[0].text == OPENAI_ANSWER
    assert [r.path for r in upstream.state.requests] == ["/v1/responses"]
    assert claude.state.requests == []


async def test_messages_are_not_served_without_v1(gateway: str) -> None:
    """Bifrost registers the Anthropic routes only with /v1; the anthropic SDK always sends it."""
    async with anthropic.AsyncAnthropic(base_url=gateway + "/litellm/v1", api_key="k", max_retries=0) as c:
        with pytest.raises(anthropic.NotFoundError):
            await c.messages.create(model=MODEL, max_tokens=5, messages=HI)


def test_langchain_anthropic_under_langchain(gateway: str, claude: AnthropicUpstream) -> None:
    key = SecretStr("sk-any")
    chat = ChatAnthropic(model_name=MODEL, base_url=gateway + "/langchain", api_key=key, max_retries=0)  # type: ignore[call-arg]
    assert chat.invoke("Hi").content == ANSWER
    assert [r.path for r in claude.state.requests] == ["/v1/messages"]


def test_langchain_openai_under_langchain(gateway: str, upstream: Upstream) -> None:
    key = SecretStr("sk-any")
    chat = ChatOpenAI(model="openai/gpt-4o", base_url=gateway + "/langchain/v1", api_key=key, max_retries=0)
    assert chat.invoke("Hi").content == OPENAI_ANSWER


def test_litellm_reaches_the_anthropic_and_gemini_dialects_under_litellm(
    tmp_path: Path,
    gateway: str,
    claude: AnthropicUpstream,
    servers: tuple[str, AnthropicUpstream, GeminiUpstream],
) -> None:
    """litellm's own anthropic and gemini clients, with the gateway as their api_base (litellm runs in a
    subprocess, as everywhere in these tests)."""
    gemini = servers[2]
    gemini.state.reset()
    script = tmp_path / "litellm_dialects.py"
    script.write_text(
        "import litellm\n"
        "hi = [{'role': 'user', 'content': 'Hi'}]\n"
        f"r = litellm.completion(model='anthropic/{MODEL}', api_base='{gateway}/litellm', api_key='k', "
        "messages=hi)\n"
        "print(r.choices[0].message.content)\n"
        f"r = litellm.completion(model='gemini/gemini-2.5-flash', api_base='{gateway}/litellm/v1beta', "
        "api_key='k', messages=hi)\n"
        "print(r.choices[0].message.content)\n"
    )
    # litellm prints its provider list banner for a model it has no price for; the answers come last.
    assert run_python(script, clean_env()).splitlines()[-2:] == [ANSWER, GEMINI_ANSWER]
    assert [r.path for r in claude.state.requests] == ["/v1/messages"]
    assert [r.path for r in gemini.state.requests] == ["/v1beta/models/gemini-2.5-flash:generateContent"]


# -- GET /anthropic/v1/models -------------------------------------------------------------------------------


async def test_the_anthropic_model_list_in_anthropics_shape(ant: anthropic.AsyncAnthropic) -> None:
    """Anthropic's models are listed bare, every other provider's as provider/model: each id works as
    the model of a request on /anthropic."""
    ids = [model.id async for model in ant.models.list()]
    assert MODEL in ids and "openai/gpt-4o" in ids and "gemini/gemini-2.5-flash" in ids
    assert f"anthropic/{MODEL}" not in ids
    first = await ant.models.list(limit=1)
    assert len(first.data) == 1 and first.has_more
    rest = [model.id async for model in await ant.models.list(after_id=first.data[0].id, limit=100)]
    assert [first.data[0].id, *rest] == ids
    message = await ant.messages.create(model=ids[-1], max_tokens=5, messages=HI)
    assert message.type == "message"
