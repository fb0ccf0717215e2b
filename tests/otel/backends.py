"""Local stand-ins for Jaeger's query API and Tempo's HTTP API (real HTTP, 127.0.0.1).

They answer the documented endpoints with the documented bodies and honour the
parameters the way the real services do (service and tag filters, time windows in
µs / s, limits, TraceQL equality on a span attribute), so a reader that sends the
wrong parameters gets the wrong answer. ``faults`` maps a path prefix to a canned
``(status, body)`` reply; ``requests`` records what was asked.
"""

from __future__ import annotations

import base64
import json
import re
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlsplit

from .conversation import tempo_v1, tempo_v2


class Backend:
    """A threaded HTTP server on 127.0.0.1:<free port> dispatching GETs to ``route``."""

    name = "backend"

    def __init__(self):
        self.requests: list[tuple[str, dict[str, str], dict[str, str]]] = []
        self.faults: dict[str, tuple[int, bytes]] = {}
        backend = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self):
                parts = urlsplit(self.path)
                params = {k: v[-1] for k, v in parse_qs(parts.query).items()}
                backend.requests.append((parts.path, params, dict(self.headers)))
                for prefix, (status, body) in backend.faults.items():
                    if parts.path.startswith(prefix):
                        return self._reply(status, body)
                status, body = backend.route(parts.path, params, dict(self.headers))
                if not isinstance(body, bytes):
                    body = json.dumps(body).encode()
                return self._reply(status, body)

            def _reply(self, status: int, body: bytes):
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.thread = threading.Thread(
            target=self.server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        )

    @property
    def address(self) -> str:
        host, port = self.server.server_address[:2]
        return f"{host}:{port}"

    def route(self, path: str, params: dict, headers: dict) -> tuple[int, object]:
        raise NotImplementedError

    def paths(self) -> list[str]:
        return [path for path, _, _ in self.requests]

    def __enter__(self):
        self.thread.start()
        return self

    def __exit__(self, *exc):
        self.server.shutdown()
        self.server.server_close()
        self.thread.join(5)


class FakeJaeger(Backend):
    """``/api/services`` and ``/api/traces`` of jaeger-query (internal JSON API)."""

    name = "jaeger"

    def __init__(self, traces: list[dict]):
        """``traces``: elements of ``/api/traces``'s ``data`` (``conversation.jaeger_traces``)."""
        super().__init__()
        self.traces = traces

    def route(self, path, params, headers):
        if path == "/api/services":
            names = sorted({p["serviceName"] for t in self.traces for p in t["processes"].values()})
            return 200, {
                "data": names,
                "total": len(names),
                "limit": 0,
                "offset": 0,
                "errors": None,
            }
        if path == "/api/traces":
            return self.find(params)
        return 404, b"404 page not found\n"

    def find(self, params):
        service = params.get("service")
        if not service:
            return 400, {
                "data": None,
                "total": 0,
                "limit": 0,
                "offset": 0,
                "errors": [{"code": 400, "msg": "parameter 'service' is required"}],
            }
        tags = json.loads(params.get("tags", "{}"))
        start = int(params["start"]) if "start" in params else None
        end = int(params["end"]) if "end" in params else None
        limit = int(params.get("limit", 20))
        found = []
        for trace in self.traces:
            procs = {pid for pid, p in trace["processes"].items() if p["serviceName"] == service}
            for span in trace["spans"]:
                if span["processID"] not in procs:
                    continue
                if start is not None and span["startTime"] < start:
                    continue
                if end is not None and span["startTime"] > end:
                    continue
                values = {t["key"]: str(t["value"]) for t in span["tags"]}
                if all(values.get(k) == str(v) for k, v in tags.items()):
                    found.append(trace)
                    break
        data = found[:limit]
        return 200, {"data": data, "total": len(data), "limit": 0, "offset": 0, "errors": None}


_EQ = re.compile(r'^\{\s*span\.([\w.]+)\s*=\s*("(?:[^"\\]|\\.)*")\s*\}$')


class FakeTempo(Backend):
    """``/api/search`` (TraceQL) and ``/api/v2/traces/<id>`` / ``/api/traces/<id>`` of Tempo."""

    name = "tempo"

    def __init__(self, requests: list[dict], *, v2: bool = True):
        """``requests``: OTLP export requests in protobuf JSON (base64 ids, enum names)."""
        super().__init__()
        self.requests_ = requests
        self.v2 = v2
        self.spans: dict[str, list[dict]] = {}
        for doc in requests:
            for rs in doc.get("resourceSpans", []):
                for ss in rs.get("scopeSpans", []):
                    for span in ss.get("spans", []):
                        tid = base64.b64decode(span["traceId"]).hex()
                        self.spans.setdefault(tid, []).append(span)
        self.ids = list(self.spans)

    def route(self, path, params, headers):
        if path == "/api/search":
            return self.search(params)
        match = re.fullmatch(r"/api/(v2/)?traces/([0-9a-fA-F]+)", path)
        if match:
            if match.group(1) and not self.v2:
                return 404, b"404 page not found\n"
            tid = match.group(2).lower().rjust(32, "0")
            if tid not in self.ids:
                return 404, b""
            if match.group(1):
                return 200, tempo_v2(self.requests_, tid)
            return 200, tempo_v1(self.requests_, tid)
        return 404, b"404 page not found\n"

    def search(self, params):
        query = params.get("q", "{}").strip()
        if query == "{}":
            key = value = None
        else:
            match = _EQ.match(query)
            if not match:
                return 400, f"invalid TraceQL query: parse error at line 1: {query}".encode()
            key, value = match.group(1), json.loads(match.group(2))
        start = int(params["start"]) * 10**9 if "start" in params else None
        end = int(params["end"]) * 10**9 if "end" in params else None
        limit = int(params.get("limit", 20))
        traces = []
        for tid in self.ids:
            spans = self.spans[tid]
            first = min(int(s["startTimeUnixNano"]) for s in spans)
            if (start is not None and first < start) or (end is not None and first > end):
                continue
            if key is not None and not any(
                kv["key"] == key and kv["value"].get("stringValue") == value
                for s in spans
                for kv in s.get("attributes", [])
            ):
                continue
            root = min(spans, key=lambda s: int(s["startTimeUnixNano"]))
            traces.append(
                {
                    "traceID": tid.lstrip("0"),  # Tempo drops leading zeros
                    "rootServiceName": "web",
                    "rootTraceName": root["name"],
                    "startTimeUnixNano": str(first),
                    "durationMs": 1,
                }
            )
        return 200, {"traces": traces[:limit], "metrics": {"inspectedBytes": "1"}}
