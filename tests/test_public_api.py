from __future__ import annotations

import subprocess
import sys

import bifrost_asgi


def test_public_surface_is_pinned() -> None:
    assert bifrost_asgi.__all__ == [
        "BifrostError",
        "BifrostMiddleware",
        "ConfigError",
        "GatewayConfig",
        "OwnerDirectory",
        "Principal",
        "__version__",
        "create_app",
    ]


def test_core_never_imports_a_web_framework() -> None:
    code = (
        "import sys, bifrost_asgi, bifrost_asgi.cli.main, bifrost_asgi.tokens.count\n"
        "bad = [m for m in sys.modules if m.split('.')[0] in ('django', 'flask')]\n"
        "assert not bad, bad\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True)
