"""The same task ran twice (broker redelivery)."""

from __future__ import annotations

import polars as pl

from ._base import Rule, col

RULES = (
    Rule(
        name="duplicate_delivery",
        priority=90,
        when=col("duplicate_tasks") & ~col("any_error"),
        cause="duplicate_delivery",
        hop=pl.when(col("complete")).then(pl.lit("send")).otherwise(pl.lit("task")),
        outcome=pl.when(col("complete")).then(pl.lit("delivered")).otherwise(pl.lit("lost")),
        evidence=lambda f: [
            f"{f['n_task']} ws.task spans for {f['task_ids']} task id(s) of "
            f"{f.get('task_name') or 'the task'}"
        ],
        hint=lambda f: (
            "The broker redelivered the task: raise visibility_timeout above the "
            "longest task (Redis broker with acks_late) or make the task idempotent."
        ),
    ),
)
