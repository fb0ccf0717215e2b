"""The instrumentation already named the cause on the failing span (ws.cause)."""

from __future__ import annotations

from ._base import Rule, col, exc, send_after_client_left, span_source

RULES = (
    Rule(
        name="span_cause",
        priority=10,
        # a send failing on a socket the client had just closed: client_disconnected says why
        when=col("any_error") & col("err_cause").is_not_null() & ~send_after_client_left(),
        cause=col("err_cause"),
        hop=col("err_hop"),
        evidence=lambda f: [
            f"{span_source(f, f['err_hop'])} errored with ws.cause={f['err_cause']}: {exc(f)}"
        ],
    ),
)
