"""The server refused the message itself: a policy close (4004, 4005 …) right at its receive.

Rejected, not lost: the server meant it. The close names the message when it was
written from inside the message's own ``ws.receive`` (its parent), or, without
that link, when it came within a moment of a message that started no work.
"""

from __future__ import annotations

from datetime import timedelta

import polars as pl

from ._base import Rule, at, col

_MOMENT = timedelta(seconds=2)

_by_this_message = col("receive_spans").list.contains(col("conn_close_parent")).fill_null(False)
_right_after = (
    col("conn_close_parent").is_null()
    & col("handled")
    & col("ts_receive").is_not_null()
    & (col("conn_close_ts") >= col("ts_receive"))
    & ((col("conn_close_ts") - col("ts_receive")) <= pl.lit(_MOMENT))
).fill_null(False)


def _evidence(f):
    code = f.get("conn_close_code")
    return [
        f"ws.receive at {at(f.get('ts_receive'))}, then the server closed connection "
        f"{f.get('connection_id')} with {code if code is not None else '?'} at "
        f"{at(f.get('conn_close_ts'))} → {f['conn_cause']} (a policy close: refused on purpose)"
    ]


RULES = (
    Rule(
        name="refused",
        priority=95,
        when=(col("conn_outcome") == "rejected")
        & (col("conn_closed_by") == "server")
        & (col("conn_hop") == "receive")
        & (_by_this_message | _right_after),
        cause=col("conn_cause"),
        hop="receive",
        outcome="rejected",
        evidence=_evidence,
    ),
)
