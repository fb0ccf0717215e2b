"""The in-memory channel layer's silent drop: group_send swallows ChannelFull, wstrace does not."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

from wstrace import conventions as c

from .spans import by_name, read_spans

ROOT = Path(__file__).resolve().parents[2]

SCRIPT = textwrap.dedent(
    """
    import asyncio, sys
    import django
    from django.conf import settings

    settings.configure(
        INSTALLED_APPS=["channels", "wstrace"],
        CHANNEL_LAYERS={"default": {
            "BACKEND": "channels.layers.InMemoryChannelLayer", "CONFIG": {"capacity": 2},
        }},
        WSTRACE={"FILE_DIR": sys.argv[1], "SERVICE_NAME": "memory"},
    )
    django.setup()
    from channels.layers import get_channel_layer
    from wstrace import provider

    async def main():
        layer = get_channel_layer()
        channel = await layer.new_channel()
        await layer.group_add("chat_g", channel)
        for seq in range(3):  # nobody receives: the third finds the channel full
            await layer.group_send("chat_g", {"type": "chat.message", "n": seq})
        await layer.send(channel, {"type": "chat.message", "n": 9})  # raises ChannelFull

    try:
        asyncio.run(main())
    except Exception as exc:
        print(type(exc).__name__)
    provider.flush()
    """
)


def test_group_send_into_a_full_in_memory_channel_is_recorded_not_swallowed(tmp_path: Path) -> None:
    result = subprocess.run(
        [sys.executable, "-c", SCRIPT, str(tmp_path)],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=ROOT,
        env={"PATH": "/usr/bin:/bin", "PYTHONPATH": str(ROOT / "instrumentation")},
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "ChannelFull"  # the app still sees what it saw before
    publishes = sorted(by_name(read_spans(tmp_path), "ws.publish"), key=lambda s: s.start_ns)
    group_sends = [s for s in publishes if s.attributes.get(c.EVENT) == c.EV_GROUP_SEND]
    assert [s.attributes.get(c.OVER_CAPACITY) for s in group_sends] == [0, 0, 1]
    assert [s.attributes.get(c.MEMBERS) for s in group_sends] == [1, 1, 1]
    full = group_sends[2]
    assert full.is_error and full.attributes.get(c.CAUSE) == "channel_full"
    (send,) = [s for s in publishes if s.attributes.get(c.EVENT) == c.EV_CHANNEL_SEND]
    assert send.is_error and send.attributes.get(c.CAUSE) == "channel_full"
    assert c.OVER_CAPACITY not in send.attributes  # it raised: no "fitted" evidence
