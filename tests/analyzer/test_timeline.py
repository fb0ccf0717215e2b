"""The merged timeline: every span and log line of a conversation, in causal order."""

from __future__ import annotations

from datetime import timedelta

import polars as pl
from wsanalyze.timeline import build_timeline
from wsanalyze.verdicts.testing import START, Trace
from wstrace import conventions as c


def at(ms: float):
    return START + timedelta(milliseconds=ms)


def test_rows_follow_causal_time_then_depth_not_the_wall_clock():
    t = Trace()
    t.span("late-clock", None, None, 50)  # a child whose process clock runs ahead
    t.span("parent", None, None, 40)
    t.span("early-clock", None, None, 10)  # caused later, stamped by a clock running behind
    frame = t.frame().with_columns(  # what verdicts.chains computes from the span tree
        causal_ts=pl.Series([at(0), at(0), at(30)]), depth=pl.Series([1, 0, 0], dtype=pl.Int32)
    )

    entries = build_timeline(frame)

    assert [e.name for e in entries] == ["parent", "late-clock", "early-clock"]
    assert [e.offset_ms for e in entries] == [0.0, 0.0, 30.0]


def test_log_lines_sit_beside_the_spans_of_their_moment():
    t = Trace()
    conn = t.connect("k1", 0)
    t.close("k1", 100, 4001, parent=conn)
    t.span(
        "daphne", c.HOP_DISCONNECT, "disconnect", 101, None, source="log", service="web",
        confidence="path", detail="WSDISCONNECT /ws/chat/conv-1/",
    )  # fmt: skip

    entries = build_timeline(t.frame())

    sources = [(e.source, e.event) for e in entries]
    log = sources.index(("log", "disconnect"))
    assert sources[log - 1] == ("trace", c.EV_CLOSE)
    assert sources[log + 1] == ("trace", c.EV_DISCONNECT)
    line = entries[log]
    assert (line.confidence, line.detail) == ("path", "WSDISCONNECT /ws/chat/conv-1/")


def test_offsets_count_from_the_first_row_and_wall_clock_times_are_kept():
    t = Trace()
    t.connect("k1", 250)
    t.disconnect("k1", 1250)

    entries = build_timeline(t.frame())

    assert entries[0].offset_ms == 0.0 and entries[-1].offset_ms == 1000.0
    assert entries[-1].ts == at(1250)


def test_a_row_without_a_detail_line_gets_one_built_from_its_facts():
    t = Trace()
    root = t.connect("k1")
    t.close("k1", 10, 4001, parent=root, cause="auth_rejected")

    close = next(e for e in build_timeline(t.frame()) if e.event == c.EV_CLOSE)

    assert close.detail == "code=4001 closed_by=server cause=auth_rejected"


def test_a_publish_nobody_received_is_marked_failed():
    t = Trace()
    t.connect("k1")
    t.message("m1", "k1", chunks=2, deliver_upto=1)

    publishes = [e for e in build_timeline(t.frame()) if e.hop == c.HOP_PUBLISH]

    assert [e.failed for e in publishes] == [False, True]
    assert "members=0" in publishes[1].detail


def test_an_empty_table_has_an_empty_timeline():
    assert build_timeline(Trace().frame()) == ()
