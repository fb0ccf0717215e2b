"""Nothing explains where the message stopped: say what is missing."""

from __future__ import annotations

import polars as pl

from ._base import Rule, col


def _evidence(f):
    return [f"the chain stops before {f['first_missing']}; no span explains why"]


def _hint(f):
    missing = f["first_missing"]
    if missing in ("task", "publish"):
        return "Check that the worker runs wstrace (same settings module) and writes to this store."
    if missing in ("deliver", "send"):
        return (
            "Check that the web process records group membership (ws.group_add) and that the "
            "consumer has a handler for the message type."
        )
    return "Make sure every process runs wstrace and writes to the store you read."


RULES = (
    Rule(
        name="unknown",
        priority=999,
        when=pl.lit(True),
        cause="unknown",
        hop=col("first_missing"),
        evidence=_evidence,
        hint=_hint,
    ),
)
