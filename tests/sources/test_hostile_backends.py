"""Hostile Jaeger / Tempo backends cannot hold a command up or fill its memory.

A real HTTP server in a thread plays the backend: one that trickles a byte at a
time (headers or body), one that sends a body without end, one that declares a
huge one, and ones whose replies hold spans the event table cannot take beside
good ones. Through the real command line: a one-line error naming the URL (exit
1) within the ``?timeout=`` of the read, or the good spans with a problem line;
never 70, never a hang, peak memory under 1 GiB.
"""

from __future__ import annotations

import contextlib
import json
import threading
import time
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import urlsplit

import pytest
from wsanalyze.sources import Query, SourceError, open_source
from wsanalyze.sources._http import MAX_REPLY_BYTES
from wsanalyze.verdicts.testing import Trace, otlp_span
from wstrace import conventions as C

MAX_RSS_MIB = 1024
Route = Callable[[BaseHTTPRequestHandler], None]


class Backend:
    """A local HTTP server answering each path with a route (``routes[path](handler)``)."""

    def __init__(self) -> None:
        self.routes: dict[str, Route] = {}
        routes = self.routes

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                path = urlsplit(self.path).path
                route = routes.get(path) or routes.get("*")
                if route is None:
                    self.send_error(404)
                    return
                with contextlib.suppress(BrokenPipeError, ConnectionResetError):
                    route(self)  # a client giving up is what these routes are for

            def log_message(self, *args: object) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.address = f"127.0.0.1:{self.server.server_address[1]}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def __enter__(self) -> Backend:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def backend() -> Iterator[Backend]:
    with Backend() as server:
        yield server


def reply(doc: object) -> Route:
    body = json.dumps(doc).encode()

    def route(handler: BaseHTTPRequestHandler) -> None:
        handler.send_response(200)
        handler.send_header("Content-Type", "application/json")
        handler.send_header("Content-Length", str(len(body)))
        handler.end_headers()
        handler.wfile.write(body)

    return route


def trickle(headers: bool) -> Route:
    """A byte every 0.2 s, forever: of the status line and headers, or of the body."""

    def route(handler: BaseHTTPRequestHandler) -> None:
        if not headers:
            handler.send_response(200)
            handler.send_header("Content-Length", "100000")
            handler.end_headers()
            handler.wfile.flush()
        text = b"HTTP/1.0 200 OK\r\nX-Slow: " if headers else b'{"data": [' + b" " * 100_000
        for byte in text + b"x" * 1_000_000:
            handler.wfile.write(bytes([byte]))
            handler.wfile.flush()
            time.sleep(0.2)

    return route


def endless(handler: BaseHTTPRequestHandler) -> None:
    """A body without a length that never ends (well: 4 GiB)."""
    handler.send_response(200)
    handler.send_header("Content-Type", "application/json")
    handler.end_headers()
    handler.wfile.write(b'{"data": [')
    block = b'{"traceID": "1", "spans": []},' * 30_000
    for _ in range((4 << 30) // len(block)):
        handler.wfile.write(block)


def declared_huge(handler: BaseHTTPRequestHandler) -> None:
    handler.send_response(200)
    handler.send_header("Content-Length", str(50 << 30))
    handler.end_headers()
    handler.wfile.write(b'{"data": [')
    time.sleep(30)


def no_crash(run) -> None:
    assert run.code != 70 and "Traceback" not in run.err, run.err
    assert run.peak_mib < MAX_RSS_MIB, run.peak_mib


def one_line_error(run, *parts: str) -> None:
    no_crash(run)
    assert run.code == 1 and len(run.err.strip().splitlines()) == 1, run.err
    for part in parts:
        assert part in run.err, run.err


# --- Jaeger's internal JSON ----------------------------------------------------------------


def jaeger_span(row: dict) -> dict:
    tags = [
        {"key": key, "type": "int64" if isinstance(v, int) else "string", "value": v}
        for key, column in C.ATTRIBUTE_COLUMNS.items()
        if (v := row.get(column)) is not None and not isinstance(v, bool | list)
    ]
    start = int(row["ts"].timestamp() * 1e6)
    span = {
        "traceID": row["trace_id"],
        "spanID": row["span_id"],
        "operationName": row["name"],
        "references": [],
        "startTime": start,
        "duration": int(((row["end_ts"] or row["ts"]) - row["ts"]).total_seconds() * 1e6),
        "tags": tags,
        "processID": "p1",
    }
    if row.get("parent_span_id"):
        span["references"] = [
            {"refType": "CHILD_OF", "traceID": row["trace_id"], "spanID": row["parent_span_id"]}
        ]
    return span


def jaeger_reply(rows: list[dict], extra: list[dict] = ()) -> dict:
    trace = {
        "traceID": rows[0]["trace_id"],
        "spans": [jaeger_span(r) for r in rows] + list(extra),
        "processes": {"p1": {"serviceName": "web"}},
    }
    return {"data": [trace], "errors": None}


def conv_good() -> Trace:
    t = Trace("conv-good")
    t.connect("k1")
    t.message("m1", "k1", 10, chunks=3)
    return t


def test_jaeger_spans_that_cannot_be_rows_cost_only_themselves(backend, wsanalyze):
    rows = conv_good().rows
    late = dict(jaeger_span(rows[-1]), spanID="00000000000000f1", startTime=10**20)
    unpaired = dict(jaeger_span(rows[-1]), spanID="00000000000000f2", operationName="x\ud800")
    short = dict(jaeger_span(rows[-1]), spanID="f3" * 9)
    backend.routes["/api/traces"] = reply(jaeger_reply(rows, [late, unpaired, short]))
    spec = f"jaeger://{backend.address}?service=web&timeout=10"
    result = open_source(spec).read(Query())
    assert sorted(result.events.collect()["span_id"]) == sorted(r["span_id"] for r in rows)
    text = "\n".join(result.problems)
    assert "/trace/" in text and "2 span(s) could not be decoded" in text
    assert "span skipped (name 'x\\ud800' cannot be represented)" in text
    run = wsanalyze("conversations", "--traces", spec)
    no_crash(run)
    assert run.code == 0 and "conv-good" in run.out and "could not be decoded" in run.out


@pytest.mark.parametrize("headers", [False, True], ids=["body", "headers"])
def test_a_trickling_backend_is_cut_off_at_the_timeout(backend, wsanalyze, headers):
    backend.routes["/api/traces"] = trickle(headers)
    started = time.monotonic()
    run = wsanalyze(
        "conversations", "--traces", f"jaeger://{backend.address}?service=web&timeout=2"
    )
    assert time.monotonic() - started < 15
    one_line_error(run, f"http://{backend.address}/api/traces?", "timed out after 2s")


def test_the_timeout_bounds_the_whole_read_not_each_request(backend):
    def slow(handler: BaseHTTPRequestHandler) -> None:
        time.sleep(1.2)
        reply({"data": []})(handler)

    backend.routes["/api/traces"] = slow
    reader = open_source(f"jaeger://{backend.address}?service=a,b,c,d,e,f,g,h,i&timeout=2")
    started = time.monotonic()
    with pytest.raises(SourceError, match="timed out after 2s"):  # 9 searches, 8 at a time
        reader.read(Query())
    assert time.monotonic() - started < 3.5
    backend.routes["/api/traces"] = reply({"data": []})
    assert reader.read(Query()).problems == []  # the next read has its own time


@pytest.mark.parametrize("route", [endless, declared_huge], ids=["endless", "declared"])
def test_a_reply_past_the_size_limit_is_a_one_line_error(backend, wsanalyze, route):
    backend.routes["/api/traces"] = route
    started = time.monotonic()
    run = wsanalyze("conversations", "--traces", f"jaeger://{backend.address}?service=web")
    assert time.monotonic() - started < 30
    one_line_error(
        run, f"http://{backend.address}/api/traces?", f"larger than {MAX_REPLY_BYTES >> 20} MiB"
    )


def test_a_jaeger_reply_just_under_the_limit_stays_under_a_gibibyte(backend, wsanalyze):
    rows = conv_good().rows
    spans, size, n = [], 0, 0
    template = jaeger_span(rows[-1])
    while size < MAX_REPLY_BYTES - (2 << 20):
        n += 1
        span = dict(template, spanID=f"{n:016x}", tags=template["tags"] * 4)
        spans.append(span)
        size += len(json.dumps(span)) + 2
    backend.routes["/api/traces"] = reply(jaeger_reply(rows, spans))
    run = wsanalyze("conversations", "--traces", f"jaeger://{backend.address}?service=web")
    no_crash(run)
    assert run.code == 0 and "conv-good" in run.out, run.err


# --- Tempo ---------------------------------------------------------------------------------


def test_a_tempo_trace_too_large_is_a_problem_and_the_others_are_read(backend, wsanalyze):
    good = conv_good()
    resource = {"attributes": [{"key": "service.name", "value": {"stringValue": "web"}}]}
    trace = {
        "trace": {
            "resourceSpans": [
                {"resource": resource, "scopeSpans": [{"spans": [otlp_span(r) for r in good.rows]}]}
            ]
        }
    }
    big = "f" * 32
    backend.routes["/api/search"] = reply(
        {"traces": [{"traceID": good.trace_id}, {"traceID": big}]}
    )
    backend.routes[f"/api/v2/traces/{good.trace_id}"] = reply(trace)
    backend.routes[f"/api/v2/traces/{big}"] = endless
    run = wsanalyze("conversations", "--traces", f"tempo://{backend.address}?timeout=20")
    no_crash(run)
    assert run.code == 0 and "conv-good" in run.out, run.err
    assert f"/api/v2/traces/{big}: reply larger than" in run.out
