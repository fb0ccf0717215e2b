"""The close-code table: the stack's convention, and the user's overrides on top of it."""

from __future__ import annotations

import json

import polars as pl
import pytest
from wsanalyze.verdicts import analyze_conversation
from wsanalyze.verdicts.closecodes import (
    CloseCodesError,
    code_cause,
    code_hop,
    hop_for_cause,
    parse_close_codes,
)
from wsanalyze.verdicts.testing import Trace
from wstrace import conventions as c


def looked_up(codes: list[int | None], table) -> list[tuple[str | None, str | None]]:
    frame = pl.DataFrame({"close_code": codes}, schema={"close_code": pl.Int32})
    cause, hop = code_cause("close_code", table), code_hop("close_code", table)
    out = frame.select(cause.alias("cause"), hop.alias("hop"))
    return list(zip(out["cause"], out["hop"], strict=True))


def closed_with(code: int) -> Trace:
    """One accepted connection the server closed with ``code``; the data window runs on."""
    t = Trace()
    root = t.connect("k1")
    t.close("k1", 10, code, parent=root)
    t.span(
        "ws.accept", c.HOP_ACCEPT, c.EV_ACCEPT, 60_000, 1, conversation_id="x", connection_id="z"
    )
    return t


def test_the_default_table_maps_4001_4004_1011_to_their_causes_and_hops():
    assert looked_up([4001, 4004, 1011], c.DEFAULT_CLOSE_CODES) == [
        ("auth_rejected", "auth"),
        ("rate_limited", "receive"),
        ("consumer_error", "deliver"),
    ]


def test_a_normal_or_unlisted_code_has_no_cause():
    assert looked_up([1000, 4999, None], c.DEFAULT_CLOSE_CODES) == [(None, None)] * 3


def test_a_4001_close_is_auth_rejected_unless_the_user_says_otherwise():
    t = closed_with(4001)

    default = analyze_conversation(t.frame(), t.conversation_id).connections[0]
    overridden = analyze_conversation(
        t.frame(), t.conversation_id, close_codes={4001: ("rate_limited", "receive")}
    ).connections[0]

    assert (default.cause, default.hop) == ("auth_rejected", "auth")
    assert (overridden.cause, overridden.hop) == ("rate_limited", "receive")


def test_an_override_given_as_json_names_a_cause_and_optionally_its_hop():
    table = parse_close_codes('{"4010": "auth_rejected", "4020": ["invalid_message", "receive"]}')

    assert table == {4010: ("auth_rejected", "auth"), 4020: ("invalid_message", "receive")}


def test_a_cause_without_a_hop_of_its_own_points_at_the_disconnect():
    assert hop_for_cause("task_failed") is None
    assert parse_close_codes('{"4030": "task_failed"}') == {4030: ("task_failed", "disconnect")}


def test_an_override_can_come_from_a_json_file(tmp_path):
    path = tmp_path / "codes.json"
    path.write_text(json.dumps({"4011": ["auth_rejected", "auth"]}))

    assert parse_close_codes(str(path)) == {4011: ("auth_rejected", "auth")}


@pytest.mark.parametrize(
    ("text", "says"),
    [
        ("{4010: auth}", "not JSON"),
        ('["auth_rejected"]', "expected an object"),
        ('{"abc": "auth_rejected"}', "is not a close code"),
        ('{"4010": ["auth_rejected", "nowhere"]}', "unknown hop 'nowhere'"),
        ('{"4010": 7}', "expected a cause or [cause, hop]"),
    ],
)
def test_an_unreadable_override_is_one_error_saying_what_is_wrong(text, says):
    with pytest.raises(CloseCodesError, match=r"^--close-codes: ") as raised:
        parse_close_codes(text)

    assert says in str(raised.value)


@pytest.mark.parametrize(
    "text",
    ["x" * 5000, "bad\x00name"],
    ids=["name-too-long", "nul-in-name"],
)
def test_an_override_that_is_no_usable_file_name_is_one_error(text) -> None:
    with pytest.raises(CloseCodesError, match=r"^--close-codes: "):
        parse_close_codes(text)


def test_an_override_file_that_is_not_utf8_is_one_error(tmp_path) -> None:
    binary = tmp_path / "codes.json"
    binary.write_bytes(b"\xff\xfe{\x00")
    with pytest.raises(CloseCodesError, match="cannot read"):
        parse_close_codes(str(binary))
