"""What every command shares: option aliases, the console, and turning failures into one line."""

from __future__ import annotations

import contextlib
import os
import re
import sys
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Annotated, NoReturn

import typer
from rich.console import Console

# Piped or redirected output (a CI log, `| less`, a file) would default to 80 columns,
# too narrow for a timeline; a terminal or an explicit COLUMNS keeps its own width.
PIPED_WIDTH = 160


def console() -> Console:
    """Standard output (made per call, so COLUMNS and redirection are honoured)."""
    piped = not sys.stdout.isatty() and not os.environ.get("COLUMNS")
    return Console(highlight=False, width=PIPED_WIDTH if piped else None)


def err_console() -> Console:
    """Standard error."""
    return Console(stderr=True, highlight=False)


EXIT_INPUT = 1  # unusable input: unknown id, unreadable source, bad option value

Traces = Annotated[
    str | None,
    typer.Option(
        "--traces",
        metavar="SOURCE",
        help="OTLP JSON-lines directory or file, or a compacted store "
        "(default: $WSTRACE_DIR or ./.wstrace).",
    ),
]
Logs = Annotated[
    str | None,
    typer.Option(
        "--logs",
        metavar="SOURCE",
        help="Container logs: a compose log file, json-file logs, a directory, or docker[:PROJECT].",
    ),
]
LogMapFile = Annotated[
    str | None,
    typer.Option(
        "--log-map",
        metavar="FILE",
        envvar="WSANALYZE_LOG_MAP",
        help="How to read the app's own log lines: a TOML or JSON file of log_keys and "
        "log_patterns (default: [tool.wsanalyze] of the nearest pyproject.toml; see docs/logs.md).",
    ),
]
Json = Annotated[bool, typer.Option("--json", help="Print JSON instead of tables.")]
Since = Annotated[
    str | None,
    typer.Option(
        help="Only evidence after this: ISO time (2025-03-12T10:00) or an age (15m, 2h, 1d)."
    ),
]
Until = Annotated[
    str | None, typer.Option(help="Only evidence before this: ISO time or an age (15m, 2h, 1d).")
]
CloseCodes = Annotated[
    str | None,
    typer.Option(
        "--close-codes",
        metavar="JSON|FILE",
        help='Override the close-code table like WSTRACE["CLOSE_CODES"]: '
        '\'{"4010": ["auth_rejected", "auth"]}\' or a JSON file.',
    ),
]
Limit = Annotated[
    int | None,
    typer.Option(help="Show at most this many (default: 100 in the terminal, all with --json)."),
]
At = Annotated[
    str | None,
    typer.Option(
        "--at",
        metavar="TIME",
        help="Verdicts as of this moment (ISO time or an age like 30s, 5m): later evidence is "
        "left out, and what was still waiting then is in flight.",
    ),
]
InFlight = Annotated[
    float,
    typer.Option(
        "--in-flight",
        metavar="SECONDS",
        help="Evidence ending this close to the end of the data counts as in flight, not lost.",
    ),
]


def fail(message: str, code: int = EXIT_INPUT) -> NoReturn:
    """Print one line to stderr and exit."""
    err_console().print(f"[bold red]error:[/] {message}", soft_wrap=True)
    raise typer.Exit(code)


@contextlib.contextmanager
def clean_errors() -> Iterator[None]:
    """Library errors become one line and a non-zero exit; never a traceback.

    ``WSANALYZE_DEBUG=1`` lets unexpected exceptions through with their traceback.
    """
    from ..analysis import AnalysisError
    from ..logmap import LogMapError
    from ..sources.base import SourceError
    from ..verdicts.closecodes import CloseCodesError

    try:
        yield
    except typer.Exit:
        raise
    except (AnalysisError, SourceError, CloseCodesError, LogMapError) as exc:
        fail(str(exc))
    except KeyboardInterrupt:
        fail("interrupted", 130)
    except Exception as exc:
        if os.environ.get("WSANALYZE_DEBUG"):
            raise
        first = str(exc).splitlines()[0] if str(exc) else ""
        fail(f"{type(exc).__name__}: {first} (WSANALYZE_DEBUG=1 shows the traceback)", 70)


_AGE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([smhdw])\s*$")
_UNITS = {"s": "seconds", "m": "minutes", "h": "hours", "d": "days", "w": "weeks"}


def parse_time(value: str | None, option: str) -> datetime | None:
    """An ISO time (UTC when no zone) or an age like 15m, 2h, 1d."""
    if value is None:
        return None
    age = _AGE.match(value)
    if age:
        return datetime.now(UTC) - timedelta(**{_UNITS[age.group(2)]: float(age.group(1))})
    try:
        moment = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        fail(f"{option}: {value!r} is neither an ISO time nor an age like 15m, 2h, 1d")
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def close_codes(value: str | None):
    """The --close-codes override, parsed."""
    from ..verdicts.closecodes import CloseCodesError, parse_close_codes

    if value is None:
        return None
    try:
        return parse_close_codes(value)
    except CloseCodesError as exc:
        fail(str(exc))


@contextlib.contextmanager
def log_map(path: str | None) -> Iterator[None]:
    """Within the block, --logs are read with the --log-map FILE (else [tool.wsanalyze])."""
    from ..logmap import LogMapError, load_log_map, using_log_map

    loaded = None
    if path is not None:
        try:
            loaded = load_log_map(path)
        except LogMapError as exc:
            fail(str(exc))
    with using_log_map(loaded):
        yield


def in_flight(seconds: float) -> timedelta:
    if seconds < 0:
        fail("--in-flight must be zero or more seconds")
    return timedelta(seconds=seconds)


def print_json(text: str) -> None:
    """JSON to stdout, untouched by rich."""
    sys.stdout.write(text + "\n")
