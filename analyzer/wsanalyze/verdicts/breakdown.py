"""Per message: the streams its answer came in and what each receiving connection got.

The counts behind a report's chunk breakdown, read from the annotated table
(``answers.annotate``): only publishes that answer the conversation count.
"""

from __future__ import annotations

import polars as pl
from wstrace import conventions as c

from .answers import not_errored


def _producer() -> pl.Expr:
    """A readable name for the run a stream came from."""
    task = pl.concat_str(
        pl.lit("task "), pl.col("_r_task").fill_null("?"), pl.lit(" on "), pl.col("_r_service")
    )
    return (
        pl.when(pl.col("_r_name").is_null())
        .then(pl.lit("a run whose spans never reached the store (its process died)"))
        .when(pl.col("_r_event") == c.EV_HTTP_REQUEST)
        .then(pl.concat_str(pl.lit("HTTP request on "), pl.col("_r_service")))
        .when(pl.col("_r_hop") == c.HOP_TASK)
        .then(task)
        .when(pl.col("_r_hop") == c.HOP_RECEIVE)
        .then(pl.concat_str(pl.lit("the receive handler on "), pl.col("_r_service")))
        .when(pl.col("_r_hop") == c.HOP_DELIVER)
        .then(pl.concat_str(pl.lit("a delivery handler on "), pl.col("_r_service")))
        .otherwise(pl.concat_str(pl.col("_r_name"), pl.lit(" on "), pl.col("_r_service")))
    )


def breakdown(annotated: pl.DataFrame) -> tuple[pl.DataFrame, pl.DataFrame]:
    """(per message and stream, per message and receiving connection) counts of answering chunks."""
    runs = (
        annotated.filter(pl.col("span_id").is_not_null())
        .select(
            pl.col("span_id").alias("_stream"),
            pl.col("name").alias("_r_name"),
            pl.col("event").alias("_r_event"),
            pl.col("hop").alias("_r_hop"),
            pl.col("service").fill_null("?").alias("_r_service"),
            pl.col("task_name").alias("_r_task"),
        )
        .unique("_stream", keep="first")
    )
    ok_pub = (
        (pl.col("hop") == c.HOP_PUBLISH)
        & pl.col("_answers")
        & pl.col("message_id").is_not_null()
        & ~(_raised()).fill_null(False)
    )
    streams = (
        annotated.filter(ok_pub)
        .group_by("message_id", "_stream")
        .agg(
            pl.len().cast(pl.Int64).alias("published"),
            pl.col("_n_dlv").sum().cast(pl.Int64).alias("delivered"),
            pl.col("_n_sent").sum().cast(pl.Int64).alias("sent"),
            (pl.col("_n_dlv") == 0).sum().cast(pl.Int64).alias("gaps"),
            pl.col("ts").min().alias("_first"),
        )
        .join(runs, on="_stream", how="left")
        .with_columns(producer=_producer())
        .sort("message_id", "_first")
        .select(
            "message_id",
            pl.col("_stream").alias("stream"),
            "producer",
            "published",
            "delivered",
            "sent",
            "gaps",
        )
    )
    answering = annotated.filter(ok_pub).select(pl.col("span_id").alias("_pub_of"))
    delivers = annotated.filter(
        (pl.col("hop") == c.HOP_DELIVER)
        & not_errored()
        & pl.col("message_id").is_not_null()
        & pl.col("connection_id").is_not_null()
        & (pl.col("event") != c.EV_BUFFER_OVERFLOW)
    )
    receivers = (
        pl.concat(
            [
                delivers.join(answering, on="_pub_of", how="semi"),
                delivers.filter(pl.col("_dlv_orphan")),
            ]
        )
        .group_by("message_id", "connection_id")
        .agg(
            pl.len().cast(pl.Int64).alias("delivered"),
            pl.col("_d_sends").fill_null(0).sum().cast(pl.Int64).alias("sent"),
        )
        .sort("message_id", "connection_id")
    )
    return streams, receivers


def _raised() -> pl.Expr:
    """Rows whose span raised: a publish that raised sent no chunk (a StopConsumer exit is no raise)."""
    benign = pl.col("exception").str.contains(r"StopConsumer|CancelledError").fill_null(False)
    return pl.col("exception").is_not_null() & ~benign
