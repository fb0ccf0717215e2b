"""What every command shares: option aliases, the console, and turning failures into one line."""

from __future__ import annotations

import contextlib
import math
import os
import re
import sys
import urllib.parse
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Annotated, NoReturn

import typer
from rich.console import Console
from rich.text import Text

from ..render.safe_text import shown

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
_QUOTED = 60  # characters of a bad value repeated in its error line


def fail(message: str, code: int = EXIT_INPUT) -> NoReturn:
    """Print one line to stderr and exit.

    The message often repeats a value from the command line or the data, so it is
    shown as plain text: ``[/]`` is not markup, a newline or ESC is a visible escape.
    """
    line = Text.assemble(("error:", "bold red"), " ", shown(message))
    err_console().print(line, soft_wrap=True)
    raise typer.Exit(code)


def quoted(value: str) -> str:
    """A bad value for an error line: quoted, and cut when long (a path of 5000 characters)."""
    if len(value) <= _QUOTED:
        return repr(value)
    return f"{value[:_QUOTED]!r}… ({len(value)} characters)"


def check_source(value: str | None, option: str) -> str | None:
    """A --traces / --logs / --log-map value that can name a file, a directory or a URL.

    Called from the options' callbacks, so a value no reader could open is one line
    before anything is read; a URL is split here because ``urllib`` raises a bare
    ValueError on a malformed one (``tempo://[::1``), which is no SourceError.
    """
    if value is None:
        return None
    if not value.strip():
        fail(f"{option}: empty; give a file, a directory or a URL")
    if "://" not in value:
        check_path(value, option)
        return value
    try:
        parts = urllib.parse.urlsplit(value)
        parts.port  # noqa: B018 - parsing the port is what raises on a bad one
    except ValueError as exc:
        fail(f"{option}: {quoted(value)} is not a valid URL ({exc})")
    return value


def check_path(value: str, option: str) -> None:
    """A path option that ``Path.exists()`` could look at without raising.

    A missing path passes: each reader says what it wanted there (and ``docker:PROJECT``
    is no path). A NUL, a name too long or a loop of links would raise a bare
    ValueError or OSError from the first ``exists()`` deep in a reader.
    """
    if "\x00" in value:
        fail(f"{option}: {quoted(value)} contains a NUL character")
    try:
        os.stat(value)
    except (FileNotFoundError, NotADirectoryError):
        pass
    except OSError as exc:
        fail(f"{option}: cannot read {quoted(value)}: {exc.strerror or exc}")


def check_traces(value: str | None) -> str | None:
    """The --traces callback."""
    return check_source(value, "--traces")


def _logs_option(value: str | None) -> str | None:
    return check_source(value, "--logs")


def _log_map_option(value: str | None) -> str | None:
    return check_source(value, "--log-map")


def check_limit(value: int | None) -> int | None:
    """A --limit: a count, 0 for no limit."""
    if value is not None and value < 0:
        fail(f"--limit: {value} is negative; give a count, or 0 for no limit")
    return value


Traces = Annotated[
    str | None,
    typer.Option(
        "--traces",
        metavar="SOURCE",
        callback=check_traces,
        help="OTLP JSON-lines directory or file, or a compacted store "
        "(default: $WSTRACE_DIR or ./.wstrace).",
    ),
]
Logs = Annotated[
    str | None,
    typer.Option(
        "--logs",
        metavar="SOURCE",
        callback=_logs_option,
        help="Container logs: a compose log file, json-file logs, a directory, or docker[:PROJECT].",
    ),
]
LogMapFile = Annotated[
    str | None,
    typer.Option(
        "--log-map",
        metavar="FILE",
        envvar="WSANALYZE_LOG_MAP",
        callback=_log_map_option,
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
    typer.Option(
        callback=check_limit,
        help="Show at most this many (default: 100 in the terminal, all with --json; 0: all).",
    ),
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
# A time near datetime.min or datetime.max would overflow when a window or a horizon is
# taken from or added to it, deep inside the analysis; no span is older than 1970 anyway.
_EARLIEST = datetime(1900, 1, 1, tzinfo=UTC)
_LATEST = datetime(9000, 1, 1, tzinfo=UTC)
_SECONDS_MOST = 365 * 24 * 3600.0  # any duration option: at most a year


def parse_time(value: str | None, option: str) -> datetime | None:
    """An ISO time (UTC when no zone) or an age like 15m, 2h, 1d, between 1900 and 9000."""
    if value is None:
        return None
    age = _AGE.match(value)
    if age:
        try:
            moment = datetime.now(UTC) - timedelta(**{_UNITS[age.group(2)]: float(age.group(1))})
        except OverflowError:
            moment = datetime.min.replace(tzinfo=UTC)
        if moment < _EARLIEST:
            fail(f"{option}: {quoted(value)} reaches back before 1900")
        return moment
    try:
        moment = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        fail(f"{option}: {quoted(value)} is neither an ISO time nor an age like 15m, 2h, 1d")
    try:
        moment = (moment if moment.tzinfo else moment.replace(tzinfo=UTC)).astimezone(UTC)
    except OverflowError:  # year 1 east of UTC, or year 9999 west of it
        moment = _LATEST if moment.year > 1900 else datetime.min.replace(tzinfo=UTC)
    if not _EARLIEST <= moment < _LATEST:
        fail(f"{option}: {quoted(value)} is not between 1900 and 9000")
    return moment


def seconds(value: float, option: str, *, zero: bool = True) -> float:
    """A duration in seconds: finite, not negative (nor zero unless ``zero``), at most a year.

    ``float`` options take ``nan`` and ``inf``; either would fail later as a bare
    ValueError or OverflowError out of ``timedelta`` or a sleep.
    """
    if not math.isfinite(value) or value < 0 or (value == 0 and not zero):
        least = "zero or more" if zero else "more than zero"
        fail(f"{option}: {value!r} is not a number of seconds ({least})")
    if value > _SECONDS_MOST:
        fail(f"{option}: {value:g} seconds is more than a year")
    return value


def close_codes(value: str | None):
    """The --close-codes override, parsed."""
    from ..verdicts.closecodes import CloseCodesError, parse_close_codes

    if value is None:
        return None
    try:
        return parse_close_codes(value)
    except CloseCodesError as exc:
        fail(str(exc))
    except (OSError, UnicodeDecodeError) as exc:  # the value names a file it cannot read
        reason = exc.strerror if isinstance(exc, OSError) else "not UTF-8 text"
        fail(f"--close-codes: cannot read {quoted(value)}: {reason or exc}")


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


def in_flight(value: float) -> timedelta:
    """The --in-flight horizon."""
    return timedelta(seconds=seconds(value, "--in-flight"))


def print_json(text: str) -> None:
    """JSON to stdout, untouched by rich."""
    sys.stdout.write(text + "\n")
