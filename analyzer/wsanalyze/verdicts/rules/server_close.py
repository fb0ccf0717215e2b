"""The server closed (or crashed, or a proxy dropped) the connection while the message was pending.

A message lost this way takes the close's cause: 4004 rate_limited, 4005
invalid_message, 1011 consumer_error, 1006 idle_timeout, ... (close-code table).
Its hop is the table's hop when the message stopped there (the frame that was
refused), else where its own chain stopped (earlier messages whose answers then
found nobody to deliver to).
"""

from __future__ import annotations

import polars as pl

from ._base import Rule, at, col, from_spans, incomplete

_MESSAGE_HOPS = ["receive", "enqueue", "task", "publish", "deliver", "send"]


def _index(column: str) -> pl.Expr:
    """Position of a hop along the message chain."""
    order = {hop: i for i, hop in enumerate(_MESSAGE_HOPS)}
    return col(column).replace_strict(order, default=None, return_dtype=pl.Int32)


def _evidence(f):
    code = f.get("conn_close_code")
    by = f.get("conn_closed_by") or "?"
    return [
        f"connection {f.get('connection_id')} closed at {at(f.get('conn_closed'))} "
        f"with code {code if code is not None else '?'} (closed by {by}) → {f['conn_cause']}",
        f"the message's chain stopped before {f['first_missing']}",
    ] + (
        [f"then ws.{f['err_hop']} failed on the closed connection: {f.get('err_exc') or '?'}"]
        if f.get("err_hop")
        else []
    )


RULES = (
    Rule(
        name="server_close",
        priority=100,
        when=incomplete()
        & from_spans()
        & col("conn_outcome").is_in(["rejected", "lost"])
        & (col("conn_closed").is_null() | (col("conn_closed") >= col("first_ts"))),
        cause=col("conn_cause"),
        hop=pl.when(
            col("conn_hop").is_in(_MESSAGE_HOPS)
            & (_index("first_missing") <= _index("conn_hop") + 1)
        )
        .then(col("conn_hop"))
        .otherwise(col("first_missing")),
        evidence=_evidence,
    ),
)
