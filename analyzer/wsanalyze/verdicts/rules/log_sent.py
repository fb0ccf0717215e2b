"""From logs: the consumer logged the message's answer leaving on its socket."""

from __future__ import annotations

from ._base import Rule, at, col


def _evidence(f):
    return [
        f"the app logged the answer sent on the socket at {at(f.get('ts_send'))} "
        f"({f.get('n_send')} line(s)); its task ended at {at(f.get('task_end_ts'))}"
    ]


RULES = (
    Rule(
        name="log_sent",
        priority=175,
        when=col("log_only") & col("complete") & ~col("any_error") & (col("n_send") > 0),
        cause="ok",
        hop="send",
        outcome="delivered",
        evidence=_evidence,
        hint=lambda f: "Nothing to fix.",
    ),
)
