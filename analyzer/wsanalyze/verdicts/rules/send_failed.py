"""The frame could not be written to the socket."""

from __future__ import annotations

from ._base import Rule, after_server_close, col, exc, send_after_client_left

RULES = (
    Rule(
        name="send_failed",
        priority=80,
        when=~after_server_close() & ~send_after_client_left() & (col("err_hop") == "send"),
        cause="send_failed",
        hop="send",
        evidence=lambda f: [f"ws.send errored: {exc(f)}"],
        hint=lambda f: (
            "The socket was closing when the frame was written: check the "
            "connection state before sending and stop streaming on disconnect."
        ),
    ),
)
