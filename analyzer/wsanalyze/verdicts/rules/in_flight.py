"""The evidence ends at the edge of the data window: the message may still be on its way.

Only while something can still move it: the task is running, the task waits in its
queue, or the connection is still open to receive what was published.
"""

from __future__ import annotations

from ._base import Rule, at, col, incomplete


def _evidence(f):
    return [
        f"last activity {at(f.get('last_ts'))}, {f.get('idle_s', 0):.1f} s before the data ends "
        f"({at(f.get('window_end'))}); next expected hop: {f['first_missing']}"
    ]


RULES = (
    Rule(
        name="in_flight",
        priority=150,
        when=incomplete()
        & col("recent")
        & ~col("any_error")
        & (
            col("task_open")
            | ((col("n_enqueue") > 0) & ~col("task_seen"))
            | col("conn_closed").is_null()
        ),
        cause="unknown",
        hop=col("first_missing"),
        outcome="in_flight",
        evidence=_evidence,
        hint=lambda f: (
            "Still in progress when the data ends: analyze again later, or widen "
            "the window (--until)."
        ),
    ),
)
