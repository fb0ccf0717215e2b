"""``wsanalyze ingest``: compact the trace store into indexed Parquet for fast repeated queries."""

from __future__ import annotations

import os
from typing import Annotated

import typer
from rich.progress import BarColumn, DownloadColumn, Progress, TextColumn, TimeRemainingColumn

from ._common import Json, Traces, clean_errors, console, print_json


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
    from ..sources.store import DEFAULT_STORE, ENV_STORE
    from ..sources.store import ingest as run_ingest

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
        "store": result.store_dir,
        "files_read": result.files_read,
        "files_skipped": result.files_skipped,
        "spans_added": result.spans_added,
        "spans_total": result.spans_total,
        "parts_written": result.parts_written,
        "seconds": round(result.seconds, 3),
        "problems": result.problems[:50],
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
