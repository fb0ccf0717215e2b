"""jaeger:// and tempo:// readers against local HTTP servers speaking the documented formats.

The ground truth is the same spans as the embedded file store writes them: every
backend must give the conversation the same rows (hops, ids, parents, statuses,
kinds, times, attributes) and therefore the same verdicts.
"""

from __future__ import annotations

import json
import socket
import time
from dataclasses import asdict
from datetime import UTC, datetime, timedelta

import polars as pl
import pytest
from typer.testing import CliRunner
from wsanalyze.cli import app
from wsanalyze.events import SCHEMA
from wsanalyze.sources import Query, SourceError, load_events, open_source
from wsanalyze.sources._otlp.frame import rows_to_frame
from wsanalyze.sources.jaeger import JaegerReader, otlp_span, trace_rows
from wsanalyze.sources.otlp_files import OtlpFilesReader
from wsanalyze.sources.tempo import TempoReader, traceql
from wsanalyze.verdicts import analyze_conversation
from wstrace import conventions as C

from .conversation import CONNECTION_TRACE, CONV, OTHER, WORKER_TRACE

BACKENDS = ["jaeger", "tempo", "tempo_v1"]
COMPARED = [c for c in SCHEMA if c not in ("origin", "attributes", "source")]
CONNECTION_TID = f"{CONNECTION_TRACE:032x}"


def spec(backend) -> str:
    return f"{backend.name}://{backend.address}"


def file_rows(store, conversation_id=CONV) -> pl.DataFrame:
    events = OtlpFilesReader(store).read(Query(conversation_id=conversation_id)).events
    return events.collect()


def remote_rows(backend, conversation_id=CONV) -> tuple[pl.DataFrame, list[str]]:
    result = open_source(spec(backend)).read(Query(conversation_id=conversation_id))
    return result.events.collect(), result.problems


def comparable(frame: pl.DataFrame, conversation_id=CONV) -> pl.DataFrame:
    if conversation_id is not None:
        frame = frame.filter(pl.col("conversation_id") == conversation_id)
    return frame.sort("span_id").select(COMPARED)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


# --- same rows, same verdicts as the file store --------------------------------------------


@pytest.mark.parametrize("which", BACKENDS)
def test_conversation_rows_match_the_file_store(which, request, store):
    backend = request.getfixturevalue(which)
    expected = file_rows(store)
    got, problems = remote_rows(backend)
    assert problems == []
    assert set(got.columns) == set(SCHEMA) and got.schema == pl.Schema(SCHEMA)
    assert got["source"].unique().to_list() == ["trace"]
    assert expected.height == 27
    assert comparable(got).equals(comparable(expected)), comparable(got).join(
        comparable(expected), on="span_id", how="anti"
    )
    # attributes: the same keys and values (Jaeger's scope tags and kind/status tags removed)
    by_span = dict(zip(expected["span_id"], expected["attributes"], strict=True))
    for span_id, attributes in zip(got["span_id"], got["attributes"], strict=True):
        if span_id in by_span:
            assert json.loads(attributes) == json.loads(by_span[span_id])


@pytest.mark.parametrize("which", BACKENDS)
def test_verdicts_match_the_file_store(which, request, store):
    backend = request.getfixturevalue(which)
    files = OtlpFilesReader(store).read(Query(conversation_id=CONV))
    remote = open_source(spec(backend)).read(Query(conversation_id=CONV))
    end = files.window_end + timedelta(minutes=5)

    def summary(events):
        report = analyze_conversation(events, CONV, window_end=end)
        return (
            asdict(report.verdict),
            [(m.message_id, m.outcome, m.hop, m.cause, asdict(m.chunks)) for m in report.messages],
            [
                (c.connection_id, c.close_code, c.closed_by, c.outcome, c.cause)
                for c in report.connections
            ],
            [(t.hop, t.event, t.message_id, t.seq, t.status, t.span_id) for t in report.timeline],
        )

    expected = summary(files.events)
    assert summary(remote.events) == expected
    messages = {m[0]: m for m in expected[1]}
    assert messages["m1"][1:4] == ("delivered", "send", "ok")
    counts = {k: messages["m1"][4][k] for k in ("published", "delivered", "sent")}
    assert counts == {"published": 3, "delivered": 3, "sent": 3}
    assert messages["m2"][1] == "lost" and messages["m2"][4]["delivered"] == 0
    assert messages["m3"][1] == "lost" and messages["m3"][2] == "deliver"


def test_chain_parents_hops_and_statuses_from_jaeger(jaeger):
    rows, _ = remote_rows(jaeger)
    spans = {r["span_id"]: r for r in rows.iter_rows(named=True)}

    def parent(row):
        return spans[row["parent_span_id"]]

    for row in spans.values():
        assert row["trace_id"] == CONNECTION_TID  # 16 hex digits from Jaeger, padded back
        assert row["service"] == ("worker" if row["hop"] in ("task", "publish") else "web")
    by_hop: dict[str, list[dict]] = {}
    for row in spans.values():
        by_hop.setdefault(row["name"], []).append(row)
    (connect,) = by_hop[C.SPAN_CONNECT]
    assert connect["parent_span_id"] is None and connect["kind"] == "server"
    for row in by_hop[C.SPAN_RECEIVE]:
        assert parent(row) is connect and row["kind"] == "server"
    for row in by_hop[C.SPAN_TASK]:
        assert parent(row)["name"] == C.SPAN_ENQUEUE and row["kind"] == "consumer"
        assert parent(parent(row))["name"] == C.SPAN_RECEIVE
        assert row["message_id"] == parent(row)["message_id"]
    for row in by_hop[C.SPAN_DELIVER]:
        publish = parent(row)
        assert publish["name"] == C.SPAN_PUBLISH and publish["seq"] == row["seq"]
        assert publish["members"] == 1 and row["kind"] == "consumer"
    for row in by_hop[C.SPAN_SEND]:
        assert parent(row)["name"] == C.SPAN_DELIVER and row["kind"] == "internal"
    empty = [r for r in by_hop[C.SPAN_PUBLISH] if r["members"] == 0]
    assert [(r["message_id"], r["seq"]) for r in empty] == [("m2", 1), ("m2", 2)]
    (failed,) = [r for r in by_hop[C.SPAN_DELIVER] if r["status"] == "error"]
    assert failed["message_id"] == "m3" and failed["exception"] == "ValueError: bad chunk"
    assert failed["status_message"] == "ValueError: bad chunk"
    (disconnect,) = by_hop[C.SPAN_DISCONNECT]
    assert (disconnect["close_code"], disconnect["closed_by"], disconnect["cause"]) == (
        1011,
        "server",
        "consumer_error",
    )
    assert disconnect["status"] == "error"
    assert {r["status"] for r in by_hop[C.SPAN_SEND]} == {"unset"}
    assert json.loads(by_hop[C.SPAN_AUTH][0]["attributes"])[C.USER_AUTHENTICATED] is True
    assert connect["origin"] == f"http://{jaeger.address}/trace/{CONNECTION_TID}"


# --- Jaeger specifics -----------------------------------------------------------------------


def test_jaeger_asks_each_service_by_conversation_tag(jaeger):
    before = datetime.now(UTC)
    open_source(spec(jaeger)).read(Query(conversation_id=CONV))
    after = datetime.now(UTC)
    assert jaeger.paths() == ["/api/services", "/api/traces", "/api/traces"]
    searches = [params for path, params, _ in jaeger.requests if path == "/api/traces"]
    assert sorted(p["service"] for p in searches) == ["web", "worker"]
    for params in searches:
        assert json.loads(params["tags"]) == {C.CONVERSATION_ID: CONV}
        assert params["limit"] == "200"
        end = int(params["end"])
        assert before.timestamp() * 1e6 - 1 <= end <= after.timestamp() * 1e6 + 1
        assert end - int(params["start"]) == 2 * 86400 * 10**6  # default lookback 2d, in µs


def test_jaeger_options_service_window_and_limit(jaeger):
    since = datetime.now(UTC) - timedelta(hours=1)
    reader = open_source(f"jaeger://{jaeger.address}?service=web&limit=5&lookback=30m")
    result = reader.read(Query(conversation_id=CONV, since=since))
    assert jaeger.paths() == ["/api/traces"]  # no service listing when services are given
    params = jaeger.requests[0][1]
    assert params["service"] == "web" and params["limit"] == "5"
    assert int(params["start"]) == int(since.timestamp() * 1e6)
    assert result.events.collect().height == 27  # the whole trace, worker spans included
    jaeger.requests.clear()
    open_source(f"jaeger://{jaeger.address}?lookback=30m").read(Query())
    params = jaeger.requests[-1][1]
    assert int(params["end"]) - int(params["start"]) == 30 * 60 * 10**6


def test_jaeger_without_a_conversation_reads_every_trace_once(jaeger, store):
    rows, problems = remote_rows(jaeger, conversation_id=None)
    assert problems == []
    assert rows["span_id"].is_unique().all()  # the connection trace came from web and worker
    assert set(rows["trace_id"]) == {
        CONNECTION_TID,
        f"{WORKER_TRACE:032x}",
        *rows.filter(pl.col("conversation_id") == OTHER)["trace_id"],
    }
    assert comparable(rows, None).equals(comparable(file_rows(store, None), None))
    (ready,) = rows.filter(pl.col("name") == C.SPAN_WORKER_READY).iter_rows(named=True)
    assert ready["queues"] == ["celery"]  # Jaeger's JSON text of the array, decoded again


def test_jaeger_reports_a_full_page_and_backend_errors(jaeger):
    reader = open_source(f"jaeger://{jaeger.address}?service=web&limit=1")
    problems = reader.read(Query()).problems
    assert any("the limit" in p and "/api/traces?" in p for p in problems)


def test_jaeger_translator_variants_map_back_to_otlp():
    """Older/other producers: error=true only, parentSpanID, FOLLOWS_FROM links, no kind."""
    trace = {
        "traceID": "ab",
        "processes": {"p1": {"serviceName": "web", "tags": []}},
        "spans": [
            {
                "traceID": "ab",
                "spanID": "1f",
                "parentSpanID": "0e",
                "operationName": "ws.publish",
                "references": [
                    {"refType": "FOLLOWS_FROM", "traceID": "ab", "spanID": "0d"},
                ],
                "startTime": 1_700_000_000_000_000,
                "duration": 1500,
                "tags": [
                    {"key": "error", "type": "bool", "value": True},
                    {"key": C.HOP, "type": "string", "value": "publish"},
                    {"key": C.MEMBERS, "type": "int64", "value": 0},
                    {"key": C.QUEUES, "type": "string", "value": '["a","b"]'},
                    {"key": "x.ratio", "type": "float64", "value": 0.5},
                ],
                "logs": [
                    {
                        "timestamp": 1_700_000_000_000_500,
                        "fields": [
                            {"key": "event", "type": "string", "value": "exception"},
                            {"key": "exception.type", "type": "string", "value": "ChannelFull"},
                            {"key": "exception.message", "type": "string", "value": "full"},
                        ],
                    }
                ],
                "processID": "p1",
            }
        ],
    }
    span = otlp_span(trace["spans"][0])
    assert span["parentSpanId"] == "000000000000000e"
    assert span["links"] == [
        {"traceId": "000000000000000000000000000000ab", "spanId": "000000000000000d"}
    ]
    assert span["status"]["code"] == 2 and "kind" not in span
    assert span["endTimeUnixNano"] - span["startTimeUnixNano"] == 1_500_000
    assert span["events"][0]["timeUnixNano"] == 1_700_000_000_000_500_000
    rows, problems = trace_rows(trace, "http://jaeger:16686")
    assert problems == []
    assert rows[0][0] == 1_700_000_000_000_000_000  # ts in nanoseconds
    (row,) = rows_to_frame(rows).iter_rows(named=True)
    assert row["status"] == "error" and row["exception"] == "ChannelFull: full"
    assert row["members"] == 0 and row["queues"] == ["a", "b"] and row["kind"] is None
    assert row["trace_id"] == "000000000000000000000000000000ab"
    assert row["links"] == ["000000000000000d"]
    assert json.loads(row["attributes"])["x.ratio"] == 0.5


# --- Tempo specifics ------------------------------------------------------------------------


def test_tempo_searches_with_traceql_then_fetches_each_trace(tempo):
    before = int(time.time())
    open_source(spec(tempo)).read(Query(conversation_id=CONV))
    path, params, _ = tempo.requests[0]
    assert path == "/api/search"
    assert params["q"] == '{ span.ws.conversation_id = "conv-7f3a" }'
    assert int(params["end"]) - int(params["start"]) in (2 * 86400, 2 * 86400 + 1)
    assert before - 2 * 86400 - 1 <= int(params["start"]) <= int(time.time()) - 2 * 86400
    # the search answered "1f2e3d4c5b6a7988": fetched with its leading zeros restored
    assert tempo.paths()[1:] == [f"/api/v2/traces/{CONNECTION_TID}"]


def test_tempo_falls_back_to_the_v1_trace_api(tempo_v1, store):
    rows, problems = remote_rows(tempo_v1)
    assert problems == []
    assert tempo_v1.paths()[1:] == [
        f"/api/v2/traces/{CONNECTION_TID}",
        f"/api/traces/{CONNECTION_TID}",
    ]
    assert comparable(rows).equals(comparable(file_rows(store)))


def test_tempo_tenant_header_and_traceql_quoting(tempo):
    open_source(f"tempo://{tempo.address}?tenant=team-a").read(Query(conversation_id=CONV))
    for _, _, headers in tempo.requests:  # header names are case-insensitive
        assert {k.lower(): v for k, v in headers.items()}["x-scope-orgid"] == "team-a"
    assert traceql('a"b\\c') == '{ span.ws.conversation_id = "a\\"b\\\\c" }'
    assert traceql(None) == "{}"


def test_tempo_keeps_the_traces_it_can_fetch(tempo, store):
    tempo.faults[f"/api/v2/traces/{CONNECTION_TID}"] = (500, b"internal error\n")
    rows, problems = remote_rows(tempo, conversation_id=None)
    assert len(problems) == 1
    assert f"/api/v2/traces/{CONNECTION_TID} returned HTTP 500: internal error" in problems[0]
    assert CONNECTION_TID not in set(rows["trace_id"])
    assert f"{WORKER_TRACE:032x}" in set(rows["trace_id"])  # search id "ab34…": zeros restored


# --- errors: one line naming the URL --------------------------------------------------------


@pytest.mark.parametrize("scheme", ["jaeger", "tempo"])
def test_unreachable_backend_is_a_one_line_source_error(scheme):
    port = free_port()
    with pytest.raises(SourceError) as info:
        load_events(f"{scheme}://127.0.0.1:{port}", conversation_id=CONV)
    message = str(info.value)
    assert "\n" not in message
    assert f"http://127.0.0.1:{port}/api/" in message and "unreachable" in message
    assert "refused" in message.lower()


@pytest.mark.parametrize("which", ["jaeger", "tempo"])
def test_http_error_and_bad_json_are_one_line_source_errors(which, request):
    backend = request.getfixturevalue(which)
    search = "/api/services" if which == "jaeger" else "/api/search"
    backend.faults[search] = (503, b"<html>\n<body>upstream\nconnect error</body></html>")
    with pytest.raises(SourceError) as info:
        open_source(spec(backend)).read(Query(conversation_id=CONV))
    message = str(info.value)
    assert "\n" not in message and "HTTP 503" in message
    assert f"http://{backend.address}{search}" in message
    backend.faults[search] = (200, b"<html>not json</html>")
    with pytest.raises(SourceError, match=r"did not return JSON.*not json") as info:
        open_source(spec(backend)).read(Query(conversation_id=CONV))
    assert "\n" not in str(info.value) and f"http://{backend.address}{search}" in str(info.value)


def test_tempo_query_errors_show_tempo_s_message(tempo):
    tempo.faults["/api/search"] = (400, b"invalid TraceQL query: parse error at line 1, col 3")
    with pytest.raises(SourceError, match=r"HTTP 400: invalid TraceQL query: parse error"):
        open_source(spec(tempo)).read(Query(conversation_id=CONV))


def test_a_silent_backend_times_out_with_a_one_line_error():
    with socket.socket() as listener:  # accepts connections (backlog), never answers
        listener.bind(("127.0.0.1", 0))
        listener.listen(4)
        port = listener.getsockname()[1]
        started = time.monotonic()
        with pytest.raises(SourceError, match=r"unreachable.*timed out") as info:
            open_source(f"jaeger://127.0.0.1:{port}?timeout=1&service=web").read(Query())
        assert time.monotonic() - started < 10
        assert "\n" not in str(info.value) and f"127.0.0.1:{port}/api/traces" in str(info.value)


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ("jaeger://", "bad trace source"),
        ("jaeger://localhost:16686?lookback=soon", "lookback='soon'"),
        ("tempo://localhost:3200?limit=0", "limit='0'"),
        ("tempo://localhost:99999", "bad trace source"),
        ("jaeger://localhost?servce=web", r"unknown option 'servce' \(known: .*service"),
        ("tempo://localhost?service=web", "unknown option 'service'"),
    ],
)
def test_bad_specs_are_explained(value, message):
    with pytest.raises(SourceError, match=message):
        open_source(value)


def test_spec_defaults_and_options():
    jaeger = open_source("jaeger://jaeger.local")
    assert isinstance(jaeger, JaegerReader) and jaeger.spec.base == "http://jaeger.local:16686"
    tempo = open_source("tempo://tempo.local/prefix/?tls=1&timeout=3")
    assert isinstance(tempo, TempoReader)
    assert tempo.spec.base == "https://tempo.local:3200/prefix" and tempo.spec.timeout == 3
    assert open_source("JAEGER://[::1]:1234").spec.base == "http://[::1]:1234"


# --- through the registry and the command line -------------------------------------------------


@pytest.mark.parametrize("which", ["jaeger", "tempo"])
def test_load_events_and_the_cli_accept_the_urls(which, request, store):
    backend = request.getfixturevalue(which)
    result = load_events(spec(backend), conversation_id=CONV)
    events = result.events.collect()
    assert set(events["conversation_id"]) == {CONV}
    assert result.sources and result.sources[0].startswith(f"http://{backend.address}/api/")
    assert result.window_end is not None
    runner = CliRunner()
    remote = runner.invoke(app, ["conversation", CONV, "--traces", spec(backend), "--json"])
    local = runner.invoke(app, ["conversation", CONV, "--traces", str(store), "--json"])
    assert remote.exit_code == 0, remote.output
    assert local.exit_code == 0, local.output
    remote_doc, local_doc = json.loads(remote.stdout), json.loads(local.stdout)
    assert remote_doc["verdict"] == local_doc["verdict"]
    assert [m["cause"] for m in remote_doc["messages"]] == [
        m["cause"] for m in local_doc["messages"]
    ]
    down = runner.invoke(
        app, ["conversation", CONV, "--traces", f"{which}://127.0.0.1:{free_port()}"]
    )
    assert down.exit_code != 0
    assert "unreachable" in down.output and len(down.output.strip().splitlines()) == 1
