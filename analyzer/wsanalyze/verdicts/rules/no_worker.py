"""Enqueued, never started: queue not consumed, task not registered, or no worker running."""

from __future__ import annotations

from ._base import Rule, at, col, incomplete

_never_started = incomplete() & (col("n_enqueue") > 0) & ~col("task_seen") & ~col("any_error")
# from logs alone, "no worker received it" needs the workers' logs, going on past the
# horizon (a busy worker may still take it) or ending with every worker's shutdown
_enqueued_only = _never_started & (
    ~col("log_only") | (col("worker_logs") & (~col("recent") | col("workers_stopped")))
)
# a queue no worker's banner lists is not consumed, however recent the enqueue
_unconsumed = (
    col("workers_known")
    & col("queue").is_not_null()
    & ~col("consumed_queues").list.contains(col("queue"))
)


def _queues(f):
    return ", ".join(f.get("consumed_queues") or []) or "none"


def _evidence(f):
    if f.get("src_enqueue") == "log":
        lines = [
            f"the app logged the enqueue of {f.get('task_name') or 'the task'} "
            f"(queue {f.get('queue')!r}) at {at(f.get('ts_enqueue'))}; no worker's log says "
            "it was received"
        ]
        if f.get("workers_known"):
            lines.append(f"the workers' start-up banners list the queues: {_queues(f)}")
        if f.get("workers_stopped"):
            lines.append("every worker whose log was read ended with its shutdown")
        return lines
    lines = [
        f"ws.enqueue of {f.get('task_name') or 'the task'} to queue {f.get('queue')!r} at "
        f"{at(f.get('ts_enqueue'))}; no ws.task"
    ]
    if f.get("workers_known"):
        lines.append(f"ready workers consume: {_queues(f)}")
    else:
        lines.append("no ws.worker_ready span: no instrumented worker started in this window")
    return lines


def _hint(f):
    queue = f.get("queue") or "<queue>"
    if f.get("workers_known") and queue not in (f.get("consumed_queues") or []):
        return (
            f"No worker consumes queue {queue!r} (workers consume {_queues(f)}): start one with "
            f"`celery worker -Q {queue}` or route {f.get('task_name') or 'the task'} to a "
            "consumed queue (task_routes)."
        )
    return (
        "No worker started the task: check that a worker is running, consumes the queue, and "
        "imports the task module (look for 'Received unregistered task')."
    )


RULES = (
    Rule(
        name="no_worker_queue",
        priority=140,
        when=_never_started & (~col("log_only") | col("worker_logs")) & _unconsumed,
        cause="no_worker",
        hop="task",
        evidence=_evidence,
        hint=_hint,
    ),
    Rule(
        name="no_worker",
        priority=160,
        when=_enqueued_only,
        cause="no_worker",
        hop="task",
        evidence=_evidence,
        hint=_hint,
    ),
)
