"""Helpers of the example-app tests."""

from __future__ import annotations

import importlib.util
import uuid

WSTRACE_AVAILABLE = bool(importlib.util.find_spec("wstrace")) and bool(
    importlib.util.find_spec("wstrace.apps")
)

LAYERS = ("core", "pubsub")
CAPACITY = 20  # a small channel capacity keeps fault:channel_full (3 x capacity chunks) quick
APP_ENV = {"CHAT_CHANNEL_CAPACITY": str(CAPACITY)}


def stack_kwargs(layer: str, wstrace_enabled: bool, **extra: object) -> dict:
    """Kwargs of the package's shared stacks (same kwargs, same stack)."""
    return {"layer": layer, "wstrace_enabled": wstrace_enabled, "env": APP_ENV, **extra}


def new_conversation() -> str:
    """Return a fresh conversation id, so no test sees another's group."""
    return uuid.uuid4().hex[:12]
