"""The client left while its answer was still streaming; later chunks went to an empty group.

Or, on a loaded web process, to a consumer that was still working through the chunks
already queued for it: the worker may finish publishing long before the client leaves,
and what the consumer had not dispatched yet goes with its channel when the client does.
"""

from __future__ import annotations

import polars as pl

from ._base import CLIENT_CLOSE_SLACK, Rule, at, col, from_spans, incomplete, send_after_client_left


def _evidence(f):
    lines = [f"the client closed connection {f.get('connection_id')} at {at(f.get('conn_closed'))}"]
    if f.get("empty_publish"):
        lines.append(f"ws.publish found 0 members from {at(f.get('empty_publish_ts'))}")
    elif f.get("last_deliver_ts") and f.get("delivered", 0) < f.get("published", 0):
        lines.append(
            f"the consumer was still delivering this answer when the client left: its last "
            f"delivery at {at(f.get('last_deliver_ts'))}, {f['published'] - f['delivered']} "
            f"published chunk(s) not dispatched yet (the last published at "
            f"{at(f.get('last_publish_ts'))})"
        )
    if f.get("any_error"):
        lines.append(
            f"ws.send failed at {at(f.get('err_ts'))} on the socket the client was closing: "
            f"{f.get('err_exc') or 'no exception recorded'}"
        )
    lines.append(f"chunks published {f['published']}, delivered {f['delivered']}, sent {f['sent']}")
    return lines


# The close came before the answer was lost: before the publish that found the group
# empty ended (it reads the members somewhere in between), else before the last publish.
_before_loss = col("conn_closed") <= pl.coalesce(
    col("empty_publish_end_ts"), col("empty_publish_ts"), col("last_publish_ts"), col("last_ts")
)
# The consumer, behind its worker, was still dispatching this answer when the client
# left: deliveries went on up to the close. A consumer that had stopped dispatching long
# before (chunks lost inside the layer) is not this: the client waited for nothing.
_left_mid_delivery = (
    (col("delivered") > 0)
    & (col("delivered") < col("published"))
    & col("last_deliver_ts").is_not_null()
    & (col("conn_closed") >= col("last_deliver_ts"))
    & (col("conn_closed") <= col("last_deliver_ts") + pl.lit(CLIENT_CLOSE_SLACK))
)

RULES = (
    Rule(
        name="client_disconnected",
        priority=120,
        when=incomplete()
        & from_spans()
        & (col("conn_closed_by") == "client")
        & col("conn_closed").is_not_null()
        & (_before_loss | _left_mid_delivery)
        & (~col("any_error") | send_after_client_left()),
        cause="client_disconnected",
        hop=col("first_missing"),
        evidence=_evidence,
        hint=lambda f: (
            "Expected when a user leaves mid-answer; otherwise check the client's "
            "reconnect logic, and replay missed chunks (by ws.seq) on reconnect."
        ),
    ),
)
