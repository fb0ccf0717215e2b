"""``wsanalyze conversations``: every conversation with its verdict."""

from __future__ import annotations

from typing import Annotated

import typer
from wstrace.conventions import OUTCOMES

from ._common import (
    At,
    CloseCodes,
    InFlight,
    Json,
    Limit,
    LogMapFile,
    Logs,
    Since,
    Traces,
    Until,
    clean_errors,
    close_codes,
    console,
    fail,
    in_flight,
    log_map,
    parse_time,
    print_json,
    quoted,
)


def conversations(
    traces: Traces = None,
    logs: Logs = None,
    log_map_: LogMapFile = None,
    since: Since = None,
    until: Until = None,
    outcome: Annotated[
        str | None, typer.Option(help=f"Only this outcome: {', '.join(OUTCOMES)}.")
    ] = None,
    cause: Annotated[
        str | None, typer.Option(help="Only this cause (see `wsanalyze explain`).")
    ] = None,
    json_: Json = False,
    limit: Limit = None,
    close_codes_: CloseCodes = None,
    in_flight_s: InFlight = 5.0,
    at: At = None,
) -> None:
    """List conversations with their verdicts, newest first."""
    from ..analysis import conversation_list
    from ..causes import KNOWN_CAUSES
    from ..render import json as render_json
    from ..render.terminal import conversations_view, problems_view

    if outcome is not None and outcome not in OUTCOMES:
        fail(f"--outcome: {quoted(outcome)} is not one of {', '.join(OUTCOMES)}")
    if cause is not None and cause not in KNOWN_CAUSES:
        fail(f"--cause: unknown cause {quoted(cause)}; causes: {', '.join(KNOWN_CAUSES)}")
    with clean_errors(), log_map(log_map_):
        rows, problems = conversation_list(
            traces=traces,
            logs=logs,
            since=parse_time(since, "--since"),
            until=parse_time(until, "--until"),
            outcome=outcome,
            cause=cause,
            close_codes=close_codes(close_codes_),
            in_flight=in_flight(in_flight_s),
            at=parse_time(at, "--at"),
        )
    if json_:
        shown = rows[:limit] if limit else rows
        print_json(render_json.dumps(render_json.conversations_json(shown)))
        return
    cap = 100 if limit is None else limit
    console().print(conversations_view(rows[:cap] if cap else rows, total=len(rows)))
    if problems:
        console().print(problems_view(problems))
