"""JSON decoding and encoding for OTLP lines: orjson when installed, else the standard library."""

from __future__ import annotations

try:
    import orjson

    loads = orjson.loads

    def dumps(value: object) -> str:
        """Compact JSON text of ``value`` (non-string keys allowed).

        What orjson cannot encode (an int past 64 bits, a lone surrogate) goes through
        the standard library: escaped, or its repr, rather than costing the span.
        """
        try:
            return orjson.dumps(value, option=orjson.OPT_NON_STR_KEYS).decode()
        except TypeError:  # orjson.JSONEncodeError
            return _stdlib_dumps(value)

except ImportError:  # pragma: no cover - orjson is in the analyzer extra
    import json

    loads = json.loads  # type: ignore[assignment]

    def dumps(value: object) -> str:
        """Compact JSON text of ``value`` (what cannot be encoded becomes its repr)."""
        return _stdlib_dumps(value)


def _stdlib_dumps(value: object) -> str:
    import json

    return json.dumps(_finite(value), separators=(",", ":"), default=repr)


def _finite(value: object) -> object:
    """``value`` with NaN and infinities as null, as orjson writes them (valid JSON)."""
    if isinstance(value, float):
        return value if value - value == 0 else None
    if isinstance(value, dict):
        return {k: _finite(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_finite(v) for v in value]
    return value


def loads_lenient(data: bytes | bytearray | str) -> object:
    """The standard library's reading of a line orjson refused.

    It takes what orjson does not (numbers past a double, ``NaN``, lone surrogates),
    so one odd value costs its span (``rows`` / ``frame`` reject it) instead of the line.
    """
    import json

    return json.loads(data)
