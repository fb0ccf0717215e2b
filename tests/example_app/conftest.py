"""Fixtures of the example-app tests: shared stacks per layer and instrumentation mode."""

from __future__ import annotations

import importlib.util
from typing import Any

import pytest
from wsanalyze.demo.stack import Stack

WSTRACE_AVAILABLE = bool(importlib.util.find_spec("wstrace")) and bool(
    importlib.util.find_spec("wstrace.apps")
)

LAYERS = ("core", "pubsub")


@pytest.fixture(scope="session", autouse=True)
def _boot_shared_stacks(shared_stack: Any) -> None:
    """Boot the shared stacks of this package in parallel rather than one by one."""
    modes = [False, True] if WSTRACE_AVAILABLE else [False]
    shared_stack.prestart(
        *({"layer": layer, "wstrace_enabled": mode} for layer in LAYERS for mode in modes)
    )


@pytest.fixture
def core_stack(shared_stack: Any, wstrace_enabled: bool) -> Stack:
    """The session's RedisChannelLayer stack, instrumentation off or on."""
    return shared_stack(layer="core", wstrace_enabled=wstrace_enabled)


@pytest.fixture(params=LAYERS)
def any_layer_stack(
    request: pytest.FixtureRequest, shared_stack: Any, wstrace_enabled: bool
) -> Stack:
    """The session's stack on each channel layer, instrumentation off or on."""
    return shared_stack(layer=request.param, wstrace_enabled=wstrace_enabled)
