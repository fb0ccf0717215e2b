"""CPU work per message through the example app, wstrace off vs on, counted by valgrind.

::

    .venv/bin/python benchmarks/bench_instructions.py                # 10 and 60 messages per mode
    .venv/bin/python benchmarks/bench_instructions.py --small 10 --large 110

Wall-clock and CPU-time benchmarks on a shared machine move by ±10 % between
runs of the same code (see the A/A run in README.md). Instruction counts do
not follow timing: every process of the stack (Daphne, the Celery worker and its prefork
child) runs under ``valgrind --tool=callgrind``, which counts the machine
instructions each executes. Each mode runs twice, with ``--small`` and with
``--large`` messages (2 connections, one message after the other, the example
app's 5 chunks + done); the difference divided by the difference in messages
is the work per message, start-up and shutdown cancelled out. Needs
``valgrind`` (``apt-get install valgrind``); a run takes about 15 minutes.

Caveat: work that runs per second rather than per message (Daphne's checkers,
Twisted and asyncio timers) is counted too, and valgrind's wall time stretches
with the machine's load, so the web process's count of the same code moves by
up to ~3 % between runs (the worker's by much less); compare several runs.

Caveat: valgrind emulates the CPU, so code that picks a SIMD path at run time
(orjson) counts more instructions than it executes natively; the on/off
difference is therefore an upper bound.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import re
import shutil
import sys
import tempfile
import time
import uuid
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "analyzer"))
sys.path.insert(0, str(ROOT / "benchmarks"))

from bench_wstrace_overhead import _client  # noqa: E402
from wsanalyze.demo.client import make_token  # noqa: E402
from wsanalyze.demo.example_apps import DEFAULT_JWT_SECRET  # noqa: E402
from wsanalyze.demo.redis_server import RedisServer  # noqa: E402
from wsanalyze.demo.stack import Stack  # noqa: E402

ENV = {"CHAT_CHUNK_DELAY": "0", "CHAT_CHUNKS": "5", "CHAT_RATE_LIMIT": "1000000000"}
TOTAL = re.compile(r"^(?:summary|totals): (\d+)", re.MULTILINE)


def _count(mode: str, messages: int, workdir: Path) -> dict[str, int]:
    """Instructions executed by web and worker (main + children) for ``messages`` messages."""
    out = workdir / f"{mode}-{messages}"
    out.mkdir(parents=True)
    python = out / "python"
    python.write_text(
        "#!/bin/sh\nexec valgrind --tool=callgrind "
        f'--callgrind-out-file={out}/cg.%p "{sys.executable}" "$@"\n'
    )
    python.chmod(0o755)
    with RedisServer() as redis:
        stack = Stack(
            workdir / f"stack-{mode}-{messages}",
            redis.url_for(1),
            env=ENV,
            wstrace_enabled=(mode == "on"),
            concurrency=1,
            python=str(python),
        )
        stack.startup_timeout = 900
        stack.launch()
        try:
            stack.wait_ready()
            web_pid = stack.procs["web"].pid
            token = make_token(1, "bench", DEFAULT_JWT_SECRET)

            async def talk(per_client: int) -> int:
                urls = [stack.ws_url(uuid.uuid4().hex[:12], token) for _ in range(2)]
                done = await asyncio.gather(*(_client(u, per_client, 300) for u in urls))
                return sum(done)

            for _ in range(8):  # first handshakes under valgrind can outlast Daphne's timeout
                try:
                    asyncio.run(talk(1))
                    break
                except Exception:  # retried: the counted run below must succeed
                    time.sleep(5)
            done = asyncio.run(talk(messages // 2))
            if done != messages:
                raise SystemExit(f"{mode}: only {done} of {messages} messages got their done")
            time.sleep(2)  # the exporter's 1 s flush happens inside the counted run
        finally:
            stack.stop()
    deadline = time.monotonic() + 300
    while time.monotonic() < deadline and len(list(out.glob("cg.*"))) < 3:
        time.sleep(1)  # valgrind writes each process's counts as it exits
    time.sleep(2)
    counts = {"web": 0, "worker": 0}
    for path in out.glob("cg.*"):
        match = TOTAL.search(path.read_text())
        if match:
            service = "web" if path.name == f"cg.{web_pid}" else "worker"
            counts[service] += int(match.group(1))
    return counts


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--small", type=int, default=10, help="messages in the short run")
    parser.add_argument("--large", type=int, default=60, help="messages in the long run")
    parser.add_argument("--json", type=Path, help="write the results here")
    parser.add_argument(
        "--keep", type=Path, help="keep the callgrind outputs under this (new) directory"
    )
    args = parser.parse_args(argv)
    if shutil.which("valgrind") is None:
        print("bench_instructions: valgrind not found on PATH (apt-get install valgrind)")
        return 2
    per_message: dict[str, dict[str, float]] = {}
    with tempfile.TemporaryDirectory(prefix="wstrace-instr-") as scratch:
        tmp = args.keep or scratch
        for mode in ("off", "on"):
            small = _count(mode, args.small, Path(tmp))
            large = _count(mode, args.large, Path(tmp))
            per_message[mode] = {
                service: (large[service] - small[service]) / (args.large - args.small)
                for service in ("web", "worker")
            }
            per_message[mode]["total"] = per_message[mode]["web"] + per_message[mode]["worker"]
            print(
                f"{mode:3}: "
                + ", ".join(f"{k} {v / 1e6:.2f} M" for k, v in per_message[mode].items())
                + " instructions per message",
                flush=True,
            )
    for service in ("web", "worker", "total"):
        off, on = per_message["off"][service], per_message["on"][service]
        print(
            f"  {service:6} +{100 * (on / off - 1):.1f} %  ({(on - off) / 1e6:+.2f} M per message)"
        )
    if args.json:
        args.json.write_text(json.dumps(per_message, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
