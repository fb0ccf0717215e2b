"""``wsanalyze mcp``: the analysis as Model Context Protocol tools, over stdio.

    pip install 'wstrace[mcp]'
    {"mcpServers": {"wsanalyze": {"command": "wsanalyze", "args": ["mcp"]}}}

Five tools, each the library call of one command and the same ``--json`` view
(``wsanalyze.render.json``): ``conversations``, ``conversation``, ``lost``,
``explain`` and ``doctor``. A result is one text block holding that JSON (compact);
a failure is a tool error whose text is the line the command prints on stderr
(``error: no conversation 'x' in ./.wstrace; closest known: …``), never a traceback.
Sources are arguments (``traces``, ``logs``), defaulting as on the command line to
``$WSTRACE_DIR`` or ``./.wstrace`` of the server's working directory.

It sits beside the commands (``wsanalyze.cli``) as one more front end: the same
option parsing and error lines (``_common``), the same library calls and views.
Works with the official SDK 1.x (``FastMCP``) and 2.x (``MCPServer``).

One module, a little over 400 lines, on purpose: each tool's agent-facing description,
its argument schema and the call it makes sit side by side, so what an agent is told a
tool does cannot drift from what it does.
"""

from __future__ import annotations

import contextlib
import io
import json
import os
import re
import sys
import threading
import traceback
from collections.abc import Callable
from functools import partial
from typing import Annotated, Any

import anyio.to_thread
import typer
from mcp.types import CallToolResult, TextContent, ToolAnnotations
from pydantic import Field

try:  # mcp 2.x
    from mcp.server.mcpserver import MCPServer as _Server
except ImportError:  # mcp 1.x
    from mcp.server.fastmcp import FastMCP as _Server

from ._common import (
    check_source,
    clean_errors,
    close_codes,
    fail,
    in_flight,
    log_map,
    parse_time,
)

INSTRUCTIONS = """\
wsanalyze reads the evidence wstrace records in a Django Channels backend (spans from \
Daphne, the consumer, Celery and the channel layer; container logs) and says, for every \
WebSocket message, how far it got, where it was lost and why. Use it when answers, \
streamed chunks or replies "never arrived". Start with `conversations` (outcome="lost" \
to see only failures) or `lost` (counts by hop and cause), then `conversation` with an \
id for the timeline, per-message verdicts, evidence and a fix hint; `explain` a cause; \
`doctor` to check the project's configuration. Sources default to $WSTRACE_DIR or \
./.wstrace of the server's working directory."""

_READ_ONLY = ToolAnnotations(readOnlyHint=True, idempotentHint=True, openWorldHint=False)
_ANSI = re.compile(r"\x1b\[[0-9;]*m")
_ONE_AT_A_TIME = threading.Lock()  # stderr is captured per call: calls run one by one

Traces = Annotated[
    str | None,
    Field(
        description="Where the spans are: a directory or file of OTLP JSON lines (the "
        "embedded store, a Collector file export, a compacted store), jaeger://host:16686 "
        "or tempo://host:3200. Default: $WSTRACE_DIR or ./.wstrace."
    ),
]
Logs = Annotated[
    str | None,
    Field(
        description="Container logs, with or instead of traces: a `docker compose logs -t` "
        "file, json-file driver logs, a directory of them, or docker / docker:PROJECT for "
        "live containers."
    ),
]
LogMap = Annotated[
    str | None,
    Field(description="A TOML or JSON file saying how to read the app's own log lines."),
]
Since = Annotated[
    str | None,
    Field(description="Only evidence after this: an ISO time (2025-03-12T10:00) or an age (15m)."),
]
Until = Annotated[
    str | None, Field(description="Only evidence before this: an ISO time or an age (15m).")
]
At = Annotated[
    str | None,
    Field(
        description="Verdicts as of this moment (ISO time or an age like 30s): later "
        "evidence is left out and what was still waiting then is in flight."
    ),
]
CloseCodes = Annotated[
    str | None,
    Field(
        description='Override the close-code table: \'{"4010": ["auth_rejected", "auth"]}\' '
        "or a JSON file."
    ),
]
InFlight = Annotated[
    float,
    Field(
        description="Seconds: evidence ending this close to the end of the data counts as "
        "in flight, not lost."
    ),
]


def _tool_result(data: Any) -> CallToolResult:
    text = json.dumps(data, ensure_ascii=False, separators=(",", ":"), default=str)
    return CallToolResult(content=[TextContent(type="text", text=text)], isError=False)


def _tool_error(line: str) -> CallToolResult:
    return CallToolResult(content=[TextContent(type="text", text=line)], isError=True)


def _error_line(captured: str) -> str:
    """The one line the command printed with ``fail``."""
    lines = [_ANSI.sub("", ln).strip() for ln in captured.splitlines()]
    errors = [ln for ln in lines if ln.startswith("error:")]
    return errors[-1] if errors else next((ln for ln in reversed(lines) if ln), "error")


def _check_sources(traces: str | None, logs: str | None, lmap: str | None) -> None:
    """The CLI's edge checks on source arguments: a malformed URL is one error line."""
    check_source(traces, "--traces")
    check_source(logs, "--logs")
    check_source(lmap, "--log-map")


def run_as_command(work: Callable[[], Any]) -> CallToolResult:
    """Run one command's work: its JSON, or the error line the command would print."""
    captured = io.StringIO()
    with _ONE_AT_A_TIME:
        try:
            with contextlib.redirect_stderr(captured):
                result = _tool_result(work())
        except typer.Exit:
            result = _tool_error(_error_line(captured.getvalue()))
        except Exception as exc:  # a bug of ours: one line, as the console script says it
            if os.environ.get("WSANALYZE_DEBUG"):
                traceback.print_exc()
            first = str(exc).splitlines()[0] if str(exc) else ""
            result = _tool_error(
                f"error: {type(exc).__name__}: {first} (WSANALYZE_DEBUG=1 shows the traceback)"
            )
    sys.stderr.write(captured.getvalue())  # what the command said, in the server's log
    return result


async def _in_thread(work: Callable[[], Any]) -> CallToolResult:
    return await anyio.to_thread.run_sync(partial(run_as_command, work))


async def conversations(
    traces: Traces = None,
    logs: Logs = None,
    since: Since = None,
    until: Until = None,
    outcome: Annotated[
        str | None,
        Field(description="Only this outcome: delivered, rejected, lost or in_flight."),
    ] = None,
    cause: Annotated[
        str | None,
        Field(description="Only this cause, e.g. consumer_gone, no_worker (see `explain`)."),
    ] = None,
    limit: Annotated[int | None, Field(description="At most this many, newest first.")] = None,
    at: At = None,
    close_codes: CloseCodes = None,
    in_flight: InFlight = 5.0,
    log_map: LogMap = None,
) -> CallToolResult:
    """List conversations, newest first, each with its verdict (outcome, hop, cause, summary), \
its time span and how many messages were delivered, lost or in flight. Call this first to \
find which conversations failed (outcome="lost") and pick an id for `conversation`. \
Same JSON as `wsanalyze conversations --json`."""
    return await _in_thread(
        partial(
            _conversations,
            traces,
            logs,
            since,
            until,
            outcome,
            cause,
            limit,
            at,
            close_codes,
            in_flight,
            log_map,
        )
    )


def _conversations(traces, logs, since, until, outcome, cause, limit, at, codes, fly, lmap):
    from wstrace.conventions import OUTCOMES

    from ..analysis import conversation_list
    from ..causes import KNOWN_CAUSES
    from ..render.json import conversations_json

    # the checks and messages of cli/conversations.py
    if outcome is not None and outcome not in OUTCOMES:
        fail(f"--outcome: {outcome!r} is not one of {', '.join(OUTCOMES)}")
    if cause is not None and cause not in KNOWN_CAUSES:
        fail(f"--cause: unknown cause {cause!r}; causes: {', '.join(KNOWN_CAUSES)}")
    _check_sources(traces, logs, lmap)
    with clean_errors(), log_map(lmap):
        rows, _problems = conversation_list(
            traces=traces,
            logs=logs,
            since=parse_time(since, "--since"),
            until=parse_time(until, "--until"),
            outcome=outcome,
            cause=cause,
            close_codes=close_codes(codes),
            in_flight=in_flight(fly),
            at=parse_time(at, "--at"),
        )
    return conversations_json(rows if limit is None else rows[:limit])


async def conversation(
    conversation_id: Annotated[
        str,
        Field(
            description="The conversation id (ws.conversation_id); a message id or the "
            "app's own message id finds the conversation holding it."
        ),
    ],
    traces: Traces = None,
    logs: Logs = None,
    at: At = None,
    close_codes: CloseCodes = None,
    in_flight: InFlight = 5.0,
    log_map: LogMap = None,
) -> CallToolResult:
    """One conversation in full: its verdict, each connection (opened, closed, close code), \
each message's outcome with the hop where it stopped, the cause, chunk counts \
(published / delivered / sent), the evidence and a fix hint, and the merged timeline of \
spans and log lines. Call it for a conversation `conversations` or `lost` showed, or an id \
the user gave. Same JSON as `wsanalyze conversation <id> --json` (the docs/verdicts.md \
contract)."""
    return await _in_thread(
        partial(_conversation, conversation_id, traces, logs, at, close_codes, in_flight, log_map)
    )


def _conversation(conversation_id, traces, logs, at, codes, fly, lmap):
    from ..analysis import conversation_report
    from ..render.json import conversation_json

    _check_sources(traces, logs, lmap)
    with clean_errors(), log_map(lmap):
        report = conversation_report(
            conversation_id,
            traces=traces,
            logs=logs,
            close_codes=close_codes(codes),
            in_flight=in_flight(fly),
            at=parse_time(at, "--at"),
        )
    return conversation_json(report)


async def lost(
    traces: Traces = None,
    logs: Logs = None,
    since: Since = None,
    until: Until = None,
    close_codes: CloseCodes = None,
    in_flight: InFlight = 5.0,
    log_map: LogMap = None,
) -> CallToolResult:
    """Lost messages counted by the hop where they died and the cause, with the \
conversations and example message ids of each group. Call it for an overview of what \
fails most across all traffic. Same JSON as `wsanalyze lost --json`."""
    return await _in_thread(
        partial(_lost, traces, logs, since, until, close_codes, in_flight, log_map)
    )


def _lost(traces, logs, since, until, codes, fly, lmap):
    from ..analysis import lost_report
    from ..render.json import lost_json

    _check_sources(traces, logs, lmap)
    with clean_errors(), log_map(lmap):
        report = lost_report(
            traces=traces,
            logs=logs,
            since=parse_time(since, "--since"),
            until=parse_time(until, "--until"),
            close_codes=close_codes(codes),
            in_flight=in_flight(fly),
        )
    return lost_json(report)


async def explain(
    cause: Annotated[
        str, Field(description="A cause from a verdict, e.g. consumer_gone or no_worker.")
    ],
) -> CallToolResult:
    """What a verdict's cause means, how it shows in the evidence and how to fix it. Call \
it on the cause of a failed message before proposing a fix. Same JSON as \
`wsanalyze explain <cause> --json`."""
    return await _in_thread(partial(_explain, cause))


def _explain(cause):
    from ..causes import CAUSE_INFO, KNOWN_CAUSES
    from ..render.json import explain_json

    # the lookup and message of cli/explain.py
    info = CAUSE_INFO.get(cause.strip().lower().replace("-", "_"))
    if info is None:
        fail(f"unknown cause {cause!r}; causes: {', '.join(KNOWN_CAUSES)}")
    return explain_json(info)


async def doctor(
    app_dir: Annotated[
        str,
        Field(
            description="The Django project directory (with manage.py), relative to the "
            "server's working directory."
        ),
    ] = ".",
    settings: Annotated[
        str | None, Field(description="DJANGO_SETTINGS_MODULE of the web process.")
    ] = None,
    python: Annotated[
        str | None,
        Field(
            description="The app's Python interpreter (default: <app_dir>/.venv, else this one)."
        ),
    ] = None,
    env: Annotated[
        dict[str, str] | None, Field(description="Extra environment of the web process.")
    ] = None,
    worker_env: Annotated[
        dict[str, str] | None,
        Field(
            description="What differs in the Celery worker's environment (to compare the "
            "web's and the worker's channel layers)."
        ),
    ] = None,
    celery_app: Annotated[str | None, Field(description="module[:attr] of the Celery app.")] = None,
    timeout: Annotated[float, Field(description="Seconds per network check.")] = 5.0,
    only: Annotated[
        list[str] | None,
        Field(
            description="Run only these checks: redis_reachable, layer_roundtrip, "
            "group_roundtrip, asgi_router, allowed_origins, layer_not_in_memory, "
            "celery_worker, wstrace_active, layer_identity."
        ),
    ] = None,
    traces: Traces = None,
) -> CallToolResult:
    """Run the configuration checklist against the Django project: Redis reachable, \
channel-layer and group round trips, ASGI router and auth middleware order, allowed \
origins, no in-memory layer across processes, web and worker on the same layer, a Celery \
worker consuming the routed queues, wstrace active and writing. Each check has a status \
(pass / warn / fail / skip), evidence and a fix; `ok` is false when one failed (a result, \
not a tool error). Call it when no traces exist yet or a cause points at configuration. It \
runs the project's manage.py in a subprocess. Same JSON as `wsanalyze doctor --json`."""
    return await _in_thread(
        partial(
            _doctor, app_dir, settings, python, env, worker_env, celery_app, timeout, only, traces
        )
    )


def _doctor(app_dir, settings, python, env, worker_env, celery_app, timeout, only, traces):
    from pathlib import Path

    from ..doctor import DoctorError, Target, run_doctor

    check_source(traces, "--traces")
    target = Target(
        app_dir=Path(app_dir),
        settings=settings,
        python=python,
        env=dict(env or {}),
        celery_app=celery_app,
        timeout=timeout,
    )
    try:
        return run_doctor(target, worker_env=worker_env, traces=traces, only=tuple(only or ()))
    except DoctorError as exc:
        fail(str(exc))


TOOLS: tuple[tuple[Callable[..., Any], str, ToolAnnotations], ...] = (
    (conversations, "Conversations and their verdicts", _READ_ONLY),
    (conversation, "One conversation: timeline, verdicts, evidence", _READ_ONLY),
    (lost, "Lost messages by hop and cause", _READ_ONLY),
    (explain, "What a cause means and how to fix it", _READ_ONLY),
    (doctor, "Configuration checklist", ToolAnnotations(readOnlyHint=False, destructiveHint=False)),
)


def build_server() -> Any:
    """The MCP server with the five tools."""
    server = _Server("wsanalyze", instructions=INSTRUCTIONS, log_level="WARNING")
    for fn, title, hints in TOOLS:
        server.add_tool(
            fn,
            name=fn.__name__,
            title=title,
            description=" ".join((fn.__doc__ or "").split()),
            annotations=hints,
            structured_output=False,
        )
    return server


def serve() -> None:
    """Serve the tools over stdin/stdout until the client closes the connection."""
    build_server().run("stdio")
