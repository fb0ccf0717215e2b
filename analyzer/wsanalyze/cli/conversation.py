"""``wsanalyze conversation <id>``: one conversation's timeline, verdicts, evidence and hints."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from ._common import (
    At,
    CloseCodes,
    InFlight,
    Json,
    LogMapFile,
    Logs,
    Traces,
    clean_errors,
    close_codes,
    console,
    err_console,
    fail,
    in_flight,
    log_map,
    parse_time,
    print_json,
)


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
        int | None, typer.Option(help="Show at most this many timeline rows in the terminal.")
    ] = None,
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
        except OSError as exc:
            fail(f"cannot write {html}: {exc.strerror}")
        err_console().print(f"wrote {html}")
    if json_:
        print_json(render_json.dumps(render_json.conversation_json(report)))
    elif mermaid:
        from ..render.mermaid import to_mermaid

        print_json(to_mermaid(report).rstrip("\n"))
    else:
        console().print(conversation_view(report, timeline_limit=limit))
