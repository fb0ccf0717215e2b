"""Hostile trace input costs only itself: bad values, special files, zstd bombs, damaged stores.

Every case is built for real (a span past int64, a FIFO from os.mkfifo, a bomb
from the zstandard module, a tampered Parquet part) and read through the real
command line in a subprocess: it must end (a timeout fails the test), exit with
0 and a problem line naming what was skipped when good data sits beside the bad
(1 with a one-line error when nothing usable is left), never 70, never a
traceback, the good data still reported, and peak memory under 1 GiB.
"""

from __future__ import annotations

import json
import os
import socket
from pathlib import Path

import polars as pl
import pytest
import zstandard
from wsanalyze.sources import SourceError, load_events
from wsanalyze.sources._otlp.frame import rows_to_frame
from wsanalyze.sources._otlp.rows import ROW_COLUMNS, span_row
from wsanalyze.sources.store import ingest
from wsanalyze.sources.store.manifest import MANIFEST
from wsanalyze.verdicts.testing import Trace, otlp_span, write_otlp
from wstrace import conventions as C

MAX_RSS_MIB = 1024
NAME = ROW_COLUMNS.index("name")


def good_trace() -> Trace:
    """A healthy conversation: conv-good, one message answered in 3 chunks."""
    t = Trace("conv-good")
    t.connect("k1")
    t.message("m1", "k1", 10, chunks=3)
    return t


GOOD_SPANS = len(good_trace().rows)


def good_traces(directory: Path) -> Path:
    """conv-good as OTLP files in ``directory``."""
    write_otlp(good_trace(), directory)
    return directory


def document(spans: list, service: str = "web") -> dict:
    resource = {"attributes": [{"key": "service.name", "value": {"stringValue": service}}]}
    return {"resourceSpans": [{"resource": resource, "scopeSpans": [{"spans": spans}]}]}


def beside_spans() -> list[dict]:
    """conv-beside's spans: each shares a line with one bad span and must survive it."""
    t = Trace("conv-beside")
    t.connect("k2")
    t.message("m2", "k2", 10, chunks=8)
    return [otlp_span(row) for row in t.rows]


def base_span() -> dict:
    """A well-formed span of another conversation, spoiled by each case below."""
    t = Trace("conv-bad")
    t.receive("m9", "k9", 5)
    return otlp_span(t.rows[0])


def _attr(key: str, value: dict):
    return lambda s: s["attributes"].append({"key": key, "value": value})


# case -> what it does to a good span (return a value to replace the span with it)
SPOILERS = {
    "start past int64": lambda s: s.update(startTimeUnixNano=str(2**70)),
    "end past year 9999": lambda s: s.update(endTimeUnixNano=str(253_402_300_800 * 10**9)),
    "negative start": lambda s: s.update(startTimeUnixNano="-5"),
    "start as a huge JSON number": lambda s: s.update(startTimeUnixNano=10**30),
    "end as a JSON number past a double": lambda s: s.update(endTimeUnixNano=float("inf")),
    "trace id of the wrong length": lambda s: s.update(traceId="ab" * 20),
    "span id that is not hex": lambda s: s.update(spanId="zzzzzzzzzzzzzzzz"),
    "trace id a number": lambda s: s.update(traceId=12345),
    "parent id of the wrong shape": lambda s: s.update(parentSpanId="p"),
    "link id that is garbage": lambda s: s.update(links=[{"spanId": "not-an-id!"}]),
    "close code past int32": _attr(C.CLOSE_CODE, {"intValue": "99999999999"}),
    "seq past int64": _attr(C.SEQ, {"intValue": str(2**70)}),
    "members a huge double": _attr(C.MEMBERS, {"doubleValue": 1e300}),
    "nested garbage in an attribute": _attr(C.HOP, {"kvlistValue": {"values": [1, [2], None]}}),
    "attributes not a list": lambda s: s.update(attributes="garbage"),
    "status a string": lambda s: s.update(status="ok"),
    "kind unhashable": lambda s: s.update(kind=[1]),
    "events garbage": lambda s: s.update(events=[1, 2]),
    "span not an object": lambda s: "garbage",
}


def spoiled(case: str) -> object:
    span = base_span()
    replaced = SPOILERS[case](span)
    return span if replaced is None else replaced


def hostile_dir(directory: Path, cases: list[str]) -> Path:
    """Good files, plus bad.jsonl: line n holds case n's bad span beside a good conv-beside span."""
    good_traces(directory)
    beside = beside_spans()
    assert len(beside) > len(cases)
    lines = [document([spoiled(case), beside[i]]) for i, case in enumerate(cases)]
    lines.append(document(beside[len(cases) :]))
    lines.append({"resourceSpans": [7, document(beside[:1])["resourceSpans"][0]]})  # garbage
    (directory / "bad.jsonl").write_text("".join(json.dumps(doc) + "\n" for doc in lines))
    return directory


def no_crash(run) -> None:
    assert run.code != 70 and "Traceback" not in run.err and "Int128" not in run.err, run.err
    assert run.peak_mib < MAX_RSS_MIB, run.peak_mib


# --- 1. one bad value costs its span ---------------------------------------------------------


@pytest.mark.parametrize("case", list(SPOILERS))
def test_a_span_with_an_unrepresentable_value_costs_only_itself(tmp_path, monkeypatch, case):
    monkeypatch.setenv("WSANALYZE_STORE", str(tmp_path / "no-store"))
    traces = hostile_dir(tmp_path / "traces", [case])
    result = load_events(traces)
    events = result.events.collect()
    bad = traces / "bad.jsonl"
    on_line_1 = [p for p in result.problems if p.startswith(f"{bad}:1: ")]
    assert len(on_line_1) == 1 and "1 span(s) could not be decoded" in on_line_1[0], result.problems
    counts = dict(events.group_by("conversation_id").len().iter_rows())
    assert counts["conv-good"] == GOOD_SPANS
    assert counts["conv-beside"] == len(beside_spans())
    assert "conv-bad" not in counts


def test_the_reason_is_named_for_values_out_of_range(tmp_path, monkeypatch):
    monkeypatch.setenv("WSANALYZE_STORE", str(tmp_path / "no-store"))
    cases = ["start past int64", "close code past int32", "trace id of the wrong length"]
    problems = load_events(hostile_dir(tmp_path / "traces", cases)).problems
    assert any("startTimeUnixNano 1180591620717411303424 is out of range" in p for p in problems)
    assert any("attribute ws.close_code 99999999999 is out of range" in p for p in problems)
    assert any("traceId 'abab" in p and "is not a 16-byte id" in p for p in problems)


def test_every_command_reports_the_good_data_beside_bad_spans(tmp_path, wsanalyze):
    traces = hostile_dir(tmp_path / "traces", list(SPOILERS))
    bad = traces / "bad.jsonl"
    listed = wsanalyze("conversations", "--traces", str(traces))
    no_crash(listed)
    assert listed.code == 0, listed.err
    assert "conv-good" in listed.out and "conv-beside" in listed.out
    for line in range(1, len(SPOILERS) + 1):
        assert f"{bad}:{line}: 1 span(s) could not be decoded" in listed.out, line
    assert f"{bad}:{len(SPOILERS) + 2}: 1 span(s)" in listed.out  # the garbage resource
    lost = wsanalyze("lost", "--traces", str(traces))
    no_crash(lost)
    assert lost.code == 0 and f"{bad}:1:" in lost.out, lost.err
    one = wsanalyze("conversation", "conv-beside", "--traces", str(traces), "--json")
    no_crash(one)
    assert one.code == 0 and one.json["conversation_id"] == "conv-beside", one.err
    store = tmp_path / "store"
    ingested = wsanalyze("ingest", "--traces", str(traces), "--store", str(store))
    no_crash(ingested)
    assert ingested.code == 0 and f"{bad}:1:" in ingested.out, ingested.err
    from_store = wsanalyze("conversations", "--traces", str(store), "--json")
    no_crash(from_store)
    ids = {row["conversation_id"] for row in from_store.json}
    assert {"conv-good", "conv-beside"} <= ids and "conv-bad" not in ids


def test_odd_values_the_table_can_hold_keep_their_span(tmp_path, monkeypatch):
    """Free attributes past int64, lone surrogates, NaN: kept (escaped) in the attributes JSON."""
    monkeypatch.setenv("WSANALYZE_STORE", str(tmp_path / "no-store"))
    odd = base_span()
    odd["attributes"] += [
        {"key": "x.big", "value": {"intValue": str(2**70)}},
        {"key": "x.text", "value": {"stringValue": "a\ud800b"}},
        {"key": "x.nan", "value": {"doubleValue": "NaN"}},
    ]
    unpaired = base_span()
    unpaired["spanId"] = f"{0xBEEF:016x}"
    unpaired["attributes"].append({"key": C.APP_MESSAGE_ID, "value": {"stringValue": "\udc00"}})
    path = tmp_path / "odd.jsonl"
    path.write_text(json.dumps(document([odd, unpaired])) + "\n")  # ensure_ascii: \\ud800
    result = load_events(path)
    events = result.events.collect()
    assert events["span_id"].to_list() == [odd["spanId"]]
    attributes = json.loads(events["attributes"][0])
    assert (attributes["x.big"], attributes["x.text"], attributes["x.nan"]) == (
        2**70,
        "a\ud800b",
        None,
    )
    assert result.problems == [
        f"{path}:1: span skipped (app_message_id '\\udc00' cannot be represented)"
    ]


def test_a_row_polars_cannot_take_is_dropped_and_named():
    good = span_row(base_span(), "web", "f.jsonl:1")
    row = list(span_row(base_span(), "web", "f.jsonl:2"))
    row[NAME] = "bad \ud800 text"  # a lone surrogate: no UTF-8 for it
    problems: list[str] = []
    frame = rows_to_frame([good, tuple(row)], problems)
    assert frame.height == 1 and frame["origin"].to_list() == ["f.jsonl:1"]
    assert len(problems) == 1 and problems[0].startswith("f.jsonl:2: span skipped (name ")


# --- 3. only regular files are read ----------------------------------------------------------


@pytest.fixture
def with_specials(tmp_path) -> Path:
    """conv-good's files plus a FIFO, a socket and a symlink to a device, all named like traces."""
    traces = good_traces(tmp_path / "traces")
    os.mkfifo(traces / "web-fifo.jsonl")
    listener = socket.socket(socket.AF_UNIX)
    listener.bind(str(traces / "agent.sock.json"))
    (traces / "zero.jsonl").symlink_to("/dev/zero")
    yield traces
    listener.close()


def _skipped(path: Path, kind: str) -> str:
    return f"{path}: {kind}, not a regular file; skipped"


def test_special_files_among_traces_are_skipped_with_a_note(with_specials, wsanalyze):
    run = wsanalyze("conversations", "--traces", str(with_specials), timeout=30)
    no_crash(run)
    assert run.code == 0 and "conv-good" in run.out, run.err
    assert _skipped(with_specials / "web-fifo.jsonl", "a FIFO") in run.out
    assert _skipped(with_specials / "agent.sock.json", "a socket") in run.out
    assert _skipped(with_specials / "zero.jsonl", "a character device") in run.out


def test_special_files_are_skipped_by_ingest_and_by_a_store_reading_new_files(
    with_specials, tmp_path, wsanalyze
):
    store = tmp_path / "store"
    run = wsanalyze("ingest", "--traces", str(with_specials), "--store", str(store), timeout=30)
    no_crash(run)
    assert run.code == 0 and _skipped(with_specials / "web-fifo.jsonl", "a FIFO") in run.out
    os.mkfifo(with_specials / "later.jsonl")  # made after the ingest: the store's tail
    tail = wsanalyze(
        "conversations", "--traces", str(with_specials), env={"WSANALYZE_STORE": str(store)}
    )
    no_crash(tail)
    assert tail.code == 0 and "conv-good" in tail.out, tail.err
    assert _skipped(with_specials / "later.jsonl", "a FIFO") in tail.out


def test_a_fifo_alone_is_a_one_line_error(tmp_path, wsanalyze):
    (tmp_path / "traces").mkdir()
    fifo = tmp_path / "traces" / "spans.jsonl"
    os.mkfifo(fifo)
    for target in (fifo.parent, fifo):
        run = wsanalyze("conversations", "--traces", str(target), timeout=30)
        no_crash(run)
        assert run.code == 1 and len(run.err.strip().splitlines()) == 1, run.err
        assert "a FIFO, not a regular file" in run.err


def test_special_files_among_logs_are_skipped_with_a_note(tmp_path, wsanalyze):
    traces = good_traces(tmp_path / "traces")
    logs = tmp_path / "logs"
    logs.mkdir()
    (logs / "web.log").write_text("2026-01-02 10:00:00,000 INFO started\n")
    os.mkfifo(logs / "worker.log")
    run = wsanalyze("conversations", "--traces", str(traces), "--logs", str(logs), timeout=30)
    no_crash(run)
    assert run.code == 0 and "conv-good" in run.out, run.err
    assert _skipped(logs / "worker.log", "a FIFO") in run.out
    alone = wsanalyze("conversations", "--logs", str(logs / "worker.log"), timeout=30)
    assert alone.code == 1 and "a FIFO, not a file" in alone.err, alone.err


# --- 5. bounded decompression ----------------------------------------------------------------


def _zero_frame(size: int = 128 << 20) -> bytes:
    return zstandard.ZstdCompressor(level=3).compress(b"\0" * size)


def _line(doc: dict) -> bytes:
    return json.dumps(doc).encode() + b"\n"


def zstd_bomb(path: Path, layout: str) -> Path:
    """One good line of conv-zst, then 4 GiB of zeros from ~150 KB of frames."""
    t = Trace("conv-zst")
    t.connect("k3")
    good = _line(document([otlp_span(row) for row in t.rows]))
    frames = [zstandard.ZstdCompressor().compress(good)] + [_zero_frame()] * 32
    if layout == "stream":
        path.write_bytes(b"".join(frames))
    else:  # the collector's framed layout: [u32 length][frame]...
        path.write_bytes(b"".join(len(f).to_bytes(4, "big") + f for f in frames))
    assert path.stat().st_size < 256 << 10
    return path


@pytest.mark.parametrize("layout", ["stream", "framed"])
def test_a_zstd_bomb_is_cut_at_the_limit_and_the_rest_is_read(tmp_path, wsanalyze, layout):
    traces = good_traces(tmp_path / "traces")
    bomb = zstd_bomb(traces / "bomb.zst", layout)
    run = wsanalyze("conversations", "--traces", str(traces), timeout=120)
    no_crash(run)
    assert run.code == 0, run.err
    assert "conv-good" in run.out and "conv-zst" in run.out
    assert f"{bomb}: decompresses to more than 256 MiB (the limit" in run.out


def test_the_decompression_limit_can_be_raised_or_lowered(tmp_path, monkeypatch):
    monkeypatch.setenv("WSANALYZE_STORE", str(tmp_path / "no-store"))
    monkeypatch.setenv("WSANALYZE_MAX_DECOMPRESSED_MB", "1")
    t = Trace("conv-zst")
    t.connect("k3")
    lines = b"".join(_line(document([otlp_span(row)])) for row in t.rows)
    path = tmp_path / "t.zst"
    path.write_bytes(zstandard.ZstdCompressor().compress(lines * (2 * (1 << 20) // len(lines))))
    result = load_events(path)
    assert any("decompresses to more than 1 MiB" in p for p in result.problems)
    assert result.events.collect()["conversation_id"].to_list()  # the lines before the limit
    monkeypatch.setenv("WSANALYZE_MAX_DECOMPRESSED_MB", "8")
    assert load_events(path).problems == []


def test_a_frame_asking_for_a_huge_window_is_refused(tmp_path, monkeypatch):
    monkeypatch.setenv("WSANALYZE_STORE", str(tmp_path / "no-store"))
    params = zstandard.ZstdCompressionParameters.from_level(3, window_log=30)
    path = tmp_path / "window.zst"
    with (
        open(path, "wb") as fh,
        zstandard.ZstdCompressor(compression_params=params).stream_writer(fh) as writer,
    ):
        writer.write(b"\n" * 1000)
    result = load_events(path)
    assert len(result.problems) == 1 and "damaged zstd data" in result.problems[0]


# --- the compacted store ---------------------------------------------------------------------


@pytest.fixture
def store(tmp_path) -> Path:
    """A store of conv-good, then parts that are not what the manifest promises."""
    store = tmp_path / "store"
    ingest(good_traces(tmp_path / "traces"), store)
    tampered = pl.DataFrame(
        {
            "ts": ["not a time"],
            "conversation_id": [42],
            "close_code": ["x"],
            "span_id": ["00000000000000aa"],
            "_slot": pl.Series([-1], dtype=pl.Int16),
        }
    )
    tampered.write_parquet(store / "part-tampered.parquet")
    (store / "part-garbage.parquet").write_bytes(b"PAR1 not parquet at all")
    os.mkfifo(store / "part-fifo.parquet")
    manifest = json.loads((store / MANIFEST).read_text())
    for name in ("part-tampered", "part-garbage", "part-missing", "part-fifo"):
        manifest["parts"].append({"name": f"{name}.parquet", "rows": 1, "slots": [-1, 1023]})
    (store / MANIFEST).write_text(json.dumps(manifest))
    return store


def test_unusable_store_parts_cost_only_themselves(store, wsanalyze):
    result = load_events(store)
    conversations = set(result.events.collect()["conversation_id"].drop_nulls())
    assert conversations == {"conv-good"}
    text = "\n".join(result.problems)
    assert f"{store / 'part-garbage.parquet'}: unreadable store part" in text
    assert f"{store / 'part-missing.parquet'}: unreadable store part" in text
    assert f"{store / 'part-fifo.parquet'}: a FIFO, not a regular file; part skipped" in text
    assert f"{store / 'part-tampered.parquet'}: column ts holds String" in text
    one = load_events(store, conversation_id="conv-good")
    assert one.events.collect().height == GOOD_SPANS
    assert f"{store / 'part-tampered.parquet'}: column conversation_id holds Int64" in "\n".join(
        one.problems
    )
    run = wsanalyze("conversations", "--traces", str(store), timeout=30)
    no_crash(run)
    assert run.code == 0 and "conv-good" in run.out and "part-garbage" in run.out, run.err


def test_a_damaged_manifest_is_a_one_line_error(store, wsanalyze):
    manifest = json.loads((store / MANIFEST).read_text())
    manifest["parts"][0] = {"name": "../../etc/passwd", "slots": "all"}
    (store / MANIFEST).write_text(json.dumps(manifest))
    with pytest.raises(SourceError, match="damaged store manifest"):
        load_events(store)
    run = wsanalyze("conversations", "--traces", str(store), timeout=30)
    no_crash(run)
    assert (
        run.code == 1
        and len(run.err.strip().splitlines()) == 1
        and "damaged store manifest" in run.err
    )


def test_a_store_column_value_out_of_range_becomes_null_not_a_crash(tmp_path, monkeypatch):
    monkeypatch.setenv("WSANALYZE_STORE", str(tmp_path / "no-store"))
    store = tmp_path / "store"
    ingest(good_traces(tmp_path / "traces"), store)
    part = next(store.glob("part-*.parquet"))
    frame = pl.read_parquet(part).with_columns(pl.col("close_code").cast(pl.Int64))
    frame = frame.with_columns(close_code=pl.lit(2**40, dtype=pl.Int64))  # older, wider type
    frame.write_parquet(part)
    events = load_events(store).events.collect()
    assert events.height == frame.height and events["close_code"].null_count() == events.height
