"""Chunks published to a live member and never delivered: the layer dropped them (capacity).

channels_redis skips a channel that is at capacity inside group_send without an
error; when the instrumentation could not record ``ws.over_capacity`` the gap in
``ws.seq`` between publish and deliver, with the consumer still in the group and
connected, is the remaining signal.
"""

from __future__ import annotations

from ._base import Rule, col, incomplete


def _evidence(f):
    missing = f["published"] - f["delivered"]
    return [
        f"{missing} of {f['published']} chunk(s) published to {f.get('publish_group') or 'the group'} "
        f"with {f.get('min_members')} member(s) were never delivered",
        "no ws.over_capacity recorded: inferred from the seq gap while the consumer was "
        "still in the group and connected",
    ]


RULES = (
    Rule(
        name="channel_full_gaps",
        priority=155,
        when=incomplete()
        & ~col("any_error")
        & ~col("task_open")
        & (col("delivered") < col("published"))
        & (col("delivered") > 0)
        & (col("min_members").fill_null(1) > 0)
        & ~col("empty_publish")
        & (col("conn_closed").is_null() | (col("conn_closed") > col("last_publish_ts"))),
        cause="channel_full",
        hop="publish",
        evidence=_evidence,
        hint=lambda f: (
            "The consumer's channel overflowed while the answer streamed: send fewer, "
            "larger chunks, raise the layer's capacity, and keep the consumer's handlers short."
        ),
    ),
)
