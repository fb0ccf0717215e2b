"""JSON decoding and encoding for OTLP lines: orjson when installed, else the standard library."""

from __future__ import annotations

import re

# Containers nested deeper than this are cut before the standard library reads a line:
# its parser recurses once per level and would raise RecursionError (costing the whole
# line) where no OTLP producer nests more than a few levels.
MAX_DEPTH = 200
# What a cut container reads as: a string no producer writes, so that the spans holding
# one can be found (``holds_cut``) and skipped as spans with a bad value.
CUT = "\0wsanalyze: nested too deep"
_CUT_JSON = b'"\\u0000wsanalyze: nested too deep"'
# a string (an unterminated one runs to the end: no backtracking), or a run of brackets
_TOKENS = re.compile(rb'"[^"\\]*(?:\\.[^"\\]*)*"?|[\[{]+|[\]}]+', re.DOTALL)

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
    Containers nested past ``MAX_DEPTH`` read as the ``CUT`` string (see ``holds_cut``).
    """
    import json

    raw = data.encode("utf-8", "surrogatepass") if isinstance(data, str) else data
    return json.loads(cut_deep(raw) or raw, parse_int=_int)


def _int(text: str) -> int | float:
    """A JSON integer; one past Python's 4300-digit conversion limit reads as ±infinity.

    (``int()`` raises ValueError there, which would cost the whole line, not the span.)
    """
    try:
        return int(text)
    except ValueError:
        return float("-inf") if text.startswith("-") else float("inf")


def cut_deep(data: bytes | bytearray, limit: int = MAX_DEPTH) -> bytes | None:
    """``data`` with every container nested past ``limit`` replaced by the ``CUT`` string.

    None when nothing is nested that deep. Strings are skipped whole, so brackets
    inside them do not count; an unterminated container is cut to the end of the line.
    Runs of brackets are one token each: a line of 50,000 ``[`` costs one match.
    """
    depth, last, start = 0, 0, -1
    out: list[bytes] = []
    for match in _TOKENS.finditer(data):
        token = match.group()
        first, n = token[:1], len(token)
        if first == b'"':
            continue
        if first in b"[{":
            if start == -1 and depth + n > limit:
                start = match.start() + max(limit - depth, 0)  # the first bracket past it
            depth += n
            continue
        if start != -1 and depth - n <= limit:
            out += (data[last:start], _CUT_JSON)
            last, start = match.start() + depth - limit, -1  # just past its closing bracket
        depth = max(depth - n, 0)
    if start != -1:
        out += (data[last:start], _CUT_JSON)
        last = len(data)
    if not out:
        return None
    out.append(data[last:])
    return b"".join(out)


def holds_cut(value: object) -> bool:
    """Whether ``value`` (a decoded document part) holds a container ``cut_deep`` replaced."""
    stack = [value]
    while stack:
        item = stack.pop()
        if item == CUT:
            return True
        if isinstance(item, dict):
            stack.extend(item.values())
        elif isinstance(item, list):
            stack.extend(item)
    return False
