"""Fixtures of the example-app tests: shared stacks per layer and instrumentation mode."""

from __future__ import annotations

from typing import Any

import pytest
from wsanalyze.demo.stack import Stack

from .chat import FAULT_STACKS, LAYERS, fault_stack, stack_kwargs


@pytest.fixture(scope="session", autouse=True)
def _boot_shared_stacks(shared_stack: Any, request: pytest.FixtureRequest) -> None:
    """Boot the shared stacks of this package in parallel rather than one by one."""
    modes = [False, True]
    shared_stack.prestart(*(stack_kwargs(layer, mode) for layer in LAYERS for mode in modes))
    # The deployment-fault stacks boot in the background while the other tests run.
    if any(item.path.name == "test_stack_faults.py" for item in request.session.items):
        shared_stack.launch(*(fault_stack(*a, mode) for a in FAULT_STACKS for mode in modes))


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
