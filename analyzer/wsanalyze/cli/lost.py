"""``wsanalyze lost``: lost messages aggregated by hop and cause; ``--fail-on-lost`` makes it a CI gate.

Exit status: 0 when the analysis finished (with ``--fail-on-lost``: and no message was
lost), 1 for unusable input, 2 for a usage error, 3 (``EXIT_LOST``) with
``--fail-on-lost`` when at least one message was lost in the window.
"""

from __future__ import annotations

import re
from datetime import datetime
from typing import Annotated

import typer

from ..render.safe_text import plain
from ..report import LostReport
from ._common import (
    CloseCodes,
    InFlight,
    Json,
    LogMapFile,
    Logs,
    Since,
    Traces,
    Until,
    clean_errors,
    close_codes,
    console,
    err_console,
    in_flight,
    log_map,
    parse_time,
    print_json,
)

_AGE = re.compile(r"\s*\d+(?:\.\d+)?\s*[smhdw]\s*")  # --since given as an age (15m, 2h)
EXIT_LOST = 3  # --fail-on-lost: a message was lost (1 = unusable input, 2 = usage error)


def lost(
    traces: Traces = None,
    logs: Logs = None,
    log_map_: LogMapFile = None,
    since: Since = None,
    until: Until = None,
    json_: Json = False,
    close_codes_: CloseCodes = None,
    in_flight_s: InFlight = 5.0,
    fail_on_lost: Annotated[
        bool,
        typer.Option(
            "--fail-on-lost",
            help=f"A CI gate: exit {EXIT_LOST} when any message was lost (in the --since "
            "window), with a one-line summary on stderr; 0 and 'no message lost' otherwise.",
        ),
    ] = False,
) -> None:
    """Count lost messages by the hop where they died and the cause."""
    from ..analysis import lost_report
    from ..render import json as render_json
    from ..render.terminal import lost_view

    start = parse_time(since, "--since")
    with clean_errors(), log_map(log_map_):
        report = lost_report(
            traces=traces,
            logs=logs,
            since=start,
            until=parse_time(until, "--until"),
            close_codes=close_codes(close_codes_),
            in_flight=in_flight(in_flight_s),
        )
    if json_:
        print_json(render_json.dumps(render_json.lost_json(report)))
    else:
        console().print(lost_view(report))
    if fail_on_lost:
        err_console().print(plain(gate_summary(report, since, start)), soft_wrap=True)
        if report.lost:
            raise typer.Exit(EXIT_LOST)


def gate_summary(report: LostReport, since: str | None, start: datetime | None) -> str:
    """The gate's one line: how many were lost since when, and the top cause at its hop."""
    window = ""
    if start is not None:
        stamp = start.strftime("%Y-%m-%dT%H:%M:%SZ")
        age = since is not None and _AGE.fullmatch(since) is not None
        window = f" since {stamp}" + (f" ({since.strip()} ago)" if age else "")
    if not report.lost:
        return f"no message lost{window}: {report.total_messages} message(s) checked"
    top = max(report.groups, key=lambda g: g.count) if report.groups else None
    cause = f": top cause {top.cause} at hop {top.hop or '-'}" if top is not None else ""
    return f"{report.lost} message(s) lost{window}{cause}"
