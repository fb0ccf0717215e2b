"""Verdict engine cost: `conversations` and `lost` over a whole store, two code trees side by side.

    .venv/bin/python benchmarks/bench_verdicts.py DATA_DIR [--baseline TREE] [--repeat 3]

``DATA_DIR`` is a store written by ``benchmarks/generate.py``. Its spans are decoded
once into a Parquet file (in a temporary directory), then each contender runs in a
fresh subprocess with its own ``analyzer/`` and ``instrumentation/`` on
``PYTHONPATH``: this checkout, and ``--baseline`` (a worktree of another commit,
e.g. ``git worktree add /tmp/base <commit>``). Each times the real library calls
the commands make — ``summarize_conversations`` and ``aggregate_lost`` — best of
``--repeat`` runs, and reports the ratio in the same run (the machine is shared:
ratios are what to read).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

_DECODE = """
import sys
from wsanalyze.sources import load_events
load_events(sys.argv[1]).events.collect().write_parquet(sys.argv[2])
"""

_TIME = """
import json, resource, sys, time
import polars as pl
from wsanalyze.events import conform
from wsanalyze.verdicts import aggregate_lost, summarize_conversations
events = conform(pl.scan_parquet(sys.argv[1])).collect().lazy()
best = {}
for _ in range(int(sys.argv[2])):
    t0 = time.perf_counter(); rows = summarize_conversations(events); t1 = time.perf_counter()
    lost = aggregate_lost(events); t2 = time.perf_counter()
    best["conversations_s"] = min(best.get("conversations_s", 1e9), t1 - t0)
    best["lost_s"] = min(best.get("lost_s", 1e9), t2 - t1)
best.update(conversations=len(rows), lost_messages=lost.lost,
            rss_mib=resource.getrusage(resource.RUSAGE_SELF).ru_maxrss // 1024)
print(json.dumps(best))
"""


def _run(code: str, tree: Path, *args: str) -> str:
    env = {**os.environ, "PYTHONPATH": f"{tree / 'analyzer'}:{tree / 'instrumentation'}"}
    done = subprocess.run(
        [sys.executable, "-c", code, *args], env=env, capture_output=True, text=True, check=False
    )
    if done.returncode != 0:
        raise SystemExit(f"{tree}: {done.stderr.strip().splitlines()[-1:]}")
    return done.stdout


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("data", type=Path, help="a store written by benchmarks/generate.py")
    parser.add_argument("--baseline", type=Path, help="another checkout (a git worktree)")
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory() as tmp:
        table = Path(tmp) / "events.parquet"
        _run(_DECODE, ROOT, str(args.data), str(table))
        results = {"this": json.loads(_run(_TIME, ROOT, str(table), str(args.repeat)))}
        if args.baseline:
            results["baseline"] = json.loads(
                _run(_TIME, args.baseline, str(table), str(args.repeat))
            )
    if "baseline" in results:
        for key in ("conversations_s", "lost_s"):
            results[f"ratio_{key}"] = round(results["this"][key] / results["baseline"][key], 2)
    print(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
