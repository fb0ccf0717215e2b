"""``wsanalyze conversation <id>``: one conversation's timeline, verdicts, evidence and hints."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.text import Text

from ..render.safe_text import shown
from ._common import (
    At,
    CloseCodes,
    InFlight,
    Json,
    LogMapFile,
    Logs,
    Traces,
    check_limit,
    clean_errors,
    close_codes,
    console,
    err_console,
    fail,
    in_flight,
    log_map,
    parse_time,
    print_json,
    quoted,
)

TIMELINE_ROWS = 200  # a row takes ~0.5 ms to lay out: thousands would take seconds


def conversation(
    conversation_id: Annotated[
        str, typer.Argument(help="The conversation id (ws.conversation_id).")
    ],
    traces: Traces = None,
    logs: Logs = None,
    log_map_: LogMapFile = None,
    json_: Json = False,
    html: Annotated[
        Path | None,
        typer.Option("--html", metavar="FILE", help="Also write a self-contained HTML report."),
    ] = None,
    mermaid: Annotated[
        bool, typer.Option("--mermaid", help="Print a Mermaid sequence diagram instead of tables.")
    ] = False,
    close_codes_: CloseCodes = None,
    in_flight_s: InFlight = 5.0,
    at: At = None,
    limit: Annotated[
        int,
        typer.Option(
            callback=check_limit,
            help="Show at most this many timeline rows in the terminal (0: all; --json has all).",
        ),
    ] = TIMELINE_ROWS,
) -> None:
    """Show how far each message of a conversation got, why it stopped, and how to fix it."""
    from ..analysis import conversation_report
    from ..render import json as render_json
    from ..render.terminal import conversation_view

    with clean_errors(), log_map(log_map_):
        report = conversation_report(
            conversation_id,
            traces=traces,
            logs=logs,
            close_codes=close_codes(close_codes_),
            in_flight=in_flight(in_flight_s),
            at=parse_time(at, "--at"),
        )
    if html is not None:
        from ..render.html import to_html

        try:
            html.write_text(to_html(report), encoding="utf-8")
        except (OSError, ValueError) as exc:  # ValueError: a NUL in the path
            reason = (exc.strerror if isinstance(exc, OSError) else None) or str(exc)
            fail(f"--html: cannot write {quoted(str(html))}: {reason}")
        err_console().print(Text(f"wrote {shown(html)}"), soft_wrap=True)
    if json_:
        print_json(render_json.dumps(render_json.conversation_json(report)))
    elif mermaid:
        from ..render.mermaid import to_mermaid

        print_json(to_mermaid(report).rstrip("\n"))
    else:
        console().print(conversation_view(report, timeline_limit=limit or None))
