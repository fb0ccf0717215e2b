"""The task started and never finished: worker lost, time limit, or no end well before the data ends."""

from __future__ import annotations

from ._base import Rule, at, col, exc, incomplete, source, span_source

_HINT = (
    "Set soft/hard time limits on the task, catch SoftTimeLimitExceeded to send a terminal "
    "chunk, and check the worker for OOM kills."
)


def _open_evidence(f):
    lines = [f"{source(f, 'task')}: started at {at(f.get('ts_task'))}, no end"]
    if not f.get("n_task"):
        lines = [f"{f['n_publish']} ws.publish span(s) exist but their ws.task never ended"]
    lines.append(
        f"last activity {at(f.get('last_ts'))}; the data ends at {at(f.get('window_end'))}"
    )
    return lines


def _lost_run_evidence(f):
    lines = []
    if f.get("orphan_deliveries"):
        lines.append(
            f"{f['orphan_deliveries']} chunk(s) were delivered (and {f['sent']} sent) from "
            f"{f.get('orphan_publishes') or '?'} ws.publish span(s) that never reached the store"
        )
    if f.get("absent_run"):
        lines.append(
            f"ws.publish spans hang under span {f['absent_run']}, which never reached the store"
        )
    lines.append(
        "the process that ran the task died before exporting its spans (worker lost: SIGKILL, "
        "OOM, a crash); the delivered chunks prove the task did start"
    )
    lines.append(
        f"last activity {at(f.get('last_ts'))}; the data ends at {at(f.get('window_end'))}"
    )
    return lines


def _stuck_error(f):
    if f.get("task_lost"):
        return f"{span_source(f, 'task')}: {exc(f)}"
    return f"{source(f, 'task')}: ended with {exc(f)}"


# Past this, a run's spans would have been exported (the flush interval is 1 s).
_EXPORT_GRACE_S = 3.0

RULES = (
    Rule(
        name="task_lost_process",
        priority=48,
        when=col("run_lost")
        & col("task_open")
        & ~col("any_error")
        & (col("idle_s") > _EXPORT_GRACE_S),
        cause="task_stuck",
        hop="task",
        evidence=_lost_run_evidence,
        hint=lambda f: _HINT,
    ),
    Rule(
        name="task_stuck_error",
        priority=50,
        when=(col("err_hop") == "task") & col("exc_stuck"),
        cause="task_stuck",
        hop="task",
        evidence=lambda f: [_stuck_error(f)],
        hint=lambda f: _HINT,
    ),
    Rule(
        name="task_stuck",
        priority=170,
        when=col("task_open") & incomplete() & ~col("any_error"),
        cause="task_stuck",
        hop="task",
        evidence=_open_evidence,
        hint=lambda f: _HINT,
    ),
)
