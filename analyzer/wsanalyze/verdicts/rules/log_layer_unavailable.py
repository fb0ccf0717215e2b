"""From logs: a task raised a Redis connection error, so it could not reach the channel layer.

Spans would show the failing ``ws.publish``; a worker's log shows only the task's
exception. A redis-py connection or timeout error raised by the task is read as the
channel layer's Redis being unreachable (the broker was reachable: the worker got the
task), and the evidence says it is read from the exception.
"""

from __future__ import annotations

from ._base import Rule, col, exc

RULES = (
    Rule(
        name="log_layer_unavailable",
        priority=31,
        when=(col("err_hop") == "task") & col("exc_unavailable") & (col("src_task") == "log"),
        cause="channel_layer_unavailable",
        hop="publish",
        evidence=lambda f: [
            f"the task raised a Redis connection error (from the worker's log): {exc(f)}",
            "the worker received the task, so the broker was reachable: the Redis the task "
            "could not reach is the channel layer's (wstrace's ws.publish span would name it)",
        ],
        hint=lambda f: (
            "The channel layer's Redis refused the connection: point CHANNEL_LAYERS hosts at "
            "the Redis service the worker can reach and check that it is up."
        ),
    ),
)
