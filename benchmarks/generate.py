"""Write a realistic wstrace store of N spans (OTLP/JSON lines, as the embedded exporter writes).

    python benchmarks/generate.py --spans 1000000 --out benchmarks/data/1m

Shape (docs/evidence.md): one trace per connection (connect → auth → accept →
group_add … disconnect), per client message receive → enqueue → task →
publish*N → deliver*N → send*N across a web and a worker service, several
processes per service, one file per process rotated by size, lines of 100-500
spans like the SDK's BatchSpanProcessor, conversations interleaved in time, and
a few percent of faults (auth 4001, task crash, empty group, channel full, no
worker, client gone). Hex ids, int64 as strings. ``--zstd`` writes the
collector's legacy framed zstd layout instead; ``--seed`` makes it repeatable.
``--replicate DIR --copies N`` scales an existing store N times (for 10M spans).
Prints a JSON summary with some conversation ids to query.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import sys
import time
from pathlib import Path

try:
    import orjson

    def dumps(value: object) -> bytes:
        return orjson.dumps(value)

except ImportError:  # pragma: no cover

    def dumps(value: object) -> bytes:
        return json.dumps(value, separators=(",", ":")).encode()


def _s(key: str, value: str) -> dict:
    return {"key": key, "value": {"stringValue": value}}


def _i(key: str, value: int) -> dict:
    return {"key": key, "value": {"intValue": str(value)}}


def _b(key: str, value: bool) -> dict:
    return {"key": key, "value": {"boolValue": value}}


class Process:
    """One instrumented process: its resource, its file (rotated), its batch buffer."""

    def __init__(self, out: Path, service: str, host: str, pid: int, cfg: argparse.Namespace):
        self.service, self.cfg = service, cfg
        self.resource = {
            "attributes": [
                _s("service.name", service),
                _i("process.pid", pid),
                _s("host.name", host),
                _s("wstrace.version", "0.1.0"),
                _s("telemetry.sdk.language", "python"),
                _s("telemetry.sdk.name", "opentelemetry"),
                _s("telemetry.sdk.version", "1.45.2"),
            ]
        }
        self.stem = out / f"{service}-{host}-{pid}-1780000000"
        self.n = 0
        self.fh = None
        self.written = 0
        self.buffer: list[dict] = []
        self.batch = random.randint(100, 500)
        self._open()

    def _open(self) -> None:
        if self.fh:
            self.fh.close()
        self.n += 1
        suffix = "json.zst" if self.cfg.zstd else "jsonl"
        self.fh = open(f"{self.stem}.{self.n}.{suffix}", "wb")  # noqa: SIM115
        self.written = 0

    def add(self, span: dict) -> None:
        self.buffer.append(span)
        if len(self.buffer) >= self.batch:
            self.flush()

    def flush(self) -> None:
        if not self.buffer:
            return
        doc = {
            "resourceSpans": [
                {
                    "resource": self.resource,
                    "scopeSpans": [
                        {"scope": {"name": "wstrace", "version": "0.1.0"}, "spans": self.buffer}
                    ],
                }
            ]
        }
        data = dumps(doc)
        if self.cfg.zstd:
            import zstandard

            frame = zstandard.ZstdCompressor(level=3).compress(data)
            data = len(frame).to_bytes(4, "big") + frame
        else:
            data += b"\n"
        self.fh.write(data)
        self.written += len(data)
        self.buffer = []
        self.batch = random.randint(100, 500)
        if self.written >= self.cfg.max_file_mb << 20:
            self._open()

    def close(self) -> None:
        self.flush()
        self.fh.close()


def _hex(bits: int) -> str:
    return f"{random.getrandbits(bits):0{bits // 4}x}"


class Conversation:
    """Spans of one conversation; faults chosen by the caller."""

    FAULTS = (
        "auth",
        "task_failed",
        "consumer_gone",
        "channel_full",
        "no_worker",
        "client_gone",
        "consumer_error",
    )

    def __init__(self, cid: str, start_ns: int, fault: str | None):
        self.cid, self.t, self.fault = cid, start_ns, fault
        self.spans: list[tuple[int, str, dict]] = []  # (end_ns, service, span)
        self.layer = "a1b2c3d4"

    def span(self, service, name, kind, trace, parent, start, dur, attrs, error=None, events=()):
        sid = _hex(64)
        span = {
            "traceId": trace,
            "spanId": sid,
            "parentSpanId": parent or "",
            "flags": 257,
            "name": name,
            "kind": kind,
            "startTimeUnixNano": str(start),
            "endTimeUnixNano": str(start + dur),
            "attributes": attrs,
            "events": list(events),
            "status": {"code": 2, "message": error} if error else {"code": 0},
        }
        self.spans.append((start + dur, service, span))
        return sid

    def ids(self, conn, msg=None, hop=None, event=None):
        out = [_s("ws.conversation_id", self.cid), _s("ws.connection_id", conn)]
        if msg:
            out.append(_s("ws.message_id", msg))
        out += [_s("ws.hop", hop), _s("ws.event", event)]
        return out

    def build(self, messages: int, chunks: int) -> None:
        ms = 1_000_000
        t = self.t
        trace = _hex(128)
        conn = _hex(64)
        path = f"/ws/chat/{self.cid}/"
        connect = self.span(
            "web", "ws.connect", 2, trace, None, t, 3 * ms,
            [*self.ids(conn, hop="connect", event="connect"), _s("ws.path", path),
             _s("ws.origin", "https://chat.example.com"), _b("ws.origin_allowed", True),
             _s("ws.consumer", "chat.consumers.ChatConsumer")],
            error="handshake rejected" if self.fault == "auth" else None,
        )  # fmt: skip
        if self.fault == "auth":
            self.span(
                "web", "ws.auth", 1, trace, connect, t + ms // 10, ms,
                [*self.ids(conn, hop="auth", event="auth"), _b("ws.user_authenticated", False)],
            )  # fmt: skip
            self.span(
                "web", "ws.close", 1, trace, connect, t + 2 * ms, ms // 5,
                [*self.ids(conn, hop="connect", event="reject"), _i("ws.close_code", 4001),
                 _s("ws.closed_by", "server"), _b("ws.accepted", False),
                 _s("ws.cause", "auth_rejected")],
            )  # fmt: skip
            return
        self.span(
            "web", "ws.auth", 1, trace, connect, t + ms // 10, ms,
            [*self.ids(conn, hop="auth", event="auth"), _b("ws.user_authenticated", True),
             _s("ws.user_id", str(random.randint(1, 5000)))],
        )  # fmt: skip
        channel = f"specific.{_hex(32)}!{_hex(48)}"
        group = f"chat_{self.cid}"
        self.span(
            "web", "ws.group_add", 1, trace, connect, t + 2 * ms, ms // 2,
            [*self.ids(conn, hop="connect", event="group_add"), _s("ws.group", group),
             _s("ws.channel", channel), _s("ws.layer", self.layer),
             _s("ws.layer_desc", "redis://redis:6379/0 prefix=asgi"),
             _s("ws.layer_backend", "channels_redis.core.RedisChannelLayer")],
        )  # fmt: skip
        self.span("web", "ws.accept", 1, trace, connect, t + 3 * ms, ms // 5,
                  self.ids(conn, hop="accept", event="accept"))  # fmt: skip
        t += 50 * ms
        for m in range(messages):
            msg = f"m-{_hex(48)}"
            frame = random.randint(40, 400)
            receive = self.span(
                "web", "ws.receive", 2, trace, connect, t, 4 * ms,
                [*self.ids(conn, msg, "receive", "receive"), _i("ws.frame_bytes", frame),
                 _s("ws.handler", "receive_json")],
            )  # fmt: skip
            task_id = f"{_hex(32)}-{_hex(16)}"
            common_task = [_s("ws.task_name", "chat.tasks.run_agent"), _s("ws.task_id", task_id),
                           _s("ws.queue", "agents")]  # fmt: skip
            enqueue = self.span(
                "web", "ws.enqueue", 4, trace, receive, t + ms, 2 * ms,
                [*self.ids(conn, msg, "enqueue", "enqueue"), *common_task],
            )  # fmt: skip
            if self.fault == "no_worker" and m == messages - 1:
                return
            tt = t + random.randint(5, 80) * ms
            crashed = self.fault == "task_failed" and m == messages - 1
            dur = random.randint(200, 3000) * ms
            task = self.span(
                "worker", "ws.task", 5, trace, enqueue, tt, dur,
                [*self.ids(conn, msg, "task", "task"), *common_task,
                 _s("ws.worker", "celery@worker-1"), _i("ws.retries", 0),
                 _s("ws.task_state", "FAILURE" if crashed else "SUCCESS")],
                error="ValueError: bad tool output" if crashed else None,
                events=[{"timeUnixNano": str(tt + dur), "name": "exception", "attributes": [
                    _s("exception.type", "ValueError"),
                    _s("exception.message", "bad tool output"),
                    _s("exception.stacktrace", "Traceback (most recent call last): ..."),
                ]}] if crashed else (),
            )  # fmt: skip
            if crashed:
                t += dur + 1000 * ms
                continue
            n = chunks if self.fault != "client_gone" else max(2, chunks)
            for seq in range(1, n + 1):
                pt = tt + seq * dur // (n + 1)
                gone = (self.fault == "consumer_gone" and m == messages - 1) or (
                    self.fault == "client_gone" and m == messages - 1 and seq > 1
                )
                full = self.fault == "channel_full" and m == messages - 1 and seq > 2
                attrs = [*self.ids(conn, msg, "publish", "group_send"), _s("ws.group", group),
                         _i("ws.seq", seq), _i("ws.group_members", 0 if gone else 1),
                         _s("ws.layer", self.layer), _s("ws.message_type", "chat.stream"),
                         _i("ws.capacity", 100)]  # fmt: skip
                events = ()
                if full:
                    attrs.append(_i("ws.over_capacity", 1))
                    events = [{"timeUnixNano": str(pt), "name": "ws.channel_full",
                               "attributes": [_s("ws.channel", channel)]}]  # fmt: skip
                publish = self.span("worker", "ws.publish", 4, trace, task, pt, ms // 2, attrs,
                                    events=events)  # fmt: skip
                if gone or full:
                    continue
                dt = pt + random.randint(1, 4) * ms
                crash = self.fault == "consumer_error" and m == messages - 1 and seq == 2
                deliver = self.span(
                    "web", "ws.deliver", 5, trace, publish, dt, ms,
                    [*self.ids(conn, msg, "deliver", "deliver"), _i("ws.seq", seq),
                     _s("ws.message_type", "chat.stream"), _s("ws.handler", "chat_stream"),
                     _s("ws.channel", channel)],
                    error="KeyError: 'text'" if crash else None,
                )  # fmt: skip
                if crash:
                    self.span(
                        "web", "ws.disconnect", 1, trace, connect, dt + ms, ms // 5,
                        [*self.ids(conn, hop="disconnect", event="disconnect"),
                         _i("ws.close_code", 1011), _s("ws.closed_by", "server"),
                         _s("ws.cause", "consumer_error")],
                        error="KeyError: 'text'",
                    )  # fmt: skip
                    return
                self.span(
                    "web", "ws.send", 1, trace, deliver, dt + ms // 4, ms // 4,
                    [*self.ids(conn, msg, "send", "send"), _i("ws.seq", seq),
                     _i("ws.frame_bytes", random.randint(20, 300))],
                )  # fmt: skip
            t = tt + dur + random.randint(500, 20_000) * ms
        self.span(
            "web", "ws.disconnect", 1, trace, connect, t, ms // 5,
            [*self.ids(conn, hop="disconnect", event="disconnect"), _i("ws.close_code", 1000),
             _s("ws.closed_by", "client")],
        )  # fmt: skip


def generate(cfg: argparse.Namespace) -> dict:
    random.seed(cfg.seed)
    out = Path(cfg.out)
    out.mkdir(parents=True, exist_ok=True)
    procs = {
        "web": [Process(out, "web", "web-1", 100 + i, cfg) for i in range(cfg.web_procs)],
        "worker": [
            Process(out, "worker", "worker-1", 200 + i, cfg) for i in range(cfg.worker_procs)
        ],
    }
    total = 0
    t0 = 1_780_000_000 * 10**9
    samples: dict[str, list[str]] = {"ok": [], "fault": []}
    window: list[tuple[int, str, dict]] = []
    conv = 0
    while total < cfg.spans:
        # A wave of concurrent conversations, flushed in end-time order per process.
        for _ in range(cfg.concurrency):
            fault = random.choice(Conversation.FAULTS) if random.random() < cfg.fault_rate else None
            cid = f"conv-{conv:07d}-{_hex(32)}"
            c = Conversation(cid, t0 + random.randint(0, 60_000) * 10**6, fault)
            c.build(messages=random.randint(1, 3), chunks=random.randint(3, 10))
            window.extend(c.spans)
            total += len(c.spans)
            conv += 1
            bucket = samples["fault" if fault else "ok"]
            if len(bucket) < 5 and random.random() < 0.05:
                bucket.append(cid)
            if total >= cfg.spans:
                break
        window.sort(key=lambda item: item[0])
        for _, service, span in window:
            random.choice(procs[service]).add(span)
        window = []
        t0 += 60_000 * 10**6
    for group in procs.values():
        for p in group:
            p.close()
    files = sorted(str(p) for p in out.iterdir())
    size = sum(os.path.getsize(f) for f in files)
    return {"spans": total, "conversations": conv, "files": len(files), "bytes": size,
            "samples": samples}  # fmt: skip


def replicate(cfg: argparse.Namespace) -> dict:
    """Scale a generated store up N times: copy k renames every conversation id.

    ``conv-`` becomes ``cNNN-`` (same length) in copy NNN, so each copy holds distinct
    conversations with the same shape; trace and span ids repeat across copies,
    which no reader relies on. Much faster than generating 10M spans span by span.
    """
    src, out = Path(cfg.replicate), Path(cfg.out)
    out.mkdir(parents=True, exist_ok=True)
    summary = json.loads(src.with_suffix(".json").read_text())
    files = sorted(p for p in src.iterdir() if p.is_file())
    for k in range(cfg.copies):
        prefix = b"conv-" if k == 0 else f"c{k:03d}-".encode()
        for f in files:
            data = f.read_bytes()
            if k:
                data = data.replace(b"conv-", prefix)
            (out / f"copy{k:03d}-{f.name}").write_bytes(data)
    size = sum(p.stat().st_size for p in out.iterdir())
    samples = {
        kind: [cid.replace("conv-", f"c{cfg.copies - 1:03d}-") for cid in ids]
        for kind, ids in summary["samples"].items()
    }
    return {"spans": summary["spans"] * cfg.copies,
            "conversations": summary["conversations"] * cfg.copies,
            "files": len(files) * cfg.copies, "bytes": size, "samples": samples,
            "replicated_from": str(src), "copies": cfg.copies}  # fmt: skip


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--spans", type=int, default=100_000)
    parser.add_argument("--out", default="benchmarks/data/100k")
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--web-procs", type=int, default=4)
    parser.add_argument("--worker-procs", type=int, default=4)
    parser.add_argument("--concurrency", type=int, default=400, help="conversations per minute")
    parser.add_argument("--fault-rate", type=float, default=0.05)
    parser.add_argument("--max-file-mb", type=int, default=100, help="rotate files at this size")
    parser.add_argument("--zstd", action="store_true", help="collector framed zstd output")
    parser.add_argument("--replicate", help="scale up this generated store instead (see --copies)")
    parser.add_argument("--copies", type=int, default=10)
    cfg = parser.parse_args(argv)
    started = time.perf_counter()
    summary = replicate(cfg) if cfg.replicate else generate(cfg)
    summary["seconds"] = round(time.perf_counter() - started, 1)
    json.dump(summary, sys.stdout, indent=1)
    print()


if __name__ == "__main__":
    main()
