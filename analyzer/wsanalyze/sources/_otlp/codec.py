"""JSON decoding and encoding for OTLP lines: orjson when installed, else the standard library."""

from __future__ import annotations

try:
    import orjson

    loads = orjson.loads

    def dumps(value: object) -> str:
        """Compact JSON text of ``value`` (non-string keys allowed)."""
        return orjson.dumps(value, option=orjson.OPT_NON_STR_KEYS).decode()

except ImportError:  # pragma: no cover - orjson is in the analyzer extra
    import json

    loads = json.loads

    def dumps(value: object) -> str:
        """Compact JSON text of ``value`` (what cannot be encoded becomes its repr)."""
        return json.dumps(value, separators=(",", ":"), default=repr)
