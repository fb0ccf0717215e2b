"""The normalized event table: a stable schema every source conforms to."""

from __future__ import annotations

import polars as pl
from wsanalyze.events import COLUMNS, SCHEMA, TS, conform, empty_events

# Columns other modules (verdicts, timeline, renderers, log sources) read by name.
CONTRACT_COLUMNS = (
    "ts", "end_ts", "source", "service", "conversation_id", "connection_id", "message_id",
    "hop", "event", "name", "status", "status_message", "exception", "cause", "close_code",
    "closed_by", "accepted", "handshake_rejected", "origin_allowed", "user_authenticated",
    "seq", "group", "layer", "members", "receivers", "over_capacity", "message_type",
    "task_id", "task_name", "queue", "queues", "trace_id", "span_id", "parent_span_id",
    "links", "attributes", "detail", "origin", "confidence",
)  # fmt: skip


def test_contract_columns_are_all_present_with_their_types():
    assert set(CONTRACT_COLUMNS) <= set(COLUMNS)
    assert SCHEMA["ts"] == TS == pl.Datetime("ns", "UTC")
    assert SCHEMA["close_code"] == pl.Int32 and SCHEMA["links"] == pl.List(pl.String)


def test_empty_events_has_the_full_schema():
    assert empty_events().collect_schema() == pl.Schema(SCHEMA)


def test_conform_adds_missing_columns_orders_and_casts():
    frame = pl.LazyFrame({"detail": ["x"], "close_code": [4001], "source": ["log"]})
    out = conform(frame).collect()
    assert out.columns == list(COLUMNS)
    assert out.schema == pl.Schema(SCHEMA)
    assert out.row(0, named=True)["close_code"] == 4001 and out["hop"][0] is None


def test_every_attribute_with_a_column_names_a_column_and_a_wstrace_attribute():
    from wstrace.conventions import ALL_ATTRIBUTES, ATTRIBUTE_COLUMNS

    assert set(ATTRIBUTE_COLUMNS) <= set(ALL_ATTRIBUTES)
    assert set(ATTRIBUTE_COLUMNS.values()) <= set(COLUMNS)
    assert len(set(ATTRIBUTE_COLUMNS.values())) == len(ATTRIBUTE_COLUMNS)  # one column each


def test_an_attribute_written_into_a_span_comes_back_in_its_column(tmp_path):
    from wsanalyze.sources import load_events
    from wsanalyze.verdicts.testing import Trace, write_otlp
    from wstrace.conventions import ATTRIBUTE_COLUMNS

    values = {
        pl.Boolean: True,
        pl.Int32: 4001,
        pl.Int64: 3,
        pl.List(pl.String): ["celery", "slow"],
    }
    columns = {
        column: values.get(SCHEMA[column], f"v-{column}")
        for column in ATTRIBUTE_COLUMNS.values()
        if column != "conversation_id"
    }
    trace = Trace("conv-round-trip")
    others = {k: v for k, v in columns.items() if k not in ("hop", "event")}
    trace.span("ws.receive", columns["hop"], columns["event"], 0, **others)
    write_otlp(trace, tmp_path)

    row = load_events(str(tmp_path)).events.collect().row(0, named=True)
    assert {column: row[column] for column in columns} == columns
    assert row["conversation_id"] == "conv-round-trip"
