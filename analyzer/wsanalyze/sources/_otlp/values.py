"""OTLP/JSON values as plain Python: ids, AnyValue objects, attribute lists, int64 fields.

Producers differ in how they write the same value (hex or base64 ids, int64 as a
string or a number, booleans as text), so each converter accepts all of them and
returns None rather than raising on what it cannot read. What the event table
cannot hold is refused here too: an id that is not ``size`` bytes, a timestamp
outside ``MIN_NS``..``MAX_NS`` (``in_range``), an int outside its column's range.
"""

from __future__ import annotations

import base64
import binascii
import re

_HEX = re.compile(r"[0-9a-fA-F]+")

# Timestamps the event table holds: nanoseconds after 1970 that fit int64 with a year
# to spare (the table's Datetime("ns") ends in April 2262; arithmetic needs headroom).
MIN_NS = 1
MAX_NS = (1 << 63) - 1 - 366 * 86_400 * 10**9
INT32 = (-(1 << 31), (1 << 31) - 1)
INT64 = (-(1 << 63), (1 << 63) - 1)
# AnyValue levels decoded (arrays and kvlists within each other): producers write a few;
# more is an attack on the recursion, and costs the span holding it.
MAX_NESTING = 32


class BadSpan(ValueError):
    """A span with a value the event table cannot hold; the message says which."""


def norm_id(value: object, size: int) -> str | None:
    """An OTLP id (hex or base64) as lowercase hex of ``size`` bytes.

    None when empty, and when the value is no id of that size (the caller tells the
    two apart: a span whose id is present but None here has an unusable id).
    """
    if not value or type(value) is not str:
        return None
    if len(value) == 2 * size and _HEX.fullmatch(value):
        return value.lower()
    if len(value) > 4 * size:
        return None  # longer than any encoding of `size` bytes
    padded = value.replace("-", "+").replace("_", "/") + "=" * (-len(value) % 4)  # url-safe too
    try:
        raw = base64.b64decode(padded, validate=True)
    except (binascii.Error, ValueError):
        raw = b""
    if len(raw) == size:
        return raw.hex()
    if len(value) < 2 * size and _HEX.fullmatch(value):
        return value.lower().rjust(2 * size, "0")  # leading zeros lost (Tempo search)
    return None


def any_value(value: object, _depth: int = 0) -> object:
    """Decode an OTLP AnyValue object into a plain Python value.

    Raises BadSpan for arrays and kvlists nested past ``MAX_NESTING`` levels.
    """
    if not isinstance(value, dict):
        return value
    if "stringValue" in value:
        return value["stringValue"]
    if "intValue" in value:
        raw = value["intValue"]
        try:
            return int(raw)
        except (TypeError, ValueError, OverflowError):  # OverflowError: a number read as ±inf
            return raw
    if "boolValue" in value:
        raw = value["boolValue"]
        return raw if isinstance(raw, bool) else str(raw).lower() == "true"
    if "doubleValue" in value:
        raw = value["doubleValue"]
        try:
            return float(raw)
        except (TypeError, ValueError):
            return raw
    if "arrayValue" in value or "kvlistValue" in value:
        if _depth >= MAX_NESTING:
            raise BadSpan(f"a value nested deeper than {MAX_NESTING} levels")
        if "arrayValue" in value:
            values = (value["arrayValue"] or {}).get("values") or ()
            return [any_value(v, _depth + 1) for v in values]
        return attributes((value["kvlistValue"] or {}).get("values"), _depth + 1)
    if "bytesValue" in value:
        return value["bytesValue"]
    return None


def attributes(kvs: object, _depth: int = 0) -> dict[str, object]:
    """A list of OTLP KeyValue objects as a dict."""
    out: dict[str, object] = {}
    if not kvs:
        return out
    for kv in kvs:
        key = kv.get("key")
        if key is not None:
            out[key] = any_value(kv.get("value"), _depth)
    return out


def as_int(value: object) -> int | None:
    """An attribute value as an int (numbers written as text too); None when it is none."""
    if value is None or isinstance(value, bool):
        return None if value is None else int(value)
    if isinstance(value, int):
        return value
    try:
        return int(float(value)) if isinstance(value, float | str) else None
    except (ValueError, OverflowError):  # "x", "nan", "inf", 1e400
        return None


def as_bool(value: object) -> bool | None:
    """An attribute value as a bool ("true", "1", "yes" and non-zero numbers are true)."""
    if value is None or isinstance(value, bool):
        return value
    if isinstance(value, str):
        return value.strip().lower() in ("true", "1", "yes")
    if isinstance(value, int | float):
        return bool(value)
    return None


def as_str(value: object) -> str | None:
    """An attribute value as text (None stays None)."""
    if value is None or isinstance(value, str):
        return value
    return str(value)


def nanos(value: object) -> int | None:
    """An OTLP ``*UnixNano`` field as an int; None when absent, empty, zero or unreadable."""
    if value is None or value == "" or isinstance(value, bool):
        return None
    try:
        n = int(value)
    except (TypeError, ValueError, OverflowError):
        return None
    return n or None


def in_range(ns: int | None) -> bool:
    """Whether a nanosecond timestamp fits the event table (None: there is none, fine)."""
    return ns is None or MIN_NS <= ns <= MAX_NS
