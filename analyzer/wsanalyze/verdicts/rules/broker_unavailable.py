"""enqueue failed: the Celery broker refused or was unreachable."""

from __future__ import annotations

from ._base import Rule, col, exc

RULES = (
    Rule(
        name="broker_unavailable",
        priority=20,
        when=col("err_hop") == "enqueue",
        cause="broker_unavailable",
        hop="enqueue",
        evidence=lambda f: [f"ws.enqueue of {f.get('task_name') or 'the task'} errored: {exc(f)}"],
        hint=lambda f: (
            "The broker refused the task: check CELERY_BROKER_URL and that the broker "
            "is reachable from the web process."
        ),
    ),
)
