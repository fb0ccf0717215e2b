"""What wstrace adds to one streamed answer, in CPU microseconds, measured in one process.

::

    .venv/bin/python benchmarks/bench_instrumentation_cost.py --messages 2000 --rounds 5
    .venv/bin/python benchmarks/bench_instrumentation_cost.py --opcodes --messages 200 --rounds 1

The overhead benchmark (``bench_wstrace_overhead.py``) runs the whole stack,
where a shared machine's noise is ±10 % between rounds; this one isolates the
instrumentation. A real Channels stack runs in this process (``ProtocolTypeRouter``,
``URLRouter``, an ``AsyncJsonWebsocketConsumer``, the in-memory channel layer,
``WebsocketCommunicator`` as the client) with ``wstrace`` installed the way a
user installs it. Each message is the example app's shape: a client frame, an
ack frame, ``--chunks`` + 1 ``group_send`` to the conversation's group, each
delivered to the consumer and written to the client: the receive, publish,
deliver and send hops (no Celery). Rounds alternate off / lean / sdk, where
"lean" is what a user gets and "sdk" forces the OpenTelemetry SDK tracer (what
an app that brings its own provider gets); "wrappers" (wstrace on, spans made
by a no-op tracer: the wrappers' own bookkeeping) and "spans" (lean spans made
and ended, no exporter) split the cost. Reported: the median CPU time per
message of each mode, and what each mode adds to "off". With ``--opcodes`` the
measure is the number of Python bytecode instructions executed per message,
every thread included (the exporter's encoding too): deterministic, so it
compares changes where a shared machine's timing noise cannot, but it does not
weigh C code (orjson, asyncio's C parts) at all. ``--instructions`` weighs
everything: each mode runs in a child process under ``valgrind --tool=callgrind``
with ``--messages`` and with three times as many, and the difference of the
machine instructions counted, divided by the difference in messages, is the
work per message (start-up cancelled out; repeatable to about 1 %).
``--instrumentation DIR`` measures another checkout's ``wstrace`` (for
before/after comparisons in one run, e.g. ``git archive`` of an older commit).

::

    .venv/bin/python benchmarks/bench_instrumentation_cost.py --instructions --messages 100
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
INSTRUMENTATION = Path(os.environ.get("WSTRACE_BENCH_INSTRUMENTATION", ROOT / "instrumentation"))
sys.path.insert(0, str(INSTRUMENTATION))


MODES = ("off", "wrappers", "spans", "lean", "sdk")
_OPCODES = [0]
_COUNTING = [False]


def _count_opcodes(frame: Any, event: str, arg: Any) -> Any:
    if not _COUNTING[0]:
        return None
    frame.f_trace_opcodes = True
    if event == "opcode":
        _OPCODES[0] += 1
    return _count_opcodes


def _setup(trace_dir: str) -> Any:
    import django
    from django.conf import settings

    settings.configure(
        DEBUG=False,
        SECRET_KEY="bench",
        INSTALLED_APPS=["channels", "wstrace"],
        CHANNEL_LAYERS={"default": {"BACKEND": "channels.layers.InMemoryChannelLayer"}},
        WSTRACE={"FILE_DIR": trace_dir, "SERVICE_NAME": "bench"},
        USE_TZ=True,
    )
    django.setup()

    from channels.generic.websocket import AsyncJsonWebsocketConsumer
    from channels.routing import ProtocolTypeRouter, URLRouter
    from django.urls import path

    class ChatConsumer(AsyncJsonWebsocketConsumer):
        chunks = 5

        async def connect(self) -> None:
            self.group = f"chat_{self.scope['url_route']['kwargs']['conversation_id']}"
            await self.channel_layer.group_add(self.group, self.channel_name)
            await self.accept()

        async def disconnect(self, code: int) -> None:
            await self.channel_layer.group_discard(self.group, self.channel_name)

        async def receive_json(self, content: dict[str, Any], **kwargs: Any) -> None:
            await self.send_json({"type": "ack", "message_id": content["id"]})
            # What the worker does in the real app: stream the answer through the group.
            for seq in range(1, self.chunks + 2):
                kind = "chat.message" if seq <= self.chunks else "chat.done"
                await self.channel_layer.group_send(
                    self.group, {"type": kind, "message_id": content["id"], "seq": seq}
                )

        async def chat_message(self, event: dict[str, Any]) -> None:
            await self.send_json({"type": "chunk", "seq": event["seq"], "content": "word"})

        async def chat_done(self, event: dict[str, Any]) -> None:
            await self.send_json({"type": "done", "message_id": event["message_id"]})

    app = ProtocolTypeRouter(
        {"websocket": URLRouter([path("ws/chat/<conversation_id>/", ChatConsumer.as_asgi())])}
    )
    return app, ChatConsumer


async def _round(app: Any, messages: int, frames: int, flush: Any, opcodes: bool) -> float:
    from channels.testing import WebsocketCommunicator

    client = WebsocketCommunicator(app, "/ws/chat/bench/?token=secret")
    connected, _ = await client.connect()
    assert connected
    started = time.process_time()
    before = _OPCODES[0]
    _COUNTING[0] = opcodes
    for index in range(messages):
        await client.send_to(text_data=json.dumps({"type": "message", "id": f"m{index}"}))
        for _ in range(frames):
            await client.receive_from(timeout=5)
    flush()  # the spans of this round are encoded and written inside it
    _COUNTING[0] = False
    elapsed = time.process_time() - started
    await client.disconnect()
    return _OPCODES[0] - before if opcodes else elapsed


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--messages", type=int, default=1000, help="messages per round")
    parser.add_argument("--rounds", type=int, default=5, help="counted rounds per mode")
    parser.add_argument("--chunks", type=int, default=5, help="streamed chunks per answer")
    parser.add_argument(
        "--modes", default="off,lean,sdk", help=f"comma-separated subset of {','.join(MODES)}"
    )
    parser.add_argument(
        "--opcodes", action="store_true", help="count bytecode instructions instead of CPU time"
    )
    parser.add_argument("--json", type=Path, help="write the results here")
    parser.add_argument(
        "--instructions",
        action="store_true",
        help="count machine instructions under valgrind (each mode in a child process)",
    )
    parser.add_argument(
        "--instrumentation",
        type=Path,
        action="append",
        default=[],
        help="with --instructions: also measure the wstrace package under this directory",
    )
    args = parser.parse_args(argv)
    if args.instructions:
        return _instructions(args)
    if args.opcodes:  # before set-up, so the exporter's thread is counted too
        sys.settrace(_count_opcodes)
        threading.settrace(_count_opcodes)

    with tempfile.TemporaryDirectory(prefix="wstrace-cost-") as trace_dir:
        app, consumer = _setup(trace_dir)
        consumer.chunks = args.chunks
        from opentelemetry import trace
        from wstrace import conventions as c
        from wstrace import provider, runtime

        config = runtime.config()
        frames = args.chunks + 2  # ack, chunks, done
        sdk_provider = trace.get_tracer_provider()
        sdk_tracer = sdk_provider.get_tracer(c.SCOPE_NAME)
        runtime.tracer()
        lean_cached = runtime._state["tracer"]

        processors = sdk_provider._active_span_processor
        exporting = processors._span_processors
        noop = (sdk_provider, trace.NoOpTracer())

        def use(mode: str) -> None:
            if mode == "off":
                runtime.deactivate()
                return
            runtime.activate(config)
            runtime._state["tracer"] = {"wrappers": noop, "sdk": (sdk_provider, sdk_tracer)}.get(
                mode, lean_cached
            )
            # "spans": made and ended, handed to no exporter.
            processors._span_processors = exporting[:1] if mode == "spans" else exporting

        modes = tuple(m for m in MODES if m in args.modes.split(","))
        per_message: dict[str, list[float]] = {m: [] for m in modes}
        for index in range(args.rounds + 1):  # the first round of each mode warms up
            for mode in modes if index % 2 == 0 else modes[::-1]:
                use(mode)
                measured = asyncio.run(
                    _round(app, args.messages, frames, provider.flush, args.opcodes)
                )
                if index:
                    scale = 1 if args.opcodes else 1e6
                    per_message[mode].append(scale * measured / args.messages)
        runtime.activate(config)
        spans = sum(
            len(line) for f in Path(trace_dir).rglob("*.jsonl") for line in f.open()
        )  # bytes written: proves the spans were exported, not only made

    median = {m: statistics.median(v) for m, v in per_message.items()}
    best = {m: min(v) for m, v in per_message.items()}
    what, unit = ("Bytecode instructions", "ops") if args.opcodes else ("CPU", "µs")
    print(f"{what} per message ({args.chunks} chunks + done, in-process Channels stack):")
    for mode in modes:
        base = median.get("off")
        added = ""
        if mode != "off" and base:
            extra = median[mode] - base
            added = f"   +{extra:9.1f} {unit}  (+{100 * extra / base:.1f} %)"
        print(
            f"  {mode:8} {median[mode]:9.1f} {unit}{added}   best {best[mode]:.0f}   rounds: "
            + ", ".join(f"{v:.0f}" for v in per_message[mode])
        )
    print(f"  trace bytes written: {spans:,}")
    if args.json:
        args.json.write_text(json.dumps({"per_message_us": per_message, "median_us": median}))
    return 0


_TOTAL = re.compile(r"^(?:summary|totals): (\d+)", re.MULTILINE)


def _count_instructions(mode: str, messages: int, chunks: int, instrumentation: Path) -> int:
    """Machine instructions of one child process running ``mode`` for ``messages`` (x2: warm-up)."""
    with tempfile.TemporaryDirectory(prefix="wstrace-cg-") as tmp:
        out = Path(tmp) / "cg.out"
        command = [
            "valgrind", "--tool=callgrind", f"--callgrind-out-file={out}",
            sys.executable, __file__, "--modes", mode, "--rounds", "1",
            "--messages", str(messages), "--chunks", str(chunks),
        ]  # fmt: skip
        env = {**os.environ, "WSTRACE_BENCH_INSTRUMENTATION": str(instrumentation)}
        subprocess.run(command, env=env, check=True, capture_output=True)
        match = _TOTAL.search(out.read_text())
        if match is None:
            raise SystemExit(f"no instruction total in {out}")
        return int(match.group(1))


def _instructions(args: argparse.Namespace) -> int:
    """``--instructions``: per-message machine instructions of each mode and checkout."""
    if shutil.which("valgrind") is None:
        raise SystemExit("--instructions needs valgrind (apt-get install valgrind)")
    small, large = args.messages, 3 * args.messages
    checkouts = [INSTRUMENTATION, *args.instrumentation]
    modes = [m for m in MODES if m in args.modes.split(",")]
    rows: dict[str, float] = {}
    for checkout in checkouts:
        for mode in modes:
            if mode == "off" and checkout != INSTRUMENTATION:
                continue  # wstrace deactivated: the same for every checkout
            # The two counts run side by side: two cores, half the wait.
            with ThreadPoolExecutor(2) as pool:
                pending = [
                    pool.submit(_count_instructions, mode, n, args.chunks, checkout)
                    for n in (small, large)
                ]
                counts = [future.result() for future in pending]
            # Each child runs its messages twice (a warm-up round, then the counted one).
            per_message = (counts[1] - counts[0]) / (2 * (large - small))
            label = mode if checkout == INSTRUMENTATION else f"{mode} ({checkout})"
            rows[label] = per_message
            print(f"  {label:40} {per_message / 1e6:8.3f} M instructions per message", flush=True)
    base = rows.get("off")
    if base:
        print("added to off:")
        for label, value in rows.items():
            if label != "off":
                print(
                    f"  {label:40} +{(value - base) / 1e6:7.3f} M  (+{100 * (value - base) / base:.1f} %)"
                )
    if args.json:
        args.json.write_text(json.dumps({"instructions_per_message": rows}))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
