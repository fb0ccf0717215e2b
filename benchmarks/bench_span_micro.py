"""Per-span and per-line costs of wstrace's hot pieces, in one process.

::

    .venv/bin/python benchmarks/bench_span_micro.py
    # the same pieces of an older commit, side by side:
    d=$(mktemp -d); git archive 76d3960 instrumentation | tar -x -C "$d"
    .venv/bin/python benchmarks/bench_span_micro.py --instrumentation "$d/instrumentation"
    # the encoder's machine instructions per span (valgrind; either checkout):
    .venv/bin/python benchmarks/bench_span_micro.py --instructions

Measured: start + end of one span with 7 attributes through the OpenTelemetry
SDK tracer and through wstrace's lean tracer (when the code has one), both with
wstrace's IdsFromBaggage and a BatchSpanProcessor (nothing exported);
``encode_request`` of 512 deliver-like spans, in µs and in Python bytecodes per
span (bytecodes are deterministic); ``redact_text`` of a 327-character log line
as ``CorrelationFormatter`` writes it. Times are the best of 15 repeats of CPU
time (other load only ever adds).
"""

from __future__ import annotations

import argparse
import re
import shutil
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
LINE = (
    "2026-11-27 19:25:01,123 INFO core.agents.tasks answered message "
    "6f1c0e0a8b7d4b2e9d3c1a2b3c4d5e6f in conversation chat_3f2a1b0c9d8e: 6 chunks "
    "trace_id=0af7651916cd43dd8448eb211c80319c span_id=b7ad6b7169203331 "
    "conversation_id=3f2a1b0c9d8e connection_id=4bf92f3577b34da6a3ce929d0e0e4736 "
    "message_id=6f1c0e0a8b7d4b2e9d3c1a2b3c4d5e6f"
)


def _best(fn: Callable[[], Any], per: int, repeats: int = 15) -> float:
    """Best CPU µs per item of ``fn`` (which handles ``per`` items)."""
    best = float("inf")
    for _ in range(repeats):
        started = time.process_time()
        fn()
        best = min(best, time.process_time() - started)
    return 1e6 * best / per


def _bytecodes(fn: Callable[[], Any]) -> int:
    count = [0]

    def tracer(frame: Any, event: str, arg: Any) -> Any:
        frame.f_trace_opcodes = True
        if event == "opcode":
            count[0] += 1
        return tracer

    sys.settrace(tracer)
    try:
        fn()
    finally:
        sys.settrace(None)
    return count[0]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--instrumentation",
        type=Path,
        default=ROOT / "instrumentation",
        help="the wstrace package's parent directory to measure (default: this checkout)",
    )
    parser.add_argument(
        "--instructions",
        action="store_true",
        help="instead: the encoder's machine instructions per span, counted by callgrind",
    )
    parser.add_argument("--encode-repeats", type=int, help=argparse.SUPPRESS)  # the child's
    args = parser.parse_args(argv)
    if args.instructions:
        return _encoder_instructions(args.instrumentation)
    sys.path.insert(0, str(args.instrumentation))

    from opentelemetry import baggage
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import (
        BatchSpanProcessor,
        SimpleSpanProcessor,
        SpanExporter,
        SpanExportResult,
    )
    from opentelemetry.trace import SpanKind
    from wstrace import otlp_json, redact
    from wstrace.provider import IdsFromBaggage

    try:
        from wstrace.tracer import LeanTracer
    except ImportError:  # code from before the lean tracer
        LeanTracer = None

    class Keep(SpanExporter):
        def __init__(self) -> None:
            self.spans: list[Any] = []

        def export(self, spans: Any) -> SpanExportResult:
            self.spans.extend(spans)
            return SpanExportResult.SUCCESS

    if args.encode_repeats is None:
        print(f"wstrace from {args.instrumentation}")

    # --- start + end --------------------------------------------------------------
    provider = TracerProvider()
    provider.add_span_processor(IdsFromBaggage())
    provider.add_span_processor(
        BatchSpanProcessor(Keep(), max_queue_size=1 << 20, schedule_delay_millis=60_000)
    )
    attributes = {
        "ws.connection_id": "4bf92f3577b34da6a3ce929d0e0e4736",
        "ws.hop": "send",
        "ws.event": "ws.send",
        "ws.seq": 3,
        "ws.frame_bytes": 120,
    }
    ctx = baggage.set_baggage("ws.conversation_id", "conv1")
    ctx = baggage.set_baggage("ws.message_id", "m1", ctx)
    tracers = {"sdk": provider.get_tracer("wstrace")}
    if LeanTracer is not None:
        tracers["lean"] = LeanTracer(provider, "wstrace", "bench")
    for name, tracer in (tracers if args.encode_repeats is None else {}).items():

        def spans(tracer: Any = tracer) -> None:
            for _ in range(2000):
                tracer.start_span("ws.send", context=ctx, attributes=attributes).end()

        print(f"start + end, {name:4} tracer: {_best(spans, 2000):6.2f} µs per span")

    # --- encoder -----------------------------------------------------------------------
    keep = Keep()
    source = TracerProvider()
    source.add_span_processor(SimpleSpanProcessor(keep))
    tracer = source.get_tracer("wstrace")
    message_id = ""
    for index in range(512):
        if index % 13 == 0:
            message_id = uuid.uuid4().hex
        span_ctx = baggage.set_baggage("ws.message_id", message_id, ctx)
        tracer.start_span(
            "ws.deliver",
            context=span_ctx,
            kind=SpanKind.CONSUMER,
            attributes={
                "ws.conversation_id": "conv1",
                "ws.connection_id": "4bf92f3577b34da6a3ce929d0e0e4736",
                "ws.message_id": message_id,
                "ws.hop": "deliver",
                "ws.event": "ws.deliver",
                "ws.message_type": "chat.message",
                "ws.handler": "chat_message",
                "ws.channel": "specific.abc!def",
                "ws.seq": index % 6 + 1,
            },
        ).end()
    batch = keep.spans

    def encode() -> None:
        otlp_json.encode_request(batch)

    encode()  # warm the encoder's caches, as a running exporter has them
    if args.encode_repeats is not None:
        for _ in range(args.encode_repeats):
            encode()
        return 0
    print(
        f"encode_request: {_best(encode, len(batch)):6.2f} µs per span, "
        f"{_bytecodes(encode) / len(batch):6.1f} bytecodes per span"
    )

    # --- redaction ---------------------------------------------------------------------
    def scrub() -> None:
        for _ in range(20):
            redact._CLEAN.clear()  # a new line each time, as log lines are
            redact.redact_text(LINE)

    print(f"redact_text, {len(LINE)}-character log line: {_best(scrub, 20):8.2f} µs")
    return 0


_TOTAL = re.compile(r"^(?:summary|totals): (\d+)", re.MULTILINE)
_BATCH = 512  # spans per encode_request call, as built above


def _encoder_instructions(instrumentation: Path) -> int:
    """Run the encoder part under callgrind with 2 and with 12 calls; print the difference per span."""
    if shutil.which("valgrind") is None:
        print("bench_span_micro: valgrind not found on PATH (apt-get install valgrind)")
        return 2
    counts = []
    with tempfile.TemporaryDirectory(prefix="wstrace-enc-") as tmp:
        for repeats in (2, 12):
            out = Path(tmp) / f"cg.{repeats}"
            command = [
                "valgrind", "--tool=callgrind", f"--callgrind-out-file={out}",
                sys.executable, __file__, "--instrumentation", str(instrumentation),
                "--encode-repeats", str(repeats),
            ]  # fmt: skip
            subprocess.run(command, check=True, capture_output=True)
            match = _TOTAL.search(out.read_text())
            if match is None:
                raise SystemExit(f"no instruction total in {out}")
            counts.append(int(match.group(1)))
    per_span = (counts[1] - counts[0]) / 10 / _BATCH
    print(f"wstrace from {instrumentation}")
    print(f"encode_request: {per_span:,.0f} instructions per span (callgrind)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
