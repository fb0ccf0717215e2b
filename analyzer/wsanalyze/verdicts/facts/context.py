"""Facts a message is judged against that no message holds: the workers and their queues,
the revokes, the layers its consumers joined on, the services that log their sends.

Each is one small frame joined to the message facts (per task, per message, per
conversation, or one row for the whole table).
"""

from __future__ import annotations

import polars as pl
from wstrace import conventions as c

from ..logchains import LOG_CHAIN, SENDS_LOGGED


def revokers(events: pl.LazyFrame) -> pl.LazyFrame:
    """Per revoked task id: the message (client frame) whose handler asked Celery to revoke it."""
    return (
        events.filter((pl.col("name") == c.SPAN_REVOKE) & pl.col("task_id").is_not_null())
        .sort("ts")
        .group_by("task_id")
        .agg(
            pl.col("message_id").first().alias("revoked_by"),
            pl.col("ts").first().alias("revoke_ts"),
        )
    )


def frame_types(events: pl.LazyFrame) -> pl.LazyFrame:
    """Per message id: the client frame's type (to name a revoking frame)."""
    return (
        events.filter(pl.col("frame_type").is_not_null() & pl.col("message_id").is_not_null())
        .group_by("message_id")
        .agg(pl.col("frame_type").first().alias("revoked_by_type"))
    )


def consumer_layers(events: pl.LazyFrame) -> pl.LazyFrame:
    """Per conversation: the layer fingerprints its consumers joined groups on."""
    return (
        events.filter(
            (pl.col("event") == c.EV_GROUP_ADD)
            & pl.col("layer").is_not_null()
            & pl.col("conversation_id").is_not_null()
        )
        .group_by("conversation_id")
        .agg(pl.col("layer").unique().sort().alias("consumer_layers"))
    )


def consumed_queues(events: pl.LazyFrame) -> pl.LazyFrame:
    """The queues every ready worker consumes (one row; empty list when unknown)."""
    # a Celery "ready." log line names no queues: it says nothing about what is consumed
    ready = events.filter(
        ((pl.col("event") == c.EV_WORKER_READY) | (pl.col("name") == c.SPAN_WORKER_READY))
        & ((pl.col("source") != "log") | pl.col("queues").is_not_null()).fill_null(True)
    )
    return ready.select(
        pl.col("queues").explode().drop_nulls().unique().sort().implode().alias("consumed_queues"),
        (pl.len() > 0).alias("workers_known"),
    )


def send_services(events: pl.LazyFrame) -> pl.LazyFrame:
    """The services whose app logs the frames it sends (log chain rows at ``send``; one row):
    there, a message with no such line was not sent."""
    return events.filter(
        ((pl.col("kind") == LOG_CHAIN) & (pl.col("event") == SENDS_LOGGED)).fill_null(False)
    ).select(pl.col("service").drop_nulls().unique().sort().implode().alias("send_services"))


def worker_logs(events: pl.LazyFrame) -> pl.LazyFrame:
    """Whether any Celery worker's log lines were read, and whether every worker that logged
    ended with a shutdown (one row): only then can the logs say that no worker received a
    task, or that none was left to take it.

    Celery prints ``worker: Warm shutdown (MainProcess)`` without a stamp: with no time
    it counts as the worker's last word unless the worker logged more starts than stops.
    """
    celery = events.filter(
        ((pl.col("source") == "log") & (pl.col("name") == "celery")).fill_null(False)
    )
    ready, down = pl.col("event") == c.EV_WORKER_READY, pl.col("event") == "worker_shutdown"
    per_worker = celery.group_by("service").agg(
        ready.sum().alias("_ready"),
        down.sum().alias("_down"),
        pl.col("ts").filter(ready).max().alias("_last_ready"),
        pl.col("ts").filter(down).max().alias("_last_down"),
        down.filter(pl.col("ts").is_null()).any().alias("_untimed"),
    )
    stopped = (pl.col("_down") > 0) & (
        (pl.col("_last_down") >= pl.col("_last_ready")).fill_null(False)
        | (pl.col("_last_ready").is_null())
        | (pl.col("_untimed") & (pl.col("_ready") <= pl.col("_down")))
    )
    return per_worker.select(
        (pl.len() > 0).alias("worker_logs"),
        ((pl.len() > 0) & stopped.all()).alias("workers_stopped"),
    )
