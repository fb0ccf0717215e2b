"""OTLP/JSON file sources: the variations real producers write, bad input, the id prefilter."""

from __future__ import annotations

import base64
import copy
import importlib.util
import json
from argparse import Namespace
from pathlib import Path

import polars as pl
import pytest
import zstandard
from google.protobuf.json_format import MessageToDict
from opentelemetry.exporter.otlp.proto.common.trace_encoder import encode_spans
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import Link, Status, StatusCode
from wsanalyze.events import SCHEMA
from wsanalyze.sources import SourceError, load_events, open_source
from wsanalyze.sources._otlp.scan import _FIND_MAX_NEEDLES
from wsanalyze.sources.otlp_files import OtlpFilesReader
from wstrace import conventions as C

ROOT = Path(__file__).resolve().parents[2]
CONV = "conv-42"


def sdk_request() -> tuple[dict, list]:
    """A real ExportTraceServiceRequest as protobuf's JSON mapping writes it (base64 ids)."""
    exporter = InMemorySpanExporter()
    provider = TracerProvider(resource=Resource.create({"service.name": "web"}))
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    tracer = provider.get_tracer("wstrace")
    ids = {C.CONVERSATION_ID: CONV, C.CONNECTION_ID: "c1"}
    with tracer.start_as_current_span("ws.connect", attributes={**ids, C.HOP: "connect"}) as root:
        with tracer.start_as_current_span(
            "ws.receive", attributes={**ids, C.MESSAGE_ID: "m1", C.HOP: "receive"}
        ):
            pass
        link = Link(root.get_span_context())
        with tracer.start_as_current_span(
            "ws.publish",
            links=[link],
            attributes={
                **ids,
                C.MESSAGE_ID: "m1",
                C.HOP: "publish",
                C.SEQ: 3,
                C.MEMBERS: 0,
                C.QUEUES: ["a", "b"],
                "x.float": 1.5,
                "x.flag": True,
            },
        ) as span:
            span.record_exception(ValueError("boom"))
            span.set_status(Status(StatusCode.ERROR, "boom"))
    with tracer.start_as_current_span("ws.connect", attributes={C.CONVERSATION_ID: "other"}):
        pass
    spans = exporter.get_finished_spans()
    doc = MessageToDict(encode_spans(spans), use_integers_for_enums=True)
    return doc, spans


def to_hex(doc: dict) -> dict:
    """The same request with hex ids (as the embedded exporter writes)."""
    doc = copy.deepcopy(doc)
    for rs in doc["resourceSpans"]:
        for ss in rs["scopeSpans"]:
            for span in ss["spans"]:
                for key in ("traceId", "spanId", "parentSpanId"):
                    if span.get(key):
                        span[key] = base64.b64decode(span[key]).hex()
                for link in span.get("links", []):
                    for key in ("traceId", "spanId"):
                        link[key] = base64.b64decode(link[key]).hex()
    return doc


def write_lines(path: Path, docs: list[dict | str]) -> Path:
    lines = [d if isinstance(d, str) else json.dumps(d) for d in docs]
    path.write_text("\n".join(lines) + "\n")
    return path


def frame(path: Path, **kw) -> tuple[pl.DataFrame, list[str]]:
    result = load_events(path, **kw)
    return result.events.collect().sort("ts", "span_id"), result.problems


def test_base64_ids_from_the_sdk_become_lowercase_hex(tmp_path):
    doc, spans = sdk_request()
    events, problems = frame(write_lines(tmp_path / "t.jsonl", [doc]))
    assert problems == []
    expected = {format(s.context.span_id, "016x") for s in spans}
    assert set(events["span_id"]) == expected
    assert {len(t) for t in events["trace_id"]} == {32}
    publish = events.filter(pl.col("name") == "ws.publish").row(0, named=True)
    root = events.filter(pl.col("hop") == "connect").row(0, named=True)
    assert publish["links"] == [root["span_id"]]
    assert root["parent_span_id"] is None


def test_hex_and_base64_ids_give_the_same_rows(tmp_path):
    doc, _ = sdk_request()
    b64, _ = frame(write_lines(tmp_path / "b.jsonl", [doc]))
    hexed, _ = frame(write_lines(tmp_path / "h.jsonl", [to_hex(doc)]))
    assert b64.drop("origin").equals(hexed.drop("origin"))


def test_int64_as_number_or_string_and_enum_names(tmp_path):
    doc, _ = sdk_request()
    numeric = to_hex(doc)
    for span in numeric["resourceSpans"][0]["scopeSpans"][0]["spans"]:
        span["startTimeUnixNano"] = int(span["startTimeUnixNano"])
        span["endTimeUnixNano"] = int(span["endTimeUnixNano"])
        for kv in span["attributes"]:
            if "intValue" in kv["value"]:
                kv["value"]["intValue"] = int(kv["value"]["intValue"])
        if span.get("status", {}).get("code") == 2:
            span["status"]["code"] = "STATUS_CODE_ERROR"
        span["kind"] = "SPAN_KIND_SERVER" if span["kind"] == 2 else span["kind"]
    a, _ = frame(write_lines(tmp_path / "s.jsonl", [to_hex(doc)]))
    b, _ = frame(write_lines(tmp_path / "n.jsonl", [numeric]))
    assert a.drop("origin").equals(b.drop("origin"))
    assert b.filter(pl.col("name") == "ws.publish")["seq"].to_list() == [3]


def test_absent_and_empty_parent_are_both_roots(tmp_path):
    doc = to_hex(sdk_request()[0])
    spans = doc["resourceSpans"][0]["scopeSpans"][0]["spans"]
    roots = [s for s in spans if not s.get("parentSpanId")]
    roots[0]["parentSpanId"] = ""
    roots[1].pop("parentSpanId", None)
    events, _ = frame(write_lines(tmp_path / "t.jsonl", [doc]))
    assert events.filter(pl.col("parent_span_id").is_null()).height == 2
    assert events.filter(pl.col("parent_span_id") == "").height == 0


def test_columns_map_from_ws_attributes(tmp_path):
    doc, _ = sdk_request()
    events, _ = frame(write_lines(tmp_path / "t.jsonl", [doc]))
    assert events.schema == pl.Schema(SCHEMA)
    row = events.filter(pl.col("name") == "ws.publish").row(0, named=True)
    assert row["service"] == "web"
    assert row["conversation_id"] == CONV and row["message_id"] == "m1"
    assert row["hop"] == "publish" and row["members"] == 0 and row["seq"] == 3
    assert row["status"] == "error" and row["status_message"] == "boom"
    assert row["exception"] == "ValueError: boom"
    assert row["queues"] == ["a", "b"]
    assert row["kind"] == "internal"
    attrs = json.loads(row["attributes"])
    assert attrs["x.float"] == 1.5 and attrs["x.flag"] is True and attrs[C.SEQ] == 3
    assert row["origin"].endswith("t.jsonl:1")
    assert events.filter(pl.col("name") == "ws.receive")["status"].to_list() == ["unset"]


def test_all_anyvalue_kinds_decode(tmp_path):
    doc = to_hex(sdk_request()[0])
    span = doc["resourceSpans"][0]["scopeSpans"][0]["spans"][0]
    span["attributes"] += [
        {
            "key": "a",
            "value": {"arrayValue": {"values": [{"intValue": "1"}, {"stringValue": "x"}]}},
        },
        {
            "key": "k",
            "value": {"kvlistValue": {"values": [{"key": "z", "value": {"boolValue": False}}]}},
        },
        {"key": "b", "value": {"bytesValue": "AAE="}},
        {"key": "d", "value": {"doubleValue": 2}},
        {"key": "e", "value": {}},
    ]
    span["unknownField"] = {"ignored": True}
    events, problems = frame(write_lines(tmp_path / "t.jsonl", [doc]))
    assert problems == []
    attrs = json.loads(events.filter(pl.col("span_id") == span["spanId"])["attributes"][0])
    assert attrs["a"] == [1, "x"] and attrs["k"] == {"z": False}
    assert attrs["b"] == "AAE=" and attrs["d"] == 2.0 and attrs["e"] is None


def _collector_docs() -> list[dict]:
    doc = to_hex(sdk_request()[0])
    second = copy.deepcopy(doc)
    for span in second["resourceSpans"][0]["scopeSpans"][0]["spans"]:
        span["spanId"] = span["spanId"][::-1]
    return [doc, second]


def test_collector_framed_zstd_output(tmp_path):
    docs = _collector_docs()
    plain, _ = frame(write_lines(tmp_path / "plain.json", docs))
    out = bytearray()
    for d in docs:
        blob = zstandard.ZstdCompressor().compress(json.dumps(d).encode())
        out += len(blob).to_bytes(4, "big") + blob
    (tmp_path / "z").mkdir()
    (tmp_path / "z" / "traces.json").write_bytes(bytes(out))
    framed, problems = frame(tmp_path / "z" / "traces.json")
    assert problems == []
    assert framed.drop("origin").equals(plain.drop("origin"))
    assert framed["origin"].str.ends_with(":2").any()  # frame number = line number


def test_plain_zstd_stream_and_conversation_lookup(tmp_path):
    docs = _collector_docs()
    plain, _ = frame(write_lines(tmp_path / "plain.json", docs))
    text = "\n".join(json.dumps(d) for d in docs) + "\n"
    path = tmp_path / "traces.jsonl.zst"
    path.write_bytes(zstandard.ZstdCompressor().compress(text.encode()))
    stream, problems = frame(path)
    assert problems == []
    assert stream.drop("origin").equals(plain.drop("origin"))
    one, _ = frame(path, conversation_id=CONV)
    assert one.height == plain.filter(pl.col("conversation_id") == CONV).height > 0


def test_rotated_backups_are_read_beside_the_current_file(tmp_path):
    docs = _collector_docs()
    write_lines(tmp_path / "traces-2022-09-14T05-02-14.173.json", docs[:1])
    write_lines(tmp_path / "traces.json", docs[1:])
    (tmp_path / "README.txt").write_text("not traces")
    events, problems = frame(tmp_path)
    assert problems == []
    assert events["span_id"].n_unique() == 2 * 4
    assert len(load_events(tmp_path).sources) == 2


def test_malformed_and_truncated_lines_are_reported_and_other_spans_kept(tmp_path):
    doc = to_hex(sdk_request()[0])
    good = json.dumps(doc)
    again = good.replace('"web"', '"web-2"')  # the same spans from another service: not copies
    path = tmp_path / "t.jsonl"
    broken = '{"resourceSpans": [{"ws.conversation_id": "conv-42" oops'
    path.write_text(good + "\n" + broken + "\n" + again + "\n" + good[: len(good) // 2])
    for conversation in (None, CONV):
        events, problems = frame(path, conversation_id=conversation)
        assert any(p.startswith(f"{path}:2: malformed line") for p in problems), problems
        assert any(p.startswith(f"{path}:4: truncated line") for p in problems), problems
        assert len(problems) == 2
        expected = 4 if conversation is None else 3
        assert events.height == 2 * expected  # lines 1 and 3 survive
        assert set(events["origin"].str.extract(r":(\d+)$").to_list()) == {"1", "3"}


def test_a_bad_span_costs_only_itself(tmp_path):
    doc = to_hex(sdk_request()[0])
    doc["resourceSpans"][0]["scopeSpans"][0]["spans"][1]["attributes"] = "garbage"
    events, problems = frame(write_lines(tmp_path / "t.jsonl", [doc]))
    assert events.height == 3
    assert problems == [
        f"{tmp_path / 't.jsonl'}:1: 1 span(s) could not be decoded and were skipped"
    ]


def test_missing_source_says_where_it_looked(tmp_path, monkeypatch):
    with pytest.raises(SourceError, match=str(tmp_path / "nope")):
        load_events(tmp_path / "nope")
    (tmp_path / "empty").mkdir()
    with pytest.raises(SourceError, match=f"no trace files in {tmp_path / 'empty'}"):
        load_events(tmp_path / "empty", conversation_id="x")
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("WSTRACE_DIR", raising=False)
    with pytest.raises(SourceError, match=r"\.wstrace"):
        load_events()
    monkeypatch.setenv("WSTRACE_DIR", str(tmp_path / "elsewhere"))
    with pytest.raises(SourceError, match=r"elsewhere.*WSTRACE_DIR"):
        load_events()
    with pytest.raises(SourceError, match="unsupported trace source"):
        open_source("zipkin://localhost:9411")


def test_default_store_comes_from_wstrace_dir(tmp_path, monkeypatch):
    write_lines(tmp_path / "web.1.jsonl", [sdk_request()[0]])
    monkeypatch.setenv("WSTRACE_DIR", str(tmp_path))
    monkeypatch.setenv("WSANALYZE_STORE", str(tmp_path / "no-store"))
    assert load_events(conversation_id=CONV).events.collect().height == 3


def test_window_end_is_the_latest_timestamp_in_the_data(tmp_path):
    doc, spans = sdk_request()
    path = write_lines(tmp_path / "t.jsonl", [doc])
    latest = max(s.end_time for s in spans)
    for conversation in (None, CONV):
        window = load_events(path, conversation_id=conversation).window_end
        assert abs(window.timestamp() * 1e9 - latest) < 1e3


def load_generator():
    spec = importlib.util.spec_from_file_location("wsgen", ROOT / "benchmarks" / "generate.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def generate(out: Path, spans: int = 3000, **kw) -> dict:
    cfg = dict(spans=spans, out=str(out), seed=3, web_procs=2, worker_procs=2, concurrency=40,
               fault_rate=0.3, max_file_mb=1, zstd=False)  # fmt: skip
    cfg.update(kw)
    return load_generator().generate(Namespace(**cfg))


def test_id_prefilter_finds_every_span_of_a_conversation(tmp_path):
    summary = generate(tmp_path / "store")
    full = load_events(tmp_path / "store").events.collect()
    counts = full.group_by("conversation_id").len().sort("conversation_id")
    assert counts.height == summary["conversations"]
    # Conversations share batch lines with others: each must still come back whole.
    for cid, n in counts.sample(25, seed=1).iter_rows():
        one = load_events(tmp_path / "store", conversation_id=cid).events.collect()
        assert one.height == n
        expected = full.filter(pl.col("conversation_id") == cid).sort("span_id")
        assert one.sort("span_id").equals(expected)
    prefix = counts["conversation_id"][0][:-2]  # a prefix of an id matches nothing
    assert load_events(tmp_path / "store", conversation_id=prefix).events.collect().height == 0


def test_parallel_and_serial_reads_agree(tmp_path):
    from wsanalyze.sources.otlp_files import discover, read_files

    generate(tmp_path / "s", spans=2000)
    files = discover(tmp_path / "s")
    serial = [c.rows for c in read_files(files, workers=1)]
    parallel = [c.rows for c in read_files(files, workers=2, parallel_min_bytes=0)]
    assert serial == parallel
    # Big files are split into line-aligned ranges; rows and their file:line stay the same.
    ranged = read_files(files, workers=2, parallel_min_bytes=0, range_bytes=50_000)
    assert [r for c in ranged for r in c.rows] == [r for rows in serial for r in rows]


def test_reader_satisfies_the_interface(tmp_path):
    from wsanalyze.sources import TraceReader

    write_lines(tmp_path / "a.jsonl", [sdk_request()[0]])
    assert isinstance(OtlpFilesReader(tmp_path), TraceReader)
    assert isinstance(open_source(tmp_path), TraceReader)


def test_reads_a_store_written_by_the_wstrace_exporter(tmp_path):
    from opentelemetry.sdk.trace.export import BatchSpanProcessor
    from wstrace.file_exporter import FileSpanExporter

    provider = TracerProvider(resource=Resource.create({"service.name": "worker"}))
    provider.add_span_processor(BatchSpanProcessor(FileSpanExporter(tmp_path, "worker", 1 << 20)))
    tracer = provider.get_tracer("wstrace")
    for cid in ("a", "b", "c"):
        with (
            tracer.start_as_current_span(
                "ws.task", attributes={C.CONVERSATION_ID: cid, C.HOP: "task", C.SEQ: 1}
            ),
            tracer.start_as_current_span(
                "ws.publish", attributes={C.CONVERSATION_ID: cid, C.HOP: "publish", C.MEMBERS: 0}
            ) as span,
        ):
            span.set_status(Status(StatusCode.ERROR, "ChannelFull"))
    provider.shutdown()
    assert list(tmp_path.glob("*.jsonl"))
    result = load_events(tmp_path, conversation_id="b")
    events = result.events.collect()
    assert result.problems == []
    assert events.sort("ts")["hop"].to_list() == ["task", "publish"]
    publish = events.filter(pl.col("hop") == "publish").row(0, named=True)
    assert publish["service"] == "worker" and publish["members"] == 0
    assert publish["status"] == "error"
    task = events.filter(pl.col("hop") == "task").row(0, named=True)
    assert publish["parent_span_id"] == task["span_id"] and task["parent_span_id"] is None


def test_conversation_ids_lists_every_id_without_decoding(tmp_path):
    from wsanalyze.sources import conversation_ids

    generate(tmp_path / "s", spans=1500)
    full = load_events(tmp_path / "s").events.collect()
    expected = sorted(full["conversation_id"].drop_nulls().unique())
    assert conversation_ids(tmp_path / "s") == expected
    doc = to_hex(sdk_request()[0])
    write_lines(tmp_path / "one.jsonl", [doc])
    assert conversation_ids(tmp_path / "one.jsonl") == [CONV, "other"]


@pytest.mark.parametrize("cid", ["chat/ü<1>&x", "é/<"])
def test_escaped_ids_are_still_found(tmp_path, cid):
    doc = to_hex(sdk_request()[0])
    for span in doc["resourceSpans"][0]["scopeSpans"][0]["spans"]:
        for kv in span["attributes"]:
            if kv["key"] == C.CONVERSATION_ID and kv["value"]["stringValue"] == CONV:
                kv["value"]["stringValue"] = cid
    text = json.dumps(doc)  # ensure_ascii: ü as \\u00fc
    again = json.dumps(doc, ensure_ascii=False).replace('"web"', '"web-2"')  # not copies
    go_style = again.replace("<", "\\u003c").replace("/", "\\/")
    path = tmp_path / "t.jsonl"
    path.write_text(text + "\n" + go_style + "\n")
    events, problems = frame(path, conversation_id=cid)
    assert problems == [] and events.height == 6


def test_since_and_until_bound_span_starts(tmp_path):
    generate(tmp_path / "s", spans=1500)
    full = load_events(tmp_path / "s").events.collect().sort("ts")
    since, until = full["ts"][300], full["ts"][900]
    window = load_events(tmp_path / "s", since=since, until=until).events.collect()
    expected = full.filter(pl.col("ts").is_between(since, until))
    assert window.height == expected.height > 0
    naive = since.replace(tzinfo=None)  # naive datetimes are taken as UTC
    assert (
        load_events(tmp_path / "s", since=naive).events.collect().height
        == full.filter(pl.col("ts") >= since).height
    )


# --- reads by message id (spans of HTTP-started answers carry no conversation) ----------------


def span_lines(rows: list[dict], service: str = "web") -> list[dict]:
    """Event-table rows as OTLP documents, one span per line (batches split by the needle)."""
    from wsanalyze.verdicts.testing import otlp_span

    resource = {"attributes": [{"key": "service.name", "value": {"stringValue": service}}]}
    return [
        {"resourceSpans": [{"resource": resource, "scopeSpans": [{"spans": [otlp_span(r)]}]}]}
        for r in rows
    ]


def untagged(rows: list[dict], tag: int) -> list[dict]:
    """The rows as an answer started over HTTP writes them: no conversation, new span ids."""
    return [dict(r, conversation_id=None, span_id=f"{tag:04x}{i:012x}") for i, r in enumerate(rows)]


def untagged_only(ids: list[str]) -> pl.Expr:
    return pl.col("conversation_id").is_null() & pl.col("message_id").is_in(ids)


MANY = [f"x{i}" for i in range(_FIND_MAX_NEEDLES)]  # with one more: the one-pass search


@pytest.mark.parametrize("asked", [2, 12], ids=["a find per id", "one pass over the id keys"])
def test_message_ids_read_the_untagged_spans_of_those_messages_only(tmp_path, asked):
    generate(tmp_path / "s", spans=3000)
    full = load_events(tmp_path / "s").events.collect()
    messages = full["message_id"].drop_nulls().unique().sort().to_list()
    chains = full.filter(pl.col("message_id").is_in(messages[:8]) & pl.col("hop").is_in(["task"]))
    write_lines(tmp_path / "s" / "http-web-9.jsonl", span_lines(untagged(chains.to_dicts(), 1)))
    full = load_events(tmp_path / "s").events.collect()
    ids = messages[:2] if asked == 2 else messages[:6] + messages[20:26]  # 6,7 not asked
    result = load_events(tmp_path / "s", message_ids=ids)
    got = result.events.collect()
    expected = full.filter(untagged_only(ids))
    assert expected.height > 0 and result.problems == []
    assert got.sort("span_id").equals(expected.sort("span_id"))
    # the tagged spans of those messages stay with their conversation's read
    assert full.filter(pl.col("message_id").is_in(ids)).height > got.height


def test_lines_without_the_message_ids_are_never_decoded(tmp_path):
    from wsanalyze.verdicts.testing import Trace

    t = Trace("conv-a")
    rec = t.receive("m1", "k1", 10)
    t.enqueue("m2", rec, 11, conversation_id=None)  # untagged, another message
    t.enqueue("m1", rec, 12, conversation_id=None)
    t.task("m1", rec, 13, conversation_id=None)
    docs = span_lines(t.rows)
    path = write_lines(tmp_path / "t.jsonl", [*docs[:2], '{"resourceSpans": [oops}', *docs[2:]])
    assert load_events(path).problems  # a full read trips over the bad line
    for ids in (["m1"], ["m1", *MANY]):
        result = load_events(path, message_ids=ids)
        events = result.events.collect()
        assert result.problems == []  # the bad line holds no id: never parsed
        assert sorted(events["name"]) == ["ws.enqueue", "ws.task"]
        assert events["conversation_id"].null_count() == 2 and set(events["message_id"]) == {"m1"}


def test_many_message_ids_are_found_in_any_key_order_and_json_escaping(tmp_path):
    from wsanalyze.verdicts.testing import Trace

    t = Trace("conv-a")
    parent = f"{0xF00:016x}"
    t.enqueue("msg/0001", parent, 11, conversation_id=None)
    t.task("msg/0001", parent, 12, conversation_id=None)
    t.task("msg/0002", parent, 13, conversation_id=None)
    first, second, third = span_lines(t.rows)
    attrs = first["resourceSpans"][0]["scopeSpans"][0]["spans"][0]["attributes"]
    attrs[:] = [{"value": kv["value"], "key": kv["key"]} for kv in attrs]  # value before key
    go_style = json.dumps(second).replace("/", "\\/")
    path = write_lines(tmp_path / "t.jsonl", [first, go_style, third])
    ids = ["msg/0001", *MANY]
    events = load_events(path, message_ids=ids).events.collect()
    assert sorted(events["name"]) == ["ws.enqueue", "ws.task"]
    assert set(events["message_id"]) == {"msg/0001"}


def test_message_id_read_of_a_zstd_stream(tmp_path):
    from wsanalyze.verdicts.testing import Trace

    t = Trace("conv-a")
    rec = t.receive("m1", "k1", 10)
    t.task("m1", rec, 13, conversation_id=None)
    t.task("m2", rec, 14, conversation_id=None)
    text = "\n".join(json.dumps(d) for d in span_lines(t.rows)) + "\n"
    path = tmp_path / "traces.jsonl.zst"
    path.write_bytes(zstandard.ZstdCompressor().compress(text.encode()))
    result = load_events(path, message_ids=["m1"])
    events = result.events.collect()
    assert result.problems == [] and events["message_id"].to_list() == ["m1"]
    assert events["name"].to_list() == ["ws.task"] and result.window_end is not None


def test_app_message_ids_find_the_spans_naming_the_id_tagged_or_not(tmp_path):
    from wsanalyze.verdicts.testing import Trace

    t = Trace("conv-a")
    rec = t.receive("m1", "k1", 10, app_message_id="db-42")
    t.task("m1", rec, 13, conversation_id=None)
    t.receive("m2", "k1", 20, app_message_id="db-43")
    path = write_lines(tmp_path / "t.jsonl", span_lines(t.rows))
    by_app = load_events(path, app_message_ids=["db-42"]).events.collect()
    assert by_app.select("name", "conversation_id").rows() == [("ws.receive", "conv-a")]
    by_message = load_events(path, app_message_ids=["m1"]).events.collect().sort("ts")
    assert by_message["conversation_id"].to_list() == ["conv-a", None]


def test_remote_readers_answer_a_message_id_read_with_nothing():
    import socket

    from wsanalyze.sources import Query
    from wsanalyze.sources.jaeger import JaegerReader
    from wsanalyze.sources.tempo import TempoReader

    with socket.socket() as s:  # a closed port: any request would fail as "unreachable"
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    for scheme, reader in (("jaeger", JaegerReader), ("tempo", TempoReader)):
        spec = f"{scheme}://127.0.0.1:{port}"
        assert load_events(spec, message_ids=["m1"]).events.collect().height == 0
        assert load_events(spec, app_message_ids=["db-1"]).events.collect().height == 0
        direct = reader(spec).read(Query(message_ids=("m1",)))
        assert direct.events.collect().height == 0


def test_query_defaults_select_everything_and_a_conversation_alone():
    from wsanalyze.sources import Query

    assert Query().predicate() is None and not Query().by_message
    frame = pl.DataFrame(
        {"conversation_id": ["a", None, None, "b"], "message_id": ["m1", "m1", "m2", "m1"],
         "app_message_id": [None, None, None, "db-1"]}
    )  # fmt: skip
    pick = lambda q: frame.filter(q.predicate())["conversation_id"].to_list()  # noqa: E731
    assert pick(Query(conversation_id="a")) == ["a"]
    assert pick(Query(message_ids=("m1",))) == [None]
    assert pick(Query(conversation_id="a", message_ids=("m1", "m2"))) == ["a", None, None]
    assert pick(Query(app_message_ids=("db-1",))) == ["b"]
