"""Fixtures for tests on a real Docker engine (see engine.py)."""

from __future__ import annotations

import pytest

from tests.docker.engine import client_or_skip, ensure_image


@pytest.fixture(scope="session")
def docker_client():
    """A Docker client that answers (skip without an engine; fail when one is required)."""
    client = client_or_skip()
    yield client
    client.close()


@pytest.fixture(scope="session")
def image(docker_client) -> str:
    """The busybox image the test containers run (built if missing)."""
    return ensure_image(docker_client)
