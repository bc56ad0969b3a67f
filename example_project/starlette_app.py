"""The gateway in a Starlette app: any Starlette/FastAPI app mounts it with one line.

Run it with ``uvicorn example_project.starlette_app:app`` and open http://127.0.0.1:8000/ai/v1/models.
"""

from __future__ import annotations

import os
from typing import Any

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import HTMLResponse
from starlette.routing import Mount, Route

from bifrost_asgi import GatewayConfig, create_app


def gateway_config() -> GatewayConfig:
    """Real OpenAI when OPENAI_API_KEY is set; otherwise the offline mock answers the same model names."""
    providers: dict[str, Any]
    if os.environ.get("OPENAI_API_KEY"):
        providers = {"openai": {"keys": [{"name": "default", "value": "env.OPENAI_API_KEY"}]}, "mock": {}}
    else:
        providers = {"mock": {"keys": [{"value": "unused", "models": ["gpt-4o-mini", "gpt-4o"]}]}}
    return GatewayConfig.from_dict({"providers": providers})


async def home(request: Request) -> HTMLResponse:
    return HTMLResponse(
        "<h1>Host app</h1><p>The AI gateway is mounted at <code>/ai</code>: "
        "<a href='/ai/v1/models'>/ai/v1/models</a></p>"
    )


def build() -> Starlette:
    return Starlette(routes=[Route("/", home), Mount("/ai", app=create_app(gateway_config()))])


app = build()
