"""Fixtures of the example-app tests: shared stacks per layer and instrumentation mode."""

from __future__ import annotations

from typing import Any

import pytest
from wsanalyze.demo.stack import Stack

from .chat import LAYERS, WSTRACE_AVAILABLE, stack_kwargs


@pytest.fixture(scope="session", autouse=True)
def _boot_shared_stacks(shared_stack: Any) -> None:
    """Boot the shared stacks of this package in parallel rather than one by one."""
    modes = [False, True] if WSTRACE_AVAILABLE else [False]
    shared_stack.prestart(*(stack_kwargs(layer, mode) for layer in LAYERS for mode in modes))


@pytest.fixture
def core_stack(shared_stack: Any, wstrace_enabled: bool) -> Stack:
    """The session's RedisChannelLayer stack, instrumentation off or on."""
    return shared_stack(**stack_kwargs("core", wstrace_enabled))


@pytest.fixture(params=LAYERS)
def any_layer_stack(
    request: pytest.FixtureRequest, shared_stack: Any, wstrace_enabled: bool
) -> Stack:
    """The session's stack on each channel layer, instrumentation off or on."""
    return shared_stack(**stack_kwargs(request.param, wstrace_enabled))
