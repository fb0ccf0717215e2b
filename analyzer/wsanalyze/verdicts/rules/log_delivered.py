"""From logs: the task succeeded while the connection was open (it closed normally later).

No log shows a frame reaching the client, so this is ``delivered`` with confidence
``inferred``: a consumer out of its group, a worker on another layer or dropped
chunks are silent in every log. wstrace's ``ws.send`` spans would make it certain.
"""

from __future__ import annotations

from ._base import Rule, at, col


def _evidence(f):
    closed = (
        f"connection {f.get('connection_id')} closed at {at(f.get('conn_closed'))}, after it"
        if f.get("conn_closed")
        else f"connection {f.get('connection_id') or '?'} still open when the logs end"
    )
    return [
        f"the task succeeded at {at(f.get('task_end_ts'))}; {closed}",
        "inferred: no log line shows the frames reaching the client; wstrace's ws.send spans "
        "would make it certain (and show silent losses: consumer_gone, layer_mismatch)",
    ]


RULES = (
    Rule(
        name="log_delivered",
        priority=176,
        when=col("log_only") & col("complete") & ~col("any_error"),
        cause="ok",
        hop="send",
        outcome="delivered",
        evidence=_evidence,
        hint=lambda f: "Nothing to fix (inferred from logs; enable wstrace to be certain).",
    ),
)
