"""The client left while its answer was still streaming; later chunks went to an empty group."""

from __future__ import annotations

import polars as pl

from ._base import Rule, at, col, from_spans, incomplete


def _evidence(f):
    lines = [f"the client closed connection {f.get('connection_id')} at {at(f.get('conn_closed'))}"]
    if f.get("empty_publish"):
        lines.append(f"ws.publish found 0 members from {at(f.get('empty_publish_ts'))}")
    lines.append(f"chunks published {f['published']}, delivered {f['delivered']}, sent {f['sent']}")
    return lines


_before_loss = col("conn_closed") <= pl.coalesce(
    col("empty_publish_ts"), col("last_publish_ts"), col("last_ts")
)

RULES = (
    Rule(
        name="client_disconnected",
        priority=120,
        when=incomplete()
        & from_spans()
        & (col("conn_closed_by") == "client")
        & col("conn_closed").is_not_null()
        & _before_loss
        & ~col("any_error"),
        cause="client_disconnected",
        hop=col("first_missing"),
        evidence=_evidence,
        hint=lambda f: (
            "Expected when a user leaves mid-answer; otherwise check the client's "
            "reconnect logic, and replay missed chunks (by ws.seq) on reconnect."
        ),
    ),
)
