"""enqueue failed: the Celery broker refused or was unreachable."""

from __future__ import annotations

from ._base import Rule, col, exc


def _evidence(f):
    if f.get("src_enqueue") == "log":
        return (
            "no worker received the task, and the only worker's broker connection was down "
            f"when it was enqueued (from the worker's log): {exc(f)}"
        )
    return f"ws.enqueue (span) of {f.get('task_name') or 'the task'} errored: {exc(f)}"


RULES = (
    Rule(
        name="broker_unavailable",
        priority=20,
        when=col("err_hop") == "enqueue",
        cause="broker_unavailable",
        hop="enqueue",
        evidence=lambda f: [_evidence(f)],
        hint=lambda f: (
            "The broker refused the task: check CELERY_BROKER_URL and that the broker "
            "is reachable from the web process."
        ),
    ),
)
