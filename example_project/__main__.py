"""``python -m example_project [--port N]``: serve the example host app and print a curl line to try."""

from __future__ import annotations

import argparse
import os

import uvicorn


def main() -> None:
    parser = argparse.ArgumentParser(prog="example_project")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8000)
    args = parser.parse_args()
    provider = (
        "OpenAI" if os.environ.get("OPENAI_API_KEY") else "the offline mock provider (no OPENAI_API_KEY)"
    )
    base = f"http://{args.host}:{args.port}"
    print(f"\nGateway mounted at {base}/ai, answering with {provider}. Try:\n")
    print(
        f"  curl -s {base}/ai/v1/chat/completions -H 'content-type: application/json' "
        """-d '{"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "Hello!"}]}'\n"""
    )
    print(f"  or with the openai SDK: OpenAI(base_url='{base}/ai/v1', api_key='unused')\n")
    uvicorn.run("example_project.starlette_app:app", host=args.host, port=args.port, log_level="info")


if __name__ == "__main__":
    main()
