"""The public surface: what each public module exports (pinned), and that the framework adapters in
contrib/ use nothing else (sentry-python's and httpx's rule: integrations import no private names)."""

from __future__ import annotations

import ast
import importlib
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

import bifrost_asgi

CONTRIB = Path(__file__).resolve().parent.parent / "contrib"

# The modules contrib/ may import from; everything else in bifrost_asgi is internal and may change.
PUBLIC_MODULES = frozenset(
    {
        "bifrost_asgi",
        "bifrost_asgi.adapters",
        "bifrost_asgi.config",
        "bifrost_asgi.errors",
        "bifrost_asgi.governance",
        "bifrost_asgi.observability",
        "bifrost_asgi.providers",
        "bifrost_asgi.stores",
        "bifrost_asgi.types",
    }
)

PINNED = {
    "bifrost_asgi": [
        "BifrostError",
        "BifrostMiddleware",
        "ConfigError",
        "GatewayConfig",
        "OwnerDirectory",
        "Principal",
        "__version__",
        "create_app",
    ],
    "bifrost_asgi.adapters": [
        "BridgedResponse",
        "GatewayRuntime",
        "LoopThread",
        "OwnerDirectory",
        "PRINCIPAL_SCOPE_KEY",
        "Principal",
        "SAFE_METHODS",
        "SyncResponse",
        "build_scope",
        "call_gateway",
        "call_gateway_sync",
        "carries_virtual_key",
        "double_submit_failure",
        "encode_headers",
        "extract_virtual_key",
        "is_admin_path",
        "needs_csrf_token",
        "register_exit",
        "register_exit_for",
    ],
    "bifrost_asgi.config": [
        "ConfigError",
        "GatewayConfig",
        "GovernanceConfig",
        "KeyConfig",
        "NetworkConfig",
        "ProviderConfig",
    ],
    "bifrost_asgi.errors": [
        "BifrostError",
        "MALFORMED",
        "answered_as_is",
        "bad_response",
        "body_too_large",
        "configuration_error",
        "connection_failed",
        "credentials_exhausted",
        "csrf_failed",
        "forbidden",
        "governance_error",
        "http_error",
        "internal_error",
        "invalid_request",
        "invalid_token",
        "not_configured",
        "not_found",
        "pool_exhausted",
        "store_unavailable",
        "stream_cut",
        "timed_out",
        "too_large_answer",
        "unauthorized",
        "unreadable",
        "unsupported_operation",
        "upstream",
        "upstream_failed",
    ],
    "bifrost_asgi.observability": ["BudgetThreshold", "EVENTS", "Event", "Hooks"],
    "bifrost_asgi.governance": [
        "Budget",
        "Customer",
        "GeneratedKey",
        "ProviderGovernance",
        "ProviderRule",
        "RateLimit",
        "Team",
        "VK_PREFIX",
        "VirtualKey",
        "generate_key",
        "unique_windows",
    ],
    "bifrost_asgi.providers": [
        "Call",
        "Chunk",
        "ChunkStream",
        "FORM_GATEWAY_FIELDS",
        "GATEWAY_FIELDS",
        "HTTPProvider",
        "MEDIA_OPS",
        "OBJECTS",
        "Op",
        "Provider",
        "ProviderFactory",
        "Reply",
        "Shape",
        "StreamConverter",
        "TERMINAL_EVENTS",
        "aclose_stream",
        "check_shape",
        "client_body",
        "converted",
        "event_chunk",
        "loads_object",
        "map_transport_error",
        "object_or_none",
        "open_stream",
        "request",
        "upstream_error",
    ],
    "bifrost_asgi.stores": [
        "Admission",
        "Bound",
        "COLUMNS",
        "Claim",
        "CounterState",
        "CounterStore",
        "KeyStore",
        "Limit",
        "LogQuery",
        "LogRecord",
        "LogStore",
        "LogWriter",
        "MemoryCounterStore",
        "MemoryKeyStore",
        "RedisCounterStore",
        "SQLiteCounterStore",
        "SQLiteKeyStore",
        "SQLiteLogStore",
        "States",
        "TERMINAL_STATUSES",
        "TransactionalCounterStore",
        "admit_states",
        "apply_rule",
        "blocks",
        "fresh_window",
        "log_entry",
        "log_page",
        "log_stats",
        "month_usage",
        "parse_log_query",
        "read_states",
        "roll_window",
        "settle_states",
        "shielded",
        "shielded_admit",
    ],
    "bifrost_asgi.types": ["ASGIApp", "Headers", "Message", "Receive", "Scope", "Send"],
}


def test_public_surface_is_pinned() -> None:
    assert bifrost_asgi.__all__ == PINNED["bifrost_asgi"]


@pytest.mark.parametrize("module", sorted(PINNED))
def test_each_public_module_exports_a_pinned_sorted_list_of_names_it_has(module: str) -> None:
    public = importlib.import_module(module)
    assert public.__all__ == PINNED[module]
    assert public.__all__ == sorted(public.__all__)
    assert [name for name in public.__all__ if not hasattr(public, name)] == []


def test_the_pinned_modules_are_the_public_ones() -> None:
    assert set(PINNED) == PUBLIC_MODULES


def test_core_never_imports_a_web_framework() -> None:
    code = (
        "import sys, bifrost_asgi, bifrost_asgi.cli.main, bifrost_asgi.tokens.count\n"
        "bad = [m for m in sys.modules if m.split('.')[0] in ('django', 'flask')]\n"
        "assert not bad, bad\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True)


# -- contrib uses the public surface only ------------------------------------------------------------


def core_imports(source: str) -> Iterator[tuple[int, str, str | None]]:
    """``(line, module, name)`` for each import of bifrost_asgi in ``source`` (name None: ``import m``)."""
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            for alias in node.names:
                if _in_core(alias.name):
                    yield node.lineno, alias.name, None
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and _in_core(node.module):
            for alias in node.names:
                yield node.lineno, str(node.module), alias.name


def _in_core(module: str | None) -> bool:
    return module is not None and module.split(".")[0] == "bifrost_asgi"


def boundary_violations(source: str) -> list[str]:
    """Each import in ``source`` of a module outside `PUBLIC_MODULES`, of a ``_name``, or of a name the
    module does not list in ``__all__`` (a public module's own imports are not its surface)."""
    found = []
    for line, module, name in core_imports(source):
        shown = f"line {line}: {module}" + (f".{name}" if name else "")
        if module not in PUBLIC_MODULES or (name is not None and name.startswith("_")):
            found.append(shown)
        elif name is not None and name not in PINNED[module]:
            found.append(shown + " (not in __all__)")
    return found


def test_contrib_imports_only_public_names() -> None:
    files = sorted(CONTRIB.rglob("*.py"))
    assert len(files) > 20  # both adapters were found
    violations = {
        str(path.relative_to(CONTRIB)): found
        for path in files
        if (found := boundary_violations(path.read_text(encoding="utf-8")))
    }
    assert violations == {}


@pytest.mark.parametrize(
    "source",
    [
        "from bifrost_asgi.adapters.bridge import build_scope",  # a public name, from an internal module
        "from bifrost_asgi.governance.engine import extract_virtual_key",
        "import bifrost_asgi.stores.sqlite_logs",
        "from bifrost_asgi.stores import _MAX_VALUES",
        "from bifrost_asgi.config import ProviderKind",  # imported or defined there, but not exported
        "def view():\n    from bifrost_asgi.pipeline.journey import new_request_id\n",  # a lazy import too
    ],
)
def test_a_private_import_is_a_violation(source: str) -> None:
    assert len(boundary_violations(source)) == 1


def test_public_imports_are_not_violations() -> None:
    source = (
        "import bifrost_asgi\n"
        "from bifrost_asgi import create_app\n"
        "from bifrost_asgi.adapters import Principal, build_scope\n"
        "from bifrost_asgi.stores import LogRecord\n"
        "from .views import _private_of_the_adapter_itself\n"
    )
    assert boundary_violations(source) == []
