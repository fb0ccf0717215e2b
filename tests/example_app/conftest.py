"""Fixtures of the example-app tests: shared stacks per layer and instrumentation mode."""

from __future__ import annotations

from typing import Any

import pytest
from wsanalyze.demo.stack import Stack


@pytest.fixture
def core_stack(shared_stack: Any, wstrace_enabled: bool) -> Stack:
    """The session's RedisChannelLayer stack, instrumentation off or on."""
    return shared_stack(layer="core", wstrace_enabled=wstrace_enabled)


@pytest.fixture(params=["core", "pubsub"])
def any_layer_stack(
    request: pytest.FixtureRequest, shared_stack: Any, wstrace_enabled: bool
) -> Stack:
    """The session's stack on each channel layer, instrumentation off or on."""
    return shared_stack(layer=request.param, wstrace_enabled=wstrace_enabled)
