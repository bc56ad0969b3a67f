from __future__ import annotations

import os

import pytest

REDIS_URL = "redis://127.0.0.1:6379/0"


@pytest.fixture(scope="session")
def redis_url() -> str:
    """The local Redis server. Missing is a skip on a laptop, but a failure in CI, where .ci/run starts it."""
    try:
        import redis

        client = redis.Redis.from_url(REDIS_URL, socket_connect_timeout=1)
        try:
            client.ping()
        finally:
            client.close()
    except Exception as exc:  # ImportError or any connection failure: same verdict
        if os.environ.get("CI"):
            pytest.fail(f"Redis is required in CI but not usable at {REDIS_URL}: {exc!r}")
        pytest.skip(f"no Redis at {REDIS_URL}: {exc!r}")
    return REDIS_URL
