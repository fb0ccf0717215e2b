"""Log parsing throughput: lines/s over a 1M-line `docker compose logs -t` file, beside `grep -c`.

    .venv/bin/python benchmarks/bench_logparse.py [--lines 1000000] [--out DIR]

The file is built from lines the real Daphne, Celery worker and Redis printed
(tests/logparse/capture.py runs them once), repeated with fresh conversation
ids, task ids, client ports and increasing engine timestamps, interleaved as
compose prints them (`web-1  | 2025-...Z line`). Tracebacks stay multi-line.
Measured, on the same file: `wc -l` and `grep -c WSCONNECT` (the floor: one
pass over the bytes), then `wsanalyze` reading + parsing it into the event
table (cold, one process), reported as lines/s and peak RSS.
"""

from __future__ import annotations

import argparse
import os
import random
import re
import resource
import subprocess
import sys
import tempfile
import time
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

UUID_RE = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")
CONV_RE = re.compile(r"/ws/(chat|reject)/[^/]+/")
PORT_RE = re.compile(r"127\.0\.0\.1:\d+ ")


def real_lines(workdir: Path) -> dict[str, list[str]]:
    from tests.logparse.capture import capture

    captured = capture(workdir)
    names = {"daphne": "web", "celery": "worker", "redis": "redis"}
    return {names[n]: captured.text(n).splitlines() for n in captured.files}


def build(path: Path, target: int, lines: dict[str, list[str]]) -> int:
    """Write ~target compose lines cycling through the real ones; returns the count."""
    rng = random.Random(7)
    t = datetime(2026, 1, 1, tzinfo=UTC)
    written = 0
    services = list(lines)
    with path.open("w") as out:
        while written < target:
            conv = f"c{uuid.uuid4().hex[:10]}"
            task = str(uuid.uuid4())
            port = f"127.0.0.1:{rng.randint(30000, 60000)} "
            for service in services:
                prefix = f"{service}-1".ljust(9) + " | "
                for line in lines[service]:
                    line = CONV_RE.sub(rf"/ws/\1/{conv}/", line)
                    line = UUID_RE.sub(task, line)
                    line = PORT_RE.sub(port, line)
                    t += timedelta(microseconds=rng.randint(50, 900))
                    stamp = t.strftime("%Y-%m-%dT%H:%M:%S.%f") + "123Z"
                    out.write(f"{prefix}{stamp} {line}\n")
                    written += 1
    return written


def _children_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def timed(argv: list[str]) -> tuple[float, float]:
    """(wall seconds, CPU seconds) of a command."""
    start, cpu = time.perf_counter(), _children_cpu()
    subprocess.run(argv, capture_output=True, text=True, check=False)
    return time.perf_counter() - start, _children_cpu() - cpu


def parse_in_child(path: Path, full: bool = False) -> tuple[float, int, int, float]:
    """Seconds, events and peak RSS (KB) of a cold parse in a fresh interpreter (imports
    included); `full` = the whole `--logs FILE` path (parse + correlation)."""
    call = (
        f"load_log_events({str(path)!r}).events.collect()"
        if full
        else f"parse_lines(read_file(Path({str(path)!r}))).collect()"
    )
    code = (
        "import time, resource, sys\n"
        "t = time.perf_counter()\n"
        "from pathlib import Path\n"
        "from wsanalyze.logparse import parse_lines, read_file\n"
        "from wsanalyze.sources.logs import load_log_events\n"
        f"ev = {call}\n"
        "dt = time.perf_counter() - t\n"
        "print(dt, ev.height, resource.getrusage(resource.RUSAGE_SELF).ru_maxrss)\n"
    )
    cpu = _children_cpu()
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    dt, rows, rss = out.stdout.split()
    return float(dt), int(rows), int(rss), _children_cpu() - cpu


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--lines", type=int, default=1_000_000)
    ap.add_argument("--out", type=Path, default=None)
    ap.add_argument("--repeat", type=int, default=3)
    args = ap.parse_args()
    work = args.out or Path(tempfile.mkdtemp(prefix="bench-logparse-"))
    work.mkdir(parents=True, exist_ok=True)
    path = work / "compose.log"
    if not path.exists():
        n = build(path, args.lines, real_lines(work / "captured"))
    else:
        n = sum(1 for _ in path.open())
    size = path.stat().st_size / 1e6
    print(f"file: {path} ({n:,} lines, {size:.0f} MB)")
    wc = min(timed(["wc", "-l", str(path)]) for _ in range(args.repeat))
    grep = min(timed(["grep", "-c", "WSCONNECT", str(path)]) for _ in range(args.repeat))
    runs = [parse_in_child(path) for _ in range(args.repeat)]
    best = min(runs)
    rss_mb = max(r[2] for r in runs) / 1024
    full = min(parse_in_child(path, full=True) for _ in range(args.repeat))
    print(
        f"{'what (best of ' + str(args.repeat) + ')':36} {'wall s':>7} {'lines/s':>12} {'CPU s':>7}"
    )
    rows = [
        ("wc -l", wc[0], wc[1]),
        ("grep -c WSCONNECT", grep[0], grep[1]),
        (f"wsanalyze parse ({best[1]:,} events)", best[0], best[3]),
        ("wsanalyze --logs FILE (+correlate)", full[0], full[3]),
    ]
    for label, wall, cpu in rows:
        print(f"{label:36} {wall:7.3f} {n / wall:12,.0f} {cpu:7.2f}")
    print(f"peak RSS of the parse: {rss_mb:.0f} MB; parse/grep (wall) = {best[0] / grep[0]:.0f}x")
    print(f"load average while measuring: {' '.join(f'{x:.1f}' for x in os.getloadavg())}")


if __name__ == "__main__":
    main()
