"""``wsanalyze lost``: lost messages aggregated by hop and cause."""

from __future__ import annotations

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
    in_flight,
    log_map,
    parse_time,
    print_json,
)


def lost(
    traces: Traces = None,
    logs: Logs = None,
    log_map_: LogMapFile = None,
    since: Since = None,
    until: Until = None,
    json_: Json = False,
    close_codes_: CloseCodes = None,
    in_flight_s: InFlight = 5.0,
) -> None:
    """Count lost messages by the hop where they died and the cause."""
    from ..analysis import lost_report
    from ..render import json as render_json
    from ..render.terminal import lost_view

    with clean_errors(), log_map(log_map_):
        report = lost_report(
            traces=traces,
            logs=logs,
            since=parse_time(since, "--since"),
            until=parse_time(until, "--until"),
            close_codes=close_codes(close_codes_),
            in_flight=in_flight(in_flight_s),
        )
    if json_:
        print_json(render_json.dumps(render_json.lost_json(report)))
    else:
        console().print(lost_view(report))
