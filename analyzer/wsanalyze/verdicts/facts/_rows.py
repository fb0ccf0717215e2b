"""Row expressions every fact module shares: which rows errored, their exception and end,
and how sure a row is (spans exact, log rows their confidence)."""

from __future__ import annotations

import polars as pl

from ..logchains import RANK


def hop_is(hop: str) -> pl.Expr:
    """Rows of one hop."""
    return pl.col("hop") == hop


NOT_ERRORS = r"StopConsumer|CancelledError"
"""A consumer's normal exit, not an error."""


def errored() -> pl.Expr:
    """Rows with an error status (a consumer's normal StopConsumer is not an error)."""
    benign = pl.col("exception").str.contains(NOT_ERRORS).fill_null(False)
    return (pl.col("status") == "error") & ~benign


def first_where(column: str, cond: pl.Expr) -> pl.Expr:
    """The first non-null value of ``column`` among the rows where ``cond`` holds, per group."""
    return pl.col(column).filter(cond).drop_nulls().first()


def exception_text() -> pl.Expr:
    """What went wrong, as the row says it: its exception, else its status message."""
    return pl.coalesce(pl.col("exception"), pl.col("status_message"))


def row_end() -> pl.Expr:
    """When the row ended: a span's end, else (an event, a log line) its time."""
    return pl.coalesce(pl.col("end_ts"), pl.col("ts"))


def distinct_count(column: str) -> pl.Expr:
    """Distinct non-null values of a (masked) column, per group."""
    col = pl.col(column)
    return (col.n_unique() - (col.null_count() > 0).cast(pl.UInt32)).cast(pl.Int64)


def conf_rank() -> pl.Expr:
    """How sure a row is: spans 0 (exact); log rows their confidence's rank."""
    rank = pl.col("confidence").replace_strict(RANK, default=2, return_dtype=pl.Int32)
    return pl.when(pl.col("source") == "log").then(rank).otherwise(pl.lit(0, pl.Int32))


def confidence_name(column: str) -> pl.Expr:
    """A confidence rank column back to its name."""
    names = {v: k for k, v in RANK.items()}
    return pl.col(column).replace_strict(names, default="time", return_dtype=pl.String)
