"""How an app's own log lines are read: the keys it uses and the line patterns it writes.

The analyzer understands common keys out of the box (docs/logs.md lists them);
an app that names things its own way says so in one place, either
``[tool.wsanalyze]`` in its ``pyproject.toml`` (found from the current directory
upward) or a file given with ``--log-map FILE`` (TOML or JSON, same keys at the
top level, or a whole ``pyproject.toml``)::

    [tool.wsanalyze.log_keys]
    conversation = ["chat_room"]        # added to the keys understood out of the box
    task = ["job"]

    [[tool.wsanalyze.log_patterns]]
    regex = '^room (?P<conversation_id>\\S+) closed with (?P<close_code>\\d+)$'
    hop = "disconnect"                  # optional: hop, event, status, cause to assign
    event = "disconnect"

A file that cannot be used is one ``LogMapError`` naming the file and the key.

    log_map = load_log_map("logmap.toml")   # or discover_log_map() / current_log_map()
    with using_log_map(log_map):
        ...                                 # every --logs read inside uses it
"""

from __future__ import annotations

import contextlib
import contextvars
import json
import re
import tomllib
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path

from wstrace.conventions import CAUSES, HOPS

# Canonical fields a key (or a pattern's named group) can mean, with the names a user may
# use for them in [log_keys] and in group names (the column name works too).
FIELDS: dict[str, tuple[str, ...]] = {
    "conversation": ("conversation_id",),
    "connection": ("connection_id",),
    "message": ("message_id",),
    "task": ("task_id",),
    "task_name": (),
    "trace": ("trace_id",),
    "span": ("span_id",),
    "close_code": ("code",),
    "queue": (),
    "user": ("user_id",),
    "level": (),
    "exception": ("exc_info",),
    "timestamp": ("ts", "time"),
    "text": ("event", "message", "msg"),
}
STATUSES = ("ok", "error", "unset")
_PATTERN_KEYS = {"regex", "hop", "event", "status", "cause"}
_TOP_KEYS = {"log_keys", "log_patterns"}


class LogMapError(ValueError):
    """A log-map file or section that cannot be used; the message names the file and the key."""


def field_of(name: str) -> str | None:
    """The canonical field a log_keys name or a pattern group name stands for, if any."""
    lowered = name.lower()
    if lowered in FIELDS:
        return lowered
    for canonical, synonyms in FIELDS.items():
        if lowered in synonyms:
            return canonical
    return None


@dataclass(frozen=True)
class LogPattern:
    """A user's line pattern: a regex whose named groups are fields, plus what to assign."""

    regex: str
    hop: str | None = None
    event: str | None = None
    status: str | None = None
    cause: str | None = None


@dataclass(frozen=True)
class LogMap:
    """User additions to the keys understood out of the box, and line patterns."""

    keys: Mapping[str, tuple[str, ...]] = field(default_factory=dict)  # field -> extra keys
    patterns: tuple[LogPattern, ...] = ()
    source: str | None = None  # where it came from, for messages

    @property
    def empty(self) -> bool:
        return not self.keys and not self.patterns


EMPTY = LogMap()


def _bad(source: str, key: str, problem: str) -> LogMapError:
    return LogMapError(f"{source}: {key}: {problem}")


def _regex_ok(regex: str) -> str | None:
    """Why the regex cannot be used, or None. Patterns run in Python and in polars (Rust
    regex), so both must accept them: no look-arounds or back-references."""
    import polars as pl

    try:
        groups = re.compile(regex).groupindex
    except re.error as exc:
        return f"not a regular expression ({exc})"
    if not groups:
        return "has no named group (?P<name>...) to take a field from"
    try:
        pl.Series([""], dtype=pl.String).str.contains(regex)
    except pl.exceptions.PolarsError:
        return "uses syntax polars cannot run (look-arounds, back-references)"
    return None


def _keys(raw: object, source: str, where: str) -> dict[str, tuple[str, ...]]:
    if not isinstance(raw, Mapping):
        raise _bad(source, where, "must be a table of field = [keys]")
    keys: dict[str, tuple[str, ...]] = {}
    for name, value in raw.items():
        canonical = field_of(str(name))
        if canonical is None:
            known = ", ".join(FIELDS)
            raise _bad(source, f"{where}.{name}", f"unknown field (known: {known})")
        values = [value] if isinstance(value, str) else value
        if not isinstance(values, list) or not all(isinstance(v, str) and v for v in values):
            raise _bad(source, f"{where}.{name}", "must be a key name or a list of key names")
        keys[canonical] = keys.get(canonical, ()) + tuple(v.lower() for v in values)
    return keys


def _pattern(raw: object, source: str, where: str) -> LogPattern:
    if not isinstance(raw, Mapping):
        raise _bad(source, where, "must be a table with a regex")
    unknown = set(raw) - _PATTERN_KEYS
    if unknown:
        raise _bad(source, f"{where}.{sorted(unknown)[0]}", f"unknown key (known: {', '.join(sorted(_PATTERN_KEYS))})")  # fmt: skip
    regex = raw.get("regex")
    if not isinstance(regex, str) or not regex:
        raise _bad(source, f"{where}.regex", "missing or not a string")
    problem = _regex_ok(regex)
    if problem:
        raise _bad(source, f"{where}.regex", problem)
    for key, allowed in (("hop", HOPS), ("status", STATUSES), ("cause", CAUSES)):
        value = raw.get(key)
        if value is not None and value not in allowed:
            raise _bad(source, f"{where}.{key}", f"{value!r} is not one of {', '.join(allowed)}")
    event = raw.get("event")
    if event is not None and (not isinstance(event, str) or not event):
        raise _bad(source, f"{where}.event", "must be a non-empty string")
    return LogPattern(regex, raw.get("hop"), event, raw.get("status"), raw.get("cause"))


def parse_log_map(doc: Mapping, source: str, prefix: str = "") -> LogMap:
    """A log map from a decoded table (the file's top level, or [tool.wsanalyze])."""
    unknown = sorted(k for k in doc if k not in _TOP_KEYS and (not prefix or k.startswith("log")))
    if unknown:
        raise _bad(source, f"{prefix}{unknown[0]}", "unknown key (known: log_keys, log_patterns)")
    keys = _keys(doc.get("log_keys", {}), source, f"{prefix}log_keys")
    raw_patterns = doc.get("log_patterns", [])
    if not isinstance(raw_patterns, list):
        raise _bad(source, f"{prefix}log_patterns", "must be a list of tables")
    patterns = tuple(
        _pattern(p, source, f"{prefix}log_patterns[{i}]") for i, p in enumerate(raw_patterns)
    )
    return LogMap(keys, patterns, source)


def _read(path: Path) -> Mapping:
    source = str(path)
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise LogMapError(f"{source}: cannot read: {exc.strerror or exc}") from None
    except UnicodeDecodeError:
        raise LogMapError(f"{source}: not UTF-8 text") from None
    if path.suffix.lower() == ".json" or text.lstrip().startswith("{"):
        try:
            doc = json.loads(text)
        except ValueError as exc:
            raise LogMapError(f"{source}: not valid JSON ({exc})") from None
    else:
        try:
            doc = tomllib.loads(text)
        except tomllib.TOMLDecodeError as exc:
            raise LogMapError(f"{source}: not valid TOML ({exc})") from None
    if not isinstance(doc, Mapping):
        raise LogMapError(f"{source}: must hold a table (log_keys, log_patterns)")
    return doc


def _tool_section(doc: Mapping) -> Mapping | None:
    tool = doc.get("tool")
    section = tool.get("wsanalyze") if isinstance(tool, Mapping) else None
    return section if isinstance(section, Mapping) else None


def load_log_map(path: str | Path) -> LogMap:
    """A `--log-map FILE`: log_keys / log_patterns at the top level, or a pyproject.toml."""
    path = Path(path)
    doc = _read(path)
    section = _tool_section(doc)
    if section is not None:
        return parse_log_map(section, str(path), "tool.wsanalyze.")
    return parse_log_map(doc, str(path))


def find_pyproject(start: Path | None = None) -> Path | None:
    """The nearest pyproject.toml from `start` (default: the current directory) upward."""
    here = (start or Path.cwd()).resolve()
    for folder in (here, *here.parents):
        candidate = folder / "pyproject.toml"
        if candidate.is_file():
            return candidate
    return None


def discover_log_map(start: Path | None = None) -> LogMap:
    """[tool.wsanalyze] of the nearest pyproject.toml; an empty map when there is none."""
    path = find_pyproject(start)
    if path is None:
        return EMPTY
    section = _tool_section(_read(path))
    if section is None:
        return EMPTY
    return parse_log_map(section, str(path), "tool.wsanalyze.")


_ACTIVE: contextvars.ContextVar[LogMap | None] = contextvars.ContextVar(
    "wsanalyze_log_map", default=None
)


@contextlib.contextmanager
def using_log_map(log_map: LogMap | None) -> Iterator[None]:
    """Within the block, log reads that are given no map use this one (None: discover)."""
    token = _ACTIVE.set(log_map)
    try:
        yield
    finally:
        _ACTIVE.reset(token)


def current_log_map() -> LogMap:
    """The map set by `using_log_map`, else the one discovered from pyproject.toml."""
    active = _ACTIVE.get()
    return active if active is not None else discover_log_map()
