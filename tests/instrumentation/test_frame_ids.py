"""The app's own ids and frame types read from a frame: parsed on receive, scanned on send.

The scan (a bounded ``str.find`` over the first 512 characters, no JSON parse per
outgoing chunk) must say what the parse says for the frames apps write.
"""

from __future__ import annotations

import json
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st
from wstrace.channels.frames import app_id_in, frame_type_in, parse_frame, scan_app_id

FIELDS = ("id", "message_id", "client_id", "uuid")


@pytest.mark.parametrize(
    ("frame", "expected"),
    [
        ({"type": "chunk", "message_id": "m-1", "seq": 3, "content": "…"}, "m-1"),
        ({"type": "ack", "id": "m-1", "task_id": "t-1"}, "m-1"),
        ({"message_id": "second", "id": "first"}, "first"),  # the order of APP_ID_FIELDS
        ({"type": "x", "data": {"uuid": 42}, "client_id": "c"}, "c"),  # top level first
        ({"type": "x", "payload": {"uuid": 42}}, "42"),  # one level under an envelope
        ({"type": "x", "user": {"id": 42}}, None),  # not an envelope
        ({"data": {"data": {"id": 1}}}, None),  # two levels down
        ({"id": 1.5, "uuid": "u"}, "u"),  # not an id
        ({"id": "", "uuid": "u"}, "u"),
        ({"id": "x" * 129, "uuid": "u"}, "u"),  # too long for an id
        ({"id": "x" * 128}, "x" * 128),
        ({"id": True, "uuid": "u"}, "u"),
        ({"content": 'a "id": 5 inside a string', "uuid": "u"}, "u"),
        ({"type": "message", "content": "hi"}, None),
    ],
)
def test_the_scan_and_the_parse_find_the_same_app_id(frame: dict, expected: str | None) -> None:
    for text in (json.dumps(frame), json.dumps(frame, separators=(",", ":"))):
        parsed = parse_frame(text)
        assert parsed is not None
        assert app_id_in(parsed, FIELDS) == expected
        assert scan_app_id(text, FIELDS) == expected


def test_the_scan_reads_only_the_head_of_a_frame() -> None:
    text = json.dumps({"content": "x" * 600, "id": "late"})

    assert scan_app_id(text, FIELDS) is None  # past 512 characters: not read at all
    assert app_id_in(json.loads(text), FIELDS) == "late"


@pytest.mark.parametrize(
    ("frame", "expected"),
    [
        ({"type": "message", "action": "x"}, "message"),
        ({"action": "subscribe"}, "subscribe"),
        ({"event": "typing"}, "typing"),
        ({"type": 5, "event": "typing"}, "typing"),  # not a type name
        ({"content": "hi"}, None),
    ],
)
def test_frame_type_is_type_else_action_else_event(frame: dict, expected: str | None) -> None:
    assert frame_type_in(frame, "type") == expected


@pytest.mark.parametrize("text", ["not json", "[1, 2]", '"text"', "{broken", " {}", None, b"{}"])
def test_only_json_objects_are_parsed(text: Any) -> None:
    assert parse_frame(text) is None


_ID = st.one_of(
    st.text("abcdefghijklmnopqrstuvwxyz0123456789-_:.", min_size=1, max_size=40),
    st.integers(min_value=-(10**12), max_value=10**12),
)
_OTHER = st.one_of(_ID, st.booleans(), st.none(), st.floats(allow_nan=False, width=32))
_KEYS = st.sampled_from([*FIELDS, "type", "seq", "content", "task_id"])
_INNER = st.dictionaries(_KEYS, _ID, max_size=4)
_FRAME = st.dictionaries(
    st.one_of(_KEYS, st.sampled_from(["data", "message", "payload", "meta"])),
    st.one_of(_ID, _OTHER, _INNER),
    max_size=8,
)


@given(_FRAME)
def test_for_any_small_frame_the_scan_agrees_with_the_parse(frame: dict) -> None:
    text = json.dumps(frame)
    if len(text) > 500:
        return
    assert scan_app_id(text, FIELDS) == app_id_in(json.loads(text), FIELDS)
