"""``wsanalyze ingest``: compact the trace store into indexed Parquet for fast repeated queries."""

from __future__ import annotations

import os
from typing import Annotated

import typer
from rich.progress import BarColumn, DownloadColumn, Progress, TextColumn, TimeRemainingColumn

from ._common import Json, Traces, clean_errors, console, fail, print_json


def ingest(
    traces: Traces = None,
    store: Annotated[
        str | None,
        typer.Option(
            "--store",
            metavar="DIR",
            help="Where the compacted store goes (default: $WSANALYZE_STORE or ./.wsanalyze).",
        ),
    ] = None,
    json_: Json = False,
) -> None:
    """Compact the trace store into Parquet sorted by conversation; new files are picked up incrementally."""
    try:
        from ..sources.store import DEFAULT_STORE, ENV_STORE
        from ..sources.store import ingest as run_ingest
    except ImportError:
        fail("this build has no compacted store (wsanalyze.store); nothing to ingest")
    target = store or os.environ.get(ENV_STORE) or DEFAULT_STORE
    columns = (
        TextColumn("[bold]ingest"),
        BarColumn(),
        DownloadColumn(),
        TimeRemainingColumn(),
        TextColumn("{task.fields[file]}"),
    )
    with (
        clean_errors(),
        Progress(*columns, console=console(), transient=True, disable=json_) as bar,
    ):
        task = bar.add_task("ingest", total=None, file="")

        def progress(done: int, total: int, current: str) -> None:
            bar.update(task, completed=done, total=total or None, file=os.path.basename(current))

        result = run_ingest(traces, target, progress=progress)
    summary = {
        "store": getattr(result, "store_dir", target),
        "files_read": getattr(result, "files_read", None),
        "files_skipped": getattr(result, "files_skipped", None),
        "spans_added": getattr(result, "spans_added", None),
        "spans_total": getattr(result, "spans_total", None),
        "parts_written": getattr(result, "parts_written", None),
        "seconds": round(getattr(result, "seconds", 0.0), 3),
        "problems": list(getattr(result, "problems", []))[:50],
    }
    if json_:
        from ..render.json import dumps

        print_json(dumps(summary))
        return
    console().print(
        f"[bold]{summary['spans_added']:,}[/] new span(s) from {summary['files_read']} file(s) "
        f"({summary['files_skipped']} unchanged) → {summary['store']} "
        f"[dim]({summary['spans_total']:,} in total, {summary['seconds']} s)[/]"
    )
    for line in summary["problems"][:10]:
        console().print(f"[yellow]  {line}[/]")
