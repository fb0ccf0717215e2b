"""A client frame's own ids and type, read without keeping its body.

Small frames are parsed as JSON; large ones are scanned in a bounded head, so a
megabyte frame costs no more than its first bytes. Only ids and a type come out.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from typing import Any

# --- frames: the app's own ids and frame types, never bodies -------------------------
_PARSE_LIMIT = 64 * 1024  # larger client frames are scanned, not parsed
_HEAD = 512  # what the bounded scan of a frame reads
_MAX_ID = 128  # an app id longer than this is not an id
_NESTS = ("data", "message", "payload")  # envelopes whose ids count, one level down
_TYPE_FALLBACKS = ("action", "event")


def parse_frame(text: Any) -> dict[str, Any] | None:
    """A client frame's JSON object, parsed only when it looks like one and is not huge."""
    if type(text) is not str or not text.startswith("{") or len(text) > _PARSE_LIMIT:
        return None
    try:
        data = json.loads(text)
    except (ValueError, RecursionError):
        return None
    return data if type(data) is dict else None


def message_id_in(data: Mapping[str, Any] | None, field: str) -> str | None:
    """The client's ``MESSAGE_ID_FIELD`` of a parsed frame (str or int), if any."""
    value = data.get(field) if data is not None else None
    return str(value) if isinstance(value, str | int) and str(value) else None


def _short(value: Any) -> str | None:
    if type(value) is str:
        return value if 0 < len(value) <= _MAX_ID else None
    return str(value) if type(value) is int else None


def app_id_in(data: Mapping[str, Any], fields: tuple[str, ...]) -> str | None:
    """The first of ``fields`` in the frame, else in its data/message/payload envelope."""
    for field in fields:
        found = _short(data.get(field))
        if found is not None:
            return found
    for nest in _NESTS:
        inner = data.get(nest)
        if type(inner) is dict:
            for field in fields:
                found = _short(inner.get(field))
                if found is not None:
                    return found
    return None


def frame_type_in(data: Mapping[str, Any], field: str) -> str | None:
    """The frame's type: ``FRAME_TYPE_FIELD``, else its "action" or "event" field."""
    for name in (field, *_TYPE_FALLBACKS):
        value = data.get(name)
        if type(value) is str and 0 < len(value) <= _MAX_ID:
            return value
    return None


_KEYS: dict[tuple[str, ...], tuple[str, ...]] = {}  # '"id"' for "id": what str.find looks for
_VALUE = re.compile(rf'\s*:\s*(?:"([^"\\]{{1,{_MAX_ID}}})"|(-?\d{{1,40}})(?![\d.eE]))')
_NESTED_KEY = re.compile(r'"(data|message|payload)"\s*:\s*$')


def scan_app_id(text: str, fields: tuple[str, ...], nested: bool = True) -> str | None:
    """``app_id_in`` without parsing: ``str.find`` over the frame's first 512 characters.

    For what the server sends (once per streamed chunk, ~4 finds and a regex
    match at each hit) and oversized client frames. Nesting is judged by
    counting braces before the hit, so a brace inside an earlier string value
    can hide an id; it never invents one.
    """
    keys = _KEYS.get(fields)
    if keys is None:
        keys = tuple(f'"{field}"' for field in fields)
        if len(_KEYS) < 64:
            _KEYS[fields] = keys
    end = min(len(text), _HEAD)
    found_nested: str | None = None
    # app_id_in looks in the envelopes in _NESTS order, each for the fields in order
    nested_rank: tuple[int, int] | None = None
    for index, key in enumerate(keys):
        start = text.find(key, 0, end)
        while start != -1:
            value = _value_at(text, start + len(key), end)
            if value is not None:
                # No "{" between the opening one and the key (the usual case): top level.
                if text.find("{", 1, start) == -1:
                    return value
                depth = text.count("{", 0, start) - text.count("}", 0, start)
                if depth == 1:  # the first field, in order, at the top level
                    return value
                if depth == 2 and nested:
                    brace = text.rfind("{", 0, start)
                    envelope = _NESTED_KEY.search(text, max(0, brace - 40), brace)
                    if envelope:
                        rank = (_NESTS.index(envelope[1]), index)
                        if nested_rank is None or rank < nested_rank:
                            found_nested, nested_rank = value, rank
            start = text.find(key, start + 1, end)
    return found_nested


def _value_at(text: str, at: int, end: int) -> str | None:
    """The short string or int value after a key at ``at``; ``json.dumps`` spacing first."""
    if text.startswith(_SEPARATOR, at):  # '": "' as json.dumps writes it: no regex
        close = text.find('"', at + 3, min(end, at + 4 + _MAX_ID))
        if close > at + 3:
            value = text[at + 3 : close]
            return None if "\\" in value else value
    match = _VALUE.match(text, at, end)
    if match is None:
        return None
    return match[1] if match[1] is not None else match[2]


_SEPARATOR = ': "'
