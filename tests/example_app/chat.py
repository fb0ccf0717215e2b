"""Helpers of the example-app tests."""

from __future__ import annotations

import uuid


def new_conversation() -> str:
    """Return a fresh conversation id, so no test sees another's group."""
    return uuid.uuid4().hex[:12]
