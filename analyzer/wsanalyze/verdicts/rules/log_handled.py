"""From logs: the consumer received the message, started no work for it, and raised nothing.

An echo, a typing event or a ping is handled inside the consumer: no task, no answer to
wait for. The app logged the frame received; no error line followed and its socket did
not crash, so it is ``delivered`` with confidence ``inferred`` (no line shows what the
consumer sent back; wstrace's ws.receive / ws.send spans would).
"""

from __future__ import annotations

from ._base import Rule, at, col


def _evidence(f):
    return [
        f"the app logged the message received at {at(f.get('ts_receive'))}; it enqueued no "
        "task for it and no error line followed",
        "inferred: no line shows what the consumer did with it; wstrace's ws.receive and "
        "ws.send spans would make it certain",
    ]


RULES = (
    Rule(
        name="log_handled",
        priority=174,
        when=col("log_only")
        & col("complete")
        & ~col("any_error")
        & (col("n_enqueue") == 0)
        & (col("tasks_done") == 0)
        & (col("n_receive") > 0),
        cause="ok",
        hop="send",
        outcome="delivered",
        evidence=_evidence,
        hint=lambda f: "Nothing to fix (inferred from logs; enable wstrace to be certain).",
    ),
)
