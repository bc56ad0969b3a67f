"""The Gemini dialect end to end: Google's ``google-genai`` SDK, unmodified, against a live gateway.

The SDK talks to ``{gateway}/genai`` (and ``/langchain``). Bare Gemini models reach the Gemini-shaped
server (tests/gemini_upstream.py) with their bodies as the SDK sent them; ``openai/...`` and
``anthropic/...`` models reach the OpenAI- and Anthropic-shaped servers through the Responses
translation, and their answers come back in Gemini's shapes.
"""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import orjson
import pytest
from google.genai import errors, types

from bifrost_asgi import GatewayConfig, create_app
from tests.anthropic_upstream import TOOL_ANSWER, TOOL_ID, AnthropicUpstream
from tests.conftest import serve
from tests.gemini_upstream import ANSWER, USAGE, GeminiUpstream
from tests.gemini_upstream import genai_client as client
from tests.upstream import ANSWER as OPENAI_ANSWER
from tests.upstream import Upstream

FLASH = "gemini-2.5-flash"
WEATHER = types.FunctionDeclaration(
    name="get_weather",
    description="Weather for a city",
    parameters=types.Schema(
        type=types.Type.OBJECT, properties={"city": types.Schema(type=types.Type.STRING)}, required=["city"]
    ),
)


@pytest.fixture(scope="module")
def servers(upstream_url: str) -> Iterator[tuple[str, GeminiUpstream, AnthropicUpstream]]:
    gemini, claude = GeminiUpstream(), AnthropicUpstream()
    gemini_live, claude_live = serve(gemini), serve(claude)
    config = {
        "providers": {
            "gemini": {"keys": [{"value": "gk-test", "models": [FLASH, "status-500", "status-503"]}],
                       "network_config": {"base_url": gemini_live.url}},
            "openai": {"keys": [{"value": "sk-test"}], "network_config": {"base_url": upstream_url}},
            "anthropic": {"keys": [{"value": "sk-ant"}], "network_config": {"base_url": claude_live.url}},
        }
    }  # fmt: skip
    live = serve(create_app(GatewayConfig.from_dict(config)))
    yield live.url, gemini, claude
    live.stop()
    gemini_live.stop()
    claude_live.stop()


@pytest.fixture
def gateway(servers: tuple[str, GeminiUpstream, AnthropicUpstream]) -> str:
    return servers[0]


@pytest.fixture
def gemini(servers: tuple[str, GeminiUpstream, AnthropicUpstream]) -> GeminiUpstream:
    servers[1].state.reset()
    return servers[1]


@pytest.fixture
def claude(servers: tuple[str, GeminiUpstream, AnthropicUpstream]) -> AnthropicUpstream:
    servers[2].state.reset()
    return servers[2]


# -- gemini models: the body passes through ----------------------------------------------------------------


def test_a_gemini_model_gets_the_sdk_body_untouched(gateway: str, gemini: GeminiUpstream) -> None:
    config = types.GenerateContentConfig(system_instruction="Be brief.", temperature=0.2, top_k=5)
    answer = client(gateway).models.generate_content(model=FLASH, contents="Hi", config=config)
    assert answer.text == ANSWER
    assert (
        answer.usage_metadata is not None
        and answer.usage_metadata.thoughts_token_count == USAGE["thoughtsTokenCount"]
    )
    (seen,) = gemini.state.requests
    assert seen.path == f"/v1beta/models/{FLASH}:generateContent"
    assert seen.headers["x-goog-api-key"] == "gk-test"  # the gateway's key, never the client's
    assert seen.body == {
        "contents": [{"parts": [{"text": "Hi"}], "role": "user"}],
        "systemInstruction": {"parts": [{"text": "Be brief."}], "role": "user"},
        "generationConfig": {"temperature": 0.2, "topK": 5.0},
    }


def test_a_gemini_model_streams_its_own_chunks(gateway: str, gemini: GeminiUpstream) -> None:
    chunks = list(client(gateway).models.generate_content_stream(model=FLASH, contents="Hi"))
    assert "".join(c.text or "" for c in chunks) == ANSWER
    assert chunks[-1].usage_metadata is not None
    assert chunks[-1].usage_metadata.total_token_count == USAGE["totalTokenCount"]
    assert gemini.state.requests[0].query == "alt=sse"


def test_cost_is_reported_in_a_header_and_the_body_stays_geminis(
    gateway: str, gemini: GeminiUpstream
) -> None:
    body = {"contents": [{"role": "user", "parts": [{"text": "Hi"}]}]}
    resp = httpx.post(f"{gateway}/genai/v1beta/models/{FLASH}:generateContent", json=body)
    assert resp.status_code == 200
    assert float(resp.headers["x-bifrost-cost-usd"]) > 0
    assert set(resp.json()) == {"candidates", "usageMetadata", "modelVersion", "responseId"}


# -- other providers: through Responses and back ----------------------------------------------------------


def test_an_openai_model_answers_in_geminis_shape(gateway: str, upstream: Upstream) -> None:
    config = types.GenerateContentConfig(
        system_instruction="Be brief.", max_output_tokens=50, temperature=0.5
    )
    answer = client(gateway).models.generate_content(model="openai/gpt-4o", contents="Hi", config=config)
    assert answer.text == OPENAI_ANSWER
    assert answer.candidates is not None and answer.candidates[0].finish_reason == types.FinishReason.STOP
    meta = answer.usage_metadata
    assert meta is not None
    assert (meta.prompt_token_count, meta.candidates_token_count, meta.total_token_count) == (12, 5, 17)
    assert meta.cached_content_token_count == 2  # USAGE_RESPONSES: 2 of the 12 input tokens cached
    (seen,) = upstream.state.requests
    assert seen.path == "/v1/responses"
    assert seen.body == {
        "model": "gpt-4o",
        "input": [{"role": "user", "content": "Hi"}],
        "instructions": "Be brief.",
        "max_output_tokens": 50,
        "temperature": 0.5,
    }


def test_an_openai_stream_arrives_as_gemini_chunks(gateway: str, upstream: Upstream) -> None:
    chunks = list(client(gateway).models.generate_content_stream(model="openai/gpt-4o", contents="Hi"))
    assert "".join(c.text or "" for c in chunks) == OPENAI_ANSWER
    last = chunks[-1]
    assert last.candidates is not None and last.candidates[0].finish_reason == types.FinishReason.STOP
    assert last.usage_metadata is not None and last.usage_metadata.total_token_count == 17
    assert upstream.state.requests[0].body["stream"] is True


def test_a_function_call_round_trips_through_anthropic(gateway: str, claude: AnthropicUpstream) -> None:
    """The call's id comes back in Gemini's own ``id`` field; the SDK's function response echoes it and
    Claude gets the tool_result for its tool_use."""
    c = client(gateway)
    config = types.GenerateContentConfig(tools=[types.Tool(function_declarations=[WEATHER])])
    question = types.Content(role="user", parts=[types.Part(text="Weather in Paris?")])
    first = c.models.generate_content(model="anthropic/claude-sonnet-4-6", contents=[question], config=config)
    (call,) = first.function_calls or []
    assert (call.id, call.name, call.args) == (TOOL_ID, "get_weather", {"city": "Paris"})
    assert claude.state.requests[0].body["tools"][0]["input_schema"] == {
        "type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}  # fmt: skip
    assert first.candidates is not None and first.candidates[0].content is not None
    result = types.Part.from_function_response(name="get_weather", response={"output": "sunny"})
    assert result.function_response is not None
    result.function_response.id = call.id
    history = [question, first.candidates[0].content, types.Content(role="user", parts=[result])]
    second = c.models.generate_content(model="anthropic/claude-sonnet-4-6", contents=history, config=config)
    assert second.text == TOOL_ANSWER
    turns = claude.state.requests[1].body["messages"]
    assert turns[-1]["content"] == [{"type": "tool_result", "tool_use_id": TOOL_ID, "content": "sunny"}]


def test_what_responses_cannot_express_is_a_400_naming_it(gateway: str, upstream: Upstream) -> None:
    config = types.GenerateContentConfig(stop_sequences=["END"])
    with pytest.raises(errors.ClientError) as caught:
        client(gateway).models.generate_content(model="openai/gpt-4o", contents="Hi", config=config)
    assert caught.value.code == 400
    assert caught.value.status == "INVALID_ARGUMENT"
    assert "stopSequences" in str(caught.value.message)
    assert upstream.state.requests == []


# -- token counts, model lists, errors --------------------------------------------------------------------


def test_count_tokens_native_and_translated(gateway: str, gemini: GeminiUpstream, upstream: Upstream) -> None:
    c = client(gateway)
    assert c.models.count_tokens(model=FLASH, contents="one two three").total_tokens == 3
    assert gemini.state.requests[0].path == f"/v1beta/models/{FLASH}:countTokens"
    # openai models are counted locally with tiktoken, exactly as the same Responses input is counted.
    counted = c.models.count_tokens(model="openai/gpt-4o", contents="one two three").total_tokens
    same = {"model": "openai/gpt-4o", "input": [{"role": "user", "content": "one two three"}]}
    assert counted == httpx.post(f"{gateway}/v1/responses/input_tokens", json=same).json()["input_tokens"]
    assert upstream.state.requests == []


def test_the_model_list_names_models_usable_on_this_prefix(gateway: str, gemini: GeminiUpstream) -> None:
    c = client(gateway)
    names = [m.name for m in c.models.list()]
    assert f"models/{FLASH}" in names and "models/openai/gpt-4o" in names
    assert all(name is not None and not name.startswith("models/gemini/") for name in names)
    model = c.models.get(model=FLASH)
    assert model.name == f"models/{FLASH}"
    with pytest.raises(errors.ClientError) as caught:
        c.models.get(model="no-such-model")
    assert (caught.value.code, caught.value.status) == (404, "NOT_FOUND")


def test_upstream_errors_come_back_in_googles_shape(gateway: str, gemini: GeminiUpstream) -> None:
    with pytest.raises(errors.ClientError) as caught:
        client(gateway).models.generate_content(model="openai/status-429", contents="Hi")
    assert (caught.value.code, caught.value.status) == (429, "RESOURCE_EXHAUSTED")
    with pytest.raises(errors.ServerError) as server:
        client(gateway).models.generate_content(model="status-503", contents="Hi")
    assert (server.value.code, server.value.status) == (503, "UNAVAILABLE")


def test_an_unknown_method_is_a_404_in_googles_shape(gateway: str) -> None:
    resp = httpx.post(f"{gateway}/genai/v1beta/models/{FLASH}:predictLongRunning", json={})
    assert resp.status_code == 404
    assert resp.json()["error"]["status"] == "NOT_FOUND"


def test_fallbacks_in_the_body_reach_another_provider(gateway: str, gemini: GeminiUpstream) -> None:
    body = {"contents": [{"parts": [{"text": "Hi"}]}], "fallbacks": ["openai/gpt-4o"]}
    resp = httpx.post(f"{gateway}/genai/v1beta/models/status-500:generateContent", json=body)
    assert resp.status_code == 200
    assert resp.json()["candidates"][0]["content"]["parts"] == [{"text": OPENAI_ANSWER}]
    assert resp.headers["x-bifrost-provider"] == "openai"
    assert "fallbacks" not in orjson.loads(gemini.state.requests[0].raw)


# -- the same dialect under the framework prefixes and both API versions ------------------------------------


@pytest.mark.parametrize("prefix", ["/langchain", "/litellm", "/pydanticai"])
def test_the_dialect_is_served_under_the_framework_prefixes(
    gateway: str, gemini: GeminiUpstream, prefix: str
) -> None:
    answer = client(gateway, prefix).models.generate_content(model=FLASH, contents="Hi")
    assert answer.text == ANSWER


def test_under_a_framework_prefix_v1_models_stays_the_openai_list(gateway: str) -> None:
    """google-genai lists Gemini-style on v1beta there; /v1/models is the OpenAI SDK's route."""
    names = [m.name for m in client(gateway, "/langchain", api_version="v1beta").models.list()]
    assert f"models/{FLASH}" in names
    assert httpx.get(f"{gateway}/langchain/v1/models").json()["object"] == "list"


def test_v1beta_and_v1_are_both_served(gateway: str, gemini: GeminiUpstream) -> None:
    for version in ("v1beta", "v1"):
        answer = client(gateway, api_version=version).models.generate_content(model=FLASH, contents="Hi")
        assert answer.text == ANSWER
