"""Helpers of the example-app tests."""

from __future__ import annotations

import uuid

from wsanalyze.demo.chatapp_faults import FAULTS

LAYERS = ("core", "pubsub")
CAPACITY = 20  # a small channel capacity keeps fault:channel_full (3 x capacity chunks) quick
APP_ENV = {"CHAT_CHANNEL_CAPACITY": str(CAPACITY)}


def stack_kwargs(layer: str, wstrace_enabled: bool, **extra: object) -> dict:
    """Kwargs of the package's shared stacks (same kwargs, same stack)."""
    return {"layer": layer, "wstrace_enabled": wstrace_enabled, "env": APP_ENV, **extra}


def fault_stack(layer: str, scenario: str, wstrace_enabled: bool) -> dict:
    """Kwargs of the stack whose worker is configured for a deployment fault scenario."""
    worker_env = FAULTS[scenario].worker_env
    return stack_kwargs(layer, wstrace_enabled, worker_env=worker_env)


FAULT_STACKS = [
    ("core", "channel_layer_unavailable"),
    ("core", "layer_mismatch"),
    ("pubsub", "layer_mismatch"),
]


def new_conversation() -> str:
    """Return a fresh conversation id, so no test sees another's group."""
    return uuid.uuid4().hex[:12]
