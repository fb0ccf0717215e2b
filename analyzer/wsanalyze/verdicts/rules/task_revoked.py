"""The task was revoked or terminated: a Stop button, an expiry, a signal.

Celery's ``task_revoked`` (recorded as ``ws.task_revoked`` by the worker's main
process, since a terminated child never exports its own span) names the task;
a ``ws.revoke`` span in the web process names the client frame that asked.
"""

from __future__ import annotations

from ._base import Rule, at, col


def _evidence(f):
    what = "ws.task_revoked (span)"
    if f.get("revoked_from_log"):
        what = "the worker's revoke line (Terminating / Discarding revoked task, from its log)"
    lines = [
        f"{what} for {f.get('task_name') or 'the task'} at {at(f.get('revoked_ts'))}"
        + (f": {f['err_exc']}" if f.get("err_exc") else "")
        + (f" ({f['revoked_how']})" if f.get("revoked_from_log") and f.get("revoked_how") else "")
    ]
    if f.get("revoked_by"):
        kind = f" (a {f['revoked_by_type']!r} frame)" if f.get("revoked_by_type") else ""
        lines.append(
            f"revoked by message {f['revoked_by']}{kind} at {at(f.get('revoke_ts'))} "
            "(ws.revoke in the web process)"
        )
    if f.get("log_only"):
        lines.append(
            "chunks are not in the logs (wstrace's ws.publish/ws.send spans would count them)"
        )
    else:
        lines.append(
            f"chunks published {f['published']}, delivered {f['delivered']}, sent {f['sent']}"
        )
    return lines


def _hint(f):
    if f.get("revoked_by"):
        return (
            "The client asked to stop this answer: expected. Send a terminal 'stopped' frame so "
            "the client can tell a stop from a loss."
        )
    return (
        "Something revoked the task: check who calls revoke(), the task's expires= and the "
        "worker's signals; send a terminal frame when a task is cancelled."
    )


RULES = (
    Rule(
        name="task_revoked",
        priority=8,
        when=col("revoked"),
        cause="task_revoked",
        hop="task",
        evidence=_evidence,
        hint=_hint,
    ),
)
