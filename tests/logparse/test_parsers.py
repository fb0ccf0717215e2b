"""The parsers on lines printed by the real Daphne, Celery worker and Redis server."""

from __future__ import annotations

import json
from pathlib import Path

import polars as pl
import pytest
from wsanalyze.events import SCHEMA
from wsanalyze.logparse import parse_lines, read_file
from wsanalyze.sources.logs import load_log_events

from tests.logparse.capture import DAPHNE_UTC_OFFSET_S, Captured

pytestmark = pytest.mark.stack


@pytest.fixture(scope="module")
def events(captured: Captured) -> pl.DataFrame:
    frames = [read_file(p) for pair in captured.files.values() for p in pair]
    return parse_lines(pl.concat(frames)).collect()


def _one(events: pl.DataFrame, **where) -> dict:
    rows = events.filter(*[pl.col(k) == v for k, v in where.items()])
    assert rows.height == 1, f"{where}: {rows.height} rows"
    return rows.row(0, named=True)


def test_event_rows_have_exactly_the_event_table_schema(events):
    assert events.schema == pl.Schema(SCHEMA)
    assert set(events["source"]) == {"log"}


def test_daphne_access_lines_give_the_connection_steps_per_conversation(events):
    ok = events.filter(pl.col("conversation_id") == "c-ok", pl.col("name") == "daphne")
    assert ok["event"].to_list() == ["ws_connecting", "ws_connect", "ws_disconnect"]
    assert ok["hop"].to_list() == ["connect", "accept", "disconnect"]
    assert set(ok["confidence"]) == {"path"}
    client = {json.loads(a)["client"] for a in ok["attributes"]}
    assert len(client) == 1 and next(iter(client)).startswith("127.0.0.1:")


def test_a_handshake_refused_before_accept_is_a_reject_without_connect(events):
    origin = events.filter(pl.col("conversation_id") == "c-origin", pl.col("name") == "daphne")
    assert origin["event"].to_list() == ["ws_connecting", "ws_reject", "ws_disconnect"]
    reject = _one(events, conversation_id="c-origin", event="ws_reject")
    assert reject["handshake_rejected"] is True and reject["cause"] == "handshake_rejected"


def test_exception_inside_application_keeps_its_traceback_as_one_event(events):
    crash = _one(events, event="app_exception")
    assert crash["exception"] == "KeyError: 'chat_chunk'"
    assert crash["close_code"] == 1011 and crash["cause"] == "consumer_error"
    assert "Traceback (most recent call last):" in crash["detail"]
    assert 'raise KeyError("chat_chunk")' in crash["detail"]
    # no traceback line became an event of its own
    assert events.filter(pl.col("detail").str.starts_with("Traceback")).is_empty()


def test_local_second_stamps_of_daphne_are_placed_in_utc(events, captured):
    """Daphne ran an hour east of UTC; its local stamps are shifted back (plain files, tz)."""
    crash = _one(events, event="app_exception")
    local = json.loads(crash["attributes"])["local_time"]
    assert local.startswith(crash["ts"].strftime("%Y-%m-%d"))
    out = load_log_events(captured.files["daphne"][1], tz="Etc/GMT-1").events.collect()
    shifted = out.filter(pl.col("event") == "app_exception")["ts"][0]
    assert (crash["ts"] - shifted).total_seconds() == DAPHNE_UTC_OFFSET_S


def test_channels_redis_over_capacity_names_group_and_conversation(events):
    over = events.filter(pl.col("event") == "over_capacity")
    assert over.height >= 1
    row = over.row(0, named=True)
    assert row["group"] == "chat_c-overcap" and row["conversation_id"] == "c-overcap"
    assert row["over_capacity"] == 1 and row["members"] == 1 and row["cause"] == "channel_full"


def test_lines_with_wstrace_ids_join_exactly(events):
    row = _one(events, event="app_log")
    assert row["trace_id"] == "ab" * 16 and row["span_id"] == "cd" * 8
    assert row["conversation_id"] == "c-trace" and row["confidence"] == "exact"


def test_celery_task_lines_carry_task_id_name_and_outcome(events):
    tasks = events.filter(pl.col("name") == "celery", pl.col("task_id").is_not_null())
    by_name = {name: set(group["event"]) for (name,), group in tasks.group_by("task_name")}
    assert by_name["chat.run_agent"] == {"task_received", "task_succeeded"}
    assert by_name["chat.explode"] == {"task_received", "task_failed"}
    assert by_name["chat.flaky"] == {"task_received", "task_retry", "task_succeeded"}
    assert {"task_soft_time_limit", "task_failed"} <= by_name["chat.slow"]
    failed = _one(events, event="task_failed", task_name="chat.explode")
    assert failed["exception"] == "TypeError: can not serialize 'UUID' object"
    assert "Traceback" in failed["detail"]
    ids = set(tasks.filter(pl.col("task_name") == "chat.run_agent")["task_id"])
    assert len(ids) == 1 and len(next(iter(ids))) == 36


def test_celery_worker_trouble_is_recognised(events):
    unregistered = _one(events, event="task_unregistered")
    assert unregistered["task_name"] == "chat.not_registered"
    assert unregistered["cause"] == "no_worker" and len(unregistered["task_id"]) == 36
    lost = _one(events, event="worker_lost")
    assert lost["cause"] == "task_stuck" and "SIGKILL" in lost["exception"]
    unreachable = events.filter(pl.col("event") == "broker_unreachable")
    assert unreachable.height >= 1
    assert "Connection refused" in unreachable["status_message"][0]


def test_redis_server_lines(events):
    assert _one(events, event="redis_ready")["name"] == "redis"
    assert events.filter(pl.col("event") == "redis_shutdown").height >= 1


def test_no_banner_or_info_noise_becomes_an_event(events, captured):
    lines = sum(len(captured.text(n).splitlines()) for n in captured.files)
    assert events.height < lines / 2
    assert events.filter(pl.col("event").is_null()).is_empty()


def _to_json_file(text: str, stream: str, stamp: str) -> str:
    return "".join(
        json.dumps({"log": line + "\n", "stream": stream, "time": stamp}) + "\n"
        for line in text.splitlines()
    )


def test_json_file_lines_split_at_16k_are_joined(tmp_path: Path, captured):
    """The engine splits lines over 16 KB into partial records; they come back as one."""
    line = captured.text("celery", "stderr").splitlines()
    task_line = next(ln for ln in line if "succeeded in" in ln)
    long = task_line + " " + "x" * 40_000
    stamp = "2026-01-01T00:00:00.123456789Z"
    pieces = [long[i : i + 16384] for i in range(0, len(long), 16384)]
    docs = [{"log": p, "stream": "stderr", "time": stamp} for p in pieces]
    docs[-1]["log"] += "\n"
    path = tmp_path / "abc-json.log"
    path.write_text("".join(json.dumps(d) + "\n" for d in docs))
    frame = read_file(path, service="worker")
    assert frame.height == 1 and frame["line"][0] == long
    out = parse_lines(frame).collect()
    row = out.row(0, named=True)
    assert row["event"] == "task_succeeded" and row["service"] == "worker"
    assert out["ts"].dt.strftime("%Y-%m-%dT%H:%M:%S%.9f")[0] == "2026-01-01T00:00:00.123456789"


def test_stream_chunks_are_reassembled_into_lines_at_any_boundary(captured):
    """The Docker API streams chunks that split lines anywhere; lines come back whole."""
    import random

    from wsanalyze.sources.logs.containers import chunks_to_lines

    data = captured.text("celery", "stderr").encode()
    rng = random.Random(3)
    cuts = sorted(rng.sample(range(1, len(data)), 200))
    chunks = [data[a:b] for a, b in zip([0, *cuts], [*cuts, len(data)], strict=True)]
    assert list(chunks_to_lines(chunks)) == data.decode().splitlines()


def test_the_zone_of_plain_logs_comes_from_the_environment(captured, monkeypatch):
    """Daphne ran an hour east of UTC; WSANALYZE_LOG_TZ says so for plain files."""
    path = captured.files["daphne"][1]
    plain = load_log_events(path).events.collect()
    monkeypatch.setenv("WSANALYZE_LOG_TZ", "Etc/GMT-1")
    zoned = load_log_events(path).events.collect()
    crash = pl.col("event") == "app_exception"
    shift = plain.filter(crash)["ts"][0] - zoned.filter(crash)["ts"][0]
    assert shift.total_seconds() == DAPHNE_UTC_OFFSET_S
