"""Message round trips per second through the example chat app, wstrace off vs on.

::

    .venv/bin/python benchmarks/bench_wstrace_overhead.py                 # defaults below
    .venv/bin/python benchmarks/bench_wstrace_overhead.py --rounds 8 --messages 150 --json out.json

Two stacks of the example app run side by side on one real Redis (each its
own logical database): Daphne + Celery prefork worker (concurrency 2), the
core ``RedisChannelLayer``, ``CHAT_CHUNK_DELAY=0`` and ``CHAT_CHUNKS`` chunks per
answer. One has ``WSTRACE_ENABLED=0``, the other ``WSTRACE_ENABLED=1`` with the
default file exporter and default flush interval (what a user gets). Rounds
alternate between them in ABBA order (off, on, on, off, ...) so drift of the
machine hits both alike. A round is ``--clients`` WebSocket connections, each
sending ``--messages`` messages one after the other (next one when the
previous ``done`` arrived); its rate is messages / wall time. The first round
of each mode is a warm-up and not counted. Reported: the median rate per mode
and ``overhead = 1 - median(on) / median(off)`` (target: at most 5%), plus the
per-pair ratios.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import platform
import signal
import statistics
import sys
import tempfile
import time
import uuid
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "analyzer"))

from websockets.asyncio.client import connect  # noqa: E402
from wsanalyze.demo.client import make_token  # noqa: E402
from wsanalyze.demo.example_apps import DEFAULT_JWT_SECRET  # noqa: E402
from wsanalyze.demo.redis_server import RedisServer  # noqa: E402
from wsanalyze.demo.stack import Stack  # noqa: E402

LOST: list[tuple[str, str, str]] = []  # (conversation url, message id, what was seen)


async def _client(url: str, messages: int, timeout: float) -> int:
    """Send ``messages`` messages one after the other on one connection; return how many got done.

    A message without its ``done`` within ``timeout`` is recorded in LOST (the
    traces say why: ``wsanalyze conversation``) and the next one is sent.
    """
    done = 0
    async with connect(url, max_size=None, close_timeout=2) as ws:
        for _ in range(messages):
            message_id = uuid.uuid4().hex
            await ws.send(json.dumps({"type": "message", "id": message_id, "content": "hi"}))
            deadline = time.monotonic() + timeout
            seen: list[str] = []
            while True:
                try:
                    raw = await asyncio.wait_for(ws.recv(), max(0.01, deadline - time.monotonic()))
                except TimeoutError:
                    # The path names the conversation; the query holds the token: never print it.
                    LOST.append((url.split("?", 1)[0], message_id, ",".join(seen)))
                    break
                frame = json.loads(raw)
                if frame.get("message_id", frame.get("id")) == message_id:
                    seen.append(f"{frame.get('type')}{frame.get('seq', '')}")
                if frame.get("type") == "done" and frame.get("message_id") == message_id:
                    done += 1
                    break
    return done


async def _round(stack: Stack, clients: int, messages: int, timeout: float) -> tuple[float, int]:
    token = make_token(1, "bench", DEFAULT_JWT_SECRET)
    urls = [stack.ws_url(uuid.uuid4().hex[:12], token) for _ in range(clients)]
    started = time.perf_counter()
    results = await asyncio.gather(*(_client(url, messages, timeout) for url in urls))
    elapsed = time.perf_counter() - started
    return elapsed, sum(results)


def _cpu_seconds(stack: Stack) -> dict[str, float]:
    """User + system CPU seconds so far of each service's processes (worker: with children)."""
    groups = {proc.pid: service for service, proc in stack.procs.items()}  # session leaders
    ticks = os.sysconf("SC_CLK_TCK")
    totals = dict.fromkeys(stack.procs, 0)
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except (OSError, IndexError):
            continue
        # fields[0] is field 3 (state): pgrp is field 5, utime 14, stime 15.
        service = groups.get(int(fields[2]))
        if service is not None:
            totals[service] += int(fields[11]) + int(fields[12])
    return {service: ticks_used / ticks for service, ticks_used in totals.items()}


def _machine() -> str:
    cpu = "unknown cpu"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return (
        f"{os.cpu_count()} cores ({cpu}), {platform.system()} {platform.release()}, "
        f"Python {platform.python_version()}"
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=8, help="counted rounds per mode")
    parser.add_argument("--clients", type=int, default=4, help="connections per round")
    parser.add_argument("--messages", type=int, default=60, help="messages per connection")
    parser.add_argument("--chunks", type=int, default=5, help="streamed chunks per answer")
    parser.add_argument("--concurrency", type=int, default=2, help="Celery prefork children")
    parser.add_argument("--timeout", type=float, default=20.0, help="seconds per message")
    parser.add_argument(
        "--on-env",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="extra environment of the instrumented stack only (e.g. to try a patch)",
    )
    parser.add_argument(
        "--off-env",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="extra environment of the uninstrumented stack only (e.g. a control experiment)",
    )
    parser.add_argument(
        "--workdir", type=Path, help="keep logs and traces here (default: a temporary directory)"
    )
    parser.add_argument("--json", type=Path, help="write the results here")
    args = parser.parse_args(argv)
    # SIGTERM unwinds like Ctrl-C, so the stacks below are always stopped.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))

    env = {
        "CHAT_CHUNK_DELAY": "0",
        "CHAT_CHUNKS": str(args.chunks),
        "CHAT_RATE_LIMIT": "1000000000",
    }
    on_env = dict(item.split("=", 1) for item in args.on_env)
    off_env = dict(item.split("=", 1) for item in args.off_env)
    lost = {"off": 0, "on": 0}
    rates: dict[str, list[float]] = {"off": [], "on": []}
    stalled: dict[str, list[bool]] = {"off": [], "on": []}
    cpu_ms: dict[str, list[float]] = {
        key: [] for key in ("off", "on", "off_web", "on_web", "off_worker", "on_worker")
    }
    with contextlib.ExitStack() as scope:
        if args.workdir:
            tmp = str(args.workdir)
        else:
            tmp = scope.enter_context(tempfile.TemporaryDirectory(prefix="wstrace-bench-"))
        redis = scope.enter_context(RedisServer())
        stacks = {
            mode: Stack(
                Path(tmp) / mode,
                redis.url_for(db),
                env=env,
                web_env=on_env if mode == "on" else off_env,
                worker_env=on_env if mode == "on" else off_env,
                wstrace_enabled=(mode == "on"),
                concurrency=args.concurrency,
            )
            for db, mode in ((1, "off"), (2, "on"))
        }
        try:
            for stack in stacks.values():
                stack.launch()
            for stack in stacks.values():
                stack.wait_ready()
            order = ["off", "on"]
            for index in range(args.rounds + 1):  # +1: the warm-up round of each mode
                for mode in order if index % 2 == 0 else order[::-1]:
                    cpu_before = _cpu_seconds(stacks[mode])
                    elapsed, done = asyncio.run(
                        _round(stacks[mode], args.clients, args.messages, args.timeout)
                    )
                    cpu_after = _cpu_seconds(stacks[mode])
                    per = {
                        service: 1000 * (cpu_after[service] - cpu_before[service]) / max(done, 1)
                        for service in cpu_after
                    }
                    cpu = sum(per.values())
                    expected = args.clients * args.messages
                    if done != expected:
                        lost[mode] += expected - done
                        print(f"{mode}: {expected - done} message(s) without done: {LOST[-3:]}")
                        if done == 0:
                            raise SystemExit(f"{mode}: no message completed")
                    rate = done / elapsed
                    label = "warm-up" if index == 0 else f"round {index}"
                    print(
                        f"{label:8} {mode:3} {rate:8.1f} msg/s  ({elapsed:.2f}s)  "
                        f"{cpu:6.2f} CPU ms/msg (web {per['web']:.2f} + worker {per['worker']:.2f})",
                        flush=True,
                    )
                    if index:
                        rates[mode].append(rate)
                        stalled[mode].append(done != expected)
                        cpu_ms[mode].append(cpu)
                        for service, value in per.items():
                            cpu_ms[f"{mode}_{service}"].append(value)
            spans_bytes = sum(
                p.stat().st_size for p in stacks["on"].trace_dir.rglob("*.jsonl") if p.is_file()
            )
        finally:
            for stack in stacks.values():
                stack.stop()

    off, on = statistics.median(rates["off"]), statistics.median(rates["on"])
    pairs = [b / a for a, b in zip(rates["off"], rates["on"], strict=True)]
    # A round where a message never got its done (the channels_redis stall, seen in both
    # modes) measures the timeout, not the instrumentation: its pair is left out here.
    clean_pairs = [
        ratio
        for ratio, stall_off, stall_on in zip(pairs, stalled["off"], stalled["on"], strict=True)
        if not (stall_off or stall_on)
    ] or pairs
    result = {
        "machine": _machine(),
        "command": " ".join([Path(sys.executable).name, *sys.argv]),
        "params": {k: str(v) if isinstance(v, Path) else v for k, v in vars(args).items()},
        "rates": rates,
        "median_off": off,
        "median_on": on,
        "overhead": 1 - on / off,
        "pair_ratio_median": statistics.median(pairs),
        "clean_pair_ratio_median": statistics.median(clean_pairs),
        "clean_pairs": len(clean_pairs),
        "stalled_rounds": stalled,
        "pair_ratio_min": min(pairs),
        "pair_ratio_max": max(pairs),
        "cpu_ms_per_message": cpu_ms,
        "median_cpu_ms_off": statistics.median(cpu_ms["off"]),
        "median_cpu_ms_on": statistics.median(cpu_ms["on"]),
        "cpu_overhead": statistics.median(cpu_ms["on"]) / statistics.median(cpu_ms["off"]) - 1,
        "median_cpu_ms": {key: statistics.median(values) for key, values in cpu_ms.items()},
        "load_average": os.getloadavg(),
        "trace_bytes_written": spans_bytes,
        "lost_messages": lost,
        "lost_detail": LOST,
    }
    print(
        f"\nwstrace off: {off:.1f} msg/s   on: {on:.1f} msg/s   "
        f"overhead: {100 * result['overhead']:.1f}% (target <= 5%)   "
        f"on/off per pair: median {result['pair_ratio_median']:.3f} "
        f"[{result['pair_ratio_min']:.3f} .. {result['pair_ratio_max']:.3f}]"
    )
    print(
        f"pairs without a stalled message: {len(clean_pairs)} of {len(pairs)}, on/off median "
        f"{result['clean_pair_ratio_median']:.3f} (slower by "
        f"{100 * (1 - result['clean_pair_ratio_median']):.1f}%)"
    )
    print(
        f"CPU per message (web+worker processes): off {result['median_cpu_ms_off']:.2f} ms, "
        f"on {result['median_cpu_ms_on']:.2f} ms: +{100 * result['cpu_overhead']:.1f}%"
    )
    medians = result["median_cpu_ms"]
    for service in ("web", "worker"):
        off_ms, on_ms = medians[f"off_{service}"], medians[f"on_{service}"]
        print(
            f"  {service:6}: off {off_ms:.2f} ms, on {on_ms:.2f} ms: +{100 * (on_ms / off_ms - 1):.1f}%"
        )
    print(f"messages without done (timeout {args.timeout}s): {lost}")
    print(f"machine: {result['machine']}; load average at the end: {result['load_average']}")
    if args.json:
        args.json.write_text(json.dumps(result, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
