"""Render benchmark result JSON files (from run.py --json) as the README's Markdown table.

python benchmarks/table.py benchmarks/data/300k.result.json benchmarks/data/1m.result.json ...
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

ROWS = (
    ("grep -c", "`grep -c ID` (floor)"),
    ("lookup raw (library)", "conversation lookup, raw files, library"),
    ("lookup raw (CLI)", "`wsanalyze conversation ID --json`, raw files"),
    ("duckdb", "hand-written DuckDB query, raw files"),
    ("full load raw", "full table, raw files (every span decoded)"),
    ("ingest", "ingest into an empty store"),
    ("lookup store (library)", "conversation lookup after ingest, library"),
    ("lookup store (CLI)", "`wsanalyze conversation ID --json` after ingest"),
    ("aggregations (store)", "conversations / lost group-bys over the store"),
)


def cell(name: str, value: dict | None) -> str:
    if not value:
        return "—"
    if "error" in value:
        return "error"
    rss = value.get("rss")
    mem = f" · {rss / 2**20:,.0f} MiB" if rss else ""
    if name == "ingest":
        return f"{value['seconds']:.1f} s ({value['spans_per_s']:,} spans/s){mem}"
    if name == "aggregations (store)":
        return f"{_t(value['conversations_s'])} / {_t(value['lost_s'])}{mem}"
    return _t(value.get("seconds", value.get("wall"))) + mem


def _t(seconds: float) -> str:
    return f"{seconds * 1000:.0f} ms" if seconds < 1 else f"{seconds:.2f} s"


def main(paths: list[str]) -> None:
    results = [json.loads(Path(p).read_text()) for p in paths]
    head = ["", *(f"{r['spans']:,} spans, {r['bytes'] / 2**20:,.0f} MiB" for r in results)]
    print("| " + " | ".join(head) + " |")
    print("|" + "---|" * len(head))
    for key, label in ROWS:
        print("| " + " | ".join([label, *(cell(key, r.get(key)) for r in results)]) + " |")
    ratios = []
    for r in results:
        lib, duck = r.get("lookup raw (library)"), r.get("duckdb")
        cli = r.get("lookup raw (CLI)")
        if lib and duck and "seconds" in duck:
            part = f"{duck['seconds'] / lib['seconds']:.0f}x (library)"
            if cli:
                part += f", {duck['seconds'] / cli['wall']:.0f}x (CLI process)"
            ratios.append(part)
        else:
            ratios.append("—")
    print("| " + " | ".join(["DuckDB ÷ lookup", *ratios]) + " |")
    print("| " + " | ".join(["load average during the run",
                              *(f"{r.get('load_before', ['?'])[0]:.1f} → "
                                f"{r.get('load_after', ['?'])[0]:.1f}" if 'load_before' in r
                                else "—" for r in results)]) + " |")  # fmt: skip


if __name__ == "__main__":
    main(sys.argv[1:])
