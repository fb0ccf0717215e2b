"""Helpers of the example-app tests."""

from __future__ import annotations

import asyncio
import uuid
from typing import Any

from wsanalyze.demo.client import Transcript, converse
from wsanalyze.demo.stack import Stack


def new_conversation() -> str:
    """Return a fresh conversation id, so no test sees another's group."""
    return uuid.uuid4().hex[:12]


def talk(
    stack: Stack, messages: list[str], *, conversation_id: str | None = None, **kwargs: Any
) -> Transcript:
    """Run one client connection in a fresh conversation (user 1's token unless ``token=``)."""
    kwargs.setdefault("token", stack.token())
    url = stack.ws_url(conversation_id or new_conversation())
    return asyncio.run(converse(url, messages, **kwargs))
