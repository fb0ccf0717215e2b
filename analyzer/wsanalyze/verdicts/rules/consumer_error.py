"""The consumer raised while handling the message (close 1011)."""

from __future__ import annotations

from ._base import Rule, after_server_close, col, exc


def _evidence(f):
    lines = [f"ws.{f['err_hop']} errored: {exc(f)}"]
    if f.get("conn_close_code") == 1011:
        lines.append("the connection closed with 1011 (server error)")
    return lines


RULES = (
    Rule(
        name="consumer_error",
        priority=70,
        when=~after_server_close() & (col("err_hop").is_in(["receive", "deliver"])),
        cause="consumer_error",
        hop=col("err_hop"),
        evidence=_evidence,
        hint=lambda f: (
            "Fix the exception in the consumer's handler"
            + (f" for message type {f['message_type']!r}" if f.get("message_type") else "")
            + "; a message type 'a.b' needs a method a_b. After a crash the group membership leaks."
        ),
    ),
)
