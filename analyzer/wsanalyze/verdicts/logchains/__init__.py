"""Log lines as chain rows: the one verdict engine decides from spans, from logs, or both.

Raw log rows (``source == "log"``) stay in the table as they were parsed: they are
the evidence the timeline shows, and they take part in no fact. This step adds,
beside them, **chain rows** (``kind == "log_chain"``, source "log") shaped like the
spans the instrumentation would have written, so ``facts`` and ``rules`` read them
like any other hop:

* **connections** (Daphne access lines, no spans for the conversation): one per client
  address's run WSCONNECTING … WSDISCONNECT, ``connection_id = "<service>:<client>"``
  (``#n`` when the address came back), with connect / accept / reject / disconnect
  rows. An app line with a close code joins the connection of its conversation open
  at that time (a server close code also writes a close row); Daphne's
  ``Exception inside application`` (joined by time, see ``logparse.correlate``) makes
  the disconnect a 1011 crash. Daphne alone never says who closed (``closed_by`` null).
* **tasks**: Celery's lines of one task id fold into one run row (ts = received,
  end = succeeded / raised, status, exception; a retry that ran again is the same
  run), plus an ``enqueue`` row when the app logged the enqueue (an app line with the
  task id before the worker received it) or the worker discarded it as unregistered.
  The message is the app's message id for it when a line names both, else
  ``task:<task_id>``; with spans, the ``ws.enqueue`` span's message. A task that has a
  run span gets no run row (nothing is counted twice): logs only fill what spans
  cannot hold (a worker that died before exporting).
* ``WorkerLostError`` lines carry no task id: one joins the single task its worker had
  received and not finished; with several open it joins none (ambiguous: they stay
  open, and are judged as such).

Each chain row keeps the weakest ``confidence`` of the lines it came from (exact,
path, time) and, in ``detail``, those lines (one per line), for the evidence.
"""

from __future__ import annotations

import polars as pl
from wstrace import conventions as c

from ...events import SCHEMA, conform
from ._rows import LOG_CHAIN, LOG_EVIDENCE, PRODUCERS, RANK, is_chain_log, raw_log, weakest
from .connections import _connection_rows, log_connections
from .evidence import _message_evidence
from .messages import SENDS_LOGGED, message_rows
from .tasks import _task_rows

__all__ = [
    "LOG_CHAIN",
    "LOG_EVIDENCE",
    "PRODUCERS",
    "RANK",
    "SENDS_LOGGED",
    "is_chain_log",
    "log_chains",
    "log_connections",
    "raw_log",
    "weakest",
]


def log_chains(events: pl.LazyFrame | pl.DataFrame) -> pl.LazyFrame:
    """The event table with log lines' conversations filled in and their chain rows added.

    Idempotent; a table with no log rows comes back unchanged.
    """
    if isinstance(events, pl.LazyFrame):
        logs = events.filter(pl.col("source") == "log").select(pl.len()).collect().item()
        if logs == 0:
            return events  # spans only: nothing to adapt (and nothing materialized)
        frame = events.collect()
    else:
        frame = events
    if frame.filter(pl.col("source") == "log").is_empty():
        return frame.lazy()
    if not frame.filter(is_chain_log()).is_empty():
        return frame.lazy()
    from ...logparse.correlate import correlate

    frame = correlate(frame)
    # a line whose time could not be read stays in the table but makes no chain row
    timed = frame.filter(~(raw_log() & pl.col("ts").is_null()))
    conns = log_connections(timed)
    tasks = _task_rows(timed, conns)
    runs = [r for r in tasks if r["hop"] == c.HOP_TASK and r["event"] == c.EV_TASK]
    connections = _connection_rows(timed, conns)
    closed: dict = {}
    for r in connections:
        if r["event"] == c.EV_DISCONNECT and r["ts"] is not None:
            closed[r["connection_id"]] = min(r["ts"], closed.get(r["connection_id"], r["ts"]))
    rows = connections + tasks + _message_evidence(timed) + message_rows(timed, conns, runs, closed)
    if not rows:
        return frame.lazy()
    extra = conform(pl.DataFrame(rows, schema=SCHEMA, strict=False).lazy()).collect()
    return pl.concat([frame, extra], how="vertical_relaxed").lazy()
