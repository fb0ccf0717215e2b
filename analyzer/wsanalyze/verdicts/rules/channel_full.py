"""The receiving channel was at capacity: over_capacity, a channel_full event or ChannelFull.

Tried first: when group_send found the channel full, that is where the chunks
were lost, even if the consumer's receive buffer later overflowed too (those
drops are recorded at deliver, and alone they are ``channel_full`` at deliver
through the span's own ws.cause).
"""

from __future__ import annotations

from ._base import Rule, col, exc, incomplete


def _evidence(f):
    lines = []
    if f.get("exc_channel_full"):
        lines.append(f"ws.publish raised {exc(f)}")
    if f.get("over_capacity"):
        lines.append(f"ws.publish found {f['over_capacity']} channel(s) over capacity")
    lines.append(f"chunks published {f['published']}, delivered {f['delivered']}, sent {f['sent']}")
    return lines


RULES = (
    Rule(
        name="channel_full",
        priority=5,
        when=((col("err_hop") == "publish") & col("exc_channel_full"))
        | (col("channel_full") & incomplete()),
        cause="channel_full",
        hop="publish",
        evidence=_evidence,
        hint=lambda f: (
            "The consumer's channel was full: send fewer, larger chunks, raise the "
            "layer's capacity for this channel, and keep the consumer's handlers short."
        ),
    ),
)
