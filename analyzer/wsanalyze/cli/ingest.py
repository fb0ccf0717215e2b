"""``wsanalyze ingest``: compact the trace store into indexed Parquet for fast repeated queries."""

from __future__ import annotations

import os
from typing import Annotated

import typer
from rich.progress import BarColumn, DownloadColumn, Progress, TextColumn, TimeRemainingColumn
from rich.text import Text

from ..render.safe_text import plain, shown
from ._common import Json, Traces, check_path, clean_errors, console, fail, print_json, quoted


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

    target = _store_dir(store if store is not None else os.environ.get(ENV_STORE) or DEFAULT_STORE)
    columns = (
        TextColumn("[bold]ingest"),
        BarColumn(),
        DownloadColumn(),
        TimeRemainingColumn(),
        TextColumn("{task.fields[file]}", markup=False),
    )
    with (
        clean_errors(),
        Progress(*columns, console=console(), transient=True, disable=json_) as bar,
    ):
        task = bar.add_task("ingest", total=None, file="")

        def progress(done: int, total: int, current: str) -> None:
            name = shown(os.path.basename(current))
            bar.update(task, completed=done, total=total or None, file=name)

        try:
            result = run_ingest(traces, target, progress=progress)
        except OSError as exc:  # the store's own writes: a full disk, a read-only directory
            where = f" ({exc.filename})" if exc.filename else ""
            fail(f"cannot ingest into {quoted(target)}: {exc.strerror or exc}{where}")
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
        Text.assemble(
            (f"{summary['spans_added']:,}", "bold"),
            f" new span(s) from {summary['files_read']} file(s) "
            f"({summary['files_skipped']} unchanged) → {shown(summary['store'])} ",
            (f"({summary['spans_total']:,} in total, {summary['seconds']} s)", "dim"),
        )
    )
    for line in summary["problems"][:10]:
        console().print(plain(f"  {line}", "yellow"))


def _store_dir(value: str) -> str:
    """--store: a directory that exists or can be made; never a file, which ingest would trip on."""
    if not value.strip():
        fail("--store: empty; give a directory")
    check_path(value, "--store")
    if os.path.exists(value) and not os.path.isdir(value):
        fail(f"--store: {quoted(value)} exists and is not a directory")
    return value
