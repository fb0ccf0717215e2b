"""From logs: the task finished while the socket stayed open, and the consumer, which logs
every answer it sends, logged none for this message.

The loss is between the worker's publish and the socket, where a log line seldom
speaks: a consumer out of its group (``consumer_gone``), a worker on another channel
layer (``layer_mismatch``), a handler that dropped it. The cause is ``unknown``, naming
those candidates; the app's group join/leave lines or wstrace's ws.publish / ws.deliver
spans would tell which.
"""

from __future__ import annotations

from ._base import Rule, at, col


def _evidence(f):
    return [
        f"the task finished at {at(f.get('task_end_ts'))} while connection "
        f"{f.get('connection_id') or '?'} was open",
        f"the app on {f.get('receive_service')} logs the answers it sends on the socket, and "
        "logged none for this message: lost between the publish and the socket (a consumer "
        "out of its group, a worker on another channel layer, a dropped event); "
        "wstrace's ws.publish / ws.deliver spans would name it",
    ]


RULES = (
    Rule(
        name="log_unsent",
        priority=150,
        when=col("log_only")
        & col("log_before")
        & col("log_unsent")
        & ~col("any_error")
        & ~col("empty_publish")
        & ~col("channel_full"),
        cause="unknown",
        hop="deliver",
        evidence=_evidence,
        hint=lambda f: (
            "Check that the consumer is in the group the worker publishes to when it "
            "publishes, and that web and worker use the same CHANNEL_LAYERS."
        ),
    ),
)
