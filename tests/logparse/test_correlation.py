"""Joining log rows to conversations: wstrace's own log fields, Celery task ids, time."""

from __future__ import annotations

import json
import subprocess
import sys
from datetime import timedelta

import polars as pl
import pytest
from wsanalyze.events import SCHEMA, conform
from wsanalyze.logparse import parse_lines, read_file
from wsanalyze.logparse.correlate import correlate

pytestmark = pytest.mark.stack

_LOGGING_APP = r"""
import json, logging, sys
from opentelemetry import baggage, context, trace
from opentelemetry.sdk.trace import TracerProvider
from wstrace.logging import CorrelationFormatter, install_record_factory

trace.set_tracer_provider(TracerProvider())
install_record_factory()
handler = logging.StreamHandler(sys.stdout)
handler.setFormatter(CorrelationFormatter("%(asctime)s %(levelname)-8s %(name)s %(message)s"))
log = logging.getLogger("chat.tasks")
log.addHandler(handler)
log.setLevel(logging.INFO)
log.info("outside any span")
token = context.attach(baggage.set_baggage("ws.conversation_id", "c-logged"))
with trace.get_tracer("t").start_as_current_span("ws.task") as span:
    log.warning("tool call failed, retrying")
    ctx = span.get_span_context()
context.detach(token)
print(json.dumps({"trace_id": f"{ctx.trace_id:032x}", "span_id": f"{ctx.span_id:016x}"}),
      file=sys.stderr)
"""


def test_lines_written_by_wstraces_formatter_join_exactly(tmp_path):
    out = subprocess.run(
        [sys.executable, "-c", _LOGGING_APP], capture_output=True, text=True, check=True
    )
    ids = json.loads(out.stderr.strip().splitlines()[-1])
    path = tmp_path / "worker.log"
    path.write_text(out.stdout)
    events = parse_lines(read_file(path)).collect()
    row = events.filter(pl.col("event") == "app_log").row(0, named=True)
    assert row["trace_id"] == ids["trace_id"] and row["span_id"] == ids["span_id"]
    assert row["conversation_id"] == "c-logged" and row["confidence"] == "exact"
    assert row["service"] == "worker"
    # the line logged outside any span carries no ids and is no event
    assert events.height == 1


def test_celery_lines_take_the_conversation_of_the_span_with_their_task_id(captured):
    logs = parse_lines(read_file(captured.files["celery"][1])).collect()
    task = logs.filter(pl.col("event") == "task_received").row(0, named=True)
    span = conform(
        pl.LazyFrame(
            {
                "ts": [task["ts"] - timedelta(milliseconds=5)],
                "source": ["trace"],
                "hop": ["enqueue"],
                "task_id": [task["task_id"]],
                "conversation_id": ["c-from-span"],
            },
            schema_overrides={"ts": SCHEMA["ts"]},
        )
    ).collect()
    joined = correlate(pl.concat([span, logs]))
    rows = joined.filter(pl.col("source") == "log", pl.col("task_id") == task["task_id"])
    assert rows.height >= 2  # received + its outcome
    assert set(rows["conversation_id"]) == {"c-from-span"}
    assert set(rows["confidence"]) == {"exact"}


def test_a_crash_is_put_on_the_connection_that_closed_right_after_it(captured):
    events = pl.concat([parse_lines(read_file(p)).collect() for p in captured.files["daphne"]])
    joined = correlate(events)
    crash = joined.filter(pl.col("event") == "app_exception").row(0, named=True)
    assert crash["conversation_id"] == "c-crash" and crash["confidence"] == "time"


def test_a_crash_among_several_closes_in_one_whole_second_is_not_guessed(captured):
    """Whole-second access stamps with two connections closing in the crash's second:
    the crash stays unassigned rather than put on the wrong conversation."""
    events = pl.concat([parse_lines(read_file(p)).collect() for p in captured.files["daphne"]])
    crash_ts = events.filter(pl.col("event") == "app_exception")["ts"][0]
    other = events.filter(pl.col("conversation_id") == "c-ok").with_columns(
        pl.lit("c-other").alias("conversation_id"),
        pl.col("attributes").str.replace(r'"client":"[^"]+"', '"client":"10.0.0.9:1"'),
        pl.when(pl.col("event") == "ws_disconnect")
        .then(pl.lit(crash_ts, dtype=pl.Datetime("ns", "UTC")).dt.truncate("1s"))
        .otherwise(pl.col("ts"))
        .alias("ts"),
    )
    joined = correlate(pl.concat([events, other]))
    crash = joined.filter(pl.col("event") == "app_exception").row(0, named=True)
    assert crash["conversation_id"] is None
