"""Every published chunk reached the client."""

from __future__ import annotations

from ._base import Rule, col

RULES = (
    Rule(
        name="delivered",
        priority=180,
        when=col("complete") & ~col("any_error"),
        cause="ok",
        hop="send",
        outcome="delivered",
        evidence=lambda f: [f"{f['sent']} frame(s) sent for {f['published']} published chunk(s)"],
        hint=lambda f: "Nothing to fix.",
    ),
)
