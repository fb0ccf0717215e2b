"""The chain is still waiting as of the newest evidence: the message may still be on its way.

Only while something can still move it and someone can still receive it: the
task waits in its queue or is running, the connection is open, and the last
activity is within the horizon (``--in-flight``). The cause is the suspected
one: a task queued with no run is ``no_worker`` (naming the queue and what the
ready workers consume); anything else is ``unknown``. Past the horizon, or once
the connection closed without the answer, the message is lost.
"""

from __future__ import annotations

import polars as pl

from ._base import Rule, at, col, incomplete

_queued = (col("n_enqueue") > 0) & ~col("task_seen")


def _evidence(f):
    lines = []
    if f.get("n_enqueue") and not f.get("task_seen"):
        queue = f.get("queue") or "?"
        workers = ", ".join(f.get("consumed_queues") or [])
        if not f.get("workers_known"):
            who = "no instrumented worker reported ready"
        elif queue in (f.get("consumed_queues") or []):
            who = f"ready workers consume {workers}, none has started it"
        else:
            who = f"no ready worker consumes {queue!r} (workers consume {workers or 'none'})"
        lines.append(f"queued {f.get('idle_s', 0):.1f} s on {queue!r}; {who}")
    lines.append(
        f"last activity {at(f.get('last_ts'))}, {f.get('idle_s', 0):.1f} s before the data ends "
        f"({at(f.get('window_end'))}); next expected hop: {f['first_missing']}; connection "
        f"{f.get('connection_id')} still open"
    )
    return lines


RULES = (
    Rule(
        name="in_flight",
        priority=135,
        when=incomplete()
        & col("recent")
        & ~col("any_error")
        & col("conn_closed").is_null()
        & (col("task_open") | _queued | (col("gaps") == 0)),
        cause=pl.when(_queued).then(pl.lit("no_worker")).otherwise(pl.lit("unknown")),
        hop=col("first_missing"),
        outcome="in_flight",
        evidence=_evidence,
        hint=lambda f: (
            "Still waiting when the data ends: analyze again later (or with --at), or widen the "
            "horizon with --in-flight. If it stays queued, start a worker for its queue."
        ),
    ),
)
