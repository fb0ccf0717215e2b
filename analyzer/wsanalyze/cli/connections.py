"""``wsanalyze connections``: every WebSocket connection, with or without a conversation."""

from __future__ import annotations

from typing import Annotated

import typer

from ._common import (
    CloseCodes,
    Json,
    Limit,
    Logs,
    Traces,
    clean_errors,
    close_codes,
    console,
    print_json,
)


def connections(
    traces: Traces = None,
    logs: Logs = None,
    without_conversation: Annotated[
        bool,
        typer.Option(
            "--without-conversation",
            help="Only connections of routes that name no conversation (e.g. /ws/user/<id>/).",
        ),
    ] = False,
    json_: Json = False,
    limit: Limit = None,
    close_codes_: CloseCodes = None,
) -> None:
    """List connections (newest first) with their route, conversation and how they ended."""
    from ..analysis import connection_list
    from ..render import json as render_json
    from ..render.terminal import connections_view, problems_view

    with clean_errors():
        rows, problems = connection_list(
            traces=traces,
            logs=logs,
            close_codes=close_codes(close_codes_),
            without_conversation=without_conversation,
        )
    if json_:
        shown = rows[:limit] if limit else rows
        print_json(render_json.dumps(render_json.connections_json(shown)))
        return
    cap = 100 if limit is None else limit
    console().print(connections_view(rows[:cap] if cap else rows, total=len(rows)))
    if problems:
        console().print(problems_view(problems))
