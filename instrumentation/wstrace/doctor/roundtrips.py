"""``layer_roundtrip`` and ``group_roundtrip``: the channel layer carries a message.

``layer_roundtrip`` sends and receives on a fresh channel; ``group_roundtrip`` does
group_add, group_send, receive and group_discard. One probe answers both, on one layer
instance and one event loop.
"""

from __future__ import annotations

import uuid
from typing import Any

from .registry import Check, Item, Options, register
from .status import FAIL, PASS

LAYER_ROUNDTRIP = Item("layer_roundtrip")
GROUP_ROUNDTRIP = Item("group_roundtrip")


def _failure(exc: Exception) -> str:
    return "timed out" if isinstance(exc, TimeoutError) else f"{type(exc).__name__}: {exc}"


async def _direct(layer: Any, backend: str, nonce: str, timeout: float) -> Check:
    """send / receive on a fresh channel."""
    import asyncio  # here, not at the top: the analyzer imports this package and stays quick

    try:
        channel = await asyncio.wait_for(layer.new_channel(), timeout)
        await asyncio.wait_for(layer.send(channel, {"type": "wstrace.doctor", "n": nonce}), timeout)
        got = await asyncio.wait_for(layer.receive(channel), timeout)
        ok = got.get("n") == nonce
        return LAYER_ROUNDTRIP(
            PASS if ok else FAIL,
            "send → receive on a fresh channel works" if ok else "received a different message",
            [f"{backend}: send({channel}) → receive → {got.get('type')} n={got.get('n')}"],
            None if ok else "Another consumer reads this channel: check the layer prefix.",
        )
    except Exception as exc:
        what = _failure(exc)
        return LAYER_ROUNDTRIP(
            FAIL,
            f"send/receive on the layer failed ({what})",
            [f"{backend}: {what}"],
            "Make the layer's Redis reachable from this process (see redis_reachable); "
            "check hosts, password and TLS settings.",
        )


async def _grouped(layer: Any, backend: str, nonce: str, timeout: float) -> Check:
    """group_add / group_send / receive / group_discard."""
    import asyncio

    group = f"wstrace-doctor-{nonce[:12]}"
    try:
        channel = await asyncio.wait_for(layer.new_channel(), timeout)
        await asyncio.wait_for(layer.group_add(group, channel), timeout)
        await asyncio.wait_for(
            layer.group_send(group, {"type": "wstrace.doctor", "n": nonce}), timeout
        )
        got = await asyncio.wait_for(layer.receive(channel), timeout)
        await asyncio.wait_for(layer.group_discard(group, channel), timeout)
        ok = got.get("n") == nonce
        return GROUP_ROUNDTRIP(
            PASS if ok else FAIL,
            "group_add → group_send → receive works" if ok else "received a different message",
            [f"{backend}: group {group} with {channel} → received n={got.get('n')}"],
        )
    except Exception as exc:
        what = _failure(exc)
        return GROUP_ROUNDTRIP(
            FAIL,
            f"group round trip failed ({what})",
            [f"{backend}: group {group}: {what}"],
            "A group_send that never arrives means a member cannot receive: check the layer "
            "(hosts, prefix) and Redis eviction (noeviction) settings.",
        )


async def _layer_roundtrips(timeout: float) -> list[Check]:
    from channels.layers import get_channel_layer

    layer = get_channel_layer()
    if layer is None:
        msg = "get_channel_layer() returned None: CHANNEL_LAYERS is not configured"
        fix = "Configure CHANNEL_LAYERS['default'] in the settings every process loads."
        return [LAYER_ROUNDTRIP(FAIL, msg, [msg], fix), GROUP_ROUNDTRIP(FAIL, msg, [msg], fix)]
    backend = f"{type(layer).__module__}.{type(layer).__qualname__}"
    nonce = uuid.uuid4().hex
    return [
        await _direct(layer, backend, nonce, timeout),
        await _grouped(layer, backend, nonce, timeout),
    ]


@register(LAYER_ROUNDTRIP, GROUP_ROUNDTRIP)
def check_layer_roundtrips(opts: Options) -> list[Check]:
    import asyncio

    return asyncio.run(_layer_roundtrips(opts.timeout))
