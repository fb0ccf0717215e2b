"""Chunks published to a live member and never delivered.

channels_redis skips a channel that is at capacity inside group_send without an
error. When the publisher's capacity check was not visible (no ``ws.over_capacity``
at all: an older wstrace, a layer it cannot see into) the gap in ``ws.seq``
between publish and deliver, with the consumer still in the group and
connected, is the remaining signal: ``channel_full``. When the check was seen
and refused nothing, capacity is ruled out and the gap stays unexplained
(``unknown`` at ``deliver``, saying what is known).
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


def _undispatched_evidence(f):
    missing = f["published"] - f["delivered"]
    target = f.get("publish_group") or "the group"
    if f.get("min_receivers") is not None:  # pub/sub: PUBLISH counts, no capacity exists
        return [
            f"{missing} of {f['published']} chunk(s) published to {target} reached "
            f"{f['min_receivers']} subscriber(s) and were never delivered",
            "the pub/sub layer has no capacity limit and no drop was recorded: not channel_full",
        ]
    return [
        f"{missing} of {f['published']} chunk(s) published to {target} "
        f"with {f.get('min_members')} member(s) were never delivered",
        "the layer's capacity check ran and refused none (ws.over_capacity=0), and no "
        "receive-buffer drop (ws.drop) was recorded: not channel_full",
        "the chunk reached a live member's channel and the consumer never dispatched it",
    ]


_CAPACITY_RULED_OUT = col("capacity_checked") | col("min_receivers").is_not_null()


_GAP = (
    incomplete()
    & ~col("any_error")
    & ~col("task_open")
    & (col("delivered") < col("published"))
    & (col("delivered") > 0)
    & (col("min_members").fill_null(1) > 0)
    & ~col("empty_publish")
    & (col("conn_closed").is_null() | (col("conn_closed") > col("last_publish_ts")))
)

RULES = (
    Rule(
        name="undispatched_gap",
        priority=154,
        when=_GAP & _CAPACITY_RULED_OUT & (col("dropped") == 0),
        cause="unknown",
        hop="deliver",
        evidence=_undispatched_evidence,
        hint=lambda f: (
            "The chunk reached the consumer's channel and was never dispatched: nothing "
            "refused it and nothing dropped it, so it is still in the web process's channel "
            "layer (its Redis list or its receive buffer) or was lost inside it. Check "
            "whether the consumer's event loop was blocked, whether the message arrived "
            "later, and the channels_redis version (its receive path is the suspect)."
        ),
    ),
    Rule(
        name="channel_full_gaps",
        priority=155,
        when=_GAP & ~_CAPACITY_RULED_OUT,
        cause="channel_full",
        hop="publish",
        evidence=_evidence,
        hint=lambda f: (
            "The consumer's channel overflowed while the answer streamed: send fewer, "
            "larger chunks, raise the layer's capacity, and keep the consumer's handlers short."
        ),
    ),
)
