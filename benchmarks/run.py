"""Side-by-side benchmark of conversation lookups, ingest and aggregations over one data set.

    python benchmarks/run.py benchmarks/data/1m            # id taken from 1m.json's samples
    python benchmarks/run.py benchmarks/data/1m --id conv-... --skip-duckdb --json out.json

Every measurement runs in a fresh subprocess (cold: nothing cached by us; the OS
page cache is warm for all contenders alike, after one untimed `cat` of the files),
and reports wall time plus peak RSS (ru_maxrss of the process and its workers):

* ``lookup raw (library)``: ``load_events(DIR, conversation_id=ID).events.collect()``,
  timed inside the process (import excluded) and as a whole process;
* ``lookup raw (CLI)``: ``wsanalyze conversation ID --traces DIR --json`` when the CLI has it;
* ``duckdb``: a hand-written DuckDB query over the same files (read_json, unnest
  resourceSpans/scopeSpans/spans, filter attributes for ws.conversation_id);
* ``grep -c``: the floor;
* ``ingest``: ``wsanalyze.sources.store.ingest`` into a fresh store (spans/s, RSS);
* ``lookup store``: ``load_events(STORE, conversation_id=ID)`` after ingest;
* ``conversations`` / ``lost``: group-bys over the whole store (per conversation:
  spans, first/last ts, errors, hops reached; lost-style: errored spans by hop and cause).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import subprocess
import sys
import time
from pathlib import Path

PY = sys.executable
RUSAGE = (
    "import resource, json, sys\n"
    "def _rss():\n"
    "    s = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss\n"
    "    c = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss\n"
    "    return max(s, c) * 1024\n"
)

LOOKUP = (
    RUSAGE
    + """
import time
t0 = time.perf_counter()
from wsanalyze.sources import load_events
t1 = time.perf_counter()
r = load_events(sys.argv[1], conversation_id=sys.argv[2])
df = r.events.collect()
t2 = time.perf_counter()
print(json.dumps({"seconds": t2 - t1, "import": t1 - t0, "rows": df.height,
                  "problems": len(r.problems), "rss": _rss()}))
"""
)

INGEST = (
    RUSAGE
    + """
import time
from wsanalyze.sources.store import ingest
t = time.perf_counter()
r = ingest(sys.argv[1], sys.argv[2])
print(json.dumps({"seconds": time.perf_counter() - t, "spans": r.spans_added,
                  "parts": r.parts_written, "rss": _rss()}))
"""
)

AGGREGATE = (
    RUSAGE
    + """
import time
import polars as pl
from wsanalyze.sources import load_events
t = time.perf_counter()
events = load_events(sys.argv[1]).events
conversations = (
    events.filter(pl.col("conversation_id").is_not_null())
    .group_by("conversation_id")
    .agg(
        pl.len().alias("spans"),
        pl.col("ts").min().alias("first"),
        pl.col("ts").max().alias("last"),
        (pl.col("status") == "error").sum().alias("errors"),
        pl.col("hop").n_unique().alias("hops"),
        pl.col("message_id").n_unique().alias("messages"),
    )
    .sort("first")
    .collect()
)
t1 = time.perf_counter()
lost = (
    events.filter((pl.col("status") == "error") | pl.col("cause").is_not_null()
                  | (pl.col("members") == 0))
    .group_by("hop", "cause")
    .agg(pl.len().alias("spans"), pl.col("conversation_id").n_unique().alias("conversations"))
    .sort("spans", descending=True)
    .collect()
)
t2 = time.perf_counter()
print(json.dumps({"conversations_s": t1 - t, "lost_s": t2 - t1, "conversations": conversations.height,
                  "lost_groups": lost.height, "rss": _rss()}))
"""
)

FULL = (
    RUSAGE
    + """
import time
from wsanalyze.sources import load_events
t = time.perf_counter()
df = load_events(sys.argv[1]).events.collect()
print(json.dumps({"seconds": time.perf_counter() - t, "rows": df.height, "rss": _rss()}))
"""
)

DUCKDB = (
    RUSAGE
    + """
import time
import duckdb
t = time.perf_counter()
query = '''
WITH rs AS (
  SELECT unnest(resourceSpans) AS r
  FROM read_json('%s', format = 'newline_delimited', maximum_object_size = 268435456)
), ss AS (SELECT unnest(r.scopeSpans) AS s FROM rs),
sp AS (SELECT unnest(s.spans) AS span FROM ss)
SELECT span.traceId, span.spanId, span.parentSpanId, span.name, span.startTimeUnixNano,
       span.endTimeUnixNano, span.status
FROM sp
WHERE list_contains(
  list_transform(list_filter(span.attributes, lambda a: a.key = 'ws.conversation_id'),
                 lambda a: a.value.stringValue), ?)
'''
con = duckdb.connect()
con.execute("SET enable_progress_bar = false")
rows = con.execute(query % sys.argv[1].replace("'", "''"), [sys.argv[2]]).fetchall()
print(json.dumps({"seconds": time.perf_counter() - t, "rows": len(rows), "rss": _rss()}))
"""
)


def run_py(code: str, *args: str) -> dict:
    started = time.perf_counter()
    proc = subprocess.run([PY, "-c", code, *args], capture_output=True, text=True, check=False)
    wall = time.perf_counter() - started
    if proc.returncode != 0:
        return {"error": proc.stderr.strip().splitlines()[-1:] or ["failed"], "wall": wall}
    lines = [x for x in proc.stdout.splitlines() if x.startswith("{")]
    out = json.loads(lines[-1])
    out["wall"] = wall
    return out


def run_cmd(cmd: list[str]) -> dict:
    """Wall time and peak RSS of an external command (via /usr/bin/time -v when present)."""
    timer = shutil.which("time") or "/usr/bin/time"
    wrapped = [timer, "-v", *cmd] if os.path.exists(timer) else cmd
    started = time.perf_counter()
    proc = subprocess.run(wrapped, capture_output=True, text=True, check=False)
    wall = time.perf_counter() - started
    rss = None
    for line in proc.stderr.splitlines():
        if "Maximum resident set size" in line:
            rss = int(line.split(":")[1]) * 1024
    return {"wall": wall, "rss": rss, "stdout": proc.stdout.strip()[-200:], "rc": proc.returncode}


def best_of(n: int, fn, *args) -> dict:
    """The fastest of n runs (by in-process seconds, else wall), with every run's time."""
    runs = [fn(*args) for _ in range(n)]
    ok = [r for r in runs if "error" not in r] or runs
    best = min(ok, key=lambda r: r.get("seconds", r["wall"]))
    best["runs"] = [round(r.get("seconds", r["wall"]), 3) for r in runs]
    return best


def trace_files(data: Path) -> list[str]:
    return sorted(str(p) for p in data.iterdir() if p.is_file() and ".json" in p.name)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("data", type=Path)
    parser.add_argument("--id", help="conversation id to look up (default: from DATA.json)")
    parser.add_argument("--store", type=Path, help="store dir (default: DATA.store)")
    parser.add_argument("--skip-duckdb", action="store_true")
    parser.add_argument("--skip-full", action="store_true", help="skip the raw full-table load")
    parser.add_argument("--json", type=Path, help="write the results here too")
    parser.add_argument("--repeat", type=int, default=3, help="runs per lookup (best kept)")
    args = parser.parse_args(argv)
    data = args.data.resolve()
    summary_file = data.with_suffix(".json")
    summary = json.loads(summary_file.read_text()) if summary_file.exists() else {}
    cid = args.id or (summary.get("samples", {}).get("fault") or summary["samples"]["ok"])[0]
    store = (args.store or data.with_name(data.name + ".store")).resolve()
    files = trace_files(data)
    size = sum(os.path.getsize(f) for f in files)
    env_note = {"WSANALYZE_STORE": str(data / "no-store")}  # raw lookups must not use a store
    os.environ.update(env_note)
    results: dict = {
        "data": str(data), "files": len(files), "bytes": size, "spans": summary.get("spans"),
        "conversation_id": cid, "machine": f"{platform.machine()}, {os.cpu_count()} cores, "
        f"{platform.python_implementation()} {platform.python_version()}",
    }  # fmt: skip
    subprocess.run(["cat", *files], stdout=subprocess.DEVNULL, check=False)  # warm the page cache

    def report(name: str, value: dict) -> None:
        results[name] = value
        print(f"{name:24s} {json.dumps(value)}", flush=True)

    n = args.repeat
    results["load_before"] = os.getloadavg()
    report("grep -c", best_of(n, run_cmd, ["grep", "-c", cid, *files]))
    report("lookup raw (library)", best_of(n, run_py, LOOKUP, str(data), cid))
    cli = shutil.which("wsanalyze", path=os.path.dirname(PY))
    if cli:
        probe = subprocess.run([cli, "conversation", "--help"], capture_output=True, check=False)
        cli = cli if probe.returncode == 0 else None
    if cli:
        cmd = [cli, "conversation", cid, "--traces", str(data), "--json"]
        report("lookup raw (CLI)", best_of(n, run_cmd, cmd))
    if not args.skip_duckdb:
        pattern = str(data / "*.json*")
        report("duckdb", run_py(DUCKDB, pattern, cid))
    if not args.skip_full:
        report("full load raw", run_py(FULL, str(data)))
    shutil.rmtree(store, ignore_errors=True)
    ingest = run_py(INGEST, str(data), str(store))
    if "spans" in ingest:
        ingest["spans_per_s"] = round(ingest["spans"] / ingest["seconds"])
    report("ingest", ingest)
    report("lookup store (library)", best_of(n, run_py, LOOKUP, str(store), cid))
    if cli:
        cmd = [cli, "conversation", cid, "--traces", str(store), "--json"]
        report("lookup store (CLI)", best_of(n, run_cmd, cmd))
    report("aggregations (store)", run_py(AGGREGATE, str(store)))
    results["load_after"] = os.getloadavg()
    if args.json:
        args.json.write_text(json.dumps(results, indent=1))


if __name__ == "__main__":
    main()
