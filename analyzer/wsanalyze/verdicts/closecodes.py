"""The close-code table: application close codes → (cause, hop).

The default is the convention of this stack (``wstrace.conventions.DEFAULT_CLOSE_CODES``);
users override or extend it with the same shape they give ``WSTRACE["CLOSE_CODES"]``,
as JSON: ``{"4010": ["auth_rejected", "auth"]}`` or ``{"4010": "auth_rejected"}``.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path

import polars as pl
from wstrace import conventions as c

CloseCodes = Mapping[int, tuple[str, str]]

# the hop a cause points at when a table entry names only the cause
_CAUSE_HOPS: dict[str, str] = {
    "auth_rejected": c.HOP_AUTH,
    "origin_rejected": c.HOP_CONNECT,
    "handshake_rejected": c.HOP_CONNECT,
    "handshake_timeout": c.HOP_CONNECT,
    "rate_limited": c.HOP_RECEIVE,
    "invalid_message": c.HOP_RECEIVE,
    "consumer_error": c.HOP_DELIVER,
    # the consumer's own channel-layer receive lost Redis: its deliveries stop there
    "channel_layer_unavailable": c.HOP_DELIVER,
    "idle_timeout": c.HOP_DISCONNECT,
}


class CloseCodesError(ValueError):
    """A close-code override that cannot be read; the message says how to fix it."""


def hop_for_cause(cause: str | None) -> str | None:
    """The hop a connection-level cause belongs to."""
    return _CAUSE_HOPS.get(cause or "")


def parse_close_codes(text: str) -> dict[int, tuple[str, str]]:
    """Parse a JSON override (or a path to a JSON file) into ``{code: (cause, hop)}``."""
    raw = text
    if not text.lstrip().startswith("{"):
        try:
            path = Path(text)
            if path.is_file():
                raw = path.read_text(encoding="utf-8")
        except (OSError, ValueError) as exc:  # too long a name, NUL, not UTF-8, unreadable
            reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else exc
            raise CloseCodesError(f"--close-codes: cannot read {text[:80]!r}: {reason}") from None
    try:
        data = json.loads(raw)
    except json.JSONDecodeError as exc:
        raise CloseCodesError(
            f'--close-codes: not JSON ({exc.msg}); use {{"4010": ["auth_rejected", "auth"]}}'
        ) from None
    if not isinstance(data, dict):
        raise CloseCodesError('--close-codes: expected an object like {"4010": "auth_rejected"}')
    table: dict[int, tuple[str, str]] = {}
    for key, value in data.items():
        try:
            code = int(key)
        except ValueError:
            raise CloseCodesError(f"--close-codes: {key!r} is not a close code") from None
        if isinstance(value, str):
            cause, hop = value, hop_for_cause(value) or c.HOP_DISCONNECT
        elif isinstance(value, list | tuple) and len(value) == 2:
            cause, hop = str(value[0]), str(value[1])
        else:
            raise CloseCodesError(f"--close-codes: {key}: expected a cause or [cause, hop]")
        if hop not in c.HOPS:
            raise CloseCodesError(
                f"--close-codes: {key}: unknown hop {hop!r} (hops: {', '.join(c.HOPS)})"
            )
        table[code] = (cause, hop)
    return table


def code_cause(column: str, table: CloseCodes) -> pl.Expr:
    """The cause ``table`` gives the close code in ``column`` (null when absent)."""
    return pl.col(column).replace_strict(
        {k: v[0] for k, v in table.items()}, default=None, return_dtype=pl.String
    )


def code_hop(column: str, table: CloseCodes) -> pl.Expr:
    """The hop ``table`` gives the close code in ``column`` (null when absent)."""
    return pl.col(column).replace_strict(
        {k: v[1] for k, v in table.items()}, default=None, return_dtype=pl.String
    )


def cause_hop(column: str) -> pl.Expr:
    """The hop of the connection-level cause in ``column``."""
    return pl.col(column).replace_strict(_CAUSE_HOPS, default=None, return_dtype=pl.String)
